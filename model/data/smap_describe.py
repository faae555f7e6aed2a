"""What :func:`model.data.smap.describe` reports about a SMAP file, from the Dataset a reader
returned (no file access here).

Split out of ``smap.py`` (issue 14: no module over 800 lines, no function over 80). The
readers and :func:`~model.data.smap.describe` stay in :mod:`model.data.smap`, which imports
this module, never the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..grids import ease2_grid
from .smap_format import _GLOBAL_SHAPES, FILL, L3_PRODUCTS, PRODUCTS, QualityPolicy


def _iso(t) -> str | None:
    if t is None or np.isnat(t):
        return None
    return str(np.datetime64(t, "ms")) + "Z"


def _sm_stats(v: np.ndarray) -> dict | None:
    ok = np.isfinite(v)
    n = int(ok.sum())
    if n == 0:
        return {"valid_count": 0, "mean": None, "min": None, "max": None}
    x = v[ok].astype(np.float64)
    return {"valid_count": n, "mean": round(float(x.mean()), 5), "min": round(float(x.min()), 5),
            "max": round(float(x.max()), 5)}


def _var_units(ds: xr.Dataset) -> dict:
    out = {}
    for n, v in ds.data_vars.items():
        if v.dtype.kind == "M":
            out[n] = "UTC (datetime64)"
        else:
            out[n] = v.attrs.get("units", "1")
    return out


def _region_grid(gname: str, bbox) -> dict:
    """``grid`` of a gridded product read in ``bbox``."""
    g = ease2_grid(gname, tuple(bbox) if bbox is not None else None)
    return {"name": gname, "shape": list(g.shape),
            "bbox": [round(float(g.lon_bounds[0]), 3), round(float(g.lat_bounds[-1]), 3),
                     round(float(g.lon_bounds[-1]), 3), round(float(g.lat_bounds[0]), 3)],
            "row_offset": g.row_offset, "col_offset": g.col_offset,
            "file_shape": list(_GLOBAL_SHAPES[gname])}


def _l2_parts(ds: xr.Dataset, cells_in_tp: int):
    """(policy report, grid, times, soil moisture, product specifics) of an L2 swath
    (``cells_in_tp``: its cells on the TP grid, from :func:`~model.data.smap.grid_l2`)."""
    rep = json.loads(ds.attrs["policy_report"])
    lat, lon = ds["lat"].values, ds["lon"].values
    has = np.isfinite(lat) & np.isfinite(lon)
    if (has & np.isfinite(ds["soil_moisture"].values)).any():
        has &= np.isfinite(ds["soil_moisture"].values)
    nrows, ncols = _GLOBAL_SHAPES[ds.attrs["grid"]]
    grid = {"name": ds.attrs["grid"], "shape": [nrows, ncols], "swath_cells": int(ds.sizes["obs"]),
            "bbox": [round(float(lon[has].min()), 3), round(float(lat[has].min()), 3),
                     round(float(lon[has].max()), 3), round(float(lat[has].max()), 3)] if has.any() else None}
    extra = {"overpass": ds.attrs["overpass"], "orbit": ds.attrs["orbit"], "direction": ds.attrs["direction"],
             "cells_in_tp": int(cells_in_tp)}
    return rep, grid, ds["obs_time"].values, ds["soil_moisture"].values, extra


def _l3_parts(ds: xr.Dataset, bbox):
    """(policy report, grid, times, soil moisture, product specifics) of an L3 day."""
    rep = json.loads(ds.attrs["policy_report"])
    grid = _region_grid(ds.attrs["grid"], bbox)
    per = {ov: _sm_stats(ds["soil_moisture"].sel(overpass=ov).values) for ov in ("AM", "PM")}
    extra = {"date": ds.attrs["date"], "per_overpass": per, "coverage_fraction": ds.attrs["coverage_fraction"]}
    rep = rep["total"] | {"per_overpass": {k: rep[k] for k in ("AM", "PM")}}
    return rep, grid, ds["obs_time"].values, ds["soil_moisture"].values, extra


def _l4_parts(ds: xr.Dataset, bbox):
    """(policy report, grid, times, soil moisture, product specifics) of an L4 3-hourly mean."""
    rep = json.loads(ds.attrs["policy_report"])["sm_surface"]
    times = np.array([np.datetime64(ds.attrs["time_window_start"], "ns"),
                      np.datetime64(ds.attrs["time_window_end"], "ns")])
    extra = {"time": _iso(ds["time"].values[0]), "time_meaning": "3-hourly mean; time = window centre"}
    return rep, _region_grid("M09", bbox), times, ds["sm_surface"].values, extra


def _description(path: Path, short: str, ds: xr.Dataset, policy: QualityPolicy, parts) -> dict:
    """The dict of :func:`~model.data.smap.describe` from a reader's Dataset and its ``parts``
    (one of :func:`_l2_parts`, :func:`_l3_parts`, :func:`_l4_parts`)."""
    rep, grid, times, sm, extra = parts
    level = PRODUCTS[short].level if short in PRODUCTS else None
    ok = times[~np.isnat(times)]
    out = {
        "product": short,
        "product_long_name": PRODUCTS[short].long_name,
        "level": level,
        "source_file": str(path),
        "variables": _var_units(ds),
        "time_start": _iso(ok.min()) if ok.size else None,
        "time_end": _iso(ok.max()) if ok.size else None,
        "grid": grid,
        "soil_moisture": _sm_stats(sm),
        "policy": policy.to_dict() if level != "L4" else {"fill": FILL, "valid_range": "the field's valid_min/valid_max"},
        "rejected": {"fill": rep["n_fill"], **rep["rejected"], "total_rejected": rep["n_rejected"]},
        "counts": {"cells": rep["n_cells"], "retrieved": rep["n_retrieved"], "valid": rep["n_valid"]},
        "status": ds.attrs["status"],
    }
    if short in L3_PRODUCTS:
        out["rejected_per_overpass"] = {ov: {"fill": r["n_fill"], **r["rejected"]}
                                        for ov, r in rep["per_overpass"].items()}
    out.update(extra)
    return out
