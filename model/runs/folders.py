"""The registry of trained runs on disk: ``$SMDS_HOME/runs/<model>/<stamp>-<config hash>/``.

A run folder holds ``checkpoint.pt`` (weights or fitted state, with ``extra``: normalisation,
training configuration, the analysis-ready store's identity, the code version),
``config.json``, ``log.csv`` and ``summary.json``. ``runs/<model>/LATEST`` names the newest
complete run; it is written (atomically) only after the run's files are complete.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from ..config import runs_dir
from ..errors import InputError
from ..features.ard import ard_identity
from ..io import read_json_marker, write_text_atomic

#: the pointer file to a model's newest complete run
LATEST = "LATEST"


#: a run folder holding this file (JSON: its ``max_minutes``) is a provisional run, the first
#: page's short run of the demo: never reused for the final products (:mod:`model.demo`)
PROVISIONAL_MARK = "PROVISIONAL"


def provisional_minutes(run: str | Path) -> float | str | None:
    """The budget (minutes) of a provisional run folder, "?" when its marker is unreadable,
    None when the run is not provisional."""
    mark = Path(run) / PROVISIONAL_MARK
    if not mark.exists():
        return None
    return (read_json_marker(mark, "provisional-run marker") or {}).get("max_minutes", "?")


def new_run_dir(model: str, config: dict) -> Path:
    """A new run folder's path (not created): UTC time stamp and the configuration's hash."""
    h = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return runs_dir() / model / f"{stamp}-{h}"


def mark_latest(run: Path) -> None:
    """Point ``runs/<model>/LATEST`` at ``run`` (its files must be complete)."""
    write_text_atomic(Path(run).parent / LATEST, Path(run).name + "\n")


def has_run(model_name: str) -> bool:
    """Whether a model has a complete run (a ``LATEST`` pointer)."""
    return (runs_dir() / model_name / LATEST).exists()


def latest_run(model_name: str) -> Path:
    """The newest complete run folder of a model (by its LATEST pointer)."""
    d = runs_dir() / model_name
    p = d / LATEST
    if not p.exists():
        raise InputError(f"no trained run of model {model_name!r}",
                         f"train it first: sm-downscale train --model {model_name}")
    run = d / p.read_text().strip()
    if not (run / "checkpoint.pt").exists():
        raise InputError(f"the latest run of {model_name!r} has no checkpoint", "retrain it", run)
    return run


def run_input_mismatch(extra: dict, ard: str | Path) -> str | None:
    """Why a trained run (its checkpoint ``extra``) does not belong to ``ard``, or None when it
    does. A run without a recorded identity (trained by an older version) is a mismatch."""
    want = ard_identity(ard)
    have = extra.get("ard_identity") or {}
    if not have:
        return "it records no analysis-ready store identity (trained by an older version)"
    if have.get("world_size") != want["world_size"]:
        return (f"it was trained on world size {have.get('world_size')!r}, these inputs are "
                f"{want['world_size']!r}")
    if have.get("sha256") != want["sha256"]:
        return (f"it was trained on another analysis-ready store (manifest "
                f"{str(have.get('sha256'))[:12]}, these inputs {want['sha256'][:12]})")
    return None
