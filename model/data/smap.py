"""SMAP soil-moisture products in their real HDF5 layouts: readers, writers, inspection.

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

Writers produce files in the same layouts (global-shaped arrays, chunked and gzip
compressed with HDF5 fill values, so only the chunks holding data are stored), which is how
the virtual Tibetan Plateau delivers its SMAP-like observations.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import xarray as xr

from ..errors import (CoverageError, EmptyAfterPolicyError, InputError, MissingVariableError,
                      UnreadableFileError, WrongProductError, unknown_name)
from ..grids import TP_BBOX, Grid, ease2, ease2_grid
from ..io import atomic_path

__all__ = [
    "QualityPolicy", "EmptyDataWarning", "PRODUCTS", "SURFACE_FLAG_BITS", "QUAL_FLAG_BITS",
    "read_smap_l2", "grid_l2", "read_smap_l3", "check_smap_file", "read_smap_l4", "write_smap_l3", "write_smap_l4",
    "overpass_template", "smap_filename", "parse_smap_filename", "identify", "describe",
    "overpass_step",
]

#: Fill value of the float fields of every SMAP product here.
FILL = -9999.0
#: Fill value of the uint16 flag and EASE index fields.
FLAG_FILL = 65534
#: Epoch of ``tb_time_seconds`` (L2/L3); see the module docstring for the evidence.
TB_EPOCH = np.datetime64("2000-01-01T12:00:00", "ns")
#: Epoch of SPL4SMGP ``time`` (J2000 in UTC), as its ``units`` attribute states.
L4_EPOCH = np.datetime64("2000-01-01T11:58:55.816", "ns")
L4_TIME_UNITS = "seconds since 2000-01-01 11:58:55.816"
SM_UNITS = "m3 m-3"
SM_STANDARD_NAME = "volume_fraction_of_condensed_water_in_soil"


@dataclass(frozen=True)
class _Product:
    short_name: str
    smap_short_name: str
    level: str
    grid: str
    long_name: str


#: The SMAP products this module knows (short name -> description).
PRODUCTS: dict[str, _Product] = {p.short_name: p for p in [
    _Product("SPL2SMP", "L2_SM_P", "L2", "M36", "SMAP L2 Radiometer Half-Orbit 36 km EASE-Grid Soil Moisture"),
    _Product("SPL2SMP_E", "L2_SM_P_E", "L2", "M09", "SMAP Enhanced L2 Radiometer Half-Orbit 9 km EASE-Grid Soil Moisture"),
    _Product("SPL3SMP", "L3_SM_P", "L3", "M36", "SMAP L3 Radiometer Global Daily 36 km EASE-Grid Soil Moisture"),
    _Product("SPL3SMP_E", "L3_SM_P_E", "L3", "M09", "SMAP Enhanced L3 Radiometer Global Daily 9 km EASE-Grid Soil Moisture"),
    _Product("SPL4SMGP", "L4_SM_gph", "L4", "M09",
             "SMAP L4 Global 3-hourly 9 km EASE-Grid Surface and Root Zone Soil Moisture Geophysical Data"),
    _Product("SPL4SMAU", "L4_SM_aup", "L4", "M09",
             "SMAP L4 Global 3-hourly 9 km EASE-Grid Surface and Root Zone Soil Moisture Analysis Update"),
    _Product("SPL4SMLM", "L4_SM_lmc", "L4", "M09",
             "SMAP L4 Global 9 km EASE-Grid Surface and Root Zone Soil Moisture Land Model Constants"),
    _Product("SPL3FTP", "L3_FT_P", "L3", "M36",
             "SMAP L3 Radiometer Global and Northern Hemisphere Daily 36 km EASE-Grid Freeze/Thaw State"),
]}
_BY_SMAP_NAME = {p.smap_short_name: p.short_name for p in PRODUCTS.values()}
L3_PRODUCTS = ("SPL3SMP", "SPL3SMP_E")
L2_PRODUCTS = ("SPL2SMP", "SPL2SMP_E")

#: ``retrieval_qual_flag`` bits (value 2**bit). A SET bit means the condition is NOT met
#: (see :class:`QualityPolicy` for the evidence).
QUAL_FLAG_BITS = {"retrieval_recommended": 0, "retrieval_attempted": 1, "retrieval_success": 2,
                  "ft_retrieval_success": 3}
#: ``surface_flag`` bits (value 2**bit), in the order of the real file's ``flag_meanings``.
SURFACE_FLAG_BITS = {
    "static_water_body": 0, "radar_water_body_detection": 1, "coastal_proximity": 2,
    "urban_area": 3, "precipitation": 4, "snow_or_ice": 5, "permanent_snow_or_ice": 6,
    "radiometer_frozen_ground": 7, "model_frozen_ground": 8, "mountainous_terrain": 9,
    "dense_vegetation": 10, "nadir_region": 11,
}
_DEFAULT_SURFACE_REJECT = ("snow_or_ice", "permanent_snow_or_ice", "radiometer_frozen_ground",
                           "model_frozen_ground")


class EmptyDataWarning(UserWarning):
    """A SMAP file (or region of it) with no valid soil moisture after fill values and policy."""


# --------------------------------------------------------------------------- quality policy


@dataclass(frozen=True)
class QualityPolicy:
    """Which SMAP soil-moisture retrievals the readers keep (the rest become NaN).

    Parameters
    ----------
    recommended_only : bool, default True
        Keep only cells whose ``retrieval_qual_flag`` bit 0 is 0 (retrieval of recommended
        quality); a flag equal to the fill value 65534 counts as not recommended.
        In SMAP a SET bit means the condition is NOT met, although ``flag_meanings`` names
        bit 0 ``Soil_moisture_retrieval_recommended``. Evidence from the real half orbit
        ``SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5`` (17,251 cells):
        all 15,918 fill cells (no retrieval) have bit 0 set, and 15,909 of them also bit 1
        ("attempted"), which no cell with a value has; of the 1,333 retrieved values the 592
        with bit 0 = 0 all lie in 0.063..0.368 m3 m-3, inside the valid range, while the 741
        with bit 0 = 1 hold every one of the 181 values above 0.5 (max 0.731) and have a
        median vegetation water content of 6.1 kg m-2 (vs 2.3), above the 5 kg m-2 threshold
        for "questionable" retrievals that the file's ``Metadata/ProcessStep`` states.
    valid_range : (float, float) or None, default (0.02, 0.5)
        Closed range of plausible values, m3 m-3; values outside become NaN (not clipped).
        (0.02, 0.5) is the product's own ``valid_min``/``valid_max``. ``None`` disables it.
    reject_surface_flags : tuple of str
        ``surface_flag`` bits (names of :data:`SURFACE_FLAG_BITS`) that reject a cell even
        when the retrieval is flagged recommended. Default: snow or ice, permanent snow or
        ice, radiometer and model frozen ground: L-band sees liquid water, so frozen soil
        and snow give no usable volumetric soil moisture, and the project excludes frozen
        soil throughout. The real L2 granule shows this is not redundant with bit 0: 3 of
        its 592 recommended retrievals carry ``radiometer_frozen_ground``. Pass ``()`` to
        keep every surface condition.

    Notes
    -----
    Rules are counted independently (a value can be rejected by several); the readers put
    the counts in ``attrs["policy_report"]``. A flag field equal to 65534 (fill) never
    triggers a surface rule.

    Examples
    --------
    >>> QualityPolicy().to_dict()["valid_range"]
    [0.02, 0.5]
    >>> QualityPolicy.permissive().recommended_only
    False
    """

    recommended_only: bool = True
    valid_range: tuple[float, float] | None = (0.02, 0.5)
    reject_surface_flags: tuple[str, ...] = field(default=_DEFAULT_SURFACE_REJECT)

    def __post_init__(self):
        if self.valid_range is not None:
            lo, hi = (float(v) for v in self.valid_range)
            if not lo < hi:
                raise ValueError(f"valid_range must be (low, high) with low < high, got {self.valid_range}")
            object.__setattr__(self, "valid_range", (lo, hi))
        names = (self.reject_surface_flags,) if isinstance(self.reject_surface_flags, str) else self.reject_surface_flags
        names = tuple(names)
        for n in names:
            if n not in SURFACE_FLAG_BITS:
                raise unknown_name("SMAP surface_flag bit", n, list(SURFACE_FLAG_BITS))
        object.__setattr__(self, "reject_surface_flags", names)

    @classmethod
    def permissive(cls) -> "QualityPolicy":
        """Keep every retrieved value (only fill values become NaN)."""
        return cls(recommended_only=False, valid_range=None, reject_surface_flags=())

    @property
    def surface_mask(self) -> int:
        """Bit mask of the rejecting ``surface_flag`` bits."""
        m = 0
        for n in self.reject_surface_flags:
            m |= 1 << SURFACE_FLAG_BITS[n]
        return m

    def to_dict(self) -> dict:
        d = asdict(self)
        d["valid_range"] = list(self.valid_range) if self.valid_range is not None else None
        d["reject_surface_flags"] = list(self.reject_surface_flags)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "QualityPolicy":
        vr = d.get("valid_range", (0.02, 0.5))
        return cls(recommended_only=bool(d.get("recommended_only", True)),
                   valid_range=tuple(vr) if vr is not None else None,
                   reject_surface_flags=tuple(d.get("reject_surface_flags", _DEFAULT_SURFACE_REJECT)))


def _apply_policy(sm: np.ndarray, qual: np.ndarray, surf: np.ndarray, policy: QualityPolicy,
                  fill: float = FILL, quality_known: bool = True) -> tuple[np.ndarray, dict]:
    """Fill values and policy -> float32 soil moisture (NaN where missing/rejected), counts.

    ``quality_known=False`` (the file has no ``retrieval_qual_flag``): the quality-flag rule
    has no information and rejects nothing. A missing ``surface_flag`` arrives as all fill
    (65534), which the surface rule already treats as "no information".
    """
    sm = np.asarray(sm)
    retrieved = np.isfinite(sm) & (sm != fill)
    rej_q = np.zeros(sm.shape, bool)
    rej_r = np.zeros(sm.shape, bool)
    rej_s = np.zeros(sm.shape, bool)
    if policy.recommended_only and quality_known:
        rej_q = retrieved & ((qual == FLAG_FILL) | ((qual & 1) != 0))
    if policy.valid_range is not None:
        lo, hi = policy.valid_range
        with np.errstate(invalid="ignore"):
            rej_r = retrieved & ((sm < lo) | (sm > hi))
    mask = policy.surface_mask
    if mask:
        rej_s = retrieved & (surf != FLAG_FILL) & ((surf & mask) != 0)
    rejected = rej_q | rej_r | rej_s
    keep = retrieved & ~rejected
    out = np.where(keep, sm, np.nan).astype(np.float32)
    counts = {
        "n_cells": int(sm.size), "n_fill": int(sm.size - retrieved.sum()),
        "n_retrieved": int(retrieved.sum()),
        "rejected": {"quality_flag": int(rej_q.sum()), "valid_range": int(rej_r.sum()),
                     "surface_flag": int(rej_s.sum())},
        "n_rejected": int(rejected.sum()), "n_valid": int(keep.sum()),
    }
    return out, counts


def _sum_counts(parts: Iterable[dict]) -> dict:
    tot = {"n_cells": 0, "n_fill": 0, "n_retrieved": 0,
           "rejected": {"quality_flag": 0, "valid_range": 0, "surface_flag": 0},
           "n_rejected": 0, "n_valid": 0}
    for c in parts:
        for k in ("n_cells", "n_fill", "n_retrieved", "n_rejected", "n_valid"):
            tot[k] += c[k]
        for k in tot["rejected"]:
            tot["rejected"][k] += c["rejected"].get(k, 0)
    return tot


def _status(total: dict) -> str:
    if total["n_valid"] > 0:
        return "ok"
    return "all_fill" if total["n_retrieved"] == 0 else "empty_after_policy"


def _report_empty(path: Path, status: str, total: dict, where: str, allow_empty: bool):
    if status == "ok":
        return
    if status == "all_fill":
        what = f"no soil moisture value in {where}: every cell holds the fill value"
        todo = "check the date and region (or use another file); a batch can continue with allow_empty=True"
    else:
        what = (f"the quality policy rejected all {total['n_retrieved']} retrieved values in {where} "
                f"(by rule: {total['rejected']})")
        todo = "relax the QualityPolicy (e.g. recommended_only=False) or use another file"
    if not allow_empty:
        raise EmptyAfterPolicyError(what, todo, path)
    warnings.warn(f"{path}: {what}", EmptyDataWarning, stacklevel=3)


# --------------------------------------------------------------------------- HDF5 access


def _attr_str(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        if v.size == 0:
            return None
        return _attr_str(v.flat[0])
    return str(v)


def _open(path: Path):
    import h5py

    if not path.exists():
        raise UnreadableFileError("file does not exist", "check the path", path)
    if path.is_dir():
        raise UnreadableFileError("is a folder, not a SMAP HDF5 file", "pass one .h5 file", path)
    try:
        is_h5 = h5py.is_hdf5(str(path))
    except OSError as exc:
        raise UnreadableFileError(f"cannot read the file ({exc})", "check its permissions", path) from exc
    if not is_h5:
        with open(path, "rb") as fh:
            head = fh.read(8)
        hint = " (it is empty)" if not head else ""
        raise UnreadableFileError(f"not an HDF5 file{hint}: SMAP products are HDF5 (.h5)",
                                  "download the file again, or pass the .h5 granule rather than "
                                  "its .xml/.qa/.iso sidecar", path)
    try:
        return h5py.File(str(path), "r")
    except OSError as exc:
        raise UnreadableFileError(f"the HDF5 file cannot be opened ({exc})",
                                  "the file is truncated or corrupt: download it again", path) from exc


@contextlib.contextmanager
def _h5(path: Path):
    """Open ``path`` read-only; HDF5 errors while reading become UnreadableFileError."""
    f = _open(path)
    try:
        yield f
    except InputError:
        raise
    except OSError as exc:
        raise UnreadableFileError(f"reading the HDF5 file failed ({exc})",
                                  "the file is truncated or corrupt: download it again", path) from exc
    finally:
        f.close()


def _dataset(f, group: str, name: str, path: Path, product: str):
    import h5py

    full = f"{group}/{name}" if group else name
    obj = f.get(full)
    if not isinstance(obj, h5py.Dataset):
        raise MissingVariableError(
            f"dataset /{full} is missing (a standard {product} file has it)",
            "the file is incomplete or was subset by variable: download the full granule again", path)
    return obj


def _optional_dataset(f, group: str, name: str):
    """An optional dataset (a quality field), or None when the file lacks it."""
    import h5py

    obj = f.get(f"{group}/{name}" if group else name)
    return obj if isinstance(obj, h5py.Dataset) else None


def _meta_short_name(f) -> str | None:
    for grp in ("Metadata/DatasetIdentification", "Metadata/SeriesIdentification"):
        g = f.get(grp)
        if g is None:
            continue
        sn = _attr_str(g.attrs.get("shortName"))
        if sn:
            return sn.strip()
        smap = _attr_str(g.attrs.get("SMAPShortName"))
        if smap and smap.strip() in _BY_SMAP_NAME:
            return _BY_SMAP_NAME[smap.strip()]
    return None


_GLOBAL_SHAPES = {name: (ease2.GRIDS[name][1], ease2.GRIDS[name][2]) for name in ("M36", "M09")}


def _grid_from_index_attrs(ds) -> str | None:
    vmax = ds.attrs.get("valid_max")
    if vmax is None:
        return None
    vmax = int(np.asarray(vmax).ravel()[0])
    for name, (nr, nc) in _GLOBAL_SHAPES.items():
        if vmax in (nr - 1, nc - 1):
            return name
    return None


def identify(f_or_path) -> tuple[str | None, str]:
    """What an HDF5 file is: ``(short_name or None, description)``.

    The short name comes from ``Metadata/DatasetIdentification/shortName`` when present,
    else from the groups and the array shapes (global 406 x 964 = M36, 1624 x 3856 = M09).

    Parameters
    ----------
    f_or_path : str, Path or h5py.File

    Returns
    -------
    (str or None, str)
        E.g. ``("SPL3SMP_E", "an SPL3SMP_E file (SMAP Enhanced L3 ... 9 km ...)")``.
    """
    if not hasattr(f_or_path, "attrs"):
        path = Path(f_or_path)
        with _h5(path) as f:
            return identify(f)
    f = f_or_path
    keys = set(f.keys())
    short = _meta_short_name(f)
    if short is None:
        if "Geophysical_Data" in keys and "cell_lat" in keys:
            short = "SPL4SMGP"
        elif "Analysis_Data" in keys and "cell_lat" in keys:
            short = "SPL4SMAU"
        elif "Soil_Moisture_Retrieval_Data_AM" in keys or "Soil_Moisture_Retrieval_Data" in keys:
            g = f.get("Soil_Moisture_Retrieval_Data_AM") or f.get("Soil_Moisture_Retrieval_Data")
            sm = g.get("soil_moisture") if g is not None else None
            if sm is not None and sm.ndim == 1:
                gname = _grid_from_index_attrs(g["EASE_row_index"]) if "EASE_row_index" in g else "M36"
                short = "SPL2SMP_E" if gname == "M09" else "SPL2SMP"
            elif sm is not None and sm.ndim == 2:
                shape = tuple(sm.shape)
                if shape == _GLOBAL_SHAPES["M09"]:
                    short = "SPL3SMP_E"
                elif shape == _GLOBAL_SHAPES["M36"]:
                    short = "SPL3SMP"
                elif "EASE_row_index" in g:
                    short = "SPL3SMP_E" if _grid_from_index_attrs(g["EASE_row_index"]) == "M09" else "SPL3SMP"
    if short is None:
        listing = ", ".join(sorted(keys)[:8]) or "nothing"
        return None, f"an HDF5 file that is not a SMAP soil-moisture product (top level holds: {listing})"
    p = PRODUCTS.get(short)
    desc = f"an {short} file ({p.long_name})" if p else f"a SMAP {short} file"
    return short, desc


def _wrong_product(path: Path, short: str | None, desc: str, wanted: str):
    if short in L2_PRODUCTS:
        todo = "read it with model.data.smap.read_smap_l2 (and grid_l2)"
    elif short in L3_PRODUCTS:
        todo = "read it with model.data.smap.read_smap_l3"
    elif short == "SPL4SMGP":
        todo = "read it with model.data.smap.read_smap_l4"
    else:
        todo = f"pass {wanted}; this project reads SPL2SMP(_E), SPL3SMP(_E) and SPL4SMGP"
    return WrongProductError(f"this is {desc}, not {wanted}", todo, path)


# --------------------------------------------------------------------------- times


def _seconds_to_time(sec: np.ndarray, epoch: np.datetime64, fill: float = FILL) -> np.ndarray:
    """Seconds since ``epoch`` (float) -> datetime64[ns], NaT where fill/non-finite; 1 us rounding."""
    sec = np.asarray(sec, dtype=np.float64)
    ok = np.isfinite(sec) & (sec != fill)
    out = np.full(sec.shape, np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    vals = sec[ok]
    out[ok] = np.datetime64(epoch, "ns").astype(np.int64) + np.rint(vals * 1e6).astype(np.int64) * 1000
    return out.view("datetime64[ns]")


def _time_to_seconds(t: np.ndarray, epoch: np.datetime64, fill: float = FILL) -> np.ndarray:
    t = np.asarray(t).astype("datetime64[ns]")
    bad = np.isnat(t)
    sec = (t - epoch).astype("timedelta64[ns]").astype(np.int64) / 1e9
    return np.where(bad, fill, sec)


def parse_utc_strings(values) -> np.ndarray:
    """SMAP ``tb_time_utc`` strings (``2015-08-11T02:21:22.474Z``) -> datetime64[ns].

    Empty or malformed strings become NaT; milliseconds written as ``***`` (as in the real
    granules, where the producer had no value) are taken as ``.000``.
    """
    a = np.asarray(values)
    if a.dtype.kind == "O":
        a = np.array([v.encode() if isinstance(v, str) else (v or b"") for v in a.ravel()]).reshape(a.shape)
    if a.dtype.kind == "U":
        a = np.char.encode(a, "ascii")
    a = np.char.rstrip(np.char.strip(np.char.replace(a, b"***", b"000")), b"Z")
    ok = (np.char.str_len(a) >= 19) & (np.char.find(a, b"T") == 10)
    out = np.full(a.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    if ok.any():
        good = a[ok].astype("U")
        try:
            out[ok] = good.astype("datetime64[ns]")
        except ValueError:
            for i, s in zip(np.flatnonzero(ok.ravel()), good.ravel()):
                with contextlib.suppress(ValueError):
                    out.flat[i] = np.datetime64(s, "ns")
    return out


def _format_utc(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t).astype("datetime64[ms]")
    s = np.char.add(np.datetime_as_string(t, unit="ms"), "Z")
    s = np.where(np.isnat(t), "", s)
    return np.char.encode(s.astype("U24"), "ascii").astype("S24")


def overpass_step(obs_time, hours: int = 3):
    """Nearest 3-hourly product step (00, 03, ..., 21 UTC) of each observation time.

    Parameters
    ----------
    obs_time : datetime-like array, DataArray or scalar
        Observation times, UTC (``datetime64``); NaT stays NaT.
    hours : int
        Step length in hours (3 for the product).

    Returns
    -------
    Same kind as ``obs_time``
        ``datetime64[ns]`` rounded to the nearest step; a time exactly half-way
        (e.g. 01:30) goes to the later step (03:00). Vectorised, no Python loop.

    Examples
    --------
    >>> overpass_step(np.datetime64("2017-06-01T23:55"))
    np.datetime64('2017-06-02T00:00:00.000000000')
    """
    if isinstance(obs_time, xr.DataArray):
        return obs_time.copy(data=overpass_step(obs_time.values, hours))
    a = np.asarray(obs_time)
    if a.dtype.kind != "M":
        a = a.astype("datetime64[ns]")
    a = a.astype("datetime64[ns]")
    step = np.int64(hours * 3600 * 10**9)
    iv = a.view(np.int64)
    out = ((iv + step // 2) // step * step).view("datetime64[ns]")
    out = np.where(np.isnat(a), np.datetime64("NaT", "ns"), out)
    return out[()] if out.ndim == 0 else out


def _to_day(date) -> np.datetime64:
    if isinstance(date, np.datetime64):
        return date.astype("datetime64[D]")
    if isinstance(date, str):
        return np.datetime64(date[:10], "D")
    if isinstance(date, _dt.datetime):
        return np.datetime64(date.replace(tzinfo=None).date(), "D")
    if isinstance(date, _dt.date):
        return np.datetime64(date, "D")
    return np.datetime64(date, "D")


def _to_ns(t) -> np.datetime64:
    if isinstance(t, _dt.datetime) and t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    if isinstance(t, str):
        t = t.rstrip("Z")
    return np.datetime64(t, "ns")


# --------------------------------------------------------------------------- file names

_L3_RE = re.compile(r"^SMAP_L3_SM_P(_E)?_(\d{8})_(R\d+)_(\d{3})\.h5$")
_L2_RE = re.compile(r"^SMAP_L2_SM_P(_E)?_(\d{5})_([AD])_(\d{8}T\d{6})_(R\d+)_(\d{3})\.h5$")
_L4_RE = re.compile(r"^SMAP_L4_SM_gph_(\d{8}T\d{6})_(V\w+?)_(\d{3})\.h5$")


def _check_l4_time(t: np.datetime64) -> None:
    sec = int((t - t.astype("datetime64[D]")) / np.timedelta64(1, "s"))
    ns_left = int((t - t.astype("datetime64[s]")) / np.timedelta64(1, "ns"))
    if ns_left or sec % 10800 != 5400:
        raise ValueError(f"SPL4SMGP time stamps are the centres of the 3-hourly windows "
                         f"(01:30, 04:30, ..., 22:30 UTC); got {t}. Pass e.g. 2017-06-01T01:30 for "
                         f"the window 00:00-03:00 UTC")


def smap_filename(product: str, date_or_time, crid: str = "R18290", version: str = "Vv7032",
                  counter: int = 1) -> str:
    """The real file name of a SMAP L3/L4 granule.

    Parameters
    ----------
    product : {"SPL3SMP", "SPL3SMP_E", "SPL4SMGP"}
    date_or_time : date-like
        The UTC day (L3) or the centre of the 3-hourly window (L4, HH:30).
    crid : str
        Composite release id of L3 files (``R18290`` = SPL3SMP v8 / SPL3SMP_E v5).
    version : str
        L4 version string (``Vv7032`` = SPL4SMGP v7).
    counter : int
        File counter (``001`` for the first production of a granule).

    Examples
    --------
    >>> smap_filename("SPL3SMP", "2017-06-01")
    'SMAP_L3_SM_P_20170601_R18290_001.h5'
    >>> smap_filename("SPL3SMP_E", "2017-06-01")
    'SMAP_L3_SM_P_E_20170601_R18290_001.h5'
    >>> smap_filename("SPL4SMGP", "2017-06-01T01:30")
    'SMAP_L4_SM_gph_20170601T013000_Vv7032_001.h5'
    """
    if product in L3_PRODUCTS:
        day = str(_to_day(date_or_time)).replace("-", "")
        stem = "SMAP_L3_SM_P_E" if product == "SPL3SMP_E" else "SMAP_L3_SM_P"
        return f"{stem}_{day}_{crid}_{counter:03d}.h5"
    if product == "SPL4SMGP":
        t = _to_ns(date_or_time)
        _check_l4_time(t)
        stamp = str(t.astype("datetime64[s]")).replace("-", "").replace(":", "")
        return f"SMAP_L4_SM_gph_{stamp}_{version}_{counter:03d}.h5"
    raise unknown_name("SMAP product for file names", product, list(L3_PRODUCTS) + ["SPL4SMGP"])


def parse_smap_filename(name: str | Path) -> dict | None:
    """Product and time from a real SMAP file name, or None if the name is not one.

    Returns
    -------
    dict or None
        ``{"product", "time" (datetime64[ns]: L3 day start, L2 half-orbit start, L4 window
        centre), "release", "counter"}`` plus ``orbit`` and ``direction`` for L2.
    """
    n = Path(name).name
    if m := _L3_RE.match(n):
        return {"product": "SPL3SMP_E" if m.group(1) else "SPL3SMP",
                "time": np.datetime64(f"{m.group(2)[:4]}-{m.group(2)[4:6]}-{m.group(2)[6:]}", "ns"),
                "release": m.group(3), "counter": int(m.group(4))}
    if m := _L2_RE.match(n):
        s = m.group(4)
        return {"product": "SPL2SMP_E" if m.group(1) else "SPL2SMP",
                "time": np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}", "ns"),
                "orbit": int(m.group(2)), "direction": m.group(3), "release": m.group(5),
                "counter": int(m.group(6))}
    if m := _L4_RE.match(n):
        s = m.group(1)
        return {"product": "SPL4SMGP",
                "time": np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}", "ns"),
                "release": m.group(2), "counter": int(m.group(3))}
    return None


# --------------------------------------------------------------------------- attributes

_SM_ATTRS = {"units": SM_UNITS, "standard_name": SM_STANDARD_NAME,
             "long_name": "volumetric soil moisture of the top ~5 cm (SMAP retrieval)"}
_TIME_ATTRS = {"long_name": "observation time of the retrieval (mean acquisition time of the "
                            "brightness temperatures in the cell), UTC"}
_QUAL_ATTRS = {"long_name": "SMAP retrieval_qual_flag (bit set = condition NOT met; 65534 = no data)",
               "flag_masks": np.array([1, 2, 4, 8], np.uint16),
               "flag_meanings": "retrieval_not_recommended retrieval_not_attempted "
                                "retrieval_not_successful ft_retrieval_not_successful",
               "units": "1"}
_SURF_ATTRS = {"long_name": "SMAP surface_flag (ambient surface conditions; 65534 = no data)",
               "flag_masks": np.array([1 << b for b in SURFACE_FLAG_BITS.values()], np.uint16),
               "flag_meanings": " ".join(SURFACE_FLAG_BITS), "units": "1"}

# Units of the SMAP files -> project units (identical quantities, different spelling).
_UNITS = {"cm**3/cm**3": "m3 m-3", "Kelvins": "K", "kg/m**2": "kg m-2", "m3 m-3": "m3 m-3", "K": "K"}

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
_L4_OUT_ATTRS = {
    "sm_surface": {"units": SM_UNITS, "standard_name": SM_STANDARD_NAME,
                   "long_name": "SMAP L4 surface soil moisture (0-5 cm), 3-hourly mean"},
    "sm_rootzone": {"units": SM_UNITS, "standard_name": SM_STANDARD_NAME,
                    "long_name": "SMAP L4 root-zone soil moisture (0-100 cm), 3-hourly mean"},
    "sm_profile": {"units": SM_UNITS, "standard_name": SM_STANDARD_NAME,
                   "long_name": "SMAP L4 profile soil moisture, 3-hourly mean"},
    "surface_temp": {"units": "K", "standard_name": "surface_temperature",
                     "long_name": "SMAP L4 mean land surface temperature, 3-hourly mean"},
}

_CORE_L3 = ("soil_moisture", "obs_time", "retrieval_qual_flag", "surface_flag")


def _out_attrs(src_attrs, name: str) -> dict:
    """Project attributes for an extra field read from a file (units respelled)."""
    a = {}
    ln = _attr_str(src_attrs.get("long_name"))
    if ln:
        a["long_name"] = ln
    u = _attr_str(src_attrs.get("units"))
    if u:
        a["units"] = _UNITS.get(u, u)
    return a


def _read_float(dset, sl=None) -> np.ndarray:
    data = dset[sl] if sl is not None else dset[()]
    fill = dset.attrs.get("_FillValue", FILL)
    fill = float(np.asarray(fill).ravel()[0])
    out = np.asarray(data, dtype=np.float32 if data.dtype.itemsize <= 4 else np.float64)
    return np.where((out == fill) | (out == FILL), np.nan, out)


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
    grp = "Soil_Moisture_Retrieval_Data"
    with _h5(path) as f:
        short, desc = identify(f)
        if short not in L2_PRODUCTS:
            raise _wrong_product(path, short, desc, "a SMAP L2 half-orbit file (SPL2SMP)")
        d = {n: _dataset(f, grp, n, path, short) for n in
             ("soil_moisture", "retrieval_qual_flag", "surface_flag", "EASE_row_index", "EASE_column_index")}
        if d["soil_moisture"].ndim != 1:
            raise UnreadableFileError(f"/{grp}/soil_moisture has shape {d['soil_moisture'].shape}, "
                                      f"not the 1-D swath list of an L2 file", "download the granule again", path)
        sm_raw = d["soil_moisture"][()]
        qual = d["retrieval_qual_flag"][()].astype(np.uint16)
        surf = d["surface_flag"][()].astype(np.uint16)
        row = d["EASE_row_index"][()].astype(np.int32)
        col = d["EASE_column_index"][()].astype(np.int32)
        obs_time = _read_obs_time(f, grp, "", path, short, None)
        lat = _read_float(f[f"{grp}/latitude"]) if f"{grp}/latitude" in f else np.full(sm_raw.shape, np.nan, np.float32)
        lon = _read_float(f[f"{grp}/longitude"]) if f"{grp}/longitude" in f else np.full(sm_raw.shape, np.nan, np.float32)
        extras = {}
        for n in extra:
            ds_ = _dataset(f, grp, n, path, short)
            extras[n] = (_read_float(ds_) if ds_.dtype.kind == "f" else ds_[()], _out_attrs(ds_.attrs, n))
        sm_fill = float(np.asarray(d["soil_moisture"].attrs.get("_FillValue", FILL)).ravel()[0])
    gname = PRODUCTS[short].grid
    row = np.where((row == FLAG_FILL) | (row < 0), -1, row).astype(np.int32)
    col = np.where((col == FLAG_FILL) | (col < 0), -1, col).astype(np.int32)
    sm, counts = _apply_policy(sm_raw, qual, surf, policy, sm_fill)
    status = _status(counts)
    _report_empty(path, status, counts, "this half orbit", allow_empty)
    # overpass from local solar time (6 am descending = AM, 6 pm ascending = PM)
    ok = ~np.isnat(obs_time) & np.isfinite(lon)
    overpass = None
    if ok.any():
        hours = (obs_time[ok] - obs_time[ok].astype("datetime64[D]")) / np.timedelta64(1, "h")
        lst = np.mod(hours + lon[ok] / 15.0, 24.0)
        ang = np.angle(np.mean(np.exp(1j * lst / 24 * 2 * np.pi)))
        lst_mean = (ang / (2 * np.pi) * 24) % 24
        overpass = "AM" if 0 <= lst_mean < 12 else "PM"
    info = parse_smap_filename(path) or {}
    data_vars = {
        "soil_moisture": ("obs", sm, dict(_SM_ATTRS)),
        "obs_time": ("obs", obs_time, dict(_TIME_ATTRS)),
        "retrieval_qual_flag": ("obs", qual, dict(_QUAL_ATTRS)),
        "surface_flag": ("obs", surf, dict(_SURF_ATTRS)),
        "row": ("obs", row, {"long_name": f"EASE-Grid 2.0 {gname} global row index (-1 = none)"}),
        "col": ("obs", col, {"long_name": f"EASE-Grid 2.0 {gname} global column index (-1 = none)"}),
        "lat": ("obs", lat.astype(np.float32), {"standard_name": "latitude", "units": "degrees_north",
                                                "long_name": "latitude of the cell centre"}),
        "lon": ("obs", lon.astype(np.float32), {"standard_name": "longitude", "units": "degrees_east",
                                                "long_name": "longitude of the cell centre"}),
    }
    for n, (v, a) in extras.items():
        data_vars[n] = ("obs", v, a)
    ds = xr.Dataset(data_vars, attrs={
        "product": short, "grid": gname, "source_file": str(path),
        "overpass": overpass or "unknown", "orbit": int(info.get("orbit", -1)),
        "direction": info.get("direction", "unknown"),
        "quality_policy": policy.to_json(), "policy_report": json.dumps(counts), "status": status,
        "Conventions": "CF-1.8",
    })
    return ds


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

_L3_CHUNKS = {"M36": (58, 241), "M09": (203, 241)}


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
        gname = PRODUCTS[short].grid
        grid = ease2_grid(gname, tuple(bbox) if bbox is not None else None)
        groups = _l3_groups(f)
        ny, nx = grid.shape
        arrays = {k: [] for k in ("sm", "ot", "q", "s")}
        extra_arrays = {n: [] for n in extra}
        extra_attrs = {}
        counts = {}
        covered = np.zeros(grid.shape, bool)
        notes = []
        missing: list[str] = []
        for ov in ("AM", "PM"):
            sm = np.full(grid.shape, np.nan, np.float32)
            ot = np.full(grid.shape, np.datetime64("NaT"), "datetime64[ns]")
            q = np.full(grid.shape, FLAG_FILL, np.uint16)
            s = np.full(grid.shape, FLAG_FILL, np.uint16)
            ex = {n: None for n in extra}
            gs = groups[ov]
            if gs is None:
                notes.append(f"{ov}: the file has no {ov} group (early single-group layout)")
            elif gs[0] not in f:
                raise MissingVariableError(f"group /{gs[0]} is missing (a standard {short} file has both "
                                           f"AM and PM groups)", "download the full granule again", path)
            else:
                grp, sfx = gs
                block = _file_block(f, grp, sfx, gname, path, short)
                ov_sl = _overlap(block, grid)
                if ov_sl is None:
                    r0, c0, nr, nc = block
                    la, lo = ease2.row_col_centres(gname)
                    raise CoverageError(
                        f"the file's {gname} arrays cover rows {r0}..{r0 + nr - 1}, columns {c0}..{c0 + nc - 1} "
                        f"(lat {la[r0 + nr - 1]:.1f}..{la[r0]:.1f}, lon {lo[c0]:.1f}..{lo[c0 + nc - 1]:.1f}), "
                        f"which do not overlap {_bbox_text(bbox)}",
                        "use a file that covers the Tibetan Plateau (a global granule, or a subset "
                        "including 25-40 N, 73-105 E)", path)
                src, dst = ov_sl
                covered[dst] = True
                d_sm = _dataset(f, grp, f"soil_moisture{sfx}", path, short)
                sm_fill = float(np.asarray(d_sm.attrs.get("_FillValue", FILL)).ravel()[0])
                raw = d_sm[src]
                # quality fields are optional: a subset or an older version may lack them;
                # a missing one means "no information" (nothing rejected by that rule)
                qd = _optional_dataset(f, grp, f"retrieval_qual_flag{sfx}")
                sd = _optional_dataset(f, grp, f"surface_flag{sfx}")
                for name, d in (("retrieval_qual_flag", qd), ("surface_flag", sd)):
                    if d is None and name not in missing:
                        missing.append(name)
                sm_blk = np.full(grid.shape, sm_fill, raw.dtype)
                sm_blk[dst] = raw
                if qd is not None:
                    q[dst] = qd[src]
                if sd is not None:
                    s[dst] = sd[src]
                ot[dst] = _read_obs_time(f, grp, sfx, path, short, src)
                sm, counts[ov] = _apply_policy(sm_blk, q, s, policy, sm_fill,
                                               quality_known=qd is not None)
                for n in extra:
                    d = _dataset(f, grp, f"{n}{sfx}", path, short)
                    v = _read_float(d, src) if d.dtype.kind == "f" else d[src]
                    full = np.full(grid.shape, np.nan if d.dtype.kind == "f" else FLAG_FILL, v.dtype)
                    full[dst] = v
                    ex[n] = full
                    extra_attrs.setdefault(n, _out_attrs(d.attrs, n))
            if ov not in counts:
                sm, counts[ov] = _apply_policy(sm, q, s, policy)
            arrays["sm"].append(sm)
            arrays["ot"].append(ot)
            arrays["q"].append(q)
            arrays["s"].append(s)
            for n in extra:
                extra_arrays[n].append(ex[n] if ex[n] is not None else np.full(grid.shape, np.nan, np.float32))
        date = _l3_date(f, path, np.stack(arrays["ot"]))
    total = _sum_counts(counts.values())
    status = _status(total)
    _report_empty(path, status, total, f"{_bbox_text(bbox)} (AM and PM)", allow_empty)
    dims = ("overpass",) + grid.dims
    data_vars = {
        "soil_moisture": (dims, np.stack(arrays["sm"]), dict(_SM_ATTRS)),
        "obs_time": (dims, np.stack(arrays["ot"]), dict(_TIME_ATTRS)),
        "retrieval_qual_flag": (dims, np.stack(arrays["q"]), dict(_QUAL_ATTRS)),
        "surface_flag": (dims, np.stack(arrays["s"]), dict(_SURF_ATTRS)),
    }
    for n in extra:
        data_vars[n] = (dims, np.stack(extra_arrays[n]), extra_attrs.get(n, {}))
    coords = grid.coords()
    coords["overpass"] = ("overpass", np.array(["AM", "PM"]),
                          {"long_name": "SMAP overpass: AM = 6 am descending, PM = 6 pm ascending (local solar time)"})
    attrs = {
        "product": short, "grid": gname, "date": date, "source_file": str(path),
        "quality_policy": policy.to_json(),
        "policy_report": json.dumps({"AM": counts["AM"], "PM": counts["PM"], "total": total}),
        "status": status, "coverage_fraction": float(covered.mean()),
        "Conventions": "CF-1.8",
    }
    if notes:
        attrs["notes"] = "; ".join(notes)
    if missing:
        attrs["missing_quality_fields"] = ",".join(missing)
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
    """An empty overpass (dims ``(y, x)``) in the layout :func:`write_smap_l3` takes.

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
    if product not in L3_PRODUCTS:
        raise unknown_name("SMAP L3 product", product, list(L3_PRODUCTS))
    omit = tuple(omit)
    for name in omit:
        if name not in ("surface_flag", "retrieval_qual_flag"):
            raise unknown_name("optional SMAP L3 field", name, ["surface_flag", "retrieval_qual_flag"])
    gname = PRODUCTS[product].grid
    res = "36" if gname == "M36" else "9"
    day = _to_day(date)
    blocks = {"AM": _overpass_block(am, gname, "AM", product), "PM": _overpass_block(pm, gname, "PM", product)}
    shape = _GLOBAL_SHAPES[gname]
    chunks = _L3_CHUNKS[gname]
    lat_c, lon_c = ease2.row_col_centres(gname)
    path = Path(path)
    surf_meanings = " ".join(f"{res}_km_{n}" for n in SURFACE_FLAG_BITS)
    with atomic_path(path) as tmp:
        import h5py

        with h5py.File(tmp, "w") as f:
            begin = day.astype("datetime64[ns]")
            end = begin + np.timedelta64(86400, "s") - np.timedelta64(1, "ms")
            _write_metadata(f, product, path.name, begin, end, crid, creation_date)
            for ov in ("AM", "PM"):
                grp = f.create_group(f"Soil_Moisture_Retrieval_Data_{ov}")
                sfx = "" if ov == "AM" else "_pm"
                coord_attr = f"/{grp.name.strip('/')}/latitude{sfx} /{grp.name.strip('/')}/longitude{sfx}"

                def attrs(name, **over):
                    a = dict(_L3_FIELD_ATTRS.get(name, {}))
                    if "long_name" in a:
                        a["long_name"] = a["long_name"].format(res=res)
                    if name not in ("latitude", "longitude"):
                        a["coordinates"] = coord_attr
                    a.update(over)
                    return a

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
                blk = blocks[ov]
                if blk is None:
                    continue
                r0, c0, a = blk
                ny, nx = a["sm"].shape
                sl = (slice(r0, r0 + ny), slice(c0, c0 + nx))
                obs = a["observed"]
                if not obs.any():
                    continue
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
                for n, (arr, src_attrs) in a["extras"].items():
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
    return path


