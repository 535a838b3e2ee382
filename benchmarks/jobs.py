"""Asynchronous image jobs on Dask: throughput, overhead per job, the scheduler's cost.

Run ``python benchmarks/jobs.py`` from the repository root (``--help`` for options;
``--jobs 200`` is the issue's size, the default is smaller for a shared machine).

The input is the 12 MP JPEG of ``benchmarks/persistent.py`` (``docs/samples/kleiber.jpg``
upscaled to 4000x3000, q90), hard-linked under N keys of a local bucket; every job is
``imageMogr2/thumbnail/400x`` of one key to another bucket. Measured, in one process:

* **direct**: the same work with no service, one image after the other in this process:
  ``persist()`` in-cloud with the job's one-rule header (what a job runs) into the same
  ``LocalStore``. This is "the image work" the overheads are relative to.
* **job function vs persist()**: ``run_pic_job`` (captured store, staged write) and
  *direct* on one image, 120 pairs (which goes first alternates), in this process: the cost
  of a job inside its task beyond the image work, without the spread between passes, with
  the standard error of the difference.
* **direct on the workers**: the same loop run inside each worker process of the cluster
  (one Dask task per worker holding the whole loop over its share, one worker after the
  other): the image work under the workers' own conditions (``VIPS_CONCURRENCY`` is
  ``cores // workers`` there), on the same executor thread as the jobs.
* **jobs, 1 worker / 2 workers**: ``JobService`` on an embedded ``LocalCluster`` of 1 or 2
  worker processes (one thread each); the time from the first submission to the last
  ``Success`` (the cluster is started and warmed up before the clock starts).
  ``overhead per job = (service CPU + workers CPU - direct on the workers CPU) / N``, as a
  percentage of the image work. Because libvips' CPU per image moves by a few ms between
  passes, the same overhead is also **counted by thread**: every thread of the service
  process, plus the workers' event loops beyond what they use during *direct*. Split into
  the workers' CPU inside ``run_pic_job`` (counted on each worker), the workers' CPU outside
  it (Dask's handling of the task), and this process's CPU by thread (``IO loop``: the local scheduler and the client;
  ``ci-engine-jobs``: the dispatcher, SQLite, commits; ``MainThread``: the benchmark
  submitting the jobs and waiting for them).
* **scheduler cost per task**: ``client.map`` of a no-op over 2,000 items on the 2-worker
  cluster, wall time per task (submission, scheduling, execution of nothing, result); and
  **a task alone**: 100 tasks of 10 ms of CPU sent one at a time (two in flight, a done
  callback and ``result()`` each, as the job service sends its groups), the CPU per task of
  the scheduler + client loop, the sending thread and the workers' event loops.
* **records**: SQLite (WAL) cost per job of ``add_jobs`` + ``claim`` + commit (``finish``),
  measured on 2,000 records.
* **batch**: ``ci-engine batch SRC RULE DEST --jobs 2`` against ``--scheduler`` (the
  2-worker cluster, already running and warm), each a fresh subprocess, alternating, on the
  N files and on N/10 of them (``--rounds`` times, best kept): the whole command's wall time,
  and the **throughput** ``(N - N/10) / (wall(N) - wall(N/10))``, the files per second once
  each is running (neither's start-up: the pool forking its workers, the client importing
  ``distributed`` and connecting), with the CPU of every process involved per file.
  Before it, **task granularity**: the same files through ``batch``'s worker function from
  this process, one Dask task per file (what ``batch --scheduler`` did first) against its
  chunks, with the CPU of the client + scheduler and of the workers' event loops per file.
  ``--only-batch`` runs just these two.

Every figure is wall time on whatever else the machine is running: the load average is
printed at the start and the end. ``--json`` writes ``benchmarks/results/jobs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RULE = "imageMogr2/thumbnail/400x"
BUCKET, OUT = "photos-1250000000", "thumbs-1250000000"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


def noop(x: int) -> int:
    return x


def cpu_seconds() -> float:
    """CPU time of this process, every thread (run on the workers through ``client.run``)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm() -> None:
    """Load what a job needs in this worker process (run through ``client.run``)."""
    import ci_engine.persistent  # noqa: F401
    from ci_engine.backends import get_backend

    get_backend("auto")


def workers_cpu(cluster: Any) -> float:
    return float(sum(cluster.client.run(cpu_seconds).values()))


