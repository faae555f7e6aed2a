"""Shared fixtures: the real sample data, a per-test product home, devices."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.config import shared_data

SHARED = shared_data()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (demo-size work)")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("SMDS_RUN_SLOW") == "1"
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    has_chromium = shutil.which("chromium") is not None or Path("/usr/bin/chromium").exists()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow or SMDS_RUN_SLOW=1"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device on this machine"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(pytest.mark.skip(reason="browser: /usr/bin/chromium not installed "
                                                    "(apt-get install -y chromium)"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared/data``; tests that need it skip with a clear message where it is absent."""
    if SHARED is None:
        pytest.skip("real sample data ../shared/data is absent (developer checkouts and CI have it)")
    return SHARED


@pytest.fixture
def smds_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SMDS_HOME", str(home))
    return home


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _devices():
    devs = ["cpu"]
    try:
        import torch
        if torch.cuda.is_available():
            devs.append("cuda")
    except Exception:  # pragma: no cover
        pass
    return devs


@pytest.fixture(params=_devices())
def device(request):
    return request.param


@pytest.fixture(scope="session", autouse=True)
def dask_cluster():
    """One real local Dask cluster (2 worker processes, as the archive's default) for every
    archive built in this test process: its workers import the methods and load each runner
    once (a cluster per build spends ~13 s of its ~20 s on a 2-day tiny archive starting
    them). Builds in subprocesses (the CLI tests, the kill tests) start their own, as a user's
    do. ``model.inference.archive.default_scheduler`` points at it."""
    from model.inference.archive import local_cluster

    cluster = local_cluster(2)
    mp = pytest.MonkeyPatch()
    mp.setattr("model.inference.archive.default_scheduler", lambda: cluster.scheduler_address)
    try:
        yield cluster
    finally:
        mp.undo()
        cluster.close()


# ------------------------------------------------------------------ the tiny pipeline
@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """The real pipeline on the tiny virtual TP (world -> ingest -> train every model for
    seconds -> two-day archive -> validate), built once per test session.

    ``SMDS_TEST_HOME`` reuses a folder across sessions (developer convenience)."""
    from model.demo import run_pipeline

    home = Path(os.environ.get("SMDS_TEST_HOME") or tmp_path_factory.mktemp("tiny-home"))
    mp = pytest.MonkeyPatch()
    mp.setenv("SMDS_HOME", str(home))
    mp.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    try:
        summary = run_pipeline("tiny", quick=True, device="cpu")
    finally:
        mp.undo()
    bad = {k: v for k, v in summary.items() if isinstance(v, dict) and v.get("status") != "ok"}
    assert not bad, f"tiny pipeline failed: {bad}"
    return home


@pytest.fixture
def tiny(tiny_pipeline, monkeypatch) -> Path:
    """Point SMDS_HOME / SMDS_CATALOG at the tiny pipeline's home for one test."""
    monkeypatch.setenv("SMDS_HOME", str(tiny_pipeline))
    monkeypatch.setenv("SMDS_CATALOG", str(tiny_pipeline / "worlds" / "tiny" / "catalog.yaml"))
    return tiny_pipeline
