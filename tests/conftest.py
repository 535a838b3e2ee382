"""Shared test configuration: Hypothesis profiles.

``CI_ENGINE_HYPOTHESIS_PROFILE`` picks the profile; ``ci`` (the default) is derandomised so a
CI failure reproduces, ``dev`` is quicker, ``long`` is for fuzzing sessions.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile("long", deadline=None, max_examples=20_000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("CI_ENGINE_HYPOTHESIS_PROFILE", "ci"))


# -- running without libvips: CI_ENGINE_BLOCK_PYVIPS=1 ---------------------------------------------
# With CI_ENGINE_BLOCK_PYVIPS=1 the whole suite runs as on a machine without pyvips: a meta-path
# finder makes `import pyvips` fail before anything imports it, so backend="auto" falls back to
# Pillow. Tests that need libvips say so (the `requires_vips` marker, or an explicit vips
# backend, which raises BackendUnavailableError): they are reported as skipped, with the reason.
BLOCK_PYVIPS = os.environ.get("CI_ENGINE_BLOCK_PYVIPS", "") not in ("", "0")
PYVIPS_BLOCKED = "pyvips is blocked by CI_ENGINE_BLOCK_PYVIPS=1"

if BLOCK_PYVIPS:
    import importlib.abc
    import sys

    class _BlockPyvips(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
            if fullname == "pyvips" or fullname.startswith("pyvips."):
                raise ImportError(PYVIPS_BLOCKED, name=fullname)
            return None

    if "pyvips" in sys.modules:
        raise RuntimeError("CI_ENGINE_BLOCK_PYVIPS=1: pyvips was imported before tests/conftest.py ran")
    sys.meta_path.insert(0, _BlockPyvips())
    # Processes the tests start (a `ci-engine serve` subprocess, Dask worker processes) do not
    # run this file: the backend variable makes them use the Pillow backend too, so that their
    # bytes are compared with this process's.
    os.environ["CI_ENGINE_BACKEND"] = "pillow"

import pytest  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not BLOCK_PYVIPS:
        return
    skip = pytest.mark.skip(reason=f"requires_vips: {PYVIPS_BLOCKED}")
    for item in items:
        if "requires_vips" in item.keywords:
            item.add_marker(skip)


def _needs_vips(exc: BaseException | None) -> bool:
    from ci_engine.errors import BackendUnavailableError

    while exc is not None:
        if isinstance(exc, ImportError) and PYVIPS_BLOCKED in str(exc):
            return True
        if isinstance(exc, BackendUnavailableError) and "'vips'" in exc.message:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if BLOCK_PYVIPS and report.failed and call.excinfo is not None and _needs_vips(call.excinfo.value):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs libvips ({PYVIPS_BLOCKED})")