def _direct_here(root: str, keys: list[str], tag: str) -> float:
    """*direct* inside a worker process (run through ``client.run``): the image work under
    the worker's own conditions (its ``VIPS_CONCURRENCY``, its process); CPU seconds."""
    return direct(Path(root), keys, out=f"direct-{tag}")[1]


def direct_on_workers(cluster: Any, root: Path, keys: list[str]) -> tuple[float, dict[str, float]]:
    """CPU seconds of *direct* over ``keys``, each worker taking its share in turn, as one
    Dask task per worker (so the loop runs on the same executor thread as the jobs), and
    the workers' CPU by thread meanwhile."""
    client = cluster.client
    workers = sorted(client.nthreads())
    total = 0.0
    by_thread: dict[str, float] = {}
    for i, address in enumerate(workers):
        share = keys[i :: len(workers)]
        before = client.run(service_threads_cpu, workers=[address])[address]
        future = client.submit(_direct_here, str(root), share, f"w{i}", workers=[address], pure=False)
        total += float(future.result())
        after = client.run(service_threads_cpu, workers=[address])[address]
        for name, value in _thread_kinds(after, before).items():
            by_thread[name] = by_thread.get(name, 0.0) + value
    return total, by_thread


def _thread_kinds(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """CPU seconds by kind of worker thread: its event loop (``MainThread``), libvips'
    threads, the threads that run tasks."""
    out: dict[str, float] = {}
    for name, value in after.items():
        key = name if name.startswith("native") or name == "MainThread" else "task threads (Dask executor)"
        out[key] = out.get(key, 0.0) + value - before.get(name, 0.0)
    return out


def _count_in_task() -> None:
    """Make this worker count the process CPU spent inside ``run_pic_job`` (run through
    ``client.run``; the count lives on ``ci_engine.jobs.work``, read by :func:`_in_task`)."""
    import resource

    import ci_engine.jobs.work as work

    work._bench_cpu = [0.0, 0]  # type: ignore[attr-defined]
    if getattr(work, "_bench_wrapped", False):
        return
    inner = work.run_pic_job

    def counted(spec: Any) -> Any:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        before = usage.ru_utime + usage.ru_stime
        try:
            return inner(spec)
        finally:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            work._bench_cpu[0] += usage.ru_utime + usage.ru_stime - before  # type: ignore[attr-defined]
            work._bench_cpu[1] += 1  # type: ignore[attr-defined]

    work.run_pic_job = counted
    work._bench_wrapped = True  # type: ignore[attr-defined]


def _in_task() -> tuple[float, int]:
    import ci_engine.jobs.work as work

    cpu, count = work._bench_cpu  # type: ignore[attr-defined]
    return float(cpu), int(count)


def service_threads_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread name (Linux ``/proc``; threads
    Python did not start are named ``native: <comm>``, such as libvips' workers). Runs in
    the service process and, through ``client.run``, in each worker. The time on the CPU is
    read from ``schedstat`` (nanoseconds) where the kernel keeps it, else from ``stat``
    (clock ticks, 10 ms here: 0.05 ms per job over 200 jobs)."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                raw = f.read()
            fields = raw.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    seconds = int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                pass
        except OSError:
            continue
        name = names.get(int(tid)) or "native: " + raw.split("(", 1)[1].rsplit(")", 1)[0]
        out[name] = out.get(name, 0.0) + seconds
    return out


def prepare(root: Path, n: int) -> list[str]:
    """N keys of the 12 MP JPEG in ``root/BUCKET`` (hard links of one file)."""
    from benchmarks.persistent import source_image

    data = source_image()
    bucket = root / BUCKET
    (bucket / "in").mkdir(parents=True, exist_ok=True)
    first = bucket / "in" / "p0000.jpg"
    first.write_bytes(data)
    keys = ["in/p0000.jpg"]
    for i in range(1, n):
        os.link(first, bucket / "in" / f"p{i:04d}.jpg")
        keys.append(f"in/p{i:04d}.jpg")
    return keys


def direct(root: Path, keys: list[str], out: str = "direct-out") -> tuple[float, float]:
    from ci_engine.persistent import persist
    from ci_engine.store import LocalStore

    source = LocalStore(root / BUCKET, fsync=False)
    dest = LocalStore(root / out, fsync=False)
    persist(keys[0], None, _header("warm.jpg"), source, in_cloud=True, buckets={OUT: dest}, bucket=BUCKET, workers=1)
    start, cpu = time.perf_counter(), cpu_seconds()
    for i, key in enumerate(keys):
        header = _header(f"t/{i:04d}.jpg")
        persist(key, None, header, source, in_cloud=True, buckets={OUT: dest}, bucket=BUCKET, workers=1)
    return time.perf_counter() - start, cpu_seconds() - cpu


def job_function_vs_persist(root: Path, keys: list[str], n: int = 120) -> dict[str, float]:
    """The job function (``run_pic_job``: captured store, staged write) against *direct*
    ``persist()``, in ``n`` pairs on the same image in this process (at this process's
    libvips concurrency; which of the two goes first alternates): what a job costs inside its
    task beyond the image work, without the spread between passes. CPU seconds per image of
    the process (libvips' threads included) and of the calling thread alone (the job
    function's own work, without libvips' threads and their spread), with the standard error
    of each difference."""
    import statistics

    from ci_engine.jobs import Buckets
    from ci_engine.jobs.work import JobSpec, run_pic_job
    from ci_engine.persistent import persist
    from ci_engine.store import LocalStore

    buckets = Buckets(str(root), fsync=False)
    source = LocalStore(root / BUCKET, fsync=False)
    dest = LocalStore(root / "paired-direct", fsync=False)

    def job(i: int) -> tuple[float, float]:
        spec = JobSpec(f"paired{i}", 1, buckets, BUCKET, "ap-guangzhou", keys[0], OUT, f"paired/{i}.jpg", RULE)
        process, thread = cpu_seconds(), time.thread_time()
        outcome = run_pic_job(spec)
        if not outcome["ok"]:
            raise SystemExit(f"the job function failed: {outcome}")
        return cpu_seconds() - process, time.thread_time() - thread

    def plain(i: int) -> tuple[float, float]:
        header = _header(f"p/{i}.jpg")
        process, thread = cpu_seconds(), time.thread_time()
        persist(keys[0], None, header, source, in_cloud=True, buckets={OUT: dest}, bucket=BUCKET, workers=1)
        return cpu_seconds() - process, time.thread_time() - thread

    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    for i in range(n + 2):
        if i % 2:
            b, a = plain(i), job(i)
        else:
            a, b = job(i), plain(i)
        if i >= 2:  # the first two warm both paths
            pairs.append((a, b))

    def diff(k: int) -> tuple[float, float]:
        d = [a[k] - b[k] for a, b in pairs]
        return statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5

    extra, extra_se = diff(0)
    thread_extra, thread_se = diff(1)
    return {
        "job_function_cpu_s": statistics.fmean(a[0] for a, _ in pairs),
        "persist_cpu_s": statistics.fmean(b[0] for _, b in pairs),
        "extra_s": extra,
        "extra_se_s": extra_se,
        "thread_extra_s": thread_extra,
        "thread_extra_se_s": thread_se,
    }


def _header(out: str) -> dict[str, Any]:
    return {"rules": [{"bucket": OUT, "fileid": "/" + out, "rule": RULE}]}


def run_jobs(root: Path, keys: list[str], cluster: Any, tag: str) -> tuple[float, float, float, dict[str, Any]]:
    """Wall time, CPU time of this process (client, scheduler, dispatcher, SQLite, commits)
    and CPU time of the workers, from the first submission to the last ``Success``; and the
    split: the workers' CPU inside ``run_pic_job``, this process's CPU by thread."""
    from ci_engine.jobs import Buckets, JobRequest, JobService

    buckets = Buckets(str(root), fsync=False)
    with JobService(root / f"jobs-{tag}.sqlite", buckets, cluster=cluster) as service:
        # every worker process runs one job first (imports, libvips start-up), off the clock
        threads = len(cluster.client.nthreads())
        warm = service.submit(
            BUCKET, [JobRequest(keys[0], OUT, f"{tag}/warm{i}.jpg", rule=RULE) for i in range(4 * threads)]
        )
        service.wait(BUCKET, [job.id for job in warm], timeout=300)
        cluster.client.run(_warm)
        cluster.client.run(_count_in_task)
        requests = [JobRequest(key, OUT, f"{tag}/{i:04d}.jpg", rule=RULE) for i, key in enumerate(keys)]
        threads = service_threads_cpu()
        wthreads = cluster.client.run(service_threads_cpu)
        start, cpu, wcpu = time.perf_counter(), cpu_seconds(), workers_cpu(cluster)
        made = service.submit(BUCKET, requests)
        ids = [job.id for job in made]
        jobs = service.wait(BUCKET, ids, timeout=3600)
        elapsed = time.perf_counter() - start
        cpu, wcpu = cpu_seconds() - cpu, workers_cpu(cluster) - wcpu
        after = service_threads_cpu()
        wafter = cluster.client.run(service_threads_cpu)
        counts = list(cluster.client.run(_in_task).values())
    bad = [j for j in jobs if j.state != "Success"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not succeed: {bad[0].code} {bad[0].message}")
    by_thread: dict[str, float] = {}
    for address, now in wafter.items():
        for name, value in _thread_kinds(now, wthreads[address]).items():
            by_thread[name] = by_thread.get(name, 0.0) + value
    split = {
        "workers_threads_cpu_s": {k: round(v, 3) for k, v in by_thread.items() if v > 0},
        "workers_in_task_cpu_s": sum(c for c, _ in counts),
        "jobs_counted": sum(k for _, k in counts),
        "service_threads_cpu_s": {
            k: round(v - threads.get(k, 0.0), 3) for k, v in after.items() if v > threads.get(k, 0.0)
        },
    }
    return elapsed, cpu, wcpu, split


def scheduler_cost(cluster: Any, n: int = 2000) -> tuple[float, float]:
    """Wall time per no-op task and CPU time of this process (client and scheduler) per task."""
    client = cluster.client
    client.gather(client.map(noop, range(100), pure=False))
    start, cpu = time.perf_counter(), cpu_seconds()
    futures = client.map(noop, range(n), pure=False)
    client.gather(futures)
    return (time.perf_counter() - start) / n, (cpu_seconds() - cpu) / n


def result_styles(cluster: Any, n: int = 1000) -> dict[str, float]:
    """Client + scheduler CPU per no-op task (ms) by how the results come back: ``map`` and
    one ``gather``; ``submit`` and ``as_completed`` with one ``result()`` per future (what
    ``batch --scheduler`` first did); ``as_completed(with_results=True)`` (what it does)."""
    from distributed import as_completed

    client = cluster.client
    client.gather(client.map(noop, range(100), pure=False))
    out: dict[str, float] = {}
    for style in ("map_gather", "as_completed_result", "as_completed_with_results"):
        cpu = cpu_seconds()
        if style == "map_gather":
            client.gather(client.map(noop, range(n), pure=False))
        elif style == "as_completed_result":
            for future in as_completed([client.submit(noop, i, pure=False) for i in range(n)]):  # type: ignore[no-untyped-call]
                future.result()
                future.release()
        else:
            futures = [client.submit(noop, i, pure=False) for i in range(n)]
            for _ in as_completed(futures, with_results=True):  # type: ignore[no-untyped-call]
                pass
        out[style] = (cpu_seconds() - cpu) / n * 1000
    return out


def busy(seconds: float) -> list[dict[str, Any]]:
    """A stand-in for a group of jobs: ``seconds`` of CPU, and an outcome list of the jobs'
    shape (run on a worker)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return [{"ok": True, "staged": "x" * 40, "result": {"ObjectName": "o", "ProcessResult": {"Width": 400}}}]


def task_alone_cost(cluster: Any, n: int = 100, seconds: float = 0.01) -> dict[str, float]:
    """Dask's CPU per task when tasks go one at a time, as the job service sends them: a
    dispatcher thread keeps two in flight with ``submit``, a done callback and
    ``result()``. Returns ms per task: this process's event loop (the scheduler and the
    client), the dispatcher thread, and the workers' event loops."""
    import queue
    import threading

    client = cluster.client
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    wake = threading.Event()

    spent: list[float] = []

    def dispatch(count: int) -> None:
        start = time.thread_time()
        in_flight = submitted = finished = 0
        while finished < count:
            while in_flight < 2 and submitted < count:
                future = client.submit(busy, seconds, pure=False)
                future.add_done_callback(lambda f: (done.put(f), wake.set()))
                submitted += 1
                in_flight += 1
            wake.wait(timeout=1.0)
            wake.clear()
            while not done.empty():
                future = done.get()
                future.result()
                future.release()
                in_flight -= 1
                finished += 1
        spent.append(time.thread_time() - start)

    dispatch(10)  # warm
    before, wbefore = service_threads_cpu(), client.run(service_threads_cpu)
    thread = threading.Thread(target=dispatch, args=(n,), name="bench-dispatcher")
    thread.start()
    thread.join()
    after, wafter = service_threads_cpu(), client.run(service_threads_cpu)
    loops = sum(wafter[a].get("MainThread", 0.0) - wbefore[a].get("MainThread", 0.0) for a in wafter)
    return {
        "service_io_loop_ms": (after.get("IO loop", 0.0) - before.get("IO loop", 0.0)) / n * 1000,
        "dispatcher_ms": spent[-1] / n * 1000,
        "workers_event_loops_ms": loops / n * 1000,
    }


def records_cost(root: Path, n: int = 2000) -> tuple[float, float]:
    from ci_engine.jobs import Job, JobRecords
    from ci_engine.jobs.records import new_id

    records = JobRecords(root / "records-bench.sqlite")
    queue = records.queue_for(BUCKET)
    start, cpu = time.perf_counter(), cpu_seconds()
    for i in range(n):
        (_job,) = records.add_jobs([Job(new_id("c"), BUCKET, queue.id, "in/a.jpg", OUT, f"o/{i}.jpg", RULE)])
        (claimed,) = records.claim(1)
        with records.transaction() as db:
            records.current(db, claimed.id)
            records.finish(db, claimed.id, "Success", result={"ObjectName": f"o/{i}.jpg"})
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    records.close()
    return elapsed / n, cpu / n


def batch(src: Path, dest: Path, *extra: str) -> tuple[float, float]:
    """Wall time and CPU time (the command and every process it waited for: the pool's
    workers) of one ``ci-engine batch`` subprocess."""
    import resource

    shutil.rmtree(dest, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ci_engine", "batch", str(src), RULE, str(dest), "--progress", "none", *extra]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"batch failed: {done.stdout}{done.stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime - cpu


def batch_compare(root: Path, cluster: Any, keys: list[str], small: int, rounds: int) -> dict[str, Any]:
    """``batch --jobs 2`` against ``batch --scheduler`` (the running 2-worker cluster,
    warm), on all ``keys`` and on the first ``small`` of them, ``rounds`` times, the two
    commands alternating. Per command: wall (best of the rounds), CPU (the command's
    processes; for ``--scheduler`` also the workers' and this process's, where the
    scheduler runs), the fixed cost and the time per file of ``wall = fixed + n x per_file``
    from the two sizes, and the **throughput** ``(N - small) / (wall(N) - wall(small))``:
    files per second once both are running, without the start-up of either (the pool's
    worker processes, the client's import of distributed and connection). CPU the same way:
    per file of the whole command, and per extra file (the start-up's CPU taken out)."""
    few = root / "batch-few"
    few.mkdir(exist_ok=True)
    for key in keys[:small]:
        os.link(root / BUCKET / key, few / Path(key).name)
    sources = {"all": root / BUCKET / "in", "few": few}
    modes = {"pool": ("--jobs", "2"), "dask": ("--scheduler", cluster.address)}
    walls: dict[str, dict[str, list[float]]] = {m: {"all": [], "few": []} for m in modes}
    cpus: dict[str, dict[str, list[float]]] = {m: {"all": [], "few": []} for m in modes}
    for _ in range(rounds):
        for size, src in sources.items():
            for mode, extra in modes.items():
                wcpu, scpu = workers_cpu(cluster), cpu_seconds()
                wall, cpu = batch(src, root / f"batch-{mode}", *extra)
                if mode == "dask":
                    cpu += workers_cpu(cluster) - wcpu + cpu_seconds() - scpu
                walls[mode][size].append(wall)
                cpus[mode][size].append(cpu)
    n = len(keys)
    out: dict[str, Any] = {"files": n, "few_files": small, "rounds": rounds}
    for mode in modes:
        w_all, w_few = min(walls[mode]["all"]), min(walls[mode]["few"])
        per_file = (w_all - w_few) / (n - small)
        out[mode] = {
            "wall_s": walls[mode]["all"],
            "wall_few_s": walls[mode]["few"],
            "cpu_s": cpus[mode]["all"],
            "fixed_s": w_few - small * per_file,
            "per_file_ms": per_file * 1000,
            "throughput_files_per_s": 1 / per_file,
            "cpu_per_file_ms": min(cpus[mode]["all"]) / n * 1000,
            "cpu_marginal_ms": (min(cpus[mode]["all"]) - min(cpus[mode]["few"])) / (n - small) * 1000,
        }
    out["wall_ratio"] = min(walls["pool"]["all"]) / min(walls["dask"]["all"])
    out["throughput_ratio"] = out["dask"]["throughput_files_per_s"] / out["pool"]["throughput_files_per_s"]
    out["cpu_ratio"] = out["pool"]["cpu_per_file_ms"] / out["dask"]["cpu_per_file_ms"]
    out["cpu_marginal_ratio"] = out["pool"]["cpu_marginal_ms"] / out["dask"]["cpu_marginal_ms"]
    return out


def granularity(root: Path, cluster: Any, n: int) -> dict[str, Any]:
    """Where ``batch --scheduler`` spent its time before the chunks: the same files through
    ``run_files`` on the warm cluster, from this process (client and scheduler here), as one
    task per file and in :func:`~ci_engine.cli.batch_dask.chunk_sizes` chunks, alternating
    twice (best wall kept). Per file: wall, the CPU of this process (client + scheduler), of
    the workers, and of the workers' event loops (``MainThread``)."""
    from distributed import as_completed

    from ci_engine.cli.batch_dask import DaskConfig, _store, chunk_sizes, plan_keys, run_files
    from ci_engine.limits import Limits
    from ci_engine.parse import parse

    client = cluster.client
    src, dest = str(root / BUCKET / "in"), str(root / "granularity")
    os.makedirs(dest, exist_ok=True)
    plan = plan_keys(_store(src, None), _store(dest, None), parse(RULE), force=True)
    config = client.scatter(DaskConfig(src, dest, None, parse(RULE), "auto", Limits()), broadcast=True)
    client.gather(client.submit(run_files, plan.todo[:2], config, pure=False))
    out: dict[str, Any] = {}
    for _ in range(2):
        for mode in ("per_file", "chunked"):
            sizes = [1] * n if mode == "per_file" else chunk_sizes(n, 2)
            chunks, at = [], 0
            for size in sizes:
                chunks.append(plan.todo[at : at + size])
                at += size
            threads = client.run(service_threads_cpu)
            start, cpu, wcpu = time.perf_counter(), cpu_seconds(), workers_cpu(cluster)
            futures = [client.submit(run_files, chunk, config, pure=False) for chunk in chunks]
            done = 0
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                done += sum(1 for o in future.result() if o.ok)
                future.release()
            wall = time.perf_counter() - start
            cpu, wcpu = cpu_seconds() - cpu, workers_cpu(cluster) - wcpu
            now = client.run(service_threads_cpu)
            loops = sum(_thread_kinds(now[a], threads[a]).get("MainThread", 0.0) for a in now)
            if done != n:
                raise SystemExit(f"granularity: {n - done} files failed")
            figures = {
                "tasks": len(chunks),
                "wall_s": wall,
                "client_scheduler_cpu_ms_per_file": cpu / n * 1000,
                "workers_cpu_ms_per_file": wcpu / n * 1000,
                "workers_event_loops_cpu_ms_per_file": loops / n * 1000,
            }
            if mode not in out or wall < out[mode]["wall_s"]:
                out[mode] = figures
    return out


def print_granularity(g: dict[str, Any], n: int) -> None:
    for mode, label in (("per_file", "one task per file"), ("chunked", "chunks")):
        m = g[mode]
        print(
            f"{label} ({m['tasks']} tasks, client and scheduler in this process): {m['wall_s']:.2f} s "
            f"({n / m['wall_s']:.1f} files/s); CPU per file: client + scheduler "
            f"{m['client_scheduler_cpu_ms_per_file']:.2f} ms, workers {m['workers_cpu_ms_per_file']:.1f} ms "
            f"(their event loops {m['workers_event_loops_cpu_ms_per_file']:.2f} ms)",
            flush=True,
        )


def print_batch(b: dict[str, Any]) -> None:
    for mode, label in (("pool", "batch --jobs 2"), ("dask", "batch --scheduler (2 workers)")):
        m = b[mode]
        print(
            f"{label}: {b['files']} files {min(m['wall_s']):.2f} s, {b['few_files']} files "
            f"{min(m['wall_few_s']):.2f} s (best of {b['rounds']}): start-up {m['fixed_s']:.2f} s + "
            f"{m['per_file_ms']:.1f} ms/file = {m['throughput_files_per_s']:.1f} files/s; CPU "
            f"{m['cpu_per_file_ms']:.1f} ms/file (all processes), {m['cpu_marginal_ms']:.1f} ms per extra file",
            flush=True,
        )
    print(
        f"batch --scheduler / --jobs 2: throughput {b['throughput_ratio']:.2f}x, whole command "
        f"{b['wall_ratio']:.2f}x, CPU per file {b['cpu_ratio']:.2f}x (per extra file {b['cpu_marginal_ratio']:.2f}x)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60, help="images per run (the issue's size: 200)")
    parser.add_argument("--json", action="store_true", help="also write benchmarks/results/jobs.json")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--only-batch", action="store_true", help="only the batch comparison (2-worker cluster)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the batch comparison (best is kept)")
    args = parser.parse_args(argv)

    from ci_engine.jobs import Cluster

    n = args.jobs
    print(f"load average (1 / 5 min) at start: {load()}; {os.cpu_count()} cores", flush=True)
    results: dict[str, Any] = {"jobs": n, "rule": RULE, "load_start": load(), "machine": platform.platform()}
    with tempfile.TemporaryDirectory(prefix="ci-jobs-bench-") as tmp:
        root = Path(tmp)
        keys = prepare(root, n)
        if args.only_batch:
            cluster = Cluster(workers=2)
            cluster.start()
            try:
                cluster.client.run(_warm)
                batch(root / BUCKET / "in", root / "batch-warm", "--scheduler", cluster.address)
                styles = result_styles(cluster)
                print(
                    "no-op tasks, client+scheduler CPU per task: "
                    + ", ".join(f"{k} {v:.2f} ms" for k, v in styles.items())
                )
                print_granularity(granularity(root, cluster, n), n)
                print_batch(batch_compare(root, cluster, keys, max(2, n // 10), args.rounds))
            finally:
                cluster.close()
            print(f"load average (1 / 5 min) at the end: {load()}")
            return 0
        paired = job_function_vs_persist(root, keys)
        results["job_function_vs_persist"] = paired
        print(
            f"job function vs persist(), 120 pairs in one process: {paired['job_function_cpu_s'] * 1000:.2f} "
            f"against {paired['persist_cpu_s'] * 1000:.2f} ms CPU per image ({paired['extra_s'] * 1000:+.2f} ms, "
            f"standard error {paired['extra_se_s'] * 1000:.2f}); on the calling thread alone "
            f"{paired['thread_extra_s'] * 1000:+.2f} ms (standard error {paired['thread_extra_se_s'] * 1000:.2f})",
            flush=True,
        )
        t_direct, c_direct = direct(root, keys)
        results.update(direct_s=t_direct, direct_cpu_s=c_direct)
        print(
            f"direct (one process, sequential): {t_direct:.2f} s wall, {c_direct:.2f} s CPU "
            f"({c_direct / n * 1000:.1f} ms CPU/image)",
            flush=True,
        )
        for workers in (1, 2):
            cluster = Cluster(workers=workers)
            cluster.start()
            try:
                # the image work measured in these worker processes first (same VIPS_CONCURRENCY;
                # it also warms every worker up), then the same images as jobs
                c_here, direct_threads = direct_on_workers(cluster, root, keys)
                results[f"jobs_{workers}_direct_on_workers_threads_cpu_s"] = {
                    k: round(v, 3) for k, v in direct_threads.items() if v > 0
                }
                wall, cpu, wcpu, split = run_jobs(root, keys, cluster, f"w{workers}")
                results[f"jobs_{workers}_wall_s"] = wall
                results[f"jobs_{workers}_service_cpu_s"] = cpu
                results[f"jobs_{workers}_workers_cpu_s"] = wcpu
                results[f"jobs_{workers}_direct_on_workers_cpu_s"] = c_here
                results[f"jobs_{workers}_split"] = split
                extra = (cpu + wcpu - c_here) / n
                results[f"jobs_{workers}_overhead_cpu_ms_per_job"] = extra * 1000
                results[f"jobs_{workers}_overhead_cpu_pct"] = 100 * extra / (c_here / n)
                in_task = split["workers_in_task_cpu_s"]
                loops = split["workers_threads_cpu_s"].get("MainThread", 0.0) - direct_threads.get("MainThread", 0.0)
                by_thread = (sum(split["service_threads_cpu_s"].values()) + loops) / n
                results[f"jobs_{workers}_overhead_by_thread_ms_per_job"] = by_thread * 1000
                results[f"jobs_{workers}_overhead_by_thread_pct"] = 100 * by_thread / (c_here / n)
                print(
                    f"jobs, {workers} worker(s): {wall:.2f} s wall ({n / wall:.2f} jobs/s); CPU: service "
                    f"{cpu:.2f} s + workers {wcpu:.2f} s; image work on these workers (direct there) "
                    f"{c_here / n * 1000:.1f} ms/image; overhead per job {extra * 1000:.1f} ms CPU = "
                    f"{100 * extra / (c_here / n):.1f} % of the image work",
                    flush=True,
                )
                print(
                    f"  per job: worker CPU inside run_pic_job {in_task / n * 1000:.1f} ms, outside it "
                    f"{(wcpu - in_task) / n * 1000:.2f} ms; service by thread (ms): "
                    + ", ".join(f"{k} {v / n * 1000:.2f}" for k, v in sorted(split["service_threads_cpu_s"].items())),
                    flush=True,
                )
                print(
                    f"  overhead per job counted by thread (every thread of the service process, and the "
                    f"workers' event loops beyond what they use while the workers run *direct*): "
                    f"{by_thread * 1000:.2f} ms = {100 * by_thread / (c_here / n):.1f} % of the image work",
                    flush=True,
                )
                print(
                    "  per job, workers by thread (ms; MainThread is the worker's event loop): "
                    + ", ".join(f"{k} {v / n * 1000:.2f}" for k, v in sorted(split["workers_threads_cpu_s"].items()))
                    + "; direct on the workers, by thread: "
                    + ", ".join(f"{k} {v / n * 1000:.2f}" for k, v in sorted(direct_threads.items()) if v > 0),
                    flush=True,
                )
                if workers == 2:
                    results["speedup_2_vs_1_wall"] = results["jobs_1_wall_s"] / wall
                    print(f"2 workers vs 1, wall: {results['speedup_2_vs_1_wall']:.2f}x", flush=True)
                    per_task, per_task_cpu = scheduler_cost(cluster)
                    results.update(scheduler_wall_s_per_task=per_task, scheduler_cpu_s_per_task=per_task_cpu)
                    print(
                        f"Dask, 2,000 no-op tasks: {per_task * 1e6:.0f} us wall and {per_task_cpu * 1e6:.0f} us "
                        "of client+scheduler CPU per task",
                        flush=True,
                    )
                    alone = task_alone_cost(cluster)
                    results["task_alone_cpu_ms"] = alone
                    print(
                        "Dask, 100 tasks of 10 ms sent one at a time (2 in flight, as the job service does), "
                        "CPU per task: " + ", ".join(f"{k} {v:.2f}" for k, v in alone.items()),
                        flush=True,
                    )
                    styles = result_styles(cluster)
                    results["scheduler_cpu_ms_per_task_by_result_style"] = styles
                    print(
                        "Dask, 1,000 no-op tasks, client+scheduler CPU per task by how results come back: "
                        + ", ".join(f"{k} {v:.2f} ms" for k, v in styles.items()),
                        flush=True,
                    )
                    if not args.skip_batch:
                        g = granularity(root, cluster, n)
                        results["batch_task_granularity"] = g
                        print_granularity(g, n)
                        b = batch_compare(root, cluster, keys, max(2, n // 10), args.rounds)
                        results["batch"] = b
                        results["batch_scheduler_vs_jobs2"] = b["throughput_ratio"]
                        print_batch(b)
            finally:
                cluster.close()
        per_record, per_record_cpu = records_cost(root)
        results.update(sqlite_wall_s_per_job=per_record, sqlite_cpu_s_per_job=per_record_cpu)
        print(
            f"SQLite per job (add + claim + commit, WAL): {per_record * 1e6:.0f} us wall, "
            f"{per_record_cpu * 1e6:.0f} us CPU",
            flush=True,
        )
    results["load_end"] = load()
    print(f"load average (1 / 5 min) at the end: {load()}")
    if args.json:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