# --------------------------------------------------------------------------- L4

_L4_CHUNKS = (203, 241)


_L4_GEO_CHUNKS = (406, 964)  # tiles the global M09 grid 4 x 4


def _shuffle_deflate(a: np.ndarray, level: int) -> bytes:
    """A chunk as HDF5's shuffle + gzip (deflate) filter pipeline stores it."""
    import zlib

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
        d0 = _dataset(f, "Geophysical_Data", "sm_surface", path, short)
        if d0.ndim != 2 or tuple(d0.shape) != _GLOBAL_SHAPES["M09"]:
            raise CoverageError(f"/Geophysical_Data/sm_surface is {d0.shape}, not the global M09 grid "
                                f"(1624 x 3856)", "download the global granule (no spatial subsetting)", path)
        tset = _dataset(f, "", "time", path, short)
        tval = np.asarray(tset[()], dtype=np.float64).ravel()
        if tval.size != 1 or not np.isfinite(tval[0]) or tval[0] == FILL:
            raise UnreadableFileError(f"/time holds {tval.tolist()!r}, not one valid time stamp",
                                      "download the granule again", path)
        t = _seconds_to_time(tval, _l4_epoch(tset))
        block = (0, 0) + _GLOBAL_SHAPES["M09"]
        src, dst = _overlap(block, grid)
        fields, counts = {}, {}
        for n in variables:
            if n != "sm_surface" and f"Geophysical_Data/{n}" not in f:
                continue
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
            counts[n] = {"n_cells": int(v.size), "n_fill": int((~finite).sum()), "n_retrieved": int(finite.sum()),
                         "rejected": {"valid_range": int(bad.sum())}, "n_rejected": int(bad.sum()),
                         "n_valid": int(np.isfinite(v).sum())}
            attrs = dict(_L4_OUT_ATTRS.get(n) or _out_attrs(d.attrs, n))
            attrs["cell_methods"] = "time: mean (interval: 3 hours)"
            fields[n] = v
            fields[n + "__attrs"] = attrs
    c = counts["sm_surface"]
    status = "ok" if c["n_valid"] else ("all_fill" if c["n_retrieved"] == 0 else "empty_after_policy")
    _report_empty(path, status, {**c, "rejected": c["rejected"]}, _bbox_text(bbox), allow_empty)
    dims = ("time",) + grid.dims
    data_vars = {n: (dims, v[None], fields[n + "__attrs"]) for n, v in fields.items() if not n.endswith("__attrs")}
    coords = grid.coords()
    coords["time"] = ("time", t, {"long_name": "centre of the 3-hourly averaging window (UTC)"})
    half = np.timedelta64(90, "m")
    return xr.Dataset(data_vars, coords=coords, attrs={
        "product": short, "grid": "M09", "source_file": str(path),
        "time_window_start": str((t[0] - half).astype("datetime64[s]")),
        "time_window_end": str((t[0] + half).astype("datetime64[s]")),
        "policy_report": json.dumps(counts), "status": status, "Conventions": "CF-1.8",
    })


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
    sl = (slice(r0, r0 + ny), slice(c0, c0 + nx))
    lat_c, lon_c = ease2.row_col_centres("M09")
    size, x_min, y_max, _, _ = ease2.extent("M09")
    path = Path(path)
    half = np.timedelta64(90, "m")
    with atomic_path(path) as tmp:
        import h5py

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
            f.create_dataset("x", data=x_min + (np.arange(ncols) + 0.5) * size).attrs.update(
                {"long_name": "X coordinate of cell center in EASE 2.0 global projection", "units": "m",
                 "standard_name": "projection_x_coordinate"})
            f.create_dataset("y", data=y_max - (np.arange(nrows) + 0.5) * size).attrs.update(
                {"long_name": "Y coordinate of cell center in EASE 2.0 global projection", "units": "m",
                 "standard_name": "projection_y_coordinate"})
            td = f.create_dataset("time", data=_time_to_seconds(np.array([t]), L4_EPOCH))
            td.attrs.update({"long_name": "Time", "units": L4_TIME_UNITS,
                             "comment": "centre of the 3-hourly averaging window; counted without leap seconds"})
            geo = f.create_group("Geophysical_Data")
            for n, v in ds.data_vars.items():
                if set(v.dims) != {"y", "x"}:
                    continue
                arr = np.asarray(v.transpose("y", "x").values, dtype=np.float32)
                a = dict(_L4_FIELD_ATTRS.get(n) or {k: val for k, val in v.attrs.items() if k in ("long_name", "units")})
                dd = _create(geo, n, shape, np.float32, np.float32(FILL), ch, a)
                dd[sl] = np.where(np.isfinite(arr), arr, FILL).astype(np.float32)
    return path


