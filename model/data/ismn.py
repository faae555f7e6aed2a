"""ISMN station data: reader (through the ``ismn`` package), flag policy, inspect.

Format
------
The ISMN "header + values" download holds one ``.stm`` file per sensor and variable, in
``<root>/<NETWORK>/<STATION>/``, named::

    NETWORK_NETWORK_STATION_<var>_<depth_from>_<depth_to>_<SENSOR>_<YYYYMMDD>_<YYYYMMDD>.stm

(``<var>``: ``sm`` soil moisture, ``ts`` soil temperature, ...; depths in metres with six
decimals; the two dates are the period of the download request). Its first line is a header::

    CSE        NETWORK         STATION            LAT         LON     ELEV DEPTH_FROM DEPTH_TO SENSOR

and every other line one record::

    YYYY/MM/DD HH:MM    value ISMN_FLAG ORIGINAL_FLAG

in UTC; soil moisture in m3 m-3, soil temperature in degC. ``ISMN_FLAG`` is the ISMN quality
flag (several codes joined by commas, e.g. ``D01,D03``); ``ORIGINAL_FLAG`` is the data
provider's own flag (``M`` where the provider gives none). Old downloads end lines in a bare
carriage return; the ``ismn`` package reads every variant.

How the ``ismn`` package sees a folder (checked with ismn 1.5.4):

* the network is the name of the top folder, the station the third ``_``-separated token of
  the file name, the variable the fourth, the sensor the seventh onwards; latitude,
  longitude, elevation and the depths come from the header line;
* ``Metadata.xml`` and the ``*_static_variables.csv`` files are optional: without the csv the
  package logs the station as "potentially malformed" and uses placeholder static metadata,
  but reads the data all the same;
* files that are not at ``NETWORK/STATION/*.stm`` depth are not found at all (the shared
  SMOSMANIA sample sits directly in its network folder): such files, and single files, are
  read through a temporary ``NETWORK/STATION/`` tree of links;
* it writes a ``python_metadata/`` folder next to the data unless given ``meta_path``: this
  module always gives it a folder in :func:`model.config.cache_dir` (keyed by the data's
  path and file listing, so edited data is re-indexed) or a temporary folder.

Malformed records
-----------------
Before the ``ismn`` package parses a file, every line is checked (``YYYY/MM/DD HH:MM value
flag [original_flag]``, a real date, a number). With ``errors="raise"`` (default) the first
bad line stops the read with :class:`~model.errors.UnreadableFileError` naming the file, the
line number and its text: a corrupt file is a problem to fix, not to guess around. With
``errors="skip"`` the bad lines are left out (the cleaned copy, not the original, goes to the
``ismn`` package), counted in :attr:`StationSeries.n_malformed` and named in
:attr:`StationSeries.notes`; a file whose header cannot be read becomes a series with status
``"unreadable"``.

Modules (issue 14: no module over 800 lines)
--------------------------------------------
* this module: :class:`FlagPolicy`, :class:`StationSeries`, :func:`read_ismn`, :func:`describe`;
* :mod:`model.data.ismn_sources`: the ``.stm`` files on disk or in a zip (names, header and
  record checks) and the ``ismn`` package opened quietly on them;
* :mod:`model.data.ismn_write`: :func:`~model.data.ismn_write.write_ismn_station` and
  :func:`~model.data.ismn_write.stm_filename`.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError, UnreadableFileError, WrongProductError, unknown_name
from .ismn_sources import (_cached_interface, _collect_sources, _interface, _malformed_error, _name_tokens,
                           _parse_name, _quiet, _Scan, _scan, _Source)

__all__ = ["FlagPolicy", "StationSeries", "FLAG_MEANINGS", "VARIABLE_UNITS", "read_ismn",
           "describe", "STATUS_OK", "STATUS_EMPTIED", "STATUS_NO_DEPTH", "STATUS_NO_DATA",
           "STATUS_UNREADABLE"]

# --------------------------------------------------------------------------------------------
# Flags and policy
# --------------------------------------------------------------------------------------------

#: ISMN quality flags (Dorigo et al. 2013, Vadose Zone J., doi:10.2136/vzj2012.0097; the
#: ``ismn`` package documentation). ``U`` is not in that table: older downloads (such as the
#: shared Maqu and SMOSMANIA files) carry it on values the checks did not cover.
FLAG_MEANINGS: dict[str, str] = {
    "G": "good",
    "U": "unchecked (older downloads)",
    "M": "parameter value missing",
    "C01": "soil moisture < 0 m3 m-3",
    "C02": "soil moisture > 0.6 m3 m-3",
    "C03": "soil moisture > saturation point (derived from HWSD soil texture)",
    "D01": "in situ soil temperature (at the sensor depth) < 0 degC",
    "D02": "in situ air temperature < 0 degC",
    "D03": "GLDAS soil temperature (at the sensor depth) < 0 degC",
    "D04": "rise in soil moisture without in situ precipitation in the preceding 24 h",
    "D05": "rise in soil moisture without GLDAS precipitation in the preceding 24 h",
    "D06": "spike in the soil moisture series",
    "D07": "negative jump in the soil moisture series",
    "D08": "positive jump in the soil moisture series",
    "D09": "low constant values (at least 12 h) in the soil moisture series",
    "D10": "saturated plateau in the soil moisture series",
}

#: Units of the ISMN variables (ISMN conventions).
VARIABLE_UNITS: dict[str, str] = {
    "soil_moisture": "m3 m-3",
    "soil_temperature": "degC",
    "air_temperature": "degC",
    "surface_temperature": "degC",
    "precipitation": "mm",
    "snow_depth": "mm",
    "snow_water_equivalent": "mm",
    "soil_suction": "kPa",
}

#: Plausible ranges applied to the attached variables (values outside become NaN).
_AUX_RANGES: dict[str, tuple[float, float]] = {
    "soil_temperature": (-60.0, 60.0),
    "air_temperature": (-80.0, 60.0),
    "surface_temperature": (-80.0, 90.0),
    "precipitation": (0.0, 500.0),
}

STATUS_OK = "ok"
STATUS_EMPTIED = "emptied by flag policy"
STATUS_NO_DEPTH = "no data in depth range"
STATUS_NO_DATA = "no data"
STATUS_UNREADABLE = "unreadable"


@dataclass(frozen=True)
class FlagPolicy:
    """Which ISMN-flagged values the reader keeps.

    Each record's ISMN flag (the 4th column; the provider's original flag in the 5th column is
    not used) is split at commas into codes (``"D01,D03"`` -> ``D01``, ``D03``). A value is
    kept only when **every** code is kept, the value is a number and it lies in
    ``valid_range``. A code is decided by the most specific pattern that names it: an exact
    code in ``keep``, then an exact code in ``drop``, then a wildcard in ``drop``, then a
    wildcard in ``keep`` (``fnmatch`` patterns, e.g. ``"D*"``). Codes no pattern names are
    dropped and reported (``notes``), never kept silently.

    The default keeps ``G`` (good) and ``U`` (unchecked: older downloads, such as the shared
    Maqu 2008-2010 file, carry ``U`` and no ``G`` at all; without it they would be empty) and
    drops ``C*`` (implausible: below 0, above 0.6, above saturation), ``D*`` (doubtful: frozen
    soil, D01-D03; rise without rain, D04-D05; spikes, jumps, plateaus, D06-D10) and ``M``
    (missing). Values outside 0-0.6 m3 m-3 and NaN are dropped too.

    Parameters
    ----------
    keep : tuple of str
        Flag codes or patterns whose values are kept (default ``("G", "U")``).
    drop : tuple of str
        Flag codes or patterns whose values are dropped (default ``("C*", "D*", "M")``).
        To keep one doubtful code, name it exactly in ``keep``: ``FlagPolicy(keep=("G", "U",
        "C03"))`` keeps values above the HWSD saturation estimate (see docs/data.md: at Maqu
        they are the whole wet end of the record).
    valid_range : (float, float)
        Plausible soil moisture, m3 m-3 (inclusive, default 0-0.6).

    Examples
    --------
    >>> p = FlagPolicy()
    >>> p.keeps("G"), p.keeps("U"), p.keeps("D01,D03"), p.keeps("C03")
    (True, True, False, False)
    >>> FlagPolicy(keep=("G", "U", "C03")).keeps("C03")
    True
    """

    keep: tuple[str, ...] = ("G", "U")
    drop: tuple[str, ...] = ("C*", "D*", "M")
    valid_range: tuple[float, float] = (0.0, 0.6)

    def __post_init__(self):
        for name in ("keep", "drop"):
            val = getattr(self, name)
            if isinstance(val, str):
                val = (val,)
            val = tuple(str(v).strip() for v in val)
            if any(not v or "," in v for v in val):
                raise InputError(f"FlagPolicy.{name} holds an empty or comma-joined pattern: {val!r}",
                                 "give single flag codes or patterns, e.g. ('G', 'U') or ('C*',)")
            object.__setattr__(self, name, val)
        both = sorted(set(self.keep) & set(self.drop))
        if both:
            raise InputError(f"FlagPolicy names {', '.join(both)} in both keep and drop",
                             "name each code or pattern once, e.g. keep=('G', 'U', 'D*'), "
                             "drop=('C*', 'M')")
        lo, hi = (float(v) for v in self.valid_range)
        if not lo < hi:
            raise InputError(f"FlagPolicy.valid_range {self.valid_range!r} is empty",
                             "give (min, max) in m3 m-3 with min < max, e.g. (0.0, 0.6)")
        object.__setattr__(self, "valid_range", (lo, hi))

    # -- decisions ---------------------------------------------------------------------------
    def code_status(self, code: str) -> str:
        """``"keep"``, ``"drop"`` or ``"unlisted"`` for one flag code (e.g. ``"D03"``)."""
        if code in self.keep:
            return "keep"
        if code in self.drop:
            return "drop"
        if any(fnmatch.fnmatchcase(code, p) for p in self.drop):
            return "drop"
        if any(fnmatch.fnmatchcase(code, p) for p in self.keep):
            return "keep"
        return "unlisted"

    def keeps(self, flag: str | None) -> bool:
        """Whether a value with this ISMN flag (e.g. ``"D01,D03"``) is kept."""
        codes = _split_flag(flag)
        return bool(codes) and all(self.code_status(c) == "keep" for c in codes)

    def unlisted(self, flags: Iterable[str]) -> list[str]:
        """The codes in ``flags`` that no pattern names (they are dropped)."""
        out = set()
        for f in flags:
            out.update(c for c in _split_flag(f) if self.code_status(c) == "unlisted")
        return sorted(out)

    def __str__(self) -> str:
        return (f"keep {','.join(self.keep)}; drop {','.join(self.drop)}; "
                f"valid {self.valid_range[0]:g}-{self.valid_range[1]:g} m3 m-3")

    def to_dict(self) -> dict:
        return {"keep": list(self.keep), "drop": list(self.drop),
                "valid_range": list(self.valid_range), "text": str(self)}


def _split_flag(flag) -> list[str]:
    if flag is None or (isinstance(flag, float) and np.isnan(flag)):
        return []
    return [c.strip() for c in str(flag).split(",") if c.strip()]


# --------------------------------------------------------------------------------------------
# The series
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class StationSeries:
    """One soil-moisture sensor's series at one station, after the flag policy.

    Attributes
    ----------
    network, station : str
        ISMN network (the download's folder name) and station (from the file name).
    lat, lon : float
        Degrees north / east (file header).
    elevation : float
        Metres above sea level (file header).
    depth_from, depth_to : float
        Sensor depth, metres below the surface (NaN when no sensor is in the depth range).
    sensor : str
        Instrument name (``""`` when none).
    data : pandas.DataFrame
        The KEPT records, index ``time`` (UTC, tz-aware, ``datetime64[ns, UTC]``, sorted,
        unique); columns ``soil_moisture`` (float64, m3 m-3), ``flag`` (str, the ISMN flag)
        and one float64 column per other variable asked for (``soil_temperature``, degC, from
        the station's sensor at the same depth, NaN where it has no kept value at that time).
    n_raw : int
        Records in the file (after malformed lines were skipped, if any).
    n_kept : int
        Records in ``data``.
    n_by_flag : dict
        Raw record count per ISMN flag string as written in the file (``{"U": 9407, ...}``).
    n_dropped : dict
        Dropped records by first reason: ``flag`` (policy), ``nan``, ``range``
        (outside ``policy.valid_range``), ``duplicate`` (repeated time stamp).
    status : str
        ``"ok"``, ``"emptied by flag policy"`` (records exist, the policy kept none),
        ``"no data in depth range"`` (the station has no soil-moisture sensor in ``depth``),
        ``"no data"`` (the file holds no record) or ``"unreadable"`` (``errors="skip"`` only).
    source : str
        The file read (``zip::member`` inside a zip).
    notes : list of str
        What else a user should know (soil temperature sensor used, skipped lines, ...).
    n_malformed : int
        Lines skipped as malformed (``errors="skip"``).
    """

    network: str
    station: str
    lat: float
    lon: float
    elevation: float
    depth_from: float
    depth_to: float
    sensor: str
    data: pd.DataFrame
    n_raw: int = 0
    n_kept: int = 0
    n_by_flag: dict = field(default_factory=dict)
    n_dropped: dict = field(default_factory=dict)
    status: str = STATUS_OK
    source: str = ""
    notes: list = field(default_factory=list)
    n_malformed: int = 0

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return (f"StationSeries({self.network}/{self.station}, {self.depth_from:g}-{self.depth_to:g} m, "
                f"{self.sensor!r}, kept {self.n_kept}/{self.n_raw}, {self.status!r})")

    def summary(self) -> dict:
        """Plain-python summary (no data), for reports and ``inspect``."""
        sm = self.data["soil_moisture"] if len(self.data) else pd.Series(dtype=float)
        return {
            "network": self.network, "station": self.station,
            "lat": _num(self.lat), "lon": _num(self.lon), "elevation": _num(self.elevation),
            "depth_from": _num(self.depth_from), "depth_to": _num(self.depth_to),
            "sensor": self.sensor, "status": self.status,
            "n_raw": int(self.n_raw), "n_kept": int(self.n_kept), "n_malformed": int(self.n_malformed),
            "n_by_flag": {k: int(v) for k, v in self.n_by_flag.items()},
            "n_dropped": {k: int(v) for k, v in self.n_dropped.items()},
            "time_start": _iso(sm.index.min()) if len(sm) else None,
            "time_end": _iso(sm.index.max()) if len(sm) else None,
            "source": self.source, "notes": list(self.notes),
        }


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(x) else x


def _iso(t) -> str | None:
    if t is None or pd.isna(t):
        return None
    t = pd.Timestamp(t)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.isoformat()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class _ReadInfo:
    kind: str = "dir"
    variables: set = field(default_factory=set)
    time_start: Any = None
    time_end: Any = None


def read_ismn(path: str | Path, policy: FlagPolicy = FlagPolicy(),
              depth: tuple[float, float] = (0.0, 0.05),
              variables: tuple[str, ...] = ("soil_moisture", "soil_temperature"),
              errors: str = "raise", cache: str | Path | None = None) -> list[StationSeries]:
    """Read ISMN soil moisture (and soil temperature) series through the ``ismn`` package.

    Parameters
    ----------
    path : str or Path
        One ``.stm`` file, an ISMN download folder (``NETWORK/STATION/*.stm``, with or
        without ``Metadata.xml`` and static-variable csv files; other layouts are accepted
        too) or the download zip.
    policy : FlagPolicy
        Which ISMN-flagged soil moisture values to keep (see :class:`FlagPolicy`).
    depth : (float, float)
        Depth range, metres below the surface. A soil-moisture sensor is used when
        ``depth_from >= depth[0]`` and ``depth_to <= depth[1]``: the default 0-0.05 m takes
        the CTP-SMTMN 0-0.05 m and the Maqu 0.05-0.05 m sensors, not a 0-0.19 m cosmic-ray
        probe. Each sensor in range gives its own series.
    variables : tuple of str
        ``"soil_moisture"`` first; each other variable (``"soil_temperature"``, ...) becomes a
        column of ``data`` taken from the station's sensor of that variable at the same depth
        (else the one in ``depth`` closest to it; else any sensor for above-ground variables),
        its values kept by the same flag policy and a plausible range, NaN otherwise.
    errors : {"raise", "skip"}
        What malformed lines do: stop the read with a clear error (default) or get left out
        and reported (see the module docstring).
    cache : str or Path, optional
        Where the ``ismn`` package's metadata index goes (default
        ``model.config.cache_dir() / "ismn_metadata"``); never next to the data.

    Returns
    -------
    list of StationSeries
        Sorted by network, station, depth, sensor. Stations without a soil-moisture sensor
        in ``depth`` and series the policy empties are in the list with their status.

    Raises
    ------
    InputError
        Missing path, empty folder; ``WrongProductError`` for a non-ISMN file;
        ``UnreadableFileError`` for a malformed file (``errors="raise"``).
    """
    series, _ = _read(Path(path), policy, depth, variables, errors, cache)
    return series


def _read(path: Path, policy: FlagPolicy, depth, variables, errors, cache):
    if errors not in ("raise", "skip"):
        raise unknown_name("errors mode", str(errors), ["raise", "skip"])
    if not isinstance(policy, FlagPolicy):
        raise InputError(f"policy must be a FlagPolicy, got {type(policy).__name__}",
                         "pass model.data.ismn.FlagPolicy(keep=..., drop=...)")
    variables = tuple(variables)
    if not variables or variables[0] != "soil_moisture":
        raise InputError(f"variables {variables!r} must start with 'soil_moisture'",
                         "e.g. variables=('soil_moisture', 'soil_temperature')")
    # lazy: ismn is the optional ISMN reader (0.06 s, 0.49 s with its interface); only ISMN input needs it
    from ismn.const import VARIABLE_LUT

    for v in variables:
        if v not in VARIABLE_LUT.values():
            raise unknown_name("ISMN variable", v, list(VARIABLE_LUT.values()))
    d0, d1 = (float(d) for d in depth)
    if d1 < d0:
        raise InputError(f"depth range {depth!r} is reversed", "give (from, to) in metres, e.g. (0.0, 0.05)")

    kind, sources = _collect_sources(path)
    info = _ReadInfo(kind=kind)
    scans = {s.rel: _scan(s, clean=(errors == "skip")) for s in sources}
    unreadable: list[StationSeries] = []
    for s in sources:
        sc = scans[s.rel]
        if sc.header_error:
            if errors == "raise" or kind == "file":
                cls = WrongProductError if "file name" in sc.header_error else UnreadableFileError
                raise cls(sc.header_error, "fix the file or read with errors='skip' to leave it out "
                          "(reported as an 'unreadable' series)" if kind != "file" else
                          "give an ISMN header+values .stm file", s.origin)
            unreadable.append(_unreadable_series(s, sc.header_error, sc))
        elif sc.bad_lines and errors == "raise":
            raise _malformed_error(s, sc)
    usable = [s for s in sources if not scans[s.rel].header_error]
    empty = [s for s in usable if scans[s.rel].n_records == 0]
    usable = [s for s in usable if scans[s.rel].n_records > 0]   # ismn cannot index header-only files
    out = list(unreadable) + [_empty_file_series(s, scans[s.rel]) for s in empty]

    if usable:
        standard = (all(len(s.rel.parts) == 3 and scans[s.rel].canonical for s in usable)
                    and len(usable) == len(sources))
        needs_tree = kind == "file" or not standard or any(scans[s.rel].cleaned for s in usable)
        if needs_tree:
            with tempfile.TemporaryDirectory(prefix="smds-ismn-") as tmp:
                tree, origin = _link_tree(Path(tmp) / "data", usable, scans)
                iface = _interface(tree, Path(tmp) / "meta")
                out += _series_from_interface(iface, tree, origin, usable, scans, policy, (d0, d1),
                                              variables, errors, info)
        else:
            iface = _cached_interface(path, usable, cache)
            origin = {s.rel: s for s in usable}
            out += _series_from_interface(iface, path, origin, usable, scans, policy, (d0, d1),
                                          variables, errors, info)
    out.sort(key=lambda s: (s.network, s.station, _sortnum(s.depth_from), _sortnum(s.depth_to), s.sensor))
    return out, info


def _sortnum(x) -> float:
    return float(x) if x is not None and np.isfinite(x) else np.inf


def _canonical_name(sc: _Scan) -> tuple[str, str, str]:
    """(network folder, station folder, file name) the ``ismn`` package parses correctly,
    built from the header: ``_`` in names becomes ``-`` in the file name (the field
    separator); the network folder keeps the header's name (the package takes the network
    from the folder)."""
    nm = sc.name
    net_tok = _fname_token(sc.network)
    sta_tok = _fname_token(sc.station)
    name = (f"{net_tok}_{net_tok}_{sta_tok}_{nm['var']}_{sc.depth_from:.6f}_{sc.depth_to:.6f}_"
            f"{nm['sensor']}_{nm['start']}_{nm['end']}.stm")
    return sc.network, sta_tok, name


def _link_tree(tree: Path, usable: list[_Source], scans: dict) -> tuple[Path, dict]:
    """A temporary NETWORK/STATION/file tree of links (or cleaned copies) for the ismn package."""
    origin = {}
    for s in usable:
        sc = scans[s.rel]
        if sc.network is not None:
            net, station, fname = _canonical_name(sc)
        else:  # the older CEOP-like format: names as given
            toks = _name_tokens(s.rel.name) or s.rel.stem.split("_")
            net, station, fname = toks[1], toks[2], s.rel.name
        dest = tree / net / station / fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        cleaned = scans[s.rel].cleaned
        if cleaned is not None:
            dest.write_bytes(cleaned)
        elif s.local is not None:
            try:
                dest.symlink_to(s.local.resolve())
            except OSError:
                shutil.copyfile(s.local, dest)
        else:
            dest.write_bytes(s.read_bytes())
        origin[PurePosixPath(dest.relative_to(tree).as_posix())] = s
    return tree, origin


def _unreadable_series(src: _Source, why: str, sc: _Scan | None = None) -> StationSeries:
    nm = _parse_name(src.rel.name)
    toks = (nm["prefix"].split("_") if nm else [src.rel.stem])
    network = (sc.network if sc is not None and sc.network else
               src.rel.parts[0] if len(src.rel.parts) == 3 else (toks[1] if len(toks) > 2 else ""))
    station = (sc.station if sc is not None and sc.station else
               src.rel.parts[1] if len(src.rel.parts) == 3 else toks[-1])
    return StationSeries(
        network=network, station=station,
        lat=np.nan, lon=np.nan, elevation=np.nan,
        depth_from=nm["d0"] if nm else np.nan, depth_to=nm["d1"] if nm else np.nan,
        sensor=nm["sensor"] if nm else "", data=_empty_frame(()),
        status=STATUS_UNREADABLE, source=src.origin, notes=[why])


def _empty_file_series(src: _Source, sc: _Scan) -> StationSeries:
    return StationSeries(
        network=sc.network, station=_fname_token(sc.station),
        lat=sc.lat, lon=sc.lon, elevation=sc.elevation,
        depth_from=sc.depth_from, depth_to=sc.depth_to,
        sensor=sc.name["sensor"], data=_empty_frame(()), status=STATUS_NO_DATA,
        source=src.origin, notes=["the file holds a header and no record"] + list(sc.mismatch))


def _empty_frame(extra: Iterable[str]) -> pd.DataFrame:
    idx = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="time")
    cols = {"soil_moisture": pd.Series([], dtype="float64", index=idx),
            "flag": pd.Series([], dtype="str", index=idx)}
    for v in extra:
        cols[v] = pd.Series([], dtype="float64", index=idx)
    return pd.DataFrame(cols, index=idx)


def _to_utc_index(idx) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(idx)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns").rename("time")


def _series_from_interface(iface, root: Path, origin: dict, usable, scans, policy, depth,
                           variables, errors, info: _ReadInfo) -> list[StationSeries]:
    d0, d1 = depth
    eps = 1e-9
    seen = set()
    out = []
    for network, station in iface.collection.iter_stations():
        sensors = list(station.iter_sensors())
        for s in sensors:
            info.variables.add(s.variable)
            seen.add(_rel(s))
            meta = s.filehandler.metadata
            for key, agg in (("timerange_from", "time_start"), ("timerange_to", "time_end")):
                try:
                    t = pd.Timestamp(meta[key].val)
                except Exception:  # pragma: no cover - ismn always sets them
                    continue
                cur = getattr(info, agg)
                if cur is None or (t < cur if agg == "time_start" else t > cur):
                    setattr(info, agg, t)
        sm = [s for s in sensors if s.variable == "soil_moisture"]
        in_range = [s for s in sm if s.depth.start >= d0 - eps and s.depth.end <= d1 + eps]
        if not in_range:
            have = sorted({(float(s.depth.start), float(s.depth.end)) for s in sm})
            note = (f"soil moisture only at {', '.join(f'{a:g}-{b:g} m' for a, b in have)}"
                    if have else "the station has no soil moisture sensor")
            src = origin.get(_rel(sensors[0])) if sensors else None
            out.append(StationSeries(
                network=network.name, station=station.name, lat=float(station.lat),
                lon=float(station.lon), elevation=float(station.elev), depth_from=np.nan,
                depth_to=np.nan, sensor="", data=_empty_frame(variables[1:]),
                status=STATUS_NO_DEPTH, source=src.origin if src else "",
                notes=[f"{note}; asked for {d0:g}-{d1:g} m"]))
            continue
        for s in in_range:
            out.append(_one_series(network, station, s, sensors, origin, scans, policy, depth,
                                   variables))
    for key, src in origin.items():
        if key in seen:
            continue
        why = _why_ismn_skipped(root, key)
        if errors == "raise":
            raise UnreadableFileError(f"the ismn package could not index this file ({why})",
                                      "check its name and header against the ISMN format", src.origin)
        out.append(_unreadable_series(src, f"the ismn package could not index it ({why})", scans.get(src.rel)))
    return out


def _norm(p) -> PurePosixPath:
    return PurePosixPath(str(p).replace(os.sep, "/"))


def _rel(sensor) -> PurePosixPath:
    return _norm(sensor.filehandler.file_path)


def _why_ismn_skipped(root: Path, key: PurePosixPath) -> str:
    # lazy: ismn is the optional ISMN reader (0.06 s, 0.49 s with its interface); only ISMN input needs it
    from ismn.filehandlers import DataFile

    try:
        with _quiet():
            DataFile(root, str(key))
    except Exception as exc:  # the package's own reason
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return (lines[-1] if lines else type(exc).__name__)[:200]
    return "unknown reason"


def _read_sensor(sensor) -> pd.DataFrame:
    return sensor.read_data()


def _one_series(network, station, s, sensors, origin, scans, policy: FlagPolicy, depth,
                variables) -> StationSeries:
    var = "soil_moisture"
    src = origin.get(_rel(s))
    raw = _read_sensor(s)
    vals = pd.to_numeric(raw[var], errors="coerce").to_numpy(dtype="float64")
    flags = raw[f"{var}_flag"].astype("object").where(raw[f"{var}_flag"].notna(), "")
    flags = flags.astype(str).str.strip().to_numpy()
    idx = _to_utc_index(raw.index)
    n_raw = len(vals)
    fl_series = pd.Series(flags)
    n_by_flag = {("<none>" if k == "" else str(k)): int(v)
                 for k, v in fl_series.value_counts(sort=True).items()}
    ukeep = {f: policy.keeps(f) for f in pd.unique(flags)}
    keep_flag = np.fromiter((ukeep[f] for f in flags), bool, count=n_raw)
    finite = np.isfinite(vals)
    lo, hi = policy.valid_range
    with np.errstate(invalid="ignore"):
        in_range = (vals >= lo) & (vals <= hi)
    dup = idx.duplicated(keep="first")
    keep = keep_flag & finite & in_range & ~dup
    n_dropped = {
        "flag": int((~keep_flag).sum()),
        "nan": int((keep_flag & ~finite).sum()),
        "range": int((keep_flag & finite & ~in_range).sum()),
        "duplicate": int((keep_flag & finite & in_range & dup).sum()),
    }
    data = pd.DataFrame({"soil_moisture": vals[keep], "flag": pd.array(flags[keep], dtype="str")},
                        index=idx[keep])
    data = data.sort_index()
    notes = []
    unl = policy.unlisted(ukeep)
    if unl:
        notes.append(f"flag codes no policy pattern names, dropped: {', '.join(unl)}")
    if n_dropped["duplicate"]:
        notes.append(f"{n_dropped['duplicate']} repeated time stamps (first kept)")
    sc = scans.get(src.rel) if src is not None else None
    n_mal = len(sc.bad_lines) if sc is not None else 0
    if sc is not None:
        notes += list(sc.mismatch)
    if n_mal:
        first = sc.bad_lines[0]
        notes.append(f"{n_mal} malformed line(s) skipped (first: line {first[0]}: {first[1]!r})")
    for v in variables[1:]:
        col, note = _aux_column(v, s, sensors, data.index, policy, depth)
        data[v] = col
        if note:
            notes.append(note)
    if n_raw == 0:
        status = STATUS_NO_DATA
    elif len(data) == 0:
        status = STATUS_EMPTIED
    else:
        status = STATUS_OK
    return StationSeries(
        network=network.name, station=station.name, lat=float(station.lat), lon=float(station.lon),
        elevation=float(station.elev), depth_from=float(s.depth.start), depth_to=float(s.depth.end),
        sensor=str(s.instrument), data=data, n_raw=n_raw, n_kept=len(data), n_by_flag=n_by_flag,
        n_dropped=n_dropped, status=status, source=src.origin if src else "", notes=notes,
        n_malformed=n_mal)


def _aux_column(var, sm_sensor, sensors, index, policy: FlagPolicy, depth):
    """Values of ``var`` at the soil-moisture sensor's depth, aligned on ``index``."""
    cands = [s for s in sensors if s.variable == var]
    if not cands:
        return np.full(len(index), np.nan), f"no {var} sensor at this station"
    a, b = float(sm_sensor.depth.start), float(sm_sensor.depth.end)
    exact = [s for s in cands if abs(s.depth.start - a) < 1e-9 and abs(s.depth.end - b) < 1e-9]
    note = None
    if exact:
        use = exact[0]
    else:
        d0, d1 = depth
        soil = var.startswith("soil_")
        near = [s for s in cands if s.depth.start >= d0 - 1e-9 and s.depth.end <= d1 + 1e-9] if soil else cands
        if not near:
            have = ", ".join(sorted({f"{s.depth.start:g}-{s.depth.end:g} m" for s in cands}))
            return np.full(len(index), np.nan), f"no {var} at {a:g}-{b:g} m (only {have})"
        mid = (a + b) / 2
        use = min(near, key=lambda s: abs((s.depth.start + s.depth.end) / 2 - mid))
        note = f"{var} from sensor {use.instrument} at {use.depth.start:g}-{use.depth.end:g} m"
    raw = _read_sensor(use)
    vals = pd.to_numeric(raw[var], errors="coerce").to_numpy(dtype="float64")
    fl = raw[f"{var}_flag"].astype("object").where(raw[f"{var}_flag"].notna(), "").astype(str).to_numpy()
    ok = np.fromiter((policy.keeps(f) for f in fl), bool, count=len(fl)) if len(fl) else np.zeros(0, bool)
    lo, hi = _AUX_RANGES.get(var, (-np.inf, np.inf))
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(vals) & (vals >= lo) & (vals <= hi)
    ser = pd.Series(np.where(ok, vals, np.nan), index=_to_utc_index(raw.index))
    ser = ser[~ser.index.duplicated(keep="first")]
    return ser.reindex(index).to_numpy(dtype="float64"), note


# --------------------------------------------------------------------------------------------
# File-name tokens (shared with the writer, model.data.ismn_write)
# --------------------------------------------------------------------------------------------


def _fname_token(s: str) -> str:
    """File-name form of a network/station name: ``_`` is the field separator, so ``-``."""
    return str(s).replace("_", "-")


# --------------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------------


def describe(path: str | Path, policy: FlagPolicy = FlagPolicy(),
             depth: tuple[float, float] = (0.0, 0.05)) -> dict:
    """What ``sm-downscale inspect`` shows for an ISMN ``.stm`` file or download.

    Returns
    -------
    dict
        ``product`` (``"ISMN header+values"`` for one file, ``"ISMN download"`` for a folder
        or zip), ``variables`` ({name: units} of every variable in the files),
        ``time_start``/``time_end`` (ISO, UTC, over all files), ``stations`` (one entry per
        soil-moisture series in ``depth``: network, station, lat, lon, depth_from, depth_to,
        sensor, status, n_raw, n_kept), ``soil_moisture`` ({valid_count, mean, min, max} in
        m3 m-3 of the values the policy keeps, or None), ``flags`` (raw record count per ISMN
        flag, all series), ``dropped`` (counts by reason), ``policy`` and ``depth_range``.
    """
    path = Path(path)
    series, info = _read(path, policy, depth, ("soil_moisture", "soil_temperature"), "raise", None)
    kept = [s.data["soil_moisture"].to_numpy() for s in series if s.n_kept]
    sm = np.concatenate(kept) if kept else np.zeros(0)
    flags: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for s in series:
        for k, v in s.n_by_flag.items():
            flags[k] = flags.get(k, 0) + int(v)
        for k, v in s.n_dropped.items():
            dropped[k] = dropped.get(k, 0) + int(v)
    return {
        "product": "ISMN header+values" if info.kind == "file" else "ISMN download",
        "path": str(path),
        "variables": {v: VARIABLE_UNITS.get(v, "") for v in sorted(info.variables)},
        "time_start": _iso(info.time_start),
        "time_end": _iso(info.time_end),
        "stations": [{k: s.summary()[k] for k in ("network", "station", "lat", "lon", "depth_from",
                                                   "depth_to", "sensor", "status", "n_raw", "n_kept")}
                     for s in series],
        "soil_moisture": None if sm.size == 0 else {
            "valid_count": int(sm.size), "mean": float(sm.mean()),
            "min": float(sm.min()), "max": float(sm.max())},
        "flags": dict(sorted(flags.items(), key=lambda kv: -kv[1])),
        "dropped": dropped,
        "policy": policy.to_dict(),
        "depth_range": [float(depth[0]), float(depth[1])],
    }
