"""Matching the product to its references: stations, networks, SMAP. Pure pandas/xarray, no IO.

Station matching convention (DESIGN section 4)
----------------------------------------------
* Space: the station is compared with the TP10 cell that holds it
  (:meth:`model.grids.Grid.locate`); a station outside the grid gets status
  ``"outside grid"``, never an exception. A station in a cell outside the TP mask has an
  all-NaN product series and ends as ``"no overlap"``.
* Time: ONE PAIR PER PRODUCT STEP. For every 3-hourly product step t the in-situ
  observation nearest in time with :math:`|t_{insitu} - t| \\le` ``max_dt`` (1.5 h,
  inclusive) is taken (``pandas.merge_asof(direction="nearest")``; an in-situ value exactly
  half-way between two candidates - equidistant - resolves to the EARLIER one). Hourly
  in-situ data therefore give one pair per product step and no step is weighted more than
  another; in-situ values between steps are not used. Only finite values take part (NaN
  product steps and NaN in-situ values are dropped before matching).
* Frozen soil: a matched pair is frozen when the matched in-situ record has
  ``soil_temperature <= 0`` degC, or a true ``frozen`` column, or an ISMN flag among
  ``frozen_flags`` (default ``D01``: in-situ soil temperature < 0 degC, ``D03``: GLDAS soil
  temperature < 0 degC). Frozen pairs are EXCLUDED from the main pairs and metrics and
  reported separately (their own counts and metrics). A missing soil temperature with no flag
  counts as not frozen (``counts["n_temperature_unknown"]`` says how many).
* The station's flag policy (which ISMN flags are kept) is the reader's
  (:mod:`model.data.ismn`); the rows given here are taken as already kept.

Networks: :func:`network_metrics` gives both forms, the mean of the station metrics and the
metrics of the network-mean series. Ranking: :func:`rank_models`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from model.errors import InputError, unknown_name
from model.grids import tp10

from .metrics import DEFAULT_SETTINGS, MetricSettings, all_metrics

__all__ = [
    "FROZEN_FLAGS", "MAX_DT", "RANK_RULES", "MatchResult", "extract_station_series", "locate_station",
    "locate_stations", "match_station", "match_stations", "match_to_smap", "network_metrics",
    "PreparedStation", "prepare_station",
    "rank_models",
]

#: largest time difference between a product step and its in-situ value
MAX_DT = pd.Timedelta("1.5h")
#: ISMN flags that mark frozen soil (soil temperature below 0 degC, in situ / GLDAS)
FROZEN_FLAGS = ("D01", "D03")

#: metrics that take part in the station summaries and rankings
SUMMARY_METRICS = ("R", "bias", "RMSE", "ubRMSE", "rho", "anomaly_R")

_PAIR_COLUMNS = ["product", "insitu", "insitu_time", "dt", "soil_temperature", "frozen"]


def _utc_naive_index(idx: pd.Index, what: str) -> pd.DatetimeIndex:
    if not isinstance(idx, pd.DatetimeIndex):
        raise InputError(f"{what} has a {type(idx).__name__}, not a DatetimeIndex",
                         "index it by UTC time (e.g. df.set_index('time'))")
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns")


def _empty_pairs() -> pd.DataFrame:
    return _EMPTY_PAIRS().copy()


@lru_cache(maxsize=1)
def _EMPTY_PAIRS() -> pd.DataFrame:
    df = pd.DataFrame({
        "product": pd.Series(dtype=float), "insitu": pd.Series(dtype=float),
        "insitu_time": pd.Series(dtype="datetime64[ns]"), "dt": pd.Series(dtype="timedelta64[ns]"),
        "soil_temperature": pd.Series(dtype=float), "frozen": pd.Series(dtype=bool)})
    df.index = pd.DatetimeIndex([], name="time", dtype="datetime64[ns]")
    return df


@lru_cache(maxsize=8)
def _no_pair_metrics(settings: MetricSettings) -> dict:
    return all_metrics(np.array([]), np.array([]), np.array([], "datetime64[ns]"), settings=settings)


@dataclass(frozen=True)
class MatchResult:
    """Product-station pairs of one station.

    Attributes
    ----------
    station : str
    status : str
        ``"ok"``, ``"no overlap"`` (no pair at all) or ``"outside grid"``. Too few pairs for
        metrics shows as ``metrics["status"] == "insufficient data"``.
    pairs : pandas.DataFrame
        Unfrozen pairs, index ``time`` (the product step, UTC) and columns ``product``,
        ``insitu`` (m3 m-3), ``insitu_time``, ``dt`` (insitu_time - time),
        ``soil_temperature`` (degC, NaN if unknown), ``frozen`` (False).
    frozen_pairs : pandas.DataFrame
        The frozen pairs, same columns (``frozen`` True).
    counts : dict
        ``n_product`` (finite product steps), ``n_insitu`` (finite in-situ values),
        ``n_matched`` (product steps with an in-situ value within max_dt), ``n_pairs``
        (unfrozen), ``n_frozen``, ``n_temperature_unknown`` (matched pairs without soil
        temperature), ``n_unmatched_product``.
    metrics, frozen_metrics : dict
        :func:`model.validation.metrics.all_metrics` of ``pairs`` / ``frozen_pairs``
        (product vs in-situ, times = product steps).
    row, col : int or None
        The TP10 cell (array indices) when known.
    """

    station: str
    status: str
    pairs: pd.DataFrame
    frozen_pairs: pd.DataFrame
    counts: dict
    metrics: dict
    frozen_metrics: dict
    row: int | None = None
    col: int | None = None
    lat: float | None = None
    lon: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def without_pairs(cls, station: str, status: str, *, counts: dict | None = None,
                      settings: MetricSettings = DEFAULT_SETTINGS, **kw) -> "MatchResult":
        """A result with no pair (``"outside grid"`` or ``"no overlap"``), NaN metrics."""
        base = dict(n_product=0, n_insitu=0, n_matched=0, n_pairs=0, n_frozen=0,
                    n_temperature_unknown=0, n_unmatched_product=0)
        base.update(counts or {})
        empty = dict(_no_pair_metrics(settings))
        return cls(station=station, status=status, pairs=_empty_pairs(), frozen_pairs=_empty_pairs(),
                   counts=base, metrics=empty, frozen_metrics=dict(empty), **kw)

    def summary(self) -> dict:
        """One flat row for a per-station table: ids, status, counts, metrics, frozen metrics."""
        row = {"station": self.station, "status": self.status, "row": self.row, "col": self.col,
               "lat": self.lat, "lon": self.lon}
        row.update(self.counts)
        row.update({k: v for k, v in self.metrics.items()})
        row.update({f"frozen_{k}": v for k, v in self.frozen_metrics.items()})
        return row


def match_station(product_series: pd.Series, station: pd.DataFrame, max_dt: pd.Timedelta = MAX_DT,
                  *, name: str = "station", frozen_flags: tuple[str, ...] = FROZEN_FLAGS,
                  settings: MetricSettings = DEFAULT_SETTINGS, **location) -> MatchResult:
    """Pair a product series at a station's cell with the station's in-situ series.

    Parameters
    ----------
    product_series : pandas.Series
        Product soil moisture at the station's TP10 cell, m3 m-3, UTC DatetimeIndex of the
        3-hourly product steps (tz-aware is converted to UTC; naive is taken as UTC).
    station : pandas.DataFrame or PreparedStation
        In-situ data, UTC DatetimeIndex (typically hourly), columns ``soil_moisture``
        (m3 m-3), optional ``soil_temperature`` (degC), ``flag`` (ISMN flag string),
        ``frozen`` (bool); or the same cleaned once by :func:`prepare_station` (for matching
        many products against one station).
    max_dt : pandas.Timedelta
        Largest |in-situ time - product step| of a pair (1.5 h, inclusive).
    name : str
        Station id for the result.
    frozen_flags : tuple of str
        ISMN flags that mark frozen soil (a flag string such as ``"D01,D03"`` matches if any
        of its comma-separated parts is listed).
    settings : MetricSettings
    **location
        ``row``, ``col``, ``lat``, ``lon`` stored on the result.

    Returns
    -------
    MatchResult
        See the module notes for the pairing rule.

    Examples
    --------
    >>> t = pd.date_range("2016-07-01", periods=40, freq="3h")
    >>> prod = pd.Series(np.linspace(0.2, 0.3, 40), index=t)
    >>> ins = pd.DataFrame({"soil_moisture": prod.values - 0.01}, index=t + pd.Timedelta("1h"))
    >>> res = match_station(prod, ins)
    >>> res.status, res.counts["n_pairs"], round(res.metrics["bias"], 6)
    ('ok', 40, 0.01)
    """
    max_dt = pd.Timedelta(max_dt)
    st = station if isinstance(station, PreparedStation) else prepare_station(station, name=name,
                                                                               frozen_flags=frozen_flags)
    if st.frozen_flags != tuple(frozen_flags):
        raise ValueError(f"station {name!r} was prepared with frozen_flags={st.frozen_flags}, "
                         f"not {tuple(frozen_flags)}")
    pt, pv = _product_steps(product_series, name)

    counts = dict(n_product=int(pt.size), n_insitu=int(st.times.size))
    if pt.size == 0 or st.times.size == 0:
        return MatchResult.without_pairs(name, "no overlap", counts=counts, settings=settings, **location)

    rt = st.times
    pick, ok = _nearest_records(rt, pt, max_dt)
    pt, pv, pick = pt[ok], pv[ok], pick[ok]
    frozen = st.frozen[pick]
    temp = st.soil_temperature[pick]
    counts.update(
        n_matched=int(pt.size), n_pairs=int((~frozen).sum()), n_frozen=int(frozen.sum()),
        n_temperature_unknown=int(np.isnan(temp).sum()), n_unmatched_product=int(counts["n_product"] - pt.size),
    )
    if pt.size == 0:
        return MatchResult.without_pairs(name, "no overlap", counts=counts, settings=settings, **location)

    def frame(sel):
        return _pairs_frame(pt[sel], pv[sel], st, pick[sel], temp[sel], frozen[sel])

    unfrozen = ~frozen
    pairs = frame(unfrozen)
    frozen_pairs = frame(frozen) if frozen.any() else _empty_pairs()
    tu = pt[unfrozen].view("datetime64[ns]")
    met = all_metrics(pv[unfrozen], st.insitu[pick[unfrozen]], tu, settings=settings)
    tf = pt[frozen].view("datetime64[ns]")
    fmet = (all_metrics(pv[frozen], st.insitu[pick[frozen]], tf, settings=settings) if frozen.any()
            else dict(_no_pair_metrics(settings)))
    return MatchResult(station=name, status="ok", pairs=pairs, frozen_pairs=frozen_pairs,
                       counts=counts, metrics=met, frozen_metrics=fmet, **location)


def _product_steps(product_series: pd.Series, name: str):
    """The finite values of a product series and their steps (UTC nanoseconds), sorted, each
    step once (the first of duplicates kept)."""
    pidx = _utc_naive_index(product_series.index, f"product series of {name!r}")
    pv = np.asarray(product_series, dtype=np.float64)
    pt = pidx.asi8
    keep = np.isfinite(pv)
    pt, pv = pt[keep], pv[keep]
    if not (pt[1:] > pt[:-1]).all():                   # unsorted or duplicated steps
        order = np.argsort(pt, kind="stable")
        pt, pv = pt[order], pv[order]
        first = np.r_[True, pt[1:] != pt[:-1]]
        pt, pv = pt[first], pv[first]
    return pt, pv


def _nearest_records(rt: np.ndarray, pt: np.ndarray, max_dt: pd.Timedelta):
    """The nearest in-situ record (index into ``rt``) of every product step ``pt`` (ties -> the
    earlier), and whether it lies within ``max_dt``."""
    fwd = np.searchsorted(rt, pt, side="left")                  # first record >= step
    bwd = np.searchsorted(rt, pt, side="right") - 1             # last record <= step
    fdiff = np.where(fwd < rt.size, rt[np.minimum(fwd, rt.size - 1)] - pt, np.iinfo(np.int64).max)
    bdiff = np.where(bwd >= 0, pt - rt[np.maximum(bwd, 0)], np.iinfo(np.int64).max)
    pick = np.where(fdiff < bdiff, fwd, bwd)
    ok = np.minimum(fdiff, bdiff) <= max_dt.value
    return pick, ok


def _pairs_frame(pt, pv, st, pick, temp, frozen) -> pd.DataFrame:
    """Matched pairs as a frame indexed by the product step: product steps ``pt`` (ns) and
    values ``pv``, the station's records ``pick``, their soil temperature and frozen flag."""
    t = pt.view("datetime64[ns]")
    it = st.times[pick].view("datetime64[ns]")
    df = pd.DataFrame({"product": pv, "insitu": st.insitu[pick], "insitu_time": it,
                       "dt": (it - t), "soil_temperature": temp, "frozen": frozen},
                      index=pd.DatetimeIndex(t, name="time"))
    return df


