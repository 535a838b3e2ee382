"""Job callbacks: the ``TaskFinish`` HTTP ``POST`` CI sends when a job ends (CI's "image
processing callback" page: the body is ``<Response><EventName>TaskFinish</EventName>
<JobsDetail>...</JobsDetail></Response>``, ``application/xml``).

:class:`Notifier` sends them from its own thread: :meth:`Notifier.send` only queues, so a
slow or dead receiver never blocks the dispatcher nor changes a job's outcome. A callback is
retried (connection refused, reset or timed out, ``408``, ``429``, ``5xx``) up to
``attempts`` times with a growing pause; a ``2xx`` answer delivers it, another ``4xx`` ends
it. Callbacks live in memory: those still queued when the service stops are dropped (and
counted), not resent after a restart.

Which callback a job gets (:func:`callback_target`): the job's own ``CallBack`` URL (in its
``CallBackFormat``), else its queue's ``NotifyConfig`` when ``State`` is ``On`` and ``Event``
names ``TaskFinish`` (in its ``ResultFormat``); ``CallBack`` ``no`` suppresses the queue's.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ci_engine.errors import InvalidArgumentError, UnsupportedOperationError
from ci_engine.jobs.detail import CALLBACK_FORMATS, callback_body
from ci_engine.jobs.records import Job

__all__ = [
    "Notifier",
    "Callback",
    "callback_target",
    "make_callback",
    "check_url",
    "check_notify_config",
    "NO_CALLBACK",
]

log = logging.getLogger("ci_engine.jobs")

NO_CALLBACK = "no"
"""A job's ``CallBack`` that suppresses its queue's callback."""

_MAX_URL = 2048
_EVENTS = ("TaskFinish", "WorkflowFinish")


def check_url(url: str, name: str) -> str:
    """An ``http``/``https`` URL with a host, or ``400 InvalidArgument``."""
    parts = urlsplit(url)
    if len(url) > _MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"{name}: must be an http:// or https:// URL, got {url[:200]!r}", op="jobs")
    return url


def check_callback_type(value: str, name: str) -> None:
    if value not in ("", "Url"):
        if value == "TDMQ":
            raise UnsupportedOperationError(f"{name}: TDMQ (message queue) callbacks are not supported; use Url")
        raise InvalidArgumentError(f"{name}: must be Url or TDMQ, got {value!r}", op="jobs")


def check_format(value: str, name: str) -> str:
    if value not in ("", *CALLBACK_FORMATS):
        raise InvalidArgumentError(f"{name}: must be XML or JSON, got {value!r}", op="jobs")
    return value or "XML"


def check_notify_config(notify: Mapping[str, str]) -> None:
    """A queue's ``NotifyConfig`` as given to ``PUT /picqueue/<id>``: ``State`` ``On`` or
    ``Off``; when ``On``, ``Url`` an http(s) URL, ``Type`` ``Url`` (``TDMQ``: ``501``),
    ``Event`` a comma list of ``TaskFinish`` / ``WorkflowFinish``, ``ResultFormat`` ``XML``
    or ``JSON``."""
    state = notify.get("State", "Off")
    if state not in ("On", "Off"):
        raise InvalidArgumentError(f"NotifyConfig/State: must be On or Off, got {state!r}", op="jobs")
    if state == "Off":
        return
    check_callback_type(notify.get("Type", ""), "NotifyConfig/Type")
    check_url(notify.get("Url", ""), "NotifyConfig/Url")
    check_format(notify.get("ResultFormat", ""), "NotifyConfig/ResultFormat")
    events = [e.strip() for e in notify.get("Event", "").split(",") if e.strip()]
    unknown = [e for e in events if e not in _EVENTS]
    if unknown:
        raise InvalidArgumentError(f"NotifyConfig/Event: unknown event {unknown[0]!r}; TaskFinish", op="jobs")


@dataclass(frozen=True, slots=True)
class Callback:
    url: str
    body: bytes
    content_type: str
    job_id: str


def callback_target(job: Job, notify: Mapping[str, str] | None) -> tuple[str, str] | None:
    """``(url, format)`` of the callback an ended job gets, or ``None``."""
    if job.callback == NO_CALLBACK:
        return None
    queue_format = (notify or {}).get("ResultFormat", "") or "XML"
    if job.callback:
        return job.callback, job.callback_format or queue_format
    if not notify or notify.get("State") != "On" or not notify.get("Url"):
        return None
    events = [e.strip() for e in notify.get("Event", "").split(",") if e.strip()]
    if events and "TaskFinish" not in events:
        return None
    return notify["Url"], queue_format


class Notifier:
    """Sends callbacks from one thread, with bounded retries; never raises to the caller.

    Args:
        attempts: tries per callback (the first included).
        timeout: seconds for one ``POST`` (connect and answer).
        backoff: the pause before the second try; doubled for each next one.
        max_pending: callbacks queued beyond this are dropped (and logged).
    """

    def __init__(
        self, *, attempts: int = 3, timeout: float = 5.0, backoff: float = 0.5, max_pending: int = 10000
    ) -> None:
        if attempts < 1 or timeout <= 0 or backoff < 0 or max_pending < 1:
            raise ValueError("attempts >= 1, timeout > 0, backoff >= 0 and max_pending >= 1 are required")
        self.attempts, self.timeout, self.backoff, self.max_pending = attempts, timeout, backoff, max_pending
        self._heap: list[tuple[float, int, int, Callback]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def send(self, callback: Callback) -> bool:
        """Queue a callback (returns at once); ``False`` when it was dropped."""
        with self._cond:
            if self._stop or len(self._heap) >= self.max_pending:
                self.dropped += 1
                log.warning("callback of job %s dropped (%s)", callback.job_id, "stopped" if self._stop else "full")
                return False
            heapq.heappush(self._heap, (time.monotonic(), next(self._order), 1, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ci-engine-callbacks", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def pending(self) -> int:
        """Callbacks queued or being sent."""
        with self._cond:
            return len(self._heap) + int(self._busy)

    def close(self, wait: float = 2.0) -> None:
        """Stop after up to ``wait`` seconds for the queued callbacks; the rest are dropped."""
        deadline = time.monotonic() + wait
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._cond:
            self._stop = True
            self.dropped += len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            # a POST in flight ends within its time-out; the thread is a daemon, so a
            # process that exits meanwhile does not wait for it
            self._thread.join(timeout=1.0)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(timeout=(self._heap[0][0] - time.monotonic()) if self._heap else None)
                if self._stop:
                    return
                _, _, attempt, callback = heapq.heappop(self._heap)
                self._busy = True
            try:
                retry = self._post(callback, attempt)
            except Exception:  # never let a defect kill the thread
                log.exception("callback of job %s", callback.job_id)
                retry = False
            with self._cond:
                self._busy = False
                if retry and attempt < self.attempts and not self._stop:
                    due = time.monotonic() + self.backoff * 2 ** (attempt - 1)
                    heapq.heappush(self._heap, (due, next(self._order), attempt + 1, callback))
                elif retry:
                    self.failed += 1
                    log.warning(
                        "callback of job %s to %s failed after %d tries", callback.job_id, callback.url, attempt
                    )

    def _post(self, callback: Callback, attempt: int) -> bool:
        """One try. Returns whether to try again."""
        request = urllib.request.Request(  # noqa: S310 - the URL was checked: http or https
            callback.url,
            data=callback.body,
            method="POST",
            headers={"Content-Type": callback.content_type, "User-Agent": "ci-engine-callback"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                answer.read(1 << 16)  # the answer body is not used; read a bounded part
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad host
            log.info("callback of job %s, try %d: %s", callback.job_id, attempt, exc)
            return True
        if 200 <= status < 300:
            with self._cond:
                self.delivered += 1
            return False
        if status in (408, 429) or status >= 500:
            return True
        with self._cond:
            self.failed += 1
        log.warning("callback of job %s to %s refused with %d", callback.job_id, callback.url, status)
        return False


def make_callback(job: Job, notify: Mapping[str, str] | None) -> Callback | None:
    """The callback of an ended job, or ``None`` when it gets none."""
    target = callback_target(job, notify)
    if target is None:
        return None
    url, fmt = target
    body, content_type = callback_body(job, fmt)
    return Callback(url, body, content_type, job.id)
