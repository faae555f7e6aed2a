"""SMAP writers: SPL3SMP / SPL3SMP_E and SPL4SMGP files in their real HDF5 layouts.

Writers produce files in the same layouts the readers of :mod:`model.data.smap` read
(global-shaped arrays, chunked and gzip compressed with HDF5 fill values, so only the chunks
holding data are stored), which is how the virtual Tibetan Plateau delivers its SMAP-like
observations. Split out of ``smap.py`` (issue 14: no module over 800 lines); the shared
definitions (product table, fill values, epochs, file names) come from
:mod:`model.data.smap_format`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import zlib
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import xarray as xr

from ..errors import unknown_name
from ..grids import ease2, ease2_grid
from ..io import atomic_path
from .smap_format import (
    _GLOBAL_SHAPES,
    FILL,
    FLAG_FILL,
    L3_PRODUCTS,
    L4_EPOCH,
    L4_TIME_UNITS,
    PRODUCTS,
    SURFACE_FLAG_BITS,
    TB_EPOCH,
    _check_l4_time,
    _to_day,
    _to_ns,
)

__all__ = ["write_smap_l3", "write_smap_l4"]


# --------------------------------------------------------------------------- times and attributes of the files


def _time_to_seconds(t: np.ndarray, epoch: np.datetime64, fill: float = FILL) -> np.ndarray:
    t = np.asarray(t).astype("datetime64[ns]")
    bad = np.isnat(t)
    sec = (t - epoch).astype("timedelta64[ns]").astype(np.int64) / 1e9
    return np.where(bad, fill, sec)


def _format_utc(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t).astype("datetime64[ms]")
    s = np.char.add(np.datetime_as_string(t, unit="ms"), "Z")
    s = np.where(np.isnat(t), "", s)
    return np.char.encode(s.astype("U24"), "ascii").astype("S24")


# Real-layout attributes of the L2/L3 fields (from the real SPL2SMP granule).
_L3_FIELD_ATTRS = {
    "soil_moisture": dict(long_name="Representative soil moisture measurement for the Earth based grid cell.",
                          units="cm**3/cm**3", valid_min=np.float32(0.02), valid_max=np.float32(0.5)),
    "retrieval_qual_flag": dict(
        long_name="Bit flags that record the conditions and the quality of the retrieval algorithms "
                  "that generate soil moisture within each grid cell",
        flag_masks="1s, 2s, 4s, 8s",
        flag_meanings="Soil_moisture_retrieval_recommended Soil_moisture_retrieval_attempted "
                      "Soil_moisture_retrieval_success FT_retrieval_success"),
    "surface_flag": dict(
        long_name="Bit flags that record ambient surface conditions within each grid cell",
        flag_masks=", ".join(f"{1 << b}s" for b in SURFACE_FLAG_BITS.values()),
        flag_meanings=None),  # filled per grid resolution
    "tb_time_seconds": dict(
        long_name="Arithmetic average of the acquisition time of all of the brightness temperature "
                  "footprints with a center that falls within the EASE grid cell in seconds since noon "
                  "on January 1, 2000 UTC.",
        units="seconds", valid_min=np.float64(-999999.9), valid_max=np.float64(940000000.0)),
    "tb_time_utc": dict(
        long_name="Arithmetic average of the acquisition time of all of the brightness temperature "
                  "footprints with a center that falls within the EASE grid cell in UTC."),
    "latitude": dict(long_name="Latitude of the center of the Earth based grid cell.", units="degrees_north"),
    "longitude": dict(long_name="Longitude of the center of the Earth based grid cell.", units="degrees_east"),
    "EASE_row_index": dict(long_name="The row index of the {res} km EASE grid cell that contains the associated data."),
    "EASE_column_index": dict(long_name="The column index of the {res} km EASE grid cell that contains the associated data."),
    # optional ancillary fields the virtual world may provide
    "surface_temperature": dict(long_name="Temperature at land surface based on GMAO GEOS-5 data.",
                                units="Kelvins", valid_min=np.float32(0.0), valid_max=np.float32(350.0)),
    "soil_moisture_error": dict(long_name="Net uncertainty measure of soil moisture measure for the Earth based grid cell.",
                                units="cm**3/cm**3", valid_min=np.float32(0.0), valid_max=np.float32(0.2)),
    "vegetation_water_content": dict(
        long_name="Representative measure of water in the vegetation within the {res} km grid cell.",
        units="kg/m**2", valid_min=np.float32(0.0), valid_max=np.float32(20.0)),
    "vegetation_opacity": dict(long_name="The measured opacity of the vegetation in the grid cell.",
                               valid_min=np.float32(0.0), valid_max=np.float32(10.0)),
    "freeze_thaw_fraction": dict(
        long_name="Fraction of the {res} km grid cell that is denoted as frozen.  Based on binary flag that "
                  "specifies freeze thaw conditions in each of the component 3 km grid cells.",
        valid_min=np.float32(0.0), valid_max=np.float32(1.0)),
}


_L4_FIELD_ATTRS = {
    "sm_surface": dict(long_name="Top layer soil moisture (0-5 cm)", units="m3 m-3",
                       valid_min=np.float32(0.0), valid_max=np.float32(0.9)),
    "sm_rootzone": dict(long_name="Root zone soil moisture (0-100 cm)", units="m3 m-3",
                        valid_min=np.float32(0.0), valid_max=np.float32(0.9)),
    "sm_profile": dict(long_name="Total profile soil moisture (0 cm to model bedrock depth)", units="m3 m-3",
                       valid_min=np.float32(0.0), valid_max=np.float32(0.9)),
    "surface_temp": dict(long_name="Mean land surface temperature (including snow-covered areas)", units="K",
                         valid_min=np.float32(180.0), valid_max=np.float32(350.0)),
    "soil_temp_layer1": dict(long_name="Soil temperature in layer 1 of the soil model", units="K",
                             valid_min=np.float32(180.0), valid_max=np.float32(350.0)),
    "precipitation_total_surface_flux": dict(long_name="Total precipitation reaching the land surface",
                                             units="kg m-2 s-1", valid_min=np.float32(0.0),
                                             valid_max=np.float32(0.05)),
    "snow_mass": dict(long_name="Average snow mass (or snow water equivalent) over land fraction of grid cell",
                      units="kg m-2", valid_min=np.float32(0.0), valid_max=np.float32(10000.0)),
}


_CORE_L3 = ("soil_moisture", "obs_time", "retrieval_qual_flag", "surface_flag")


_L3_CHUNKS = {"M36": (58, 241), "M09": (203, 241)}


# --------------------------------------------------------------------------- writers


def _h5_attrs(obj, attrs: dict):
    for k, v in attrs.items():
        if v is None:
            continue
        obj.attrs[k] = v


def _write_metadata(f, product: str, file_name: str, begin: np.datetime64, end: np.datetime64,
                    release: str, creation_date: str | None, extra: dict | None = None):
    p = PRODUCTS[product]
    creation = creation_date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    fmt = lambda t: str(np.datetime64(t, "ms")) + "Z"  # noqa: E731
    md = f.create_group("Metadata")
    _h5_attrs(md.create_group("DatasetIdentification"), {
        "shortName": product, "SMAPShortName": p.smap_short_name, "longName": p.long_name,
        "CompositeReleaseID": release, "fileName": file_name, "creationDate": creation,
        "format": "HDF5", "characterSet": "utf8", "language": "eng",
        "credit": "Written by sm-downscale (model.data.smap) in the real product layout; "
                  "the values are whatever its caller supplied (e.g. the virtual Tibetan Plateau), "
                  "not NASA data.",
    })
    _h5_attrs(md.create_group("SeriesIdentification"), {
        "shortName": product, "longName": p.long_name, "mission": "SMAP",
    })
    _h5_attrs(md.create_group("Extent"), {"rangeBeginningDateTime": fmt(begin), "rangeEndingDateTime": fmt(end)})
    _h5_attrs(md.create_group("ProcessStep"), {"epochUTCDateTime": "2000-01-01T11:58:55.816Z",
                                               "timeVariableEpoch": "J2000"})
    size, nrows, ncols = ease2.GRIDS[p.grid]
    gsr = md.create_group("GridSpatialRepresentation")
    _h5_attrs(gsr, {"numberOfDimensions": np.int64(2), "cellGeometry": "area",
                    "resolution": np.float32(round(size / 1000.0, 1))})
    _h5_attrs(gsr.create_group("Column"), {"dimensionSize": np.uint32(ncols), "resolution": np.float32(size / 1000)})
    _h5_attrs(gsr.create_group("Row"), {"dimensionSize": np.uint32(nrows), "resolution": np.float32(size / 1000)})
    _h5_attrs(gsr.create_group("GridDefinition"), {
        "identifier": "Equal-Area Scalable Earth Grid", "description": "EASE-Grid 2.0 global cylindrical, EPSG:6933"})
    if extra:
        for grp, attrs in extra.items():
            _h5_attrs(md.require_group(grp), attrs)


def _create(g, name: str, shape, dtype, fill, chunks, attrs: dict, level: int = 4):
    """A global-shaped, chunked, gzip-compressed dataset whose unwritten chunks are not stored."""
    kw = {}
    if np.dtype(dtype).kind != "S":
        kw["shuffle"] = True
    d = g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip",
                         compression_opts=level, fillvalue=fill, **kw)
    a = dict(attrs)
    if np.dtype(dtype).kind != "S":
        a["_FillValue"] = np.array(fill, dtype=dtype)
    _h5_attrs(d, a)
    return d


def _overpass_block(ds: xr.Dataset | None, gname: str, what: str, product: str):
    """(row0, col0, arrays dict) of an overpass Dataset on (a block of) the global grid."""
    if ds is None:
        return None
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{what} must be an xarray.Dataset (or None), got {type(ds).__name__}")
    if "overpass" in ds.dims:
        raise ValueError(f"{what} has an 'overpass' dimension: pass one overpass, "
                         f"e.g. ds.sel(overpass='{what}')")
    for v in ("soil_moisture", "obs_time"):
        if v not in ds:
            raise ValueError(f"{what} lacks {v!r} (needs soil_moisture, obs_time; optional "
                             f"retrieval_qual_flag, surface_flag and extra fields)")
    sm_da = ds["soil_moisture"]
    if set(sm_da.dims) != {"y", "x"}:
        raise ValueError(f"{what}.soil_moisture must have dims (y, x), got {sm_da.dims}")
    nrows, ncols = _GLOBAL_SHAPES[gname]
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    if "y" in ds.coords and "x" in ds.coords:
        rows = np.asarray(ds["y"].values).astype(np.int64)
        cols = np.asarray(ds["x"].values).astype(np.int64)
        if np.any(np.diff(rows) != 1) or np.any(np.diff(cols) != 1):
            raise ValueError(f"{what}: y/x must be consecutive ascending global {gname} row/column indices")
        r0, c0 = int(rows[0]), int(cols[0])
    else:
        g = ease2_grid(gname)
        if (ny, nx) != g.shape:
            raise ValueError(f"{what} is {ny} x {nx} without y/x coordinates; expected the TP subset "
                             f"of {gname} ({g.shape[0]} x {g.shape[1]}) for {product}")
        r0, c0 = g.row_offset, g.col_offset
    if r0 < 0 or c0 < 0 or r0 + ny > nrows or c0 + nx > ncols:
        raise ValueError(f"{what}: rows {r0}..{r0 + ny - 1}, cols {c0}..{c0 + nx - 1} lie outside the "
                         f"global {gname} grid ({nrows} x {ncols}); is this the right product ({product})?")
    sm = np.asarray(sm_da.transpose("y", "x").values, dtype=np.float32)
    ot = np.asarray(ds["obs_time"].transpose("y", "x").values).astype("datetime64[ns]")
    has_sm = np.isfinite(sm)
    observed = has_sm | ~np.isnat(ot)
    if "retrieval_qual_flag" in ds:
        q = np.asarray(ds["retrieval_qual_flag"].transpose("y", "x").values).astype(np.uint16)
    else:  # recommended where there is a value; "not retrieved" (15) where only observed
        q = np.where(has_sm, 0, np.where(observed, 15, FLAG_FILL)).astype(np.uint16)
    if "surface_flag" in ds:
        s = np.asarray(ds["surface_flag"].transpose("y", "x").values).astype(np.uint16)
    else:
        s = np.where(observed, 0, FLAG_FILL).astype(np.uint16)
    observed |= q != FLAG_FILL
    extras = {}
    for n, v in ds.data_vars.items():
        if n in _CORE_L3 or set(v.dims) != {"y", "x"}:
            continue
        arr = np.asarray(v.transpose("y", "x").values)
        extras[n] = (arr, dict(v.attrs))
    return r0, c0, {"sm": sm, "ot": ot, "q": q, "s": s, "observed": observed, "extras": extras}


def write_smap_l3(path, product: str, date, am: xr.Dataset | None, pm: xr.Dataset | None, *,
                  crid: str = "R18290", creation_date: str | None = None,
                  omit: Iterable[str] = ()) -> Path:
    """Write a SMAP L3 daily file (SPL3SMP or SPL3SMP_E) in the real, global layout.

    Parameters
    ----------
    path : str or Path
        Target file (written atomically). :func:`smap_filename` gives the real name.
    product : {"SPL3SMP", "SPL3SMP_E"}
        36 km (global 406 x 964) or 9 km (global 1624 x 3856).
    date : date-like
        The UTC day of the file (``Metadata/Extent``).
    am, pm : xarray.Dataset or None
        One overpass each, as :func:`read_smap_l3` returns it for one overpass (dims
        ``(y, x)``, by default the TP subset; ``y``/``x`` coords = global indices place any
        block): ``soil_moisture`` (m3 m-3, NaN = fill), ``obs_time`` (datetime64 UTC, NaT =
        no observation), optional ``retrieval_qual_flag`` / ``surface_flag`` (uint16;
        default 0 where there is a value, 15 / 0 where only observed, 65534 elsewhere), and
        optional extra (y, x) fields (e.g. ``surface_temperature`` in K) written under their
        own names. ``None`` writes an all-fill overpass group.
    crid : str
        Composite release id recorded in the metadata.
    creation_date : str, optional
        ``Metadata/DatasetIdentification/creationDate`` (default today, UTC); pass a fixed
        value for byte-reproducible files.
    omit : iterable of str
        Optional quality fields to leave out (``"surface_flag"``, ``"retrieval_qual_flag"``),
        as in a file subset by variable (NSIDC's subsetter) or an older version.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Groups ``Soil_Moisture_Retrieval_Data_AM`` and ``Soil_Moisture_Retrieval_Data_PM``
    (PM names with ``_pm``) hold global 2-D ``soil_moisture`` (``cm**3/cm**3``, float32,
    ``_FillValue`` -9999, ``valid_min`` 0.02, ``valid_max`` 0.5), ``retrieval_qual_flag``,
    ``surface_flag`` (uint16, ``flag_masks``/``flag_meanings`` as the real product),
    ``tb_time_seconds`` (float64, seconds since 2000-01-01T12:00:00 UTC), ``tb_time_utc``
    (24-character strings), ``latitude``/``longitude`` and ``EASE_row_index``/
    ``EASE_column_index`` (filled where a cell was observed, as in the real product), plus
    a ``Metadata`` group (``DatasetIdentification/shortName`` etc.). Datasets are chunked
    (M36 58 x 241, M09 203 x 241), gzip-compressed and have HDF5 fill values, so chunks
    without data are never stored: a TP-only day is a few hundred kB.
    """
    omit = _checked_l3_args(product, omit)
    gname = PRODUCTS[product].grid
    res = "36" if gname == "M36" else "9"
    day = _to_day(date)
    blocks = {"AM": _overpass_block(am, gname, "AM", product), "PM": _overpass_block(pm, gname, "PM", product)}
    centres = ease2.row_col_centres(gname)
    path = Path(path)
    surf_meanings = " ".join(f"{res}_km_{n}" for n in SURFACE_FLAG_BITS)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            begin = day.astype("datetime64[ns]")
            end = begin + np.timedelta64(86400, "s") - np.timedelta64(1, "ms")
            _write_metadata(f, product, path.name, begin, end, crid, creation_date)
            for ov in ("AM", "PM"):
                grp = f.create_group(f"Soil_Moisture_Retrieval_Data_{ov}")
                sfx = "" if ov == "AM" else "_pm"
                coord_attr = f"/{grp.name.strip('/')}/latitude{sfx} /{grp.name.strip('/')}/longitude{sfx}"
                dsets = _l3_datasets(grp, sfx, gname, res, coord_attr, surf_meanings, omit)
                blk = blocks[ov]
                if blk is None:
                    continue
                r0, c0, a = blk
                ny, nx = a["sm"].shape
                sl = (slice(r0, r0 + ny), slice(c0, c0 + nx))
                if not a["observed"].any():
                    continue
                _fill_l3_block(dsets, sl, r0, c0, a, centres)
                _write_l3_extras(grp, sfx, gname, res, coord_attr, sl, a["extras"])
    return path


def _checked_l3_args(product: str, omit) -> tuple:
    """``omit`` as a tuple, after checking it and the product name."""
    if product not in L3_PRODUCTS:
        raise unknown_name("SMAP L3 product", product, list(L3_PRODUCTS))
    omit = tuple(omit)
    for name in omit:
        if name not in ("surface_flag", "retrieval_qual_flag"):
            raise unknown_name("optional SMAP L3 field", name, ["surface_flag", "retrieval_qual_flag"])
    return omit


def _l3_attrs(name: str, res: str, coord_attr: str, **over) -> dict:
    """The real product's attributes of an L3 dataset."""
    a = dict(_L3_FIELD_ATTRS.get(name, {}))
    if "long_name" in a:
        a["long_name"] = a["long_name"].format(res=res)
    if name not in ("latitude", "longitude"):
        a["coordinates"] = coord_attr
    a.update(over)
    return a


def _l3_datasets(grp, sfx: str, gname: str, res: str, coord_attr: str, surf_meanings: str, omit) -> dict:
    """The (all-fill) global datasets of one overpass group, less the omitted quality fields."""
    shape = _GLOBAL_SHAPES[gname]
    chunks = _L3_CHUNKS[gname]

    def attrs(name, **over):
        return _l3_attrs(name, res, coord_attr, **over)

    dsets = {
        "sm": _create(grp, f"soil_moisture{sfx}", shape, np.float32, np.float32(FILL), chunks,
                      attrs("soil_moisture")),
        "q": _create(grp, f"retrieval_qual_flag{sfx}", shape, np.uint16, np.uint16(FLAG_FILL), chunks,
                     attrs("retrieval_qual_flag")),
        "s": _create(grp, f"surface_flag{sfx}", shape, np.uint16, np.uint16(FLAG_FILL), chunks,
                     attrs("surface_flag", flag_meanings=surf_meanings)),
        "sec": _create(grp, f"tb_time_seconds{sfx}", shape, np.float64, np.float64(FILL), chunks,
                       attrs("tb_time_seconds")),
        "utc": _create(grp, f"tb_time_utc{sfx}", shape, "S24", b"", chunks, attrs("tb_time_utc")),
        "lat": _create(grp, f"latitude{sfx}", shape, np.float32, np.float32(FILL), chunks,
                       attrs("latitude")),
        "lon": _create(grp, f"longitude{sfx}", shape, np.float32, np.float32(FILL), chunks,
                       attrs("longitude")),
        "row": _create(grp, f"EASE_row_index{sfx}", shape, np.uint16, np.uint16(FLAG_FILL), chunks,
                       attrs("EASE_row_index", valid_min=np.uint16(0), valid_max=np.uint16(shape[0] - 1))),
        "col": _create(grp, f"EASE_column_index{sfx}", shape, np.uint16, np.uint16(FLAG_FILL), chunks,
                       attrs("EASE_column_index", valid_min=np.uint16(0), valid_max=np.uint16(shape[1] - 1))),
    }
    for key, name in (("q", "retrieval_qual_flag"), ("s", "surface_flag")):
        if name in omit:
            del grp[f"{name}{sfx}"]
            dsets.pop(key)
    return dsets


def _fill_l3_block(dsets: dict, sl, r0: int, c0: int, a: dict, centres) -> None:
    """Write one overpass block (``a``, at global row/col ``r0``/``c0``) into its datasets;
    ``centres``: the grid's (row latitudes, column longitudes)."""
    lat_c, lon_c = centres
    ny, nx = a["sm"].shape
    obs = a["observed"]
    dsets["sm"][sl] = np.where(np.isfinite(a["sm"]), a["sm"], FILL).astype(np.float32)
    if "q" in dsets:
        dsets["q"][sl] = a["q"]
    if "s" in dsets:
        dsets["s"][sl] = a["s"]
    dsets["sec"][sl] = _time_to_seconds(a["ot"], TB_EPOCH)
    dsets["utc"][sl] = _format_utc(a["ot"])
    rr, cc = np.meshgrid(np.arange(r0, r0 + ny), np.arange(c0, c0 + nx), indexing="ij")
    dsets["lat"][sl] = np.where(obs, lat_c[rr], FILL).astype(np.float32)
    dsets["lon"][sl] = np.where(obs, lon_c[cc], FILL).astype(np.float32)
    dsets["row"][sl] = np.where(obs, rr, FLAG_FILL).astype(np.uint16)
    dsets["col"][sl] = np.where(obs, cc, FLAG_FILL).astype(np.uint16)


def _write_l3_extras(grp, sfx: str, gname: str, res: str, coord_attr: str, sl, extras: dict) -> None:
    """Extra (y, x) fields of an overpass under their own names (float: FILL; integer: 65534)."""
    shape = _GLOBAL_SHAPES[gname]
    chunks = _L3_CHUNKS[gname]
    for n, (arr, src_attrs) in extras.items():
        if arr.dtype.kind == "f":
            real = dict(_L3_FIELD_ATTRS.get(n, {}))
            if "long_name" in real:
                real["long_name"] = real["long_name"].format(res=res)
            if not real:
                real = {k: v for k, v in src_attrs.items() if k in ("long_name", "units")}
            d = _create(grp, f"{n}{sfx}", shape, np.float32, np.float32(FILL), chunks,
                        {**real, "coordinates": coord_attr})
            d[sl] = np.where(np.isfinite(arr), arr, FILL).astype(np.float32)
        else:
            dt = arr.dtype if arr.dtype.kind in "ui" else np.uint16
            d = _create(grp, f"{n}{sfx}", shape, dt, np.array(FLAG_FILL).astype(dt), chunks,
                        {k: v for k, v in src_attrs.items() if k in ("long_name", "units")})
            d[sl] = arr.astype(dt)


# --------------------------------------------------------------------------- L4

_L4_CHUNKS = (203, 241)


_L4_GEO_CHUNKS = (406, 964)  # tiles the global M09 grid 4 x 4


def _shuffle_deflate(a: np.ndarray, level: int) -> bytes:
    """A chunk as HDF5's shuffle + gzip (deflate) filter pipeline stores it."""
    raw = np.ascontiguousarray(a)
    shuffled = raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.copy()
    return zlib.compress(shuffled.tobytes(), level)


@functools.lru_cache(maxsize=1)
def _l4_geolocation() -> dict:
    """SPL4SMGP root geolocation fields: name -> (dtype, fill, attrs, [(offset, chunk bytes)])."""
    nrows, ncols = _GLOBAL_SHAPES["M09"]
    lat_c, lon_c = ease2.row_col_centres("M09")
    def rows(v):
        return lambda r, c: np.broadcast_to(v[r][:, None], (r.size, c.size))

    def cols(v):
        return lambda r, c: np.broadcast_to(v[c][None, :], (r.size, c.size))

    index_fill = np.uint32(4294967294)
    full = {
        "cell_lat": (np.float32, np.float32(FILL), rows(lat_c.astype(np.float32)),
                     {"long_name": "Center latitude of grid cell", "units": "degrees_north",
                      "valid_min": np.float32(-90), "valid_max": np.float32(90)}),
        "cell_lon": (np.float32, np.float32(FILL), cols(lon_c.astype(np.float32)),
                     {"long_name": "Center longitude of grid cell", "units": "degrees_east",
                      "valid_min": np.float32(-180), "valid_max": np.float32(180)}),
        "cell_row": (np.uint32, index_fill, rows(np.arange(nrows, dtype=np.uint32)),
                     {"long_name": "The row index of each EASE grid cell"}),
        "cell_column": (np.uint32, index_fill, cols(np.arange(ncols, dtype=np.uint32)),
                        {"long_name": "The column index of each EASE grid cell"}),
    }
    cr, cc = _L4_GEO_CHUNKS
    out = {}
    for name, (dtype, fill, make, attrs) in full.items():
        chunks, memo = [], {}
        for r0 in range(0, nrows, cr):
            for c0 in range(0, ncols, cc):
                block = make(np.arange(r0, r0 + cr), np.arange(c0, c0 + cc)).astype(dtype)
                key = hash(block.tobytes())  # many chunks repeat (lat per row band, lon per column band)
                if key not in memo:
                    memo[key] = _shuffle_deflate(block, 9)
                chunks.append(((r0, c0), memo[key]))
        out[name] = (dtype, fill, attrs, chunks)
    return out


def write_smap_l4(path, time, ds: xr.Dataset, *, version: str = "Vv7032",
                  creation_date: str | None = None) -> Path:
    """Write one SMAP L4 3-hourly geophysical file (SPL4SMGP) in the real, global layout.

    Parameters
    ----------
    path : str or Path
        Target (atomic). ``smap_filename("SPL4SMGP", time)`` gives the real name.
    time : datetime-like
        Centre of the 3-hourly averaging window, UTC (01:30, 04:30, ..., 22:30), as in the
        real product's file names and ``time`` dataset.
    ds : xarray.Dataset
        Dims ``(y, x)`` (or ``(time, y, x)`` with one time) on the M09 TP subset, or any
        block given by ``y``/``x`` global index coords: ``sm_surface`` (m3 m-3) required;
        ``sm_rootzone`` (m3 m-3), ``surface_temp`` (K) and other ``Geophysical_Data``
        fields optional. NaN is written as -9999.
    version : str
        Version string for the metadata (the file name's ``Vv7032``).
    creation_date : str, optional
        Default today (UTC).

    Returns
    -------
    Path

    Notes
    -----
    Root datasets ``cell_lat``/``cell_lon`` (global M09 centres, float32), ``cell_row``/
    ``cell_column`` (uint32), ``x``/``y`` (EPSG:6933 metres), ``time`` (float64, one value,
    ``units = "seconds since 2000-01-01 11:58:55.816"``); group ``Geophysical_Data`` with
    global float32 fields (``_FillValue`` -9999, units ``m3 m-3`` / ``K``); ``Metadata``.
    """
    t = _to_ns(time)
    _check_l4_time(t)
    if "time" in ds.dims:
        if ds.sizes["time"] != 1:
            raise ValueError(f"ds has {ds.sizes['time']} times; an SPL4SMGP file holds one")
        ds = ds.isel(time=0)
    if "sm_surface" not in ds:
        raise ValueError("ds lacks 'sm_surface' (m3 m-3), which every SPL4SMGP file has")
    nrows, ncols = _GLOBAL_SHAPES["M09"]
    sl = _l4_block(ds, nrows, ncols)
    lat_c, lon_c = ease2.row_col_centres("M09")
    size, x_min, y_max, _, _ = ease2.extent("M09")
    path = Path(path)
    half = np.timedelta64(90, "m")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_metadata(f, "SPL4SMGP", path.name, t - half, t + half, version, creation_date)
            shape = (nrows, ncols)
            ch = _L4_CHUNKS
            # global geolocation, as in the real product: compressed once per process and
            # copied chunk by chunk (raw) into every file
            for name, (dtype, fill, attrs, chunks) in _l4_geolocation().items():
                d = _create(f, name, shape, dtype, fill, _L4_GEO_CHUNKS, attrs, level=9)
                for offset, blob in chunks:
                    d.id.write_direct_chunk(offset, blob, filter_mask=0)
            _write_l4_axes(f, t, nrows, ncols, size, x_min, y_max)
            geo = f.create_group("Geophysical_Data")
            for n, v in ds.data_vars.items():
                if set(v.dims) != {"y", "x"}:
                    continue
                arr = np.asarray(v.transpose("y", "x").values, dtype=np.float32)
                a = dict(_L4_FIELD_ATTRS.get(n) or {k: val for k, val in v.attrs.items() if k in ("long_name", "units")})
                dd = _create(geo, n, shape, np.float32, np.float32(FILL), ch, a)
                dd[sl] = np.where(np.isfinite(arr), arr, FILL).astype(np.float32)
    return path


def _l4_block(ds: xr.Dataset, nrows: int, ncols: int) -> tuple[slice, slice]:
    """Where ``ds`` lies in the global M09 grid: its ``y``/``x`` global indices, else the TP
    subset's offsets (checked)."""
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    if "y" in ds.coords and "x" in ds.coords:
        rows = np.asarray(ds["y"].values).astype(np.int64)
        cols = np.asarray(ds["x"].values).astype(np.int64)
        if np.any(np.diff(rows) != 1) or np.any(np.diff(cols) != 1):
            raise ValueError("y/x must be consecutive ascending global M09 row/column indices")
        r0, c0 = int(rows[0]), int(cols[0])
    else:
        g = ease2_grid("M09")
        if (ny, nx) != g.shape:
            raise ValueError(f"ds is {ny} x {nx} without y/x coordinates; expected the M09 TP subset {g.shape}")
        r0, c0 = g.row_offset, g.col_offset
    if r0 < 0 or c0 < 0 or r0 + ny > nrows or c0 + nx > ncols:
        raise ValueError(f"rows {r0}..{r0 + ny - 1}, cols {c0}..{c0 + nx - 1} lie outside the global M09 grid")
    return (slice(r0, r0 + ny), slice(c0, c0 + nx))


def _write_l4_axes(f, t, nrows: int, ncols: int, size: float, x_min: float, y_max: float) -> None:
    """The root ``x``/``y`` (EASE 2.0 metres) and ``time`` datasets of an SPL4SMGP file."""
    f.create_dataset("x", data=x_min + (np.arange(ncols) + 0.5) * size).attrs.update(
        {"long_name": "X coordinate of cell center in EASE 2.0 global projection", "units": "m",
         "standard_name": "projection_x_coordinate"})
    f.create_dataset("y", data=y_max - (np.arange(nrows) + 0.5) * size).attrs.update(
        {"long_name": "Y coordinate of cell center in EASE 2.0 global projection", "units": "m",
         "standard_name": "projection_y_coordinate"})
    td = f.create_dataset("time", data=_time_to_seconds(np.array([t]), L4_EPOCH))
    td.attrs.update({"long_name": "Time", "units": L4_TIME_UNITS,
                     "comment": "centre of the 3-hourly averaging window; counted without leap seconds"})