@dataclass(frozen=True)
class PreparedStation:
    """One station's in-situ records cleaned once for many :func:`match_station` calls.

    Attributes
    ----------
    name : str
    times : numpy.ndarray of int64
        Record times, UTC nanoseconds, sorted, unique (the first of duplicates kept).
    insitu, soil_temperature : numpy.ndarray of float64
        Soil moisture (m3 m-3, finite) and soil temperature (degC, NaN where unknown).
    frozen : numpy.ndarray of bool
        The record is frozen (module notes).
    frozen_flags : tuple of str
        The flags ``frozen`` was computed with.
    """

    name: str
    times: np.ndarray
    insitu: np.ndarray
    soil_temperature: np.ndarray
    frozen: np.ndarray
    frozen_flags: tuple


def prepare_station(station: pd.DataFrame, *, name: str = "station",
                    frozen_flags: tuple[str, ...] = FROZEN_FLAGS) -> PreparedStation:
    """Clean a station's in-situ frame once (:class:`PreparedStation`) for repeated matching.

    Parameters
    ----------
    station : pandas.DataFrame
        As :func:`match_station` takes it.
    name : str
    frozen_flags : tuple of str
    """
    if "soil_moisture" not in station.columns:
        raise InputError(f"station {name!r} has columns {list(station.columns)}, no 'soil_moisture'",
                         "pass the ISMN reader's data frame (soil_moisture, flag, soil_temperature)")
    s = station.copy()
    s.index = _utc_naive_index(station.index, f"station {name!r}")
    s = s[np.isfinite(pd.to_numeric(s["soil_moisture"], errors="coerce").to_numpy(dtype=float))]
    s = s.sort_index(kind="stable")
    s = s[~s.index.duplicated(keep="first")]
    temp = (pd.to_numeric(s["soil_temperature"], errors="coerce").to_numpy(dtype=float)
            if "soil_temperature" in s.columns else np.full(len(s), np.nan))
    return PreparedStation(name=name, times=s.index.asi8.copy(),
                           insitu=pd.to_numeric(s["soil_moisture"], errors="coerce").to_numpy(dtype=float),
                           soil_temperature=temp, frozen=_frozen_mask(s, frozen_flags),
                           frozen_flags=tuple(frozen_flags))


