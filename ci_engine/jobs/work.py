"""What a Dask worker runs for one image job (:func:`run_pic_job`): a plain function of a
picklable argument, so that it runs on any worker that can import ci_engine and reach the
stores; it returns an outcome instead of raising for a caller-caused failure, so a failed
image never looks like a lost worker.

An image job runs :func:`ci_engine.persist` in-cloud on the source object with a one-rule
``Pic-Operations`` header, captures the result in memory and writes it to a *staging* key of
the destination bucket (:func:`~ci_engine.jobs.buckets.staging_key`). The service moves it to
the job's output key only when it commits the job, under the lock that a cancel also takes:
an acknowledged cancel never sees an output appear afterwards, and a job run twice (a worker
died, the service restarted) writes its output once.
"""

from __future__ import annotations

import time
from typing import Any

from ci_engine._dc import dataclass
from ci_engine.errors import CIError
from ci_engine.jobs.buckets import Buckets, staging_key
from ci_engine.store import Store

__all__ = ["JobSpec", "run_pic_job", "run_pic_jobs", "Captured"]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a worker needs for one attempt of one job."""

    job_id: str
    attempt: int
    buckets: Buckets
    bucket: str
    region: str
    input_object: str
    output_bucket: str
    output_object: str
    rule: str
    is_pic_info: bool = False
    backend: str = "auto"


class Captured(Store):
    """A store that reads through to ``inner`` and keeps what is put in memory."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.written: dict[str, bytes] = {}

    def get(self, key: str) -> bytes:
        return self.written[key] if key in self.written else self.inner.get(key)

    def put(self, key: str, data: bytes) -> str:
        from ci_engine.store import check_key, md5_etag

        self.written[check_key(key)] = bytes(data)
        return md5_etag(data)

    def exists(self, key: str) -> bool:
        return key in self.written or self.inner.exists(key)

    def etag(self, key: str) -> str:
        from ci_engine.store import md5_etag

        return md5_etag(self.written[key]) if key in self.written else self.inner.etag(key)

    def delete(self, key: str) -> None:
        raise NotImplementedError("a job never deletes")

    def keys(self, prefix: str = "") -> list[str]:
        return sorted({*self.inner.keys(prefix), *(k for k in self.written if k.startswith(prefix))})


def _failure(exc: CIError, seconds: float) -> dict[str, Any]:
    return {"ok": False, "code": exc.code, "message": exc.message, "seconds": seconds}


def run_pic_job(spec: JobSpec) -> dict[str, Any]:
    """Run one job attempt on a worker. Returns ``{"ok": True, "staged": key, "result":
    PicProcessResult fields, "seconds": s}`` or ``{"ok": False, "code", "message"}``."""
    from ci_engine.persistent import persist
    from ci_engine.watermark.resources import BucketResolver

    start = time.perf_counter()
    try:
        source = spec.buckets.open(spec.bucket)
        dest = source if spec.output_bucket == spec.bucket else spec.buckets.open(spec.output_bucket)
        captured_source = Captured(source)
        captured_dest = captured_source if dest is source else Captured(dest)
        header = {
            "is_pic_info": int(spec.is_pic_info),
            "rules": [{"bucket": spec.output_bucket, "fileid": "/" + spec.output_object, "rule": spec.rule}],
        }
        answer = persist(
            spec.input_object,
            None,
            header,
            captured_source,
            bucket=spec.bucket,
            region=spec.region,
            in_cloud=True,
            buckets={spec.output_bucket: captured_dest},
            backend=spec.backend,
            workers=1,
            # watermark images: objects of the job's bucket, as for the server's rules
            resources=BucketResolver(spec.bucket, source.get),
        )
        obj = answer.process_results[0]
        staged = staging_key(spec.job_id, spec.attempt)
        dest.put(staged, captured_dest.written[obj.key])
        info = answer.original_info.image_info
        result: dict[str, Any] = {
            "ObjectName": obj.key,
            "OriginalInfo": {"Etag": answer.original_info.etag},
            "ProcessResult": {
                "Etag": obj.etag,
                "Format": obj.format,
                "Width": obj.width,
                "Height": obj.height,
                "Quality": obj.quality,
                "Size": obj.size,
                "FrameCount": obj.frame_count,
            },
        }
        if info is not None:
            result["OriginalInfo"]["ImageInfo"] = {
                "Ave": info.ave,
                "Format": info.format,
                "Height": info.height,
                "Orientation": info.orientation,
                "Quality": info.quality,
                "Width": info.width,
            }
        return {"ok": True, "staged": staged, "result": result, "seconds": time.perf_counter() - start}
    except CIError as exc:
        return _failure(exc, time.perf_counter() - start)
    except Exception as exc:  # a defect: reported on the job, not as a lost worker
        from ci_engine.errors import InternalError

        return _failure(InternalError(f"{type(exc).__name__}: {exc}"), time.perf_counter() - start)


def run_pic_jobs(specs: list[JobSpec]) -> list[dict[str, Any]]:
    """Several job attempts in one Dask task, one after the other (the service groups jobs
    when its backlog is long, so that the scheduler's cost per task is shared)."""
    return [run_pic_job(spec) for spec in specs]
