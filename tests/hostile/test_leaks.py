"""Leaks: 10,000 mixed operations in a fresh subprocess per backend; the RSS after all of
them must be within 10 % of the RSS after the first 1,000 (which has reached the steady
state: libvips' and Pillow's buffers, the allocator's arenas, the lazy imports).

The operations cycle through every sample format (tests/hostile/corpus.py) under the cheaper
processing strings (resize, crop, masks, pipelines, PNG/BMP output, imageInfo), a few bombs
and truncated files (error paths allocate too), with libvips' settings as ``VipsBackend``
makes them: operation cache off, per-request concurrency.
Reproduce the figures with ``python -m tests.hostile.test_leaks``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ci_engine.backends import available_backends

BACKENDS = available_backends()
OPERATIONS = 10_000
WARM = 1_000
MAX_GROWTH = 0.10

CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[3])
    import ci_engine as ce
    from tests.hostile.corpus import RULES, samples
    sys.path.insert(0, sys.argv[3] + "/tests/fixtures/bombs")
    import make_bombs

    def rss():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    backend, total = sys.argv[1], int(sys.argv[2])
    images = list(samples().values())
    bombs = [make_bombs.load(b) for b in make_bombs.BOMBS if b.committed and b.name.endswith((".png", ".gif"))]
    rules = [r for r in RULES if r.endswith(("/format/png", "12x", "imageInfo", "/format/bmp"))]
    ops = [(image, rule) for image in images for rule in rules]
    ops += [(bomb, "imageMogr2/thumbnail/64x") for bomb in bombs]
    ops += [(image[: len(image) // 2], "imageMogr2/thumbnail/12x") for image in images]
    samples_at = {}
    for index in range(total):
        data, rule = ops[index % len(ops)]
        try:
            ce.process(data, rule, backend=backend)
        except ce.CIError:
            pass
        if index + 1 in (1_000, 2_000, 5_000, total):
            samples_at[index + 1] = rss()
    print(json.dumps(samples_at))
    """
)


def rss_samples(backend: str, total: int = OPERATIONS) -> dict[int, int]:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", CHILD, backend, str(total), root],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.slow  # about 45 s of CPU per backend; part of the CI run all the same
@pytest.mark.parametrize("backend", BACKENDS)
def test_rss_after_10000_operations(backend: str) -> None:
    samples = rss_samples(backend)
    growth = samples[OPERATIONS] / samples[WARM] - 1
    mb = {k: round(v / 2**20, 1) for k, v in samples.items()}
    assert growth < MAX_GROWTH, f"{backend}: RSS grew {growth:.1%} from operation {WARM} to {OPERATIONS}: {mb} MB"


if __name__ == "__main__":  # pragma: no cover - the figures
    for name in BACKENDS:
        found = rss_samples(name)
        print(
            name,
            {k: f"{v / 2**20:.1f} MB" for k, v in found.items()},
            f"growth {found[OPERATIONS] / found[WARM] - 1:+.1%}",
        )
