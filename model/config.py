"""Paths and process-wide settings.

Everything the product writes lives under one *home* folder: ``$SMDS_HOME`` when set,
else ``<repository>/var`` for a checkout. Run-time resources (DEM subset, TP boundary,
station table, Natural Earth features) ship inside the package under ``model/resources``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RESOURCES = PACKAGE_DIR / "resources"
CATALOG_DIR = REPO_ROOT / "catalogs"

#: Product steps: 3-hourly, UTC.
PRODUCT_STEP_HOURS = 3


#: the marker file of a real-data project folder (written by ``sm-downscale init``)
PROJECT_MARKER = "smds-project.json"


def find_project(start: str | Path | None = None) -> Path | None:
    """The project folder (``sm-downscale init``): ``$SMDS_PROJECT``, else the first folder
    from ``start`` (default the current folder) upwards holding :data:`PROJECT_MARKER`."""
    env = os.environ.get("SMDS_PROJECT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / PROJECT_MARKER).is_file():
            return d
    return None


def home() -> Path:
    """The folder all products are written to (created on first use): ``$SMDS_HOME``, else
    the project folder (see :func:`find_project`), else ``<repository>/var``."""
    env = os.environ.get("SMDS_HOME")
    proj = None if env else find_project()
    path = Path(env or proj or (REPO_ROOT / "var")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def worlds_dir() -> Path:
    return home() / "worlds"


def runs_dir() -> Path:
    """Training runs: one folder per run (checkpoint, log, metrics)."""
    return home() / "runs"


def archive_path() -> Path:
    return home() / "archive"


def validation_dir() -> Path:
    return home() / "validation"


def cache_dir() -> Path:
    path = home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data() -> Path | None:
    """The read-only real sample data beside a developer checkout (``../shared/data``).

    Only tests and documentation scripts use it; a user's machine has no such folder.
    """
    env = os.environ.get("SMDS_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None
