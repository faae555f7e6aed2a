"""Reading validation results (the dashboard's and the report's only access to them)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import xarray as xr

from ..config import validation_dir
from ..errors import InputError


def _dir(path=None) -> Path:
    p = Path(path) if path else validation_dir()
    if not (p / "settings.json").exists():
        raise InputError("no validation results", "run `sm-downscale validate` (or `sm-downscale demo`)", p)
    return p


def settings(path=None) -> dict:
    return json.loads((_dir(path) / "settings.json").read_text())


def table(name: str, path=None):
    """One of the Parquet tables: stations, networks, temporal, summary, station_series, period_summary."""
    f = _dir(path) / f"{name}.parquet"
    if not f.exists():
        raise InputError(f"validation table {name!r} missing", "re-run `sm-downscale validate`", f)
    return pd.read_parquet(f)


def maps(reference: str = "smap", path=None):
    """Metric maps against ``smap`` (M09 cells) or ``truth`` (TP10 cells), dims (model, ...)."""
    f = _dir(path) / f"vs_{reference}_maps.nc"
    if not f.exists():
        raise InputError(f"no metric maps against {reference}",
                         "the truth exists only on the virtual TP" if reference == "truth" else "re-run validate", f)
    return xr.open_dataset(f)


def scatter(path=None):
    f = _dir(path) / "scatter_density.nc"
    if not f.exists():
        raise InputError("no scatter-density data", "re-run validate", f)
    return xr.open_dataset(f)
