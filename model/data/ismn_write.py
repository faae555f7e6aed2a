"""ISMN writer: "header + values" ``.stm`` files as the ISMN download delivers them.

The format is set out in :mod:`model.data.ismn` (the reader); the virtual Tibetan Plateau
writes its stations this way. Split out of ``ismn.py`` (issue 14: no module over 800 lines);
it imports the reader side, never the reverse.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import atomic_path
from .ismn import _fname_token

__all__ = ["write_ismn_station", "stm_filename"]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


_VAR_CODES = {"soil_moisture": "sm", "soil_temperature": "ts"}
_VALUE_FMT = {"soil_moisture": "{:8.4f}", "soil_temperature": "{:8.2f}"}


def _meta_get(meta, key, default=None):
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def stm_filename(network: str, station: str, var: str, depth_from: float, depth_to: float,
                 sensor: str, start, end, keep_network_underscores: bool = False) -> str:
    """The ISMN file name of one series (``var``: ``"sm"``, ``"ts"``...; dates ``YYYYMMDD``).

    ``keep_network_underscores``: write ``CTP_SMTMN_CTP_SMTMN_...`` as ISMN's own downloads
    name networks such as ``CTP_SMTMN`` or ``FR_Aqui`` (default: ``CTP-SMTMN``).

    >>> stm_filename("MAQU", "CST-01", "sm", 0.05, 0.05, "ECH20-EC-TM", "2007-01-01", "2013-12-31")
    'MAQU_MAQU_CST-01_sm_0.050000_0.050000_ECH20-EC-TM_20070101_20131231.stm'
    """
    net = str(network) if keep_network_underscores else _fname_token(network)
    return (f"{net}_{net}_{_fname_token(station)}_{var}_{depth_from:.6f}_{depth_to:.6f}_{sensor}_"
            f"{pd.Timestamp(start):%Y%m%d}_{pd.Timestamp(end):%Y%m%d}.stm")


def _header(network, station, lat, lon, elev, d0, d1, sensor) -> str:
    def dep(d):
        return f"{d:8.2f}" if abs(round(d, 2) - d) < 1e-9 else f"{d:8.4f}"
    return (f"{network:<10} {network:<15} {station:<17} {lat:8.5f}{lon:12.5f}{elev:8.2f}"
            f"{dep(d0)}{dep(d1)} {sensor} ")


def _check_name(what: str, val) -> str:
    val = str(val) if val is not None else ""
    if not val or re.search(r"\s", val) or "/" in val or "\\" in val:
        raise InputError(f"{what} {val!r} is empty or holds white space or a slash",
                         f"give a {what} without blanks (ISMN files are split at white space)")
    return val


def write_ismn_station(root: str | Path, meta, data: pd.DataFrame, newline: str = "\n",
                       keep_network_underscores: bool = False) -> Path:
    """Write one station's series as ISMN "header + values" ``.stm`` files.

    Writes ``root/NETWORK/STATION/NETWORK_NETWORK_STATION_sm_<from>_<to>_<SENSOR>_<first
    day>_<last day>.stm`` and, when ``data`` has soil temperature, the matching ``_ts_``
    file, each atomically; an older file of the same series (other dates) is replaced.
    :func:`read_ismn` reads them back through the ``ismn`` package: same times, values
    (to the written precision), flags and header metadata. ``_`` in network or station names
    becomes ``-`` in file names (the ISMN field separator; real ISMN does the same: header
    ``CST_01``, file ``CST-01``); the network folder keeps the name as given, and the reader
    takes the network from it. No static-variable csv is written: the ``ismn`` package reads
    a station without one.

    Parameters
    ----------
    root : str or Path
        Download root (created).
    meta : mapping or object (e.g. :class:`StationSeries`)
        ``network``, ``station``, ``lat`` (deg N), ``lon`` (deg E), ``elevation`` (m),
        ``depth_from``, ``depth_to`` (m below the surface; default 0.0-0.05) and ``sensor``
        (instrument name, default ``"unknown"``); optional ``ts_sensor``.
    data : pandas.DataFrame
        Index: times (UTC; naive times are taken as UTC; whole minutes). Columns
        ``soil_moisture`` (m3 m-3; NaN rows are left out: an outage is a gap, as in real
        files), optional ``flag`` (ISMN flag, default ``"G"``), ``original_flag`` (default
        ``"M"``), ``soil_temperature`` (degC) and ``soil_temperature_flag`` (default ``"G"``).
        Soil moisture is written with 4 decimals, soil temperature with 2.
    newline : str
        Line end (``"\\n"``; real old downloads use ``"\\r"``, which the reader reads too).
    keep_network_underscores : bool
        Keep ``_`` of the network name in file names (``CTP_SMTMN_CTP_SMTMN_L01_sm_...``), as
        ISMN's own downloads do; the reader takes the network from the header either way.

    Returns
    -------
    Path
        The station folder ``root/NETWORK/STATION``.
    """
    root = Path(root)
    m = _checked_station(meta)
    df = _checked_frame(data, m.station)
    folder = root / m.network / _fname_token(m.station)
    for var, flag_col, sens in (("soil_moisture", "flag", m.sensor),
                                ("soil_temperature", "soil_temperature_flag", m.ts_sensor)):
        if var not in df:
            continue
        _write_stm(folder, df, var, flag_col, sens, m, newline, keep_network_underscores)
    return folder


@dataclass
class _Station:
    """Checked station metadata of :func:`write_ismn_station`."""

    network: str
    station: str
    sensor: str
    ts_sensor: str
    lat: float
    lon: float
    elev: float
    d0: float
    d1: float


def _checked_station(meta) -> _Station:
    """Names, position, elevation and depth range of a station, with clear errors."""
    network = _check_name("network", _meta_get(meta, "network"))
    station = _check_name("station", _meta_get(meta, "station"))
    sensor = _check_name("sensor", _meta_get(meta, "sensor", "unknown") or "unknown")
    ts_sensor = _check_name("sensor", _meta_get(meta, "ts_sensor", None) or sensor)
    try:
        lat = float(_meta_get(meta, "lat"))
        lon = float(_meta_get(meta, "lon"))
        elev = float(_meta_get(meta, "elevation", np.nan))
        d0 = float(_meta_get(meta, "depth_from", 0.0))
        d1 = float(_meta_get(meta, "depth_to", 0.05))
    except (TypeError, ValueError) as exc:
        raise InputError(f"station metadata is incomplete or not numeric ({exc})",
                         "give lat, lon, elevation, depth_from, depth_to as numbers") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"station {station}: lat/lon {lat}, {lon} out of range", "give degrees north/east")
    if not np.isfinite(elev):
        raise InputError(f"station {station}: elevation is missing", "give the elevation in metres")
    if not (np.isfinite(d0) and np.isfinite(d1) and 0 <= d0 <= d1):
        raise InputError(f"station {station}: depth {d0}-{d1} m is not a depth range",
                         "give depth_from <= depth_to, metres below the surface")
    return _Station(network, station, sensor, ts_sensor, lat, lon, elev, d0, d1)


def _checked_frame(data, station: str) -> pd.DataFrame:
    """The series on a naive UTC time index of unique whole minutes, sorted."""
    if not isinstance(data, pd.DataFrame) or "soil_moisture" not in data:
        raise InputError("data needs a 'soil_moisture' column", "pass a DataFrame indexed by UTC time")
    idx = pd.DatetimeIndex(data.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if idx.hasnans:
        raise InputError(f"station {station}: data has missing times", "drop rows without a time")
    if not idx.is_unique:
        raise InputError(f"station {station}: data has repeated times", "one record per time")
    if ((idx - idx.floor("min")) != pd.Timedelta(0)).any():
        raise InputError(f"station {station}: times with seconds", "ISMN records are whole minutes")
    return pd.DataFrame(data.to_numpy(), columns=data.columns, index=idx).sort_index()


def _write_stm(folder: Path, df: pd.DataFrame, var: str, flag_col: str, sens: str, m: _Station,
               newline: str, keep_network_underscores: bool) -> None:
    """One variable's ``.stm`` file (atomically), replacing an older file of the same series."""
    station = m.station
    vals = pd.to_numeric(df[var], errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(vals)
    if not ok.any():
        if var == "soil_moisture":
            raise InputError(f"station {station}: no soil moisture value to write",
                             "an ISMN file needs at least one record")
        return
    times = df.index[ok]
    flags = (df[flag_col].astype(str).to_numpy()[ok] if flag_col in df else np.full(ok.sum(), "G"))
    orig = (df["original_flag"].astype(str).to_numpy()[ok] if "original_flag" in df and var == "soil_moisture"
            else np.full(ok.sum(), "M"))
    for what, arr in (("flag", flags), ("original flag", orig)):
        bad = [f for f in pd.unique(arr) if not f or re.search(r"\s", f) or f == "nan"]
        if bad:
            raise InputError(f"station {station}: {var} {what}s {bad[:3]!r} are empty or hold blanks",
                             "give ISMN flags such as 'G', 'U', 'D01,D03'")
    fmt = _VALUE_FMT[var]
    stamps = times.strftime("%Y/%m/%d %H:%M")
    body = newline.join(f"{t} {fmt.format(v)} {f} {o} " for t, v, f, o in zip(stamps, vals[ok], flags, orig))
    header = _header(m.network, station, m.lat, m.lon, m.elev, m.d0, m.d1, sens)
    content = (header + newline + body + newline).encode("ascii")
    code = _VAR_CODES[var]
    name = stm_filename(m.network, station, code, m.d0, m.d1, sens, times[0], times[-1],
                        keep_network_underscores)
    target = folder / name
    with atomic_path(target) as tmp:
        tmp.write_bytes(content)
    day = "[0-9]" * 8
    stale = glob.escape(str(folder / name.rsplit("_", 2)[0])) + f"_{day}_{day}.stm"
    for old in glob.glob(stale):
        if Path(old).name != name:
            Path(old).unlink()