def _frozen_mask(s: pd.DataFrame, frozen_flags) -> np.ndarray:
    frozen = np.zeros(len(s), bool)
    if "soil_temperature" in s.columns:
        st = pd.to_numeric(s["soil_temperature"], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            frozen |= st <= 0.0
    if "frozen" in s.columns:
        frozen |= s["frozen"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if "flag" in s.columns and frozen_flags:
        alt = "|".join(re.escape(f) for f in frozen_flags)
        pattern = rf"(?:^|[,;\s])(?:{alt})(?:$|[,;\s])"
        hit = s["flag"].astype("string").str.upper().str.contains(pattern, regex=True)
        frozen |= hit.fillna(False).to_numpy(dtype=bool)
    return frozen


# ----------------------------------------------------------------------------- locating

def locate_station(lat: float, lon: float, grid=None) -> tuple[int | None, int | None, str]:
    """The (row, col) array indices of the grid cell holding a point, with a status.

    Parameters
    ----------
    lat, lon : float
        Degrees north / east.
    grid : model.grids.Grid, optional
        TP10 (``model.grids.tp10()``) by default.

    Returns
    -------
    (row, col, status)
        ``status`` is ``"ok"`` or ``"outside grid"`` (then row and col are None).
    """
    if grid is None:
        grid = tp10()
    rows, cols = grid.locate(lat, lon)
    if rows[0] < 0:
        return None, None, "outside grid"
    return int(rows[0]), int(cols[0]), "ok"


def locate_stations(table: pd.DataFrame, grid=None) -> pd.DataFrame:
    """Add ``row``, ``col`` (array indices, -1 outside) and ``grid_status`` to a station table
    with ``lat``, ``lon`` columns (vectorised)."""
    if grid is None:
        grid = tp10()
    rows, cols = grid.locate(table["lat"].to_numpy(dtype=float), table["lon"].to_numpy(dtype=float))
    out = table.copy()
    out["row"], out["col"] = rows, cols
    out["grid_status"] = np.where(rows >= 0, "ok", "outside grid")
    return out


def extract_station_series(product, located: pd.DataFrame, *, dims: tuple[str, str] = ("lat", "lon"),
                           time_dim: str = "time") -> dict[str, pd.Series]:
    """Product series at the cells of located stations, read in ONE vectorised selection.

    Parameters
    ----------
    product : xarray.DataArray
        Product, m3 m-3, dims ``(time, lat, lon)`` on the grid ``located`` refers to (numpy or
        Dask; the ``series.zarr`` layout makes this one chunk read per station tile).
    located : pandas.DataFrame
        Output of :func:`locate_stations`, indexed by station id; rows outside the grid are
        skipped.
    Returns
    -------
    dict
        {station id: pandas.Series indexed by time}.
    """
    inside = located[located["row"] >= 0]
    if inside.empty:
        return {}
    sel = product.isel({dims[0]: xr.DataArray(inside["row"].to_numpy(), dims="station"),
                        dims[1]: xr.DataArray(inside["col"].to_numpy(), dims="station")})
    values = np.asarray(sel.transpose("station", time_dim).values)
    times = pd.DatetimeIndex(product[time_dim].values)
    return {str(sid): pd.Series(values[i], index=times, name=product.name)
            for i, sid in enumerate(inside.index)}


def match_stations(product, stations: Mapping[str, pd.DataFrame], table: pd.DataFrame,
                   max_dt: pd.Timedelta = MAX_DT, *, grid=None,
                   settings: MetricSettings = DEFAULT_SETTINGS, **kw) -> dict[str, MatchResult]:
    """Locate, extract and match many stations at once.

    Parameters
    ----------
    product : xarray.DataArray
        Product on TP10, m3 m-3, dims ``(time, lat, lon)``.
    stations : mapping
        {station id: in-situ DataFrame as :func:`match_station` takes}.
    table : pandas.DataFrame
        Indexed by station id, with ``lat``, ``lon`` (e.g. the station table).
    Returns
    -------
    dict
        {station id: MatchResult}; stations outside the grid have status ``"outside grid"``.
    """
    missing = [sid for sid in stations if sid not in table.index]
    if missing:
        raise InputError(f"stations {missing[:5]} have no coordinates in the station table",
                         "index the table by station id with lat and lon columns")
    located = locate_stations(table.loc[list(stations)], grid)
    series = extract_station_series(product, located)
    out = {}
    for sid, data in stations.items():
        row = located.loc[sid]
        loc = dict(lat=float(row["lat"]), lon=float(row["lon"]))
        if row["row"] < 0:
            out[sid] = MatchResult.without_pairs(sid, "outside grid", settings=settings, **loc)
            continue
        out[sid] = match_station(series[str(sid)], data, max_dt, name=sid, settings=settings,
                                 row=int(row["row"]), col=int(row["col"]), **loc, **kw)
    return out


# ----------------------------------------------------------------------------- networks

def network_metrics(per_station: Mapping[str, MatchResult], *, min_stations: int = 1,
                    settings: MetricSettings = DEFAULT_SETTINGS) -> dict:
    """Network metrics in both forms.

    1. ``mean_of_stations``: arithmetic mean over stations of each station metric (R, bias,
       RMSE, ubRMSE, rho, anomaly_R), using the stations whose metric is a number (status
       ``"ok"``); ``n_stations`` is how many entered each mean. (R is averaged as is, not
       through Fisher z.)
    2. ``network_mean``: metrics of the network-mean series: at every product step the mean
       of the in-situ values and the mean of the product values over the SAME stations, those
       with an (unfrozen) pair at that step, kept where at least ``min_stations`` stations
       contribute (default 1; raise it to avoid steps where the mean jumps as stations drop
       in and out).

    Parameters
    ----------
    per_station : mapping
        {station id: MatchResult} of one network (and one product).
    min_stations : int
        Fewest stations at a step of the network-mean series.

    Returns
    -------
    dict
        ``mean_of_stations`` (dict: metric -> mean, plus ``n_stations``: metric -> count),
        ``network_mean`` (an :func:`all_metrics` dict), ``series`` (DataFrame: time ->
        ``product``, ``insitu``, ``n_stations``), ``n_stations`` (given) and
        ``n_stations_ok`` (with metrics status ``"ok"``).
    """
    if min_stations < 1:
        raise InputError(f"min_stations={min_stations} is below 1", "use 1 or more")
    means, used = {}, {}
    for k in SUMMARY_METRICS:
        vals = np.array([r.metrics.get(k, np.nan) for r in per_station.values()], dtype=float)
        ok = np.isfinite(vals)
        used[k] = int(ok.sum())
        means[k] = float(vals[ok].mean()) if ok.any() else float("nan")
    means["N"] = int(sum(r.metrics.get("N", 0) for r in per_station.values()))
    used_pairs = [r.pairs for r in per_station.values() if len(r.pairs)]
    if used_pairs:
        t = np.concatenate([p.index.asi8 for p in used_pairs])
        steps, inv = np.unique(t, return_inverse=True)
        n = np.bincount(inv, minlength=steps.size)
        cols = {c: np.bincount(inv, weights=np.concatenate([p[c].to_numpy(dtype=float) for p in used_pairs]),
                               minlength=steps.size) / n for c in ("product", "insitu")}
        series = pd.DataFrame({**cols, "n_stations": n}, index=pd.DatetimeIndex(steps.view("datetime64[ns]")))
        series = series[series["n_stations"] >= min_stations]
    else:
        series = pd.DataFrame({"product": [], "insitu": [], "n_stations": []},
                              index=pd.DatetimeIndex([], name="time"))
    series.index.name = "time"
    net = all_metrics(series["product"].to_numpy(dtype=float), series["insitu"].to_numpy(dtype=float),
                      series.index, settings=settings)
    return {
        "mean_of_stations": {**means, "n_stations": used},
        "network_mean": net,
        "series": series,
        "n_stations": len(per_station),
        "n_stations_ok": sum(r.metrics.get("status") == "ok" for r in per_station.values()),
    }


#: ranking rule per metric: True higher is better, False lower is better, "abs" |value| lower
RANK_RULES: dict[str, bool | str] = {
    "R": True, "rho": True, "anomaly_R": True, "RMSE": False, "ubRMSE": False, "bias": "abs",
}


def rank_models(table: pd.DataFrame, higher_is_better: Mapping[str, bool | str] | None = None) -> pd.DataFrame:
    """Rank models per metric (1 = best).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per model (index = model names, or a ``model`` column), one column per
        metric value.
    higher_is_better : mapping, optional
        {metric: True (higher better) | False (lower better) | "abs" (smaller |value| better,
        for bias)}; :data:`RANK_RULES` by default, restricted to the columns present.
        A named metric missing from ``table`` is an error.

    Returns
    -------
    pandas.DataFrame
        Same index as the models, one nullable-integer column of ranks per ranked metric.
        Ties share the best rank (``method="min"``); NaN values get no rank (<NA>).

    Examples
    --------
    >>> t = pd.DataFrame({"R": [0.8, 0.9, 0.7], "bias": [-0.01, 0.03, 0.02]},
    ...                  index=["unet", "pscnet", "rf"])
    >>> rank_models(t)
            R  bias
    unet    2     1
    pscnet  1     3
    rf      3     2
    """
    if "model" in table.columns:
        table = table.set_index("model")
    if higher_is_better is None:
        rules = {k: v for k, v in RANK_RULES.items() if k in table.columns}
    else:
        rules = dict(higher_is_better)
        for k in rules:
            if k not in table.columns:
                raise unknown_name("metric column", k, [str(c) for c in table.columns])
    out = {}
    for k, rule in rules.items():
        v = pd.to_numeric(table[k], errors="coerce").astype(float)
        if rule == "abs":
            v, asc = v.abs(), True
        elif rule is True or rule is False:
            asc = not rule
        else:
            raise InputError(f"ranking rule {rule!r} for {k!r} is not True, False or 'abs'",
                             "use True (higher is better), False (lower is better) or 'abs'")
        out[k] = v.rank(method="min", ascending=asc, na_option="keep").astype("Int64")
    return pd.DataFrame(out, index=table.index)


# ----------------------------------------------------------------------------- SMAP

def match_to_smap(product_on_smap_grid, smap_obs, *, dims: tuple[str, ...] = ("time", "y", "x")):
    """Align the product (already aggregated to SMAP cells) with SMAP and mask jointly.

    Parameters
    ----------
    product_on_smap_grid : xarray.DataArray
        Product, m3 m-3, dims ``(time, y, x)`` on the M36/M09 TP subset (from
        ``model.grids.Regridder``), at the product steps.
    smap_obs : xarray.DataArray
        SMAP soil moisture, m3 m-3, dims ``(time, y, x)``: each retrieval at the product step
        nearest its observation time (the analysis-ready store's ``smap_m36``/``smap_m09``).

    Returns
    -------
    (product, smap) : tuple of xarray.DataArray
        Inner join on the ``(time, y, x)`` coordinates, dims in ``dims`` order, NaN wherever
        either is NaN. Lazy for Dask inputs. Feed them to
        :func:`model.validation.metric_maps.metric_map`.
    """
    for name, da in (("product", product_on_smap_grid), ("smap", smap_obs)):
        if set(da.dims) != set(dims):
            raise InputError(f"{name} has dims {da.dims}, expected {dims}",
                             "regrid the product to the SMAP grid and select one overpass layout first")
    p, o = xr.align(product_on_smap_grid.transpose(*dims), smap_obs.transpose(*dims), join="inner")
    if p.sizes[dims[0]] == 0:
        raise InputError("product and SMAP share no time step",
                         "check the periods (both are UTC product steps)")
    both = p.notnull() & o.notnull()
    return p.where(both), o.where(both)
