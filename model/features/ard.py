"""Reading the analysis-ready store (``ard.zarr``) for training and inference."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..data.catalog import default_ard_path
from ..errors import CoverageError, InputError


def default_ard() -> Path:
    """The project's store (``sm-downscale init``), else the one beside ``$SMDS_CATALOG``,
    else the demo world's (see :func:`model.data.catalog.default_ard_path`)."""
    return default_ard_path()


def open_group(ard: str | Path, group: str):
    ard = Path(ard)
    if not (ard / ".complete").exists():
        raise InputError("analysis-ready store missing or incomplete",
                         "run `sm-downscale ingest` (or `sm-downscale demo`) first", ard)
    try:
        return xr.open_zarr(ard, group=group, consolidated=True)
    except (KeyError, FileNotFoundError) as exc:
        raise InputError(f"group {group!r} missing from the analysis-ready store",
                         "re-run `sm-downscale ingest`", ard) from exc


def ard_info(ard: str | Path) -> dict:
    """The ingest manifest (periods, sources) written beside the store."""
    p = Path(ard) / ".complete"
    if not p.exists():
        raise InputError("analysis-ready store missing or incomplete",
                         "run `sm-downscale ingest` first", ard)
    return json.loads(p.read_text())


def ard_identity(ard: str | Path) -> dict:
    """What identifies an analysis-ready store independent of where it lies: the SHA-256 of
    its ingest manifest (``.complete``: period, files read and skipped, world size, seed and
    periods), leaving out the catalog's path and the stage timings, and the world size (None
    for real inputs). Recorded in every trained run (``extra``) and checked before a run is
    reused. Ingesting the same inputs again gives the same identity."""
    p = Path(ard) / ".complete"
    if not p.exists():
        raise InputError("analysis-ready store missing or incomplete",
                         "run `sm-downscale ingest` first", ard)
    try:
        man = json.loads(p.read_text())
    except ValueError as exc:
        raise InputError("the ingest manifest (.complete) is damaged",
                         "run `sm-downscale ingest` again", ard) from exc
    man = {k: v for k, v in man.items() if k != "catalog"}
    if isinstance(man.get("report"), dict):
        man["report"] = {k: v for k, v in man["report"].items() if k != "seconds"}
    raw = json.dumps(man, sort_keys=True, default=str).encode()
    world = man.get("world") or {}
    size = world.get("size") or (world.get("config") or {}).get("name")
    return {"sha256": hashlib.sha256(raw).hexdigest(), "world_size": size}


def time_slice(ds, start, end, what: str):
    t = ds["time"].values
    s, e = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    if t.size == 0 or s < t[0] or e > t[-1]:
        lo = np.datetime_as_string(t[0], unit="h") if t.size else "none"
        hi = np.datetime_as_string(t[-1], unit="h") if t.size else "none"
        raise CoverageError(f"{what} cover {lo} .. {hi}, not {start} .. {end}",
                            "choose a period inside the ingested inputs")
    return ds.sel(time=slice(s, e))


def load_inputs(ard: str | Path, start, end, history_days: int = 28):
    """ERA5-Land (3-hourly, TP10) from ``start - history_days`` to ``end`` and the static layers.

    The history start is clamped to the first ingested step.
    """
    era5 = open_group(ard, "era5")
    t0 = era5["time"].values[0]
    s = max(np.datetime64(start, "ns") - np.timedelta64(history_days, "D"), t0)
    # local threads: inside a Dask worker task the distributed client would deadlock
    era5 = time_slice(era5, s, end, "the ERA5-Land inputs").load(scheduler="threads")
    bad = [v for v in era5.data_vars if np.isnan(era5[v].values).all()]
    if bad:
        raise InputError(f"ERA5-Land channels {bad} are all-NaN between {start} and {end}",
                         "check the ERA5-Land inputs for that period")
    static = open_group(ard, "static").load(scheduler="threads")
    return era5, static


#: training targets: SMAP product -> (its group in the analysis-ready store, its grid)
TARGETS = {"smap_l3_9km": ("smap_m09", "M09"), "smap_l3_36km": ("smap_m36", "M36")}
