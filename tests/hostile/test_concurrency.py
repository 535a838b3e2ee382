"""``process()`` from many threads: 8 threads x 200 mixed operations (every format, every
kind of step, refusals and bombs among them) give byte-identical outputs, and the same
errors, as the same operations run one after the other.

libvips runs with its operation cache off and a per-request thread count chosen by
``VipsBackend.tune`` (docs/security.md); that count is process-global, and this test is
what shows that requests racing to set it still produce identical bytes.
"""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import ci_engine as ce
from ci_engine.backends import available_backends
from tests.hostile.corpus import RULES, samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bombs"))
import make_bombs

BACKENDS = available_backends()
THREADS = 8
OPS_PER_THREAD = 200


def operations(seed: int) -> list[tuple[bytes, str]]:
    rng = random.Random(seed)
    images = list(samples().values())
    bombs = [make_bombs.load(b) for b in make_bombs.BOMBS if b.committed and len(make_bombs.load(b)) < 10_000]
    ops = []
    for _ in range(OPS_PER_THREAD):
        roll = rng.random()
        if roll < 0.05:
            ops.append((rng.choice(bombs), "imageMogr2/thumbnail/64x"))
        elif roll < 0.08:
            ops.append((rng.choice(images)[: rng.randrange(10, 200)], rng.choice(RULES)))
        else:
            ops.append((rng.choice(images), rng.choice(RULES)))
    return ops


def outcome(data: bytes, rule: str, backend: str) -> tuple[str, bytes | str]:
    try:
        result = ce.process(data, rule, backend=backend)
    except ce.CIError as exc:
        return exc.code, exc.message
    return result.format, result.data


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_give_the_sequential_bytes(backend: str) -> None:
    work = [operations(seed) for seed in range(THREADS)]
    expected = [[outcome(data, rule, backend) for data, rule in ops] for ops in work]

    def worker(ops: list[tuple[bytes, str]]) -> list[tuple[str, bytes | str]]:
        return [outcome(data, rule, backend) for data, rule in ops]

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(worker, work))
    mismatches = [
        (thread, index, work[thread][index][1])
        for thread in range(THREADS)
        for index in range(OPS_PER_THREAD)
        if got[thread][index] != expected[thread][index]
    ]
    assert not mismatches, f"{backend}: {len(mismatches)} of {THREADS * OPS_PER_THREAD} differ: {mismatches[:10]}"
    codes = {result[0] for ops in expected for result in ops}
    assert {"ImageResolutionExceed", "InvalidImageFormat"} <= codes  # refusals were in the mix
