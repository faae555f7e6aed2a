"""SMAP HDF5 products: what the readers and the writers share.

The product table, flag bits, fill values and epochs; the quality policy (:class:`QualityPolicy`)
and its report; HDF5 access and identification (:func:`identify`); time conventions
(:func:`parse_utc_strings`, :func:`overpass_step`); file names (:func:`smap_filename`,
:func:`parse_smap_filename`); the attributes of the fields read. The conventions are set out in
:mod:`model.data.smap` (the readers); :mod:`model.data.smap_write` holds the writers. Split out
of ``smap.py`` (issue 14: no module over 800 lines); the readers and the writers import this
module, never the reverse.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import xarray as xr

from ..errors import (
    EmptyAfterPolicyError,
    InputError,
    MissingVariableError,
    UnreadableFileError,
    WrongProductError,
    unknown_name,
)
from ..grids import ease2
from ..schema import SM_STANDARD_NAME, SM_UNITS

__all__ = [
    "QualityPolicy", "EmptyDataWarning", "PRODUCTS", "SURFACE_FLAG_BITS", "QUAL_FLAG_BITS",
    "smap_filename", "parse_smap_filename", "identify", "parse_utc_strings", "overpass_step",
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
    full = f"{group}/{name}" if group else name
    obj = f.get(full)
    if not isinstance(obj, h5py.Dataset):
        raise MissingVariableError(
            f"dataset /{full} is missing (a standard {product} file has it)",
            "the file is incomplete or was subset by variable: download the full granule again", path)
    return obj


def _optional_dataset(f, group: str, name: str):
    """An optional dataset (a quality field), or None when the file lacks it."""
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
