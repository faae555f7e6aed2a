"""SMAP soil-moisture products in their real HDF5 layouts: readers, inspection.

Products
--------
* ``SPL2SMP`` (``SMAP_L2_SM_P_<orbit>_<A|D>_<start>_<CRID>_<nnn>.h5``): one half orbit,
  36 km; group ``Soil_Moisture_Retrieval_Data`` with 1-D swath arrays and
  ``EASE_row_index`` / ``EASE_column_index`` on the global M36 grid.
* ``SPL3SMP`` (``SMAP_L3_SM_P_<YYYYMMDD>_<CRID>_<nnn>.h5``): daily, global M36
  (406 x 964); groups ``Soil_Moisture_Retrieval_Data_AM`` and ``..._PM`` (PM dataset
  names carry ``_pm``).
* ``SPL3SMP_E`` (``SMAP_L3_SM_P_E_<YYYYMMDD>_<CRID>_<nnn>.h5``): the same on the global
  M09 grid (1624 x 3856).
* ``SPL4SMGP`` (``SMAP_L4_SM_gph_<YYYYMMDDTHHMMSS>_<Vv...>_<nnn>.h5``): one 3-hourly
  mean, global M09; group ``Geophysical_Data`` (``sm_surface``, ``sm_rootzone``,
  ``surface_temp``...), root ``cell_lat``, ``cell_lon``, ``time``.

Conventions of every reader here
--------------------------------
* Fill values (``-9999`` for floats, ``65534`` for the uint16 flag and index fields) are
  decoded once, here: floats become NaN, times NaT; flags keep their raw values (65534 =
  no data in that cell).
* Units: SMAP writes ``cm**3/cm**3``; that is a volume fraction and identical to the
  project's ``m3 m-3``.
* Time: ``tb_time_seconds`` is seconds since 2000-01-01T12:00:00 UTC, counted without
  leap seconds. Evidence, from the real half orbit
  ``SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5``: for all 17,241 cells whose
  ``tb_time_utc`` string is complete (10 of 17,251 carry ``.***`` for milliseconds),
  ``2000-01-01T12:00:00 + tb_time_seconds`` equals the string to within 1 ms (the
  strings' resolution), whereas the J2000 epoch that the file's metadata names
  (``epochUTCDateTime = 2000-01-01T11:58:55.816Z``) is off by 64.184 s (TT - UTC at
  2000). SPL4SMGP's ``time`` carries its own CF ``units`` attribute (``seconds since
  2000-01-01 11:58:55.816``), which the reader parses; counted without leap seconds like
  ``tb_time_seconds`` (an assumption: no real SPL4SMGP granule is at hand to check it).
  Observation times are rounded to 1 microsecond (float64 seconds resolve ~0.1 us).
* The quality policy (:class:`QualityPolicy`) is applied in the reader and recorded in
  the output ``attrs["quality_policy"]`` (JSON) with the count of values each rule
  rejected (``attrs["policy_report"]``). A file left with no valid value is reported
  (``attrs["status"]`` and an :class:`EmptyDataWarning`), or raises
  :class:`~model.errors.EmptyAfterPolicyError` with ``allow_empty=False``. Nothing is
  dropped silently.
* Bad files raise :class:`~model.errors.InputError` subclasses naming the file, the
  problem and what to do.

Modules (issue 14: no module over 800 lines)
--------------------------------------------
* this module: the readers (:func:`read_smap_l2` and :func:`grid_l2`, :func:`read_smap_l3`,
  :func:`check_smap_file`, :func:`overpass_template`, :func:`read_smap_l4`) and
  :func:`describe`;
* :mod:`model.data.smap_format`: what the readers and the writers share: the product table,
  flag bits, fill values and epochs, the quality policy, HDF5 access, identification, time
  conventions, file names and attributes;
* :mod:`model.data.smap_write`: the writers (:func:`~model.data.smap_write.write_smap_l3`,
  :func:`~model.data.smap_write.write_smap_l4`);
* :mod:`model.data.smap_describe`: what :func:`describe` reports, from the Dataset a reader
  returned.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import xarray as xr

from ..errors import (CoverageError, MissingVariableError, UnreadableFileError, WrongProductError,
                      unknown_name)
from ..grids import TP_BBOX, Grid, ease2, ease2_grid
from .smap_format import (_GLOBAL_SHAPES, _L4_OUT_ATTRS, _QUAL_ATTRS, _SM_ATTRS, _SURF_ATTRS, _TIME_ATTRS, FILL,
                          FLAG_FILL, L2_PRODUCTS, L3_PRODUCTS, L4_EPOCH, PRODUCTS, TB_EPOCH, EmptyDataWarning,
                          QualityPolicy, _apply_policy, _attr_str, _dataset, _h5, _optional_dataset, _out_attrs,
                          _read_float, _report_empty, _seconds_to_time, _status, _sum_counts, _wrong_product,
                          identify, parse_smap_filename, parse_utc_strings)
from .smap_describe import _description, _l2_parts, _l3_parts, _l4_parts

__all__ = ["read_smap_l2", "grid_l2", "read_smap_l3", "check_smap_file", "read_smap_l4", "overpass_template",
           "describe"]


# --------------------------------------------------------------------------- L2


def read_smap_l2(path, policy: QualityPolicy | None = None, *, extra: Iterable[str] = (),
                 allow_empty: bool = True) -> xr.Dataset:
    """Read a SMAP L2 radiometer half orbit (SPL2SMP, or SPL2SMP_E) as swath cells.

    Parameters
    ----------
    path : str or Path
        ``SMAP_L2_SM_P_<orbit>_<A|D>_<start>_<CRID>_<nnn>.h5``.
    policy : QualityPolicy, optional
        Default ``QualityPolicy()``.
    extra : iterable of str
        More fields of ``Soil_Moisture_Retrieval_Data`` to return (e.g.
        ``"surface_temperature"``): floats with fill -> NaN, units respelled; no policy.
    allow_empty : bool
        When the policy leaves no valid value: True (default) warns
        (:class:`EmptyDataWarning`) and sets ``attrs["status"]``; False raises
        :class:`~model.errors.EmptyAfterPolicyError`.

    Returns
    -------
    xarray.Dataset
        Dim ``obs`` (every swath cell of the file, none dropped):
        ``soil_moisture`` (float32, m3 m-3, NaN where fill or rejected), ``obs_time``
        (datetime64[ns] UTC, NaT where missing), ``retrieval_qual_flag``, ``surface_flag``
        (uint16, raw), ``row``, ``col`` (int32, global EASE-Grid 2.0 indices, -1 where fill),
        ``lat``, ``lon`` (float32 degrees, cell centres, NaN where fill).
        attrs: ``product``, ``grid``, ``source_file``, ``overpass`` (``AM`` descending 6 am /
        ``PM`` ascending 6 pm, from the cells' local solar time), ``orbit``, ``direction``,
        ``quality_policy``, ``policy_report``, ``status``.
    """
    policy = policy or QualityPolicy()
    path = Path(path)
    with _h5(path) as f:
        short, desc = identify(f)
        if short not in L2_PRODUCTS:
            raise _wrong_product(path, short, desc, "a SMAP L2 half-orbit file (SPL2SMP)")
        a = _read_l2_arrays(f, path, short, extra)
    sm, counts = _apply_policy(a["sm_raw"], a["qual"], a["surf"], policy, a["sm_fill"])
    status = _status(counts)
    _report_empty(path, status, counts, "this half orbit", allow_empty)
    return _l2_dataset(path, short, a, sm, policy, counts, status)


def _l2_index(dset) -> np.ndarray:
    """A global EASE row or column index as int32, -1 where fill or negative."""
    v = dset[()].astype(np.int32)
    return np.where((v == FLAG_FILL) | (v < 0), -1, v).astype(np.int32)


def _read_l2_arrays(f, path: Path, short: str, extra: Iterable[str]) -> dict:
    """The swath arrays of an open L2 file: raw soil moisture and its fill value, flags, EASE
    indices, times, cell centres and the ``extra`` fields (``{name: (values, attrs)}``)."""
    grp = "Soil_Moisture_Retrieval_Data"
    d = {n: _dataset(f, grp, n, path, short) for n in
         ("soil_moisture", "retrieval_qual_flag", "surface_flag", "EASE_row_index", "EASE_column_index")}
    if d["soil_moisture"].ndim != 1:
        raise UnreadableFileError(f"/{grp}/soil_moisture has shape {d['soil_moisture'].shape}, "
                                  f"not the 1-D swath list of an L2 file", "download the granule again", path)
    sm_raw = d["soil_moisture"][()]
    a = {"sm_raw": sm_raw, "qual": d["retrieval_qual_flag"][()].astype(np.uint16),
         "surf": d["surface_flag"][()].astype(np.uint16),
         "row": _l2_index(d["EASE_row_index"]), "col": _l2_index(d["EASE_column_index"]),
         "obs_time": _read_obs_time(f, grp, "", path, short, None)}
    for k, n in (("lat", "latitude"), ("lon", "longitude")):
        a[k] = _read_float(f[f"{grp}/{n}"]) if f"{grp}/{n}" in f else np.full(sm_raw.shape, np.nan, np.float32)
    a["extras"] = {}
    for n in extra:
        ds_ = _dataset(f, grp, n, path, short)
        a["extras"][n] = (_read_float(ds_) if ds_.dtype.kind == "f" else ds_[()], _out_attrs(ds_.attrs, n))
    a["sm_fill"] = float(np.asarray(d["soil_moisture"].attrs.get("_FillValue", FILL)).ravel()[0])
    return a


def _l2_overpass(obs_time: np.ndarray, lon: np.ndarray) -> str | None:
    """``AM`` (6 am descending) or ``PM`` (6 pm ascending) from the cells' mean local solar time."""
    ok = ~np.isnat(obs_time) & np.isfinite(lon)
    if not ok.any():
        return None
    hours = (obs_time[ok] - obs_time[ok].astype("datetime64[D]")) / np.timedelta64(1, "h")
    lst = np.mod(hours + lon[ok] / 15.0, 24.0)
    ang = np.angle(np.mean(np.exp(1j * lst / 24 * 2 * np.pi)))
    lst_mean = (ang / (2 * np.pi) * 24) % 24
    return "AM" if 0 <= lst_mean < 12 else "PM"


def _l2_dataset(path: Path, short: str, a: dict, sm: np.ndarray, policy: QualityPolicy, counts: dict,
                status: str) -> xr.Dataset:
    """The swath Dataset of :func:`read_smap_l2` from its arrays ``a`` and the policy's outcome."""
    gname = PRODUCTS[short].grid
    overpass = _l2_overpass(a["obs_time"], a["lon"])
    info = parse_smap_filename(path) or {}
    data_vars = {
        "soil_moisture": ("obs", sm, dict(_SM_ATTRS)),
        "obs_time": ("obs", a["obs_time"], dict(_TIME_ATTRS)),
        "retrieval_qual_flag": ("obs", a["qual"], dict(_QUAL_ATTRS)),
        "surface_flag": ("obs", a["surf"], dict(_SURF_ATTRS)),
        "row": ("obs", a["row"], {"long_name": f"EASE-Grid 2.0 {gname} global row index (-1 = none)"}),
        "col": ("obs", a["col"], {"long_name": f"EASE-Grid 2.0 {gname} global column index (-1 = none)"}),
        "lat": ("obs", a["lat"].astype(np.float32), {"standard_name": "latitude", "units": "degrees_north",
                                                     "long_name": "latitude of the cell centre"}),
        "lon": ("obs", a["lon"].astype(np.float32), {"standard_name": "longitude", "units": "degrees_east",
                                                     "long_name": "longitude of the cell centre"}),
    }
    for n, (v, at) in a["extras"].items():
        data_vars[n] = ("obs", v, at)
    return xr.Dataset(data_vars, attrs={
        "product": short, "grid": gname, "source_file": str(path),
        "overpass": overpass or "unknown", "orbit": int(info.get("orbit", -1)),
        "direction": info.get("direction", "unknown"),
        "quality_policy": policy.to_json(), "policy_report": json.dumps(counts), "status": status,
        "Conventions": "CF-1.8",
    })


def _read_obs_time(f, grp: str, sfx: str, path: Path, short: str, sl) -> np.ndarray:
    """``tb_time_seconds`` -> datetime64[ns] (the ``tb_time_utc`` strings only if it is absent).

    Both fields are fill in the same cells in the real products, so the strings (24 bytes a
    cell, slow to parse) are not read when the seconds are there.
    """
    sec_name, utc_name = f"{grp}/tb_time_seconds{sfx}", f"{grp}/tb_time_utc{sfx}"
    if sec_name in f:
        dset = f[sec_name]
        raw = dset[sl] if sl is not None else dset[()]
        return _seconds_to_time(raw, TB_EPOCH)
    if utc_name in f:
        us = f[utc_name][sl] if sl is not None else f[utc_name][()]
        return parse_utc_strings(us)
    raise MissingVariableError(f"neither /{sec_name} nor /{utc_name} is present (a standard {short} "
                               f"file has both)", "download the full granule again", path)


def _swath_extent(ds: xr.Dataset) -> str:
    """Where the retrieved values (else all cells) of a swath lie, as text."""
    lat, lon = ds["lat"].values, ds["lon"].values
    has = np.isfinite(lat) & np.isfinite(lon)
    ret = has & np.isfinite(ds["soil_moisture"].values)
    sel, what = (ret, "its retrievals lie in") if ret.any() else (has, "its cells lie in")
    if not sel.any():
        return "it has no valid coordinates"
    return (f"{what} lat {lat[sel].min():.1f}..{lat[sel].max():.1f}, "
            f"lon {lon[sel].min():.1f}..{lon[sel].max():.1f}")


def grid_l2(ds: xr.Dataset, grid: Grid | str = "M36", *, allow_empty: bool = False) -> xr.Dataset:
    """Put the swath cells of :func:`read_smap_l2` onto an EASE-Grid 2.0 grid.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`read_smap_l2` (dim ``obs`` with ``row``, ``col``).
    grid : Grid or str
        ``"M36"`` (the TP subset, default), ``"M09"`` for SPL2SMP_E, or any
        :func:`~model.grids.ease2_grid` (``ease2_grid("M36", None)`` = global).
    allow_empty : bool
        If no swath cell falls in the grid: False (default) raises
        :class:`~model.errors.CoverageError`; True returns an all-missing field.

    Returns
    -------
    xarray.Dataset
        Dims ``(y, x)`` (coords ``y``, ``x`` global indices, ``lat``, ``lon``):
        ``soil_moisture`` (float32 m3 m-3), ``obs_time`` (datetime64[ns]),
        ``retrieval_qual_flag``, ``surface_flag`` (uint16, 65534 where no swath cell).
        attrs of ``ds`` plus ``n_cells_in_grid``.
    """
    g = ease2_grid(grid) if isinstance(grid, str) else grid
    gname = ds.attrs.get("grid", "M36")
    if g.name != gname:
        raise ValueError(f"{ds.attrs.get('product', 'the swath')} is on {gname}; got grid {g.name}")
    ny, nx = g.shape
    r = ds["row"].values.astype(np.int64) - g.row_offset
    c = ds["col"].values.astype(np.int64) - g.col_offset
    inside = (r >= 0) & (r < ny) & (c >= 0) & (c < nx) & (ds["row"].values >= 0)
    n_in = int(inside.sum())
    src = ds.attrs.get("source_file", "swath")
    if n_in == 0 and not allow_empty:
        ext = _swath_extent(ds)
        raise CoverageError(f"no swath cell of this half orbit falls in the {g.name} grid "
                            f"(lat {g.lat.min():.1f}..{g.lat.max():.1f}, lon {g.lon.min():.1f}..{g.lon.max():.1f}); "
                            f"{ext}",
                            "use a half orbit that crosses the Tibetan Plateau, pass a global grid "
                            "(ease2_grid('M36', None)), or allow_empty=True", src)
    sm = np.full(g.shape, np.nan, np.float32)
    ot = np.full(g.shape, np.datetime64("NaT"), "datetime64[ns]")
    q = np.full(g.shape, FLAG_FILL, np.uint16)
    s = np.full(g.shape, FLAG_FILL, np.uint16)
    ri, ci = r[inside], c[inside]
    sm[ri, ci] = ds["soil_moisture"].values[inside]
    ot[ri, ci] = ds["obs_time"].values[inside]
    q[ri, ci] = ds["retrieval_qual_flag"].values[inside]
    s[ri, ci] = ds["surface_flag"].values[inside]
    out = xr.Dataset({
        "soil_moisture": (g.dims, sm, dict(ds["soil_moisture"].attrs)),
        "obs_time": (g.dims, ot, dict(ds["obs_time"].attrs)),
        "retrieval_qual_flag": (g.dims, q, dict(ds["retrieval_qual_flag"].attrs)),
        "surface_flag": (g.dims, s, dict(ds["surface_flag"].attrs)),
    }, coords=g.coords(), attrs=dict(ds.attrs))
    out.attrs["n_cells_in_grid"] = n_in
    return out


# --------------------------------------------------------------------------- L3


def _l3_groups(f) -> dict:
    """overpass -> (group name, suffix) or None (legacy single-group files: AM only)."""
    if "Soil_Moisture_Retrieval_Data_AM" in f or "Soil_Moisture_Retrieval_Data_PM" in f:
        return {"AM": ("Soil_Moisture_Retrieval_Data_AM", ""), "PM": ("Soil_Moisture_Retrieval_Data_PM", "_pm")}
    return {"AM": ("Soil_Moisture_Retrieval_Data", ""), "PM": None}


def _file_block(f, grp: str, sfx: str, gname: str, path: Path, short: str) -> tuple[int, int, int, int]:
    """Global (row0, col0, nrows, ncols) of a group's 2-D arrays (global file or spatial subset)."""
    dset = _dataset(f, grp, f"soil_moisture{sfx}", path, short)
    if dset.ndim != 2:
        raise UnreadableFileError(f"/{grp}/soil_moisture{sfx} has shape {dset.shape}, not 2-D "
                                  f"(rows, columns) as in {short}", "download the granule again", path)
    shape = tuple(dset.shape)
    if shape == _GLOBAL_SHAPES[gname]:
        return 0, 0, shape[0], shape[1]
    other = "M09" if gname == "M36" else "M36"
    if shape == _GLOBAL_SHAPES[other]:
        raise UnreadableFileError(
            f"the metadata says {short} ({gname}) but the arrays are {shape[0]} x {shape[1]}, "
            f"the global {other} grid", "the file is inconsistent: download it again", path)
    # a spatial subset: place it with its EASE row/column indices
    names = (f"{grp}/EASE_row_index{sfx}", f"{grp}/EASE_column_index{sfx}")
    if not all(n in f for n in names):
        raise CoverageError(
            f"the arrays are {shape[0]} x {shape[1]}, not the global {gname} grid "
            f"({_GLOBAL_SHAPES[gname][0]} x {_GLOBAL_SHAPES[gname][1]}), and the file has no "
            f"EASE_row_index/EASE_column_index to place the subset", "download the global file "
            "(no spatial subsetting)", path)
    ri = f[names[0]][()].astype(np.int64)
    ci = f[names[1]][()].astype(np.int64)
    ok = (ri != FLAG_FILL) & (ci != FLAG_FILL) & (ri >= 0) & (ci >= 0)
    if not ok.any():
        raise CoverageError(f"the {shape[0]} x {shape[1]} spatial subset has no valid EASE index, so it "
                            f"cannot be placed on the {gname} grid", "download the global file", path)
    ii, jj = np.nonzero(ok)
    roff = np.unique(ri[ok] - ii)
    coff = np.unique(ci[ok] - jj)
    if roff.size != 1 or coff.size != 1:
        raise UnreadableFileError("the EASE_row_index/EASE_column_index of the subset are not a "
                                  "rectangular block of the grid", "download the global file", path)
    return int(roff[0]), int(coff[0]), shape[0], shape[1]


def _overlap(block, grid: Grid):
    r0, c0, nr, nc = block
    R0, C0 = grid.row_offset, grid.col_offset
    NR, NC = grid.shape
    rlo, rhi = max(r0, R0), min(r0 + nr, R0 + NR)
    clo, chi = max(c0, C0), min(c0 + nc, C0 + NC)
    if rlo >= rhi or clo >= chi:
        return None
    src = (slice(rlo - r0, rhi - r0), slice(clo - c0, chi - c0))
    dst = (slice(rlo - R0, rhi - R0), slice(clo - C0, chi - C0))
    return src, dst


def _bbox_text(bbox) -> str:
    if bbox is None:
        return "the globe"
    return f"the box lon {bbox[0]}..{bbox[2]}, lat {bbox[1]}..{bbox[3]}"


def _l3_date(f, path: Path, times: np.ndarray) -> str | None:
    info = parse_smap_filename(path)
    if info and info["product"] in L3_PRODUCTS:
        return str(info["time"].astype("datetime64[D]"))
    ext = f.get("Metadata/Extent")
    if ext is not None:
        b = _attr_str(ext.attrs.get("rangeBeginningDateTime"))
        if b:
            with contextlib.suppress(ValueError):
                return str(np.datetime64(b.rstrip("Z")[:10], "D"))
    ok = times[~np.isnat(times)]
    if ok.size:
        return str(np.sort(ok)[ok.size // 2].astype("datetime64[D]"))
    return None


def read_smap_l3(path, policy: QualityPolicy | None = None, bbox=TP_BBOX, *,
                 extra: Iterable[str] = (), allow_empty: bool = True) -> xr.Dataset:
    """Read a SMAP L3 daily radiometer file (SPL3SMP 36 km or SPL3SMP_E 9 km).

    Parameters
    ----------
    path : str or Path
        ``SMAP_L3_SM_P_<YYYYMMDD>_...h5`` or ``SMAP_L3_SM_P_E_<YYYYMMDD>_...h5``. Global
        files, spatial subsets (placed by their EASE row/column indices) and the early
        single-group layout (``Soil_Moisture_Retrieval_Data``, AM only) are accepted.
    policy : QualityPolicy, optional
        Default ``QualityPolicy()``.
    bbox : (lon_min, lat_min, lon_max, lat_max) or None
        Region, degrees: the EASE-Grid 2.0 cells overlapping it (default the TP box, giving
        exactly ``get_grid("M36")`` / ``get_grid("M09")``); ``None`` = the global grid.
    extra : iterable of str
        More fields of the AM/PM groups to return (names without ``_pm``, e.g.
        ``"surface_temperature"``): floats with fill -> NaN, units respelled; no policy.
    allow_empty : bool
        When no valid value is left in the region (all fill, or all rejected by the
        policy): True (default) warns (:class:`EmptyDataWarning`) and records
        ``attrs["status"]``; False raises :class:`~model.errors.EmptyAfterPolicyError`.

    Returns
    -------
    xarray.Dataset
        Dims ``(overpass, y, x)``, ``overpass = ["AM", "PM"]``, coords ``y``/``x`` (global
        row/column indices), ``lat(y)``, ``lon(x)``:
        ``soil_moisture`` (float32, m3 m-3, NaN where fill or rejected), ``obs_time``
        (datetime64[ns] UTC per cell, NaT where no observation; kept where the policy
        rejected the value), ``retrieval_qual_flag`` and ``surface_flag`` (uint16, raw;
        65534 = no data). attrs: ``product``, ``grid``, ``date``, ``source_file``,
        ``quality_policy`` (JSON), ``policy_report`` (JSON counts per overpass and total),
        ``status`` (``ok``, ``all_fill``, ``empty_after_policy``), ``coverage_fraction``.

    Raises
    ------
    UnreadableFileError, WrongProductError, MissingVariableError, CoverageError,
    EmptyAfterPolicyError (only with ``allow_empty=False``)
    """
    policy = policy or QualityPolicy()
    path = Path(path)
    extra = tuple(extra)
    with _h5(path) as f:
        short, desc = identify(f)
        if short not in L3_PRODUCTS:
            raise _wrong_product(path, short, desc, "a SMAP L3 daily soil-moisture file (SPL3SMP or SPL3SMP_E)")
        grid = ease2_grid(PRODUCTS[short].grid, tuple(bbox) if bbox is not None else None)
        groups = _l3_groups(f)
        read = _L3Read(f, path, short, grid, bbox, policy, extra)
        for ov in ("AM", "PM"):
            read.overpass(ov, groups[ov])
        date = _l3_date(f, path, np.stack(read.arrays["ot"]))
    return read.dataset(date, allow_empty)


class _L3Read:
    """One L3 file read onto ``grid``, overpass by overpass, and what the read found on the way
    (policy counts, covered cells, notes, missing quality fields)."""

    def __init__(self, f, path: Path, short: str, grid: Grid, bbox, policy: QualityPolicy, extra: tuple):
        self.f, self.path, self.short, self.grid, self.bbox = f, path, short, grid, bbox
        self.policy, self.extra = policy, extra
        self.gname = PRODUCTS[short].grid
        self.arrays = {k: [] for k in ("sm", "ot", "q", "s")}
        self.extra_arrays = {n: [] for n in extra}
        self.extra_attrs: dict = {}
        self.counts: dict = {}
        self.covered = np.zeros(grid.shape, bool)
        self.notes: list[str] = []
        self.missing: list[str] = []

    def overpass(self, ov: str, gs) -> None:
        """Read overpass ``ov`` (``gs``: its (group, suffix), None where the file has none)."""
        shape = self.grid.shape
        sm = np.full(shape, np.nan, np.float32)
        ot = np.full(shape, np.datetime64("NaT"), "datetime64[ns]")
        q = np.full(shape, FLAG_FILL, np.uint16)
        s = np.full(shape, FLAG_FILL, np.uint16)
        ex = {n: None for n in self.extra}
        if gs is None:
            self.notes.append(f"{ov}: the file has no {ov} group (early single-group layout)")
        elif gs[0] not in self.f:
            raise MissingVariableError(f"group /{gs[0]} is missing (a standard {self.short} file has both "
                                       f"AM and PM groups)", "download the full granule again", self.path)
        else:
            sm, ex = self._group(ov, gs[0], gs[1], ot, q, s)
        if ov not in self.counts:
            sm, self.counts[ov] = _apply_policy(sm, q, s, self.policy)
        for k, v in (("sm", sm), ("ot", ot), ("q", q), ("s", s)):
            self.arrays[k].append(v)
        for n in self.extra:
            self.extra_arrays[n].append(ex[n] if ex[n] is not None else np.full(shape, np.nan, np.float32))

    def _place(self, grp: str, sfx: str):
        """(src, dst) slices of the group's arrays and of the grid; CoverageError where they miss it."""
        block = _file_block(self.f, grp, sfx, self.gname, self.path, self.short)
        ov_sl = _overlap(block, self.grid)
        if ov_sl is None:
            gname = self.gname
            r0, c0, nr, nc = block
            la, lo = ease2.row_col_centres(gname)
            raise CoverageError(
                f"the file's {gname} arrays cover rows {r0}..{r0 + nr - 1}, columns {c0}..{c0 + nc - 1} "
                f"(lat {la[r0 + nr - 1]:.1f}..{la[r0]:.1f}, lon {lo[c0]:.1f}..{lo[c0 + nc - 1]:.1f}), "
                f"which do not overlap {_bbox_text(self.bbox)}",
                "use a file that covers the Tibetan Plateau (a global granule, or a subset "
                "including 25-40 N, 73-105 E)", self.path)
        return ov_sl

    def _group(self, ov: str, grp: str, sfx: str, ot, q, s):
        """Soil moisture (policy applied) and the extras of one AM/PM group; fills ``ot``, ``q``
        and ``s`` in place."""
        f, path, short = self.f, self.path, self.short
        src, dst = self._place(grp, sfx)
        self.covered[dst] = True
        d_sm = _dataset(f, grp, f"soil_moisture{sfx}", path, short)
        sm_fill = float(np.asarray(d_sm.attrs.get("_FillValue", FILL)).ravel()[0])
        raw = d_sm[src]
        # quality fields are optional: a subset or an older version may lack them;
        # a missing one means "no information" (nothing rejected by that rule)
        qd = _optional_dataset(f, grp, f"retrieval_qual_flag{sfx}")
        sd = _optional_dataset(f, grp, f"surface_flag{sfx}")
        for name, d in (("retrieval_qual_flag", qd), ("surface_flag", sd)):
            if d is None and name not in self.missing:
                self.missing.append(name)
        sm_blk = np.full(self.grid.shape, sm_fill, raw.dtype)
        sm_blk[dst] = raw
        if qd is not None:
            q[dst] = qd[src]
        if sd is not None:
            s[dst] = sd[src]
        ot[dst] = _read_obs_time(f, grp, sfx, path, short, src)
        sm, self.counts[ov] = _apply_policy(sm_blk, q, s, self.policy, sm_fill, quality_known=qd is not None)
        return sm, self._extras(grp, sfx, src, dst)

    def _extras(self, grp: str, sfx: str, src, dst) -> dict:
        """The ``extra`` fields of one group on the grid (fill -> NaN for floats, 65534 else)."""
        ex = {}
        for n in self.extra:
            d = _dataset(self.f, grp, f"{n}{sfx}", self.path, self.short)
            v = _read_float(d, src) if d.dtype.kind == "f" else d[src]
            full = np.full(self.grid.shape, np.nan if d.dtype.kind == "f" else FLAG_FILL, v.dtype)
            full[dst] = v
            ex[n] = full
            self.extra_attrs.setdefault(n, _out_attrs(d.attrs, n))
        return ex

    def dataset(self, date: str | None, allow_empty: bool) -> xr.Dataset:
        """The Dataset of :func:`read_smap_l3` (reports or raises where nothing valid is left)."""
        counts, grid = self.counts, self.grid
        total = _sum_counts(counts.values())
        status = _status(total)
        _report_empty(self.path, status, total, f"{_bbox_text(self.bbox)} (AM and PM)", allow_empty)
        dims = ("overpass",) + grid.dims
        data_vars = {
            "soil_moisture": (dims, np.stack(self.arrays["sm"]), dict(_SM_ATTRS)),
            "obs_time": (dims, np.stack(self.arrays["ot"]), dict(_TIME_ATTRS)),
            "retrieval_qual_flag": (dims, np.stack(self.arrays["q"]), dict(_QUAL_ATTRS)),
            "surface_flag": (dims, np.stack(self.arrays["s"]), dict(_SURF_ATTRS)),
        }
        for n in self.extra:
            data_vars[n] = (dims, np.stack(self.extra_arrays[n]), self.extra_attrs.get(n, {}))
        coords = grid.coords()
        coords["overpass"] = ("overpass", np.array(["AM", "PM"]), {
            "long_name": "SMAP overpass: AM = 6 am descending, PM = 6 pm ascending (local solar time)"})
        attrs = {
            "product": self.short, "grid": self.gname, "date": date, "source_file": str(self.path),
            "quality_policy": self.policy.to_json(),
            "policy_report": json.dumps({"AM": counts["AM"], "PM": counts["PM"], "total": total}),
            "status": status, "coverage_fraction": float(self.covered.mean()),
            "Conventions": "CF-1.8",
        }
        if self.notes:
            attrs["notes"] = "; ".join(self.notes)
        if self.missing:
            attrs["missing_quality_fields"] = ",".join(self.missing)
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def check_smap_file(path, wanted: Iterable[str] | None = None) -> dict:
    """A fast check of one SMAP L3/L4 file for ingest's first pass (no data is decoded).

    Opens the HDF5 file, identifies the product and checks that the soil-moisture datasets
    are there. Returns ``{"product", "time" (datetime64[ns] or None), "missing": [optional
    quality fields the file lacks]}``; raises :class:`~model.errors.InputError` (unreadable,
    wrong product, soil moisture missing) otherwise.
    """
    path = Path(path)
    with _h5(path) as f:
        short, desc = identify(f)
        if wanted is not None and short not in tuple(wanted):
            raise _wrong_product(path, short, desc, " or ".join(wanted))
        missing: list[str] = []
        if short in L3_PRODUCTS:
            for ov, gs in _l3_groups(f).items():
                if gs is None:
                    continue
                grp, sfx = gs
                _dataset(f, grp, f"soil_moisture{sfx}", path, short)
                for name in ("retrieval_qual_flag", "surface_flag"):
                    if _optional_dataset(f, grp, f"{name}{sfx}") is None and name not in missing:
                        missing.append(name)
        elif short == "SPL4SMGP":
            _dataset(f, "Geophysical_Data", "sm_surface", path, short)
        name = parse_smap_filename(path.name)
    return {"product": short, "time": name["time"] if name else None, "missing": missing}


def overpass_template(product: str = "SPL3SMP", bbox=TP_BBOX) -> xr.Dataset:
    """An empty overpass (dims ``(y, x)``) in the layout :func:`~model.data.smap_write.write_smap_l3` takes.

    ``soil_moisture`` NaN (float32, m3 m-3), ``obs_time`` NaT, flags 65534, on the
    product's grid cut to ``bbox`` (default: the TP subset).
    """
    if product not in L3_PRODUCTS:
        raise unknown_name("SMAP L3 product", product, list(L3_PRODUCTS))
    g = ease2_grid(PRODUCTS[product].grid, tuple(bbox) if bbox is not None else None)
    return xr.Dataset({
        "soil_moisture": (g.dims, np.full(g.shape, np.nan, np.float32), dict(_SM_ATTRS)),
        "obs_time": (g.dims, np.full(g.shape, np.datetime64("NaT"), "datetime64[ns]"), dict(_TIME_ATTRS)),
        "retrieval_qual_flag": (g.dims, np.full(g.shape, FLAG_FILL, np.uint16), dict(_QUAL_ATTRS)),
        "surface_flag": (g.dims, np.full(g.shape, FLAG_FILL, np.uint16), dict(_SURF_ATTRS)),
    }, coords=g.coords())


# --------------------------------------------------------------------------- L4


def _l4_epoch(dset) -> np.datetime64:
    u = _attr_str(dset.attrs.get("units")) or ""
    m = re.match(r"\s*seconds\s+since\s+(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)", u)
    if m:
        return np.datetime64(f"{m.group(1)}T{m.group(2)}", "ns")
    return L4_EPOCH


def read_smap_l4(path, bbox=TP_BBOX, *, variables: Iterable[str] = ("sm_surface", "sm_rootzone", "surface_temp"),
                 allow_empty: bool = True) -> xr.Dataset:
    """Read one SMAP L4 3-hourly geophysical file (SPL4SMGP).

    Parameters
    ----------
    path : str or Path
        ``SMAP_L4_SM_gph_<YYYYMMDDTHHMMSS>_<version>_<nnn>.h5``.
    bbox : (lon_min, lat_min, lon_max, lat_max) or None
        Region in degrees (default the TP box -> ``get_grid("M09")``); None = global.
    variables : iterable of str
        Fields of ``Geophysical_Data`` to return; ``sm_surface`` is required, the others
        are returned when the file has them.
    allow_empty : bool
        No valid ``sm_surface`` in the region: True warns and sets ``attrs["status"]``,
        False raises :class:`~model.errors.EmptyAfterPolicyError`.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, y, x)`` with one time: the file's ``time`` (the CENTRE of the
        3-hourly averaging window, e.g. 01:30 for 00:00-03:00 UTC; datetime64[ns]).
        ``sm_surface`` (0-5 cm), ``sm_rootzone`` (0-100 cm) in m3 m-3, ``surface_temp``
        in K, float32, NaN where fill (-9999) or outside the field's own valid_min/max.
        attrs: ``product``, ``grid``, ``source_file``, ``time_window_start``,
        ``time_window_end``, ``policy_report`` (counts), ``status``.
    """
    path = Path(path)
    variables = tuple(dict.fromkeys(("sm_surface",) + tuple(variables)))
    with _h5(path) as f:
        short, desc = identify(f)
        if short != "SPL4SMGP":
            raise _wrong_product(path, short, desc, "a SMAP L4 3-hourly geophysical file (SPL4SMGP)")
        grid = ease2_grid("M09", tuple(bbox) if bbox is not None else None)
        t = _l4_time(f, path, short)
        src, dst = _overlap((0, 0) + _GLOBAL_SHAPES["M09"], grid)
        fields, counts = {}, {}
        for n in variables:
            if n != "sm_surface" and f"Geophysical_Data/{n}" not in f:
                continue
            fields[n], counts[n] = _l4_field(f, n, path, short, grid, src, dst)
    c = counts["sm_surface"]
    status = "ok" if c["n_valid"] else ("all_fill" if c["n_retrieved"] == 0 else "empty_after_policy")
    _report_empty(path, status, {**c, "rejected": c["rejected"]}, _bbox_text(bbox), allow_empty)
    dims = ("time",) + grid.dims
    data_vars = {n: (dims, v[None], attrs) for n, (v, attrs) in fields.items()}
    coords = grid.coords()
    coords["time"] = ("time", t, {"long_name": "centre of the 3-hourly averaging window (UTC)"})
    half = np.timedelta64(90, "m")
    return xr.Dataset(data_vars, coords=coords, attrs={
        "product": short, "grid": "M09", "source_file": str(path),
        "time_window_start": str((t[0] - half).astype("datetime64[s]")),
        "time_window_end": str((t[0] + half).astype("datetime64[s]")),
        "policy_report": json.dumps(counts), "status": status, "Conventions": "CF-1.8",
    })


def _l4_time(f, path: Path, short: str) -> np.ndarray:
    """The file's one time stamp (datetime64[ns], shape (1,)), once ``sm_surface`` is checked
    to be on the global M09 grid."""
    d0 = _dataset(f, "Geophysical_Data", "sm_surface", path, short)
    if d0.ndim != 2 or tuple(d0.shape) != _GLOBAL_SHAPES["M09"]:
        raise CoverageError(f"/Geophysical_Data/sm_surface is {d0.shape}, not the global M09 grid "
                            f"(1624 x 3856)", "download the global granule (no spatial subsetting)", path)
    tset = _dataset(f, "", "time", path, short)
    tval = np.asarray(tset[()], dtype=np.float64).ravel()
    if tval.size != 1 or not np.isfinite(tval[0]) or tval[0] == FILL:
        raise UnreadableFileError(f"/time holds {tval.tolist()!r}, not one valid time stamp",
                                  "download the granule again", path)
    return _seconds_to_time(tval, _l4_epoch(tset))


def _l4_field(f, n: str, path: Path, short: str, grid: Grid, src, dst) -> tuple[tuple[np.ndarray, dict], dict]:
    """One ``Geophysical_Data`` field on ``grid`` (NaN where fill or outside its valid_min/max):
    ((values, attrs), counts)."""
    d = _dataset(f, "Geophysical_Data", n, path, short)
    v = np.full(grid.shape, np.nan, np.float32)
    v[dst] = _read_float(d, src)
    finite = np.isfinite(v)
    bad = np.zeros(v.shape, bool)
    lo, hi = d.attrs.get("valid_min"), d.attrs.get("valid_max")
    with np.errstate(invalid="ignore"):
        if lo is not None:
            bad |= finite & (v < float(np.asarray(lo).ravel()[0]))
        if hi is not None:
            bad |= finite & (v > float(np.asarray(hi).ravel()[0]))
    v[bad] = np.nan
    counts = {"n_cells": int(v.size), "n_fill": int((~finite).sum()), "n_retrieved": int(finite.sum()),
              "rejected": {"valid_range": int(bad.sum())}, "n_rejected": int(bad.sum()),
              "n_valid": int(np.isfinite(v).sum())}
    attrs = dict(_L4_OUT_ATTRS.get(n) or _out_attrs(d.attrs, n))
    attrs["cell_methods"] = "time: mean (interval: 3 hours)"
    return (v, attrs), counts


# --------------------------------------------------------------------------- describe


def describe(path, policy: QualityPolicy | None = None, bbox=TP_BBOX) -> dict:
    """What the readers see in a SMAP file, for ``sm-downscale inspect``.

    Parameters
    ----------
    path : str or Path
    policy : QualityPolicy, optional
        Default ``QualityPolicy()``.
    bbox : tuple or None
        Region for gridded products (default the TP box; None = global). L2 swaths are
        described whole.

    Returns
    -------
    dict
        ``product``, ``variables`` ({name: units}), ``time_start``/``time_end`` (ISO UTC or
        None), ``grid`` ({name, shape, bbox [lon_min, lat_min, lon_max, lat_max]}),
        ``soil_moisture`` ({valid_count, mean, min, max} in m3 m-3, after fill values and
        the policy), ``policy`` (the rules), ``rejected`` (values rejected by each rule, and
        fill cells), ``status`` and product specifics (``date``, ``overpass``, ``orbit``...).
        An emptied file is described (status ``all_fill`` / ``empty_after_policy``), not
        raised; unreadable or foreign files raise InputError subclasses.
    """
    path = Path(path)
    policy = policy or QualityPolicy()
    short, desc = identify(path)
    if short is None:
        raise WrongProductError(f"this is {desc}", "pass a SMAP L2/L3/L4 soil-moisture granule", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyDataWarning)
        if short in L2_PRODUCTS:
            ds = read_smap_l2(path, policy)
            in_tp = grid_l2(ds, ease2_grid(ds.attrs["grid"]), allow_empty=True).attrs["n_cells_in_grid"]
            parts = _l2_parts(ds, in_tp)
        elif short in L3_PRODUCTS:
            ds = read_smap_l3(path, policy, bbox)
            parts = _l3_parts(ds, bbox)
        elif short == "SPL4SMGP":
            ds = read_smap_l4(path, bbox)
            parts = _l4_parts(ds, bbox)
        else:
            raise WrongProductError(f"this is {desc}; only SMAP L2/L3 soil moisture and SPL4SMGP are read",
                                    "pass an SPL2SMP, SPL3SMP, SPL3SMP_E or SPL4SMGP granule", path)
    return _description(path, short, ds, policy, parts)
