"""SIGKILL the real CLI mid-run, rerun the same command: it finishes with the same result.

Ingest and validate (the archive's twin is tests/pipeline/test_pipeline.py::
test_archive_resumes_after_a_kill). Both write into a temporary sibling folder and rename it
into place at the end (:func:`model.io.atomic_path`), so a kill leaves the old result (or
none) and a temporary folder; the rerun writes a fresh one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def _cli(home, *argv):
    env = dict(os.environ, SMDS_HOME=str(home), SMDS_CATALOG=str(home / "worlds" / "tiny" / "catalog.yaml"),
               PYTHONPATH=str(REPO))
    return [sys.executable, "-m", "model.cli", *argv], env


def _kill_when(cmd, env, ready, limit=300.0):
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds; True when killed mid-run."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.2)
    killed = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)   # the command and any worker it started
    proc.wait()
    return killed


def test_ingest_finishes_after_a_kill(tiny, tmp_path):
    from model.features.ard import ard_identity, open_group

    out = tmp_path / "ard.zarr"
    cmd, env = _cli(tiny, "ingest", "--catalog", str(tiny / "worlds" / "tiny" / "catalog.yaml"),
                    "--out", str(out))
    # killed once the ERA5-Land group is partly written (the SMAP and station groups not yet)
    killed = _kill_when(cmd, env, lambda: any((p / "era5" / "swvl1").exists()
                                              for p in tmp_path.glob(".ard.zarr.tmp-*")))
    assert killed, "ingest finished before it could be killed"
    assert not (out / ".complete").exists()      # nothing half-written looks complete
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    ref = tiny / "worlds" / "tiny" / "ard.zarr"
    assert ard_identity(out) == ard_identity(ref)   # same files read, skipped and emptied, same period
    for group in ("era5", "smap_m09"):
        a, b = open_group(out, group), open_group(ref, group)
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "stations.parquet"),
                                  pd.read_parquet(ref / "stations.parquet"))


@pytest.mark.slow  # two whole validations of the tiny home: ~150 s of a CI run on 2 cores
def test_validate_finishes_after_a_kill(tiny, tmp_path):
    out = tmp_path / "val"
    cmd, env = _cli(tiny, "validate", "--ard", str(tiny / "worlds" / "tiny" / "ard.zarr"), "--out", str(out),
                    "--no-report")
    killed = _kill_when(cmd, env, lambda: any(any(p.iterdir()) for p in tmp_path.glob(".val.tmp-*")
                                              if p.is_dir()))
    assert killed, "validate finished before it could be killed"
    assert not (out / "settings.json").exists()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    ref = tiny / "validation"
    for name in ("summary", "stations", "networks", "temporal"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"),
                                      pd.read_parquet(ref / f"{name}.parquet"))