# --------------------------------------------------------------------------- describe


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
    level = PRODUCTS[short].level if short in PRODUCTS else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyDataWarning)
        if short in L2_PRODUCTS:
            ds = read_smap_l2(path, policy)
            rep = json.loads(ds.attrs["policy_report"])
            lat, lon = ds["lat"].values, ds["lon"].values
            has = np.isfinite(lat) & np.isfinite(lon)
            if (has & np.isfinite(ds["soil_moisture"].values)).any():
                has &= np.isfinite(ds["soil_moisture"].values)
            nrows, ncols = _GLOBAL_SHAPES[ds.attrs["grid"]]
            grid = {"name": ds.attrs["grid"], "shape": [nrows, ncols], "swath_cells": int(ds.sizes["obs"]),
                    "bbox": [round(float(lon[has].min()), 3), round(float(lat[has].min()), 3),
                             round(float(lon[has].max()), 3), round(float(lat[has].max()), 3)] if has.any() else None}
            times = ds["obs_time"].values
            sm = ds["soil_moisture"].values
            extra = {"overpass": ds.attrs["overpass"], "orbit": ds.attrs["orbit"], "direction": ds.attrs["direction"]}
            in_tp = grid_l2(ds, ease2_grid(ds.attrs["grid"]), allow_empty=True).attrs["n_cells_in_grid"]
            extra["cells_in_tp"] = int(in_tp)
        elif short in L3_PRODUCTS:
            ds = read_smap_l3(path, policy, bbox)
            rep = json.loads(ds.attrs["policy_report"])
            g = ease2_grid(ds.attrs["grid"], tuple(bbox) if bbox is not None else None)
            grid = {"name": ds.attrs["grid"], "shape": list(g.shape),
                    "bbox": [round(float(g.lon_bounds[0]), 3), round(float(g.lat_bounds[-1]), 3),
                             round(float(g.lon_bounds[-1]), 3), round(float(g.lat_bounds[0]), 3)],
                    "row_offset": g.row_offset, "col_offset": g.col_offset,
                    "file_shape": list(_GLOBAL_SHAPES[ds.attrs["grid"]])}
            times = ds["obs_time"].values
            sm = ds["soil_moisture"].values
            per = {ov: _sm_stats(ds["soil_moisture"].sel(overpass=ov).values) for ov in ("AM", "PM")}
            extra = {"date": ds.attrs["date"], "per_overpass": per,
                     "coverage_fraction": ds.attrs["coverage_fraction"]}
            rep = rep["total"] | {"per_overpass": {k: rep[k] for k in ("AM", "PM")}}
        elif short == "SPL4SMGP":
            ds = read_smap_l4(path, bbox)
            rep = json.loads(ds.attrs["policy_report"])["sm_surface"]
            g = ease2_grid("M09", tuple(bbox) if bbox is not None else None)
            grid = {"name": "M09", "shape": list(g.shape),
                    "bbox": [round(float(g.lon_bounds[0]), 3), round(float(g.lat_bounds[-1]), 3),
                             round(float(g.lon_bounds[-1]), 3), round(float(g.lat_bounds[0]), 3)],
                    "row_offset": g.row_offset, "col_offset": g.col_offset,
                    "file_shape": list(_GLOBAL_SHAPES["M09"])}
            sm = ds["sm_surface"].values
            times = np.array([np.datetime64(ds.attrs["time_window_start"], "ns"),
                              np.datetime64(ds.attrs["time_window_end"], "ns")])
            extra = {"time": _iso(ds["time"].values[0]), "time_meaning": "3-hourly mean; time = window centre"}
        else:
            raise WrongProductError(f"this is {desc}; only SMAP L2/L3 soil moisture and SPL4SMGP are read",
                                    "pass an SPL2SMP, SPL3SMP, SPL3SMP_E or SPL4SMGP granule", path)
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
