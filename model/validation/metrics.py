"""Validation metrics: small pure functions, one convention, a series form (the map form:
:mod:`model.validation.metric_maps`).

Convention (DESIGN section 4)
-----------------------------
Every metric compares a **product** ``x`` (the downscaled soil moisture, or any model) with a
**reference** ``y`` (SMAP, an in-situ station, the virtual TP's truth), in that order:

========== ================================================================================
``N``       matched pairs: times where both ``x`` and ``y`` are finite (pairs with a NaN in
            either are dropped *jointly*, before anything else is computed)
``R``       Pearson correlation :math:`r = s_{xy} / \\sqrt{s_{xx} s_{yy}}` with its two-sided
            p-value (``R_p``, Student t with N-2 degrees of freedom) and a ``ci_level``
            confidence interval from Fisher's z (``R_ci_low``, ``R_ci_high``)
``bias``    :math:`\\overline{x} - \\overline{y}` = mean(product - reference): a product that
            is too wet has a POSITIVE bias. (pytesmo's ``bias(x, y)`` is the same
            mean(x) - mean(y), so call it with the product first.)
``RMSE``    :math:`\\sqrt{\\overline{(x - y)^2}}`
``ubRMSE``  :math:`\\sqrt{\\mathrm{RMSE}^2 - \\mathrm{bias}^2}`, computed as the (identical)
            :math:`\\sqrt{\\overline{(d - \\overline{d})^2}}`, d = x - y, which has no
            cancellation error
``rho``     Spearman rank correlation: Pearson R of the average ranks (ties share the mean of
            their ranks) of the matched pairs, with its p-value ``rho_p`` (t, N-2 dof, as
            :func:`scipy.stats.spearmanr`)
``anomaly_R`` Pearson R of the anomalies, anomaly = value minus its centred moving average
            over ``anomaly_window_days`` (35 d), see :func:`moving_average`
========== ================================================================================

Fewer than ``min_n`` (10) matched pairs: every value is NaN and the status is
``"insufficient data"``; never an exception. A series that is constant over its matched pairs
has no correlation: ``R``, ``rho`` and ``anomaly_R`` are NaN and the status is
``"constant series"`` (bias, RMSE and ubRMSE are still given).

Anomalies
---------
The moving average is TIME based (the timestamps, not the sample count), computed on the
matched pairs only (so product and reference climatologies see the same sampling):
for a pair at time t it is the mean of that series' matched values with
:math:`|t_j - t| \\le W/2` (both ends included). At the start and end of a series, and around
gaps, the window is simply truncated to the values that exist (no padding, no
extrapolation), which is what pytesmo's ``moving_average``/``calc_anomaly`` does; a moving
average needs ``anomaly_min_periods`` values in its window (default 1, pytesmo's
``min_obs``), otherwise that anomaly is NaN and the pair drops out of ``anomaly_R``
(``N_anomaly`` counts the pairs left). Irregular and gappy series are therefore handled
without resampling.

Forms
-----
* series (averaged) form: :func:`pearson_r`, :func:`bias`, ... (one metric, a
  :class:`MetricResult` with its status) and :func:`all_metrics` (a flat dict);
* map (spatial) form: :func:`model.validation.metric_maps.metric_map` reduces along ``dim``
  for every cell at once, numpy- or Dask-backed, lazily (with :func:`~model.validation.metric_maps.map_summary`
  and :func:`~model.validation.metric_maps.labels`; split out of this module, issue 14: no
  module over 800 lines).

Both forms call the same building blocks (``_moments``, ``_pearson``, ``_average_ranks``,
``_rank_moments``, ``_window_means``) through the one kernel :func:`_evaluate`, so there is exactly one definition
of each metric. (weatherbench2: an averaged form and its spatial twin.)

References
----------
Entekhabi, D., Reichle, R. H., Koster, R. D., & Crow, W. T. (2010). Performance metrics for
soil moisture retrievals and application requirements. J. Hydrometeorology, 11, 832-840.
(bias, RMSE, ubRMSE, R.)
Fisher, R. A. (1921). On the "probable error" of a coefficient of correlation deduced from a
small sample. Metron, 1, 3-32. (z transform for the confidence interval.)
Albergel, C., et al. (2013). Skill and global trend analysis of soil moisture from reanalyses
and microwave remote sensing. J. Hydrometeorology, 14, 1259-1277. (35-day moving-average
anomalies.)
pytesmo ``src/pytesmo/metrics/pairwise.py`` (the independent implementation in the tests).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import special

from model.errors import InputError, unknown_name

__all__ = [
    "METRICS", "STATUS", "MetricResult", "MetricSettings", "DEFAULT_SETTINGS",
    "all_metrics", "anomaly_r", "bias", "moving_average",
    "n_pairs", "pearson_r", "rmse", "spearman_r", "ubrmse",
]


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class MetricSettings:
    """Evaluation settings (weatherbench2 ``config.py`` style: a frozen dataclass).

    Attributes
    ----------
    min_n : int
        Fewest matched pairs for a metric; fewer -> ``"insufficient data"`` and NaN. >= 4
        (the Fisher-z interval needs N > 3).
    anomaly_window_days : float
        Width W of the centred moving-average window of the anomalies, days (35).
    anomaly_min_periods : int
        Fewest values in a window for its moving average (1, as pytesmo's ``min_obs``).
    ci_level : float
        Confidence level of the interval of R (0.95).
    block_size : int
        Elements (cells x times) processed at once by the kernel; bounds the memory of the
        temporaries (small blocks stay in cache and avoid page faults), never changes a result.
    threads : int or None
        Threads over blocks for NUMPY-backed maps (None: the usable cores). Dask-backed maps
        use Dask's scheduler instead; the series form uses one. Never changes a result.
    """

    min_n: int = 10
    anomaly_window_days: float = 35.0
    anomaly_min_periods: int = 1
    ci_level: float = 0.95
    block_size: int = 2**17
    threads: int | None = None

    def __post_init__(self):
        if int(self.min_n) != self.min_n or self.min_n < 4:
            raise InputError(f"min_n={self.min_n!r} is not an integer >= 4",
                             "use min_n >= 4 (the Fisher-z interval of R needs more than 3 pairs)")
        if not self.anomaly_window_days > 0:
            raise InputError(f"anomaly_window_days={self.anomaly_window_days!r} is not positive",
                             "give the moving-average window in days, e.g. 35")
        if int(self.anomaly_min_periods) != self.anomaly_min_periods or self.anomaly_min_periods < 1:
            raise InputError(f"anomaly_min_periods={self.anomaly_min_periods!r} is not an integer >= 1",
                             "use 1 (pytesmo's default) or more")
        if not 0 < self.ci_level < 1:
            raise InputError(f"ci_level={self.ci_level!r} is not in (0, 1)", "use e.g. 0.95")
        if self.block_size < 1:
            raise InputError(f"block_size={self.block_size!r} is not positive", "use e.g. 2**17")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads={self.threads!r} is not positive", "use None (all cores) or >= 1")


DEFAULT_SETTINGS = MetricSettings()

#: metric groups (what ``metrics=`` selects) -> the variables each one produces
METRICS: dict[str, tuple[str, ...]] = {
    "R": ("R", "R_p", "R_ci_low", "R_ci_high"),
    "bias": ("bias",),
    "RMSE": ("RMSE",),
    "ubRMSE": ("ubRMSE",),
    "rho": ("rho", "rho_p"),
    "anomaly_R": ("anomaly_R", "N_anomaly"),
}
ALL_METRICS: tuple[str, ...] = tuple(METRICS)

#: status codes of the map form (``status`` variable) and their labels in the series form
STATUS: dict[int, str] = {0: "ok", 1: "insufficient data", 2: "constant series"}
_OK, _INSUFFICIENT, _CONSTANT = 0, 1, 2

_ATTRS = {
    "R": dict(long_name="Pearson correlation coefficient (product vs reference)", units="1"),
    "R_p": dict(long_name="two-sided p-value of R (t test, N-2 degrees of freedom)", units="1"),
    "R_ci_low": dict(long_name="lower bound of the confidence interval of R (Fisher z)", units="1"),
    "R_ci_high": dict(long_name="upper bound of the confidence interval of R (Fisher z)", units="1"),
    "bias": dict(long_name="bias, mean(product - reference)", units="m3 m-3"),
    "RMSE": dict(long_name="root-mean-square error", units="m3 m-3"),
    "ubRMSE": dict(long_name="unbiased RMSE, sqrt(RMSE^2 - bias^2)", units="m3 m-3"),
    "rho": dict(long_name="Spearman rank correlation coefficient", units="1"),
    "rho_p": dict(long_name="two-sided p-value of rho (t test, N-2 degrees of freedom)", units="1"),
    "anomaly_R": dict(long_name="Pearson R of the moving-average anomalies", units="1"),
    "N_anomaly": dict(long_name="number of matched anomaly pairs", units="1"),
    "N": dict(long_name="number of matched pairs", units="1"),
}


def _check_metrics(metrics: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    out = []
    for m in metrics:
        if m not in METRICS:
            raise unknown_name("metric", m, list(METRICS))
        if m not in out:
            out.append(m)
    return tuple(out)


def _variables(groups: Sequence[str]) -> tuple[str, ...]:
    names = ["N"]
    for g in groups:
        names.extend(METRICS[g])
    return tuple(names) + ("status",)


# ----------------------------------------------------------------------------- building blocks
# All operate on 2-D arrays (cells, time) along the LAST axis, with a boolean mask of the
# values that take part. They are the one definition of each metric.

class _Moments:
    __slots__ = ("n", "mx", "my", "sxx", "syy", "sxy", "sdd")

    def __init__(self, n, mx, my, sxx, syy, sxy, sdd):
        self.n, self.mx, self.my, self.sxx, self.syy, self.sxy, self.sdd = n, mx, my, sxx, syy, sxy, sdd


def _centred(v: np.ndarray, m: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row mean of the masked values, values minus that mean with 0 outside the mask)."""
    c = np.where(m, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = c.sum(-1) / n
    c -= np.where(n > 0, mean, 0.0)[:, None]
    c *= m
    return mean, c


def _moments(x: np.ndarray, y: np.ndarray, m: np.ndarray, *, keep_centred: bool = False,
             differences: bool = True):
    """Count, means and centred sums of squares/products of the masked pairs (two-pass).

    ``s_xx = sum (x - mean x)^2``, ``s_xy``, ``s_yy`` likewise, ``s_dd = sum (d - mean d)^2``
    with d = x - y (NaN unless ``differences``). With ``keep_centred`` also returns the
    centred arrays (0 outside ``m``).
    """
    n = m.sum(-1)
    mx, dx = _centred(x, m, n)
    my, dy = _centred(y, m, n)
    sxx = np.einsum("ij,ij->i", dx, dx)
    syy = np.einsum("ij,ij->i", dy, dy)
    sxy = np.einsum("ij,ij->i", dx, dy)
    if differences:
        dd = dx - dy
        sdd = np.einsum("ij,ij->i", dd, dd)
    else:
        sdd = np.full(n.shape, np.nan)
    mo = _Moments(n, mx, my, sxx, syy, sxy, sdd)
    return (mo, dx, dy) if keep_centred else mo


def _pearson(mo: _Moments) -> np.ndarray:
    """:math:`r = s_{xy}/\\sqrt{s_{xx}s_{yy}}`, NaN where either variance is zero."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = mo.sxy / np.sqrt(mo.sxx * mo.syy)
    r = np.where((mo.sxx > 0) & (mo.syy > 0), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def t_two_sided_p(t, dof):
    """Two-sided p of a Student t statistic with ``dof`` degrees of freedom."""
    return 2.0 * special.stdtr(dof, -np.abs(t))


def _r_pvalue(r: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p of H0: no correlation; t = r sqrt((n-2)/(1-r^2)), Student t, n-2 dof.

    This is exact for Pearson's R under bivariate normality (identical to the beta form of
    :func:`scipy.stats.pearsonr`) and the usual approximation for Spearman's rho (as
    :func:`scipy.stats.spearmanr`).
    """
    dof = n.astype(np.float64) - 2
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(r) * np.sqrt(dof / ((1.0 - r) * (1.0 + r)))
        p = t_two_sided_p(t, dof)
    return np.where(np.isfinite(r) & (dof > 0), np.clip(p, 0.0, 1.0), np.nan)


def _r_confidence_interval(r: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Fisher z interval: tanh(artanh(r) -/+ z_{(1+level)/2} / sqrt(n - 3))."""
    zc = special.ndtri(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.arctanh(r)
        se = 1.0 / np.sqrt(n.astype(np.float64) - 3.0)
        lo, hi = np.tanh(z - zc * se), np.tanh(z + zc * se)
    ok = np.isfinite(r) & (n > 3)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def _is_constant(v: np.ndarray, m: np.ndarray, mean: np.ndarray, sxx: np.ndarray, n: np.ndarray) -> np.ndarray:
    """True where the masked values of a row are all equal (max == min, exact).

    Only rows whose spread is already tiny (sqrt(s_xx/n) <= 1e-8 |mean|) are checked
    exactly: a truly constant row always is one of them (its two-pass s_xx is at most
    rounding noise), so this is exact and cheap.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        cand = np.flatnonzero(np.sqrt(sxx / n) <= 1e-8 * np.abs(mean))
    out = np.zeros(v.shape[0], bool)
    if cand.size:
        vc, mc = v[cand], m[cand]
        out[cand] = np.where(mc, vc, -np.inf).max(-1) == np.where(mc, vc, np.inf).min(-1)
    return out


def _average_ranks(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the masked values of each row, ties given their average rank; 0 outside
    the mask.

    Vectorised over rows (one argsort along the last axis, masked-out values sorted last).
    """
    nrow, t = v.shape
    w = np.where(m, v + 0.0, np.inf)            # + 0.0: -0.0 ties with 0.0
    order = np.argsort(w, axis=-1)
    order += (np.arange(nrow) * t)[:, None]      # flat indices: 1-D take/assign are faster
    order = order.ravel()
    sv = np.take(w.ravel(), order).reshape(nrow, t)
    pos = np.arange(t)
    inside = pos < m.sum(-1)[:, None]            # sorted positions that hold masked-in values
    ranks_sorted = np.where(inside, pos + 1.0, 0.0)
    same = sv[:, 1:] == sv[:, :-1]                # equal to the previous sorted value
    same &= inside[:, 1:]                         # ...and both inside the mask
    tied = np.flatnonzero(same.any(-1))
    if tied.size:                                 # average the ranks of tie groups
        s = same[tied]
        start_flag = np.ones((tied.size, t), bool)
        start_flag[:, 1:] = ~s
        end_flag = np.ones((tied.size, t), bool)
        end_flag[:, :-1] = ~s
        start = np.maximum.accumulate(np.where(start_flag, pos, 0), axis=-1)
        end = np.minimum.accumulate(np.where(end_flag, pos, t)[:, ::-1], axis=-1)[:, ::-1]
        ranks_sorted[tied] = np.where(inside[tied], (start + end) * 0.5 + 1.0, 0.0)
    ranks = np.empty(nrow * t, np.float64)
    ranks[order] = ranks_sorted.ravel()
    return ranks.reshape(nrow, t)


def _rank_moments(rx: np.ndarray, ry: np.ndarray, n: np.ndarray) -> _Moments:
    """:class:`_Moments` of average ranks (0 outside the mask), EXACTLY.

    Average ranks are multiples of 1/2 with mean (n+1)/2, so
    ``s_xy = sum(rx ry) - n ((n+1)/2)^2`` is computed without rounding (every term is a
    multiple of 1/4 far below 2^53): the same Pearson R of the ranks, with no centring pass.
    """
    c = (n + 1.0) / 2.0
    nc2 = n * c * c
    sxx = np.einsum("ij,ij->i", rx, rx) - nc2
    syy = np.einsum("ij,ij->i", ry, ry) - nc2
    sxy = np.einsum("ij,ij->i", rx, ry) - nc2
    return _Moments(n, c, c, sxx, syy, sxy, np.full(n.shape, np.nan))


def _window_bounds(times_ns: np.ndarray, window_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Per time t: index range [lo, hi) of the times with |t_j - t| <= W/2 (sorted times)."""
    half = np.int64(round(window_days * 86400e9 / 2))
    lo = np.searchsorted(times_ns, times_ns - half, side="left")
    hi = np.searchsorted(times_ns, times_ns + half, side="right")
    return lo, hi


def _window_counts(m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of masked values in each time window (rows x time)."""
    nrow, t = m.shape
    cn = np.zeros((nrow, t + 1), np.int32)
    np.cumsum(m, axis=-1, dtype=np.int32, out=cn[:, 1:])
    return np.take(cn, hi, axis=1) - np.take(cn, lo, axis=1)


def _window_means(c: np.ndarray, k: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Time-window means of ``c`` (0 outside the mask) given the window counts ``k``.

    Window sums are differences of cumulative sums, so the cost is O(time) per row
    whatever the window; ``c`` should be centred on the row mean for precision.
    """
    nrow, t = c.shape
    cs = np.zeros((nrow, t + 1))
    np.cumsum(c, axis=-1, out=cs[:, 1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.take(cs, hi, axis=1) - np.take(cs, lo, axis=1)) / k


# ----------------------------------------------------------------------------- the kernel

def _nan(shape):
    return np.full(shape, np.nan)


def _evaluate_block(x, y, bounds, s: MetricSettings, groups) -> dict[str, np.ndarray]:
    """All requested metrics for a block of rows (cells, time); see :func:`_evaluate`."""
    nrow = x.shape[0]
    xf = np.ascontiguousarray(x, dtype=np.float64)
    yf = np.ascontiguousarray(y, dtype=np.float64)
    m = np.isfinite(xf) & np.isfinite(yf)
    n = m.sum(-1)
    out = {"N": n.astype(np.int64)}
    names = _variables(groups)
    for name in names:
        if name not in ("N", "status"):
            out[name] = np.zeros(nrow, np.int64) if name == "N_anomaly" else _nan(nrow)
    status = np.full(nrow, _INSUFFICIENT, np.int8)
    rows = np.flatnonzero(n >= s.min_n)            # the cells with enough data only
    if rows.size:
        if rows.size < nrow:
            x, y, xf, yf, m = x[rows], y[rows], xf[rows], yf[rows], m[rows]
        mo, cx, cy = _moments(xf, yf, m, keep_centred=True)
        const = (_is_constant(xf, m, mo.mx, mo.sxx, mo.n)
                 | _is_constant(yf, m, mo.my, mo.syy, mo.n))
        status[rows] = np.where(const, _CONSTANT, _OK)
        if "R" in groups:
            r = np.where(const, np.nan, _pearson(mo))
            out["R"][rows] = r
            out["R_p"][rows] = _r_pvalue(r, mo.n)
            lo, hi = _r_confidence_interval(r, mo.n, s.ci_level)
            out["R_ci_low"][rows], out["R_ci_high"][rows] = lo, hi
        if "bias" in groups:
            out["bias"][rows] = mo.mx - mo.my
        if "RMSE" in groups or "ubRMSE" in groups:
            ubmse = mo.sdd / mo.n
            if "RMSE" in groups:
                out["RMSE"][rows] = np.sqrt((mo.mx - mo.my) ** 2 + ubmse)
            if "ubRMSE" in groups:
                out["ubRMSE"][rows] = np.sqrt(ubmse)
        if "rho" in groups:
            # float32 data are ranked in float32 (same order, less memory traffic)
            mr = _rank_moments(_average_ranks(x if _narrow(x) else xf, m),
                               _average_ranks(y if _narrow(y) else yf, m), mo.n)
            rho = np.where(const, np.nan, _pearson(mr))
            out["rho"][rows] = rho
            out["rho_p"][rows] = _r_pvalue(rho, mr.n)
        if "anomaly_R" in groups and bounds is not None:   # no timestamps: stays NaN
            lo_i, hi_i = bounds
            k = _window_counts(m, lo_i, hi_i)
            # anomaly = x - (window mean of x) = cx - (window mean of cx), cx = x - mean x
            cx -= _window_means(cx, k, lo_i, hi_i)
            cy -= _window_means(cy, k, lo_i, hi_i)
            ma_r = _moments(cx, cy, m & (k >= s.anomaly_min_periods), differences=False)
            ar = np.where(const | (ma_r.n < s.min_n), np.nan, _pearson(ma_r))
            out["anomaly_R"][rows] = ar
            out["N_anomaly"][rows] = ma_r.n
    out["status"] = status
    return {k: out[k] for k in names}


def _narrow(v: np.ndarray) -> bool:
    return v.dtype.kind == "f" and v.dtype.itemsize <= 4


def _evaluate(x: np.ndarray, y: np.ndarray, times_ns: np.ndarray | None,
              s: MetricSettings, groups: tuple[str, ...], threads: int = 1) -> dict[str, np.ndarray]:
    """THE kernel: metrics of x (product) vs y (reference) along the last axis.

    ``x``, ``y``: arrays (..., time) of any float dtype (they are not copied as a whole);
    ``times_ns``: int64 nanoseconds (time,), increasing, or None. Returns arrays of shape
    ``x.shape[:-1]``. Work proceeds in blocks of whole rows (cells) bounded by
    ``s.block_size`` elements; each block is fully vectorised.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    x, y = np.broadcast_arrays(x, y)
    lead, t = x.shape[:-1], x.shape[-1]
    ncell = int(np.prod(lead, dtype=np.int64))
    x2 = x.reshape(ncell, t)
    y2 = y.reshape(ncell, t)
    bounds = None
    if "anomaly_R" in groups and times_ns is not None:
        bounds = _window_bounds(times_ns, s.anomaly_window_days)
    names = _variables(groups)
    out = {k: np.empty(ncell, np.int8 if k == "status" else np.int64 if k in ("N", "N_anomaly")
                       else np.float64) for k in names}
    step = max(1, s.block_size // max(t, 1))

    def run(start):                               # one block of rows, fully vectorised
        res = _evaluate_block(x2[start:start + step], y2[start:start + step], bounds, s, groups)
        for k in names:
            out[k][start:start + step] = res[k]

    starts = range(0, ncell, step)                # blocks of rows, NOT a loop over cells
    if threads > 1 and len(starts) > 1:           # numpy releases the GIL in the heavy parts

        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return {k: v.reshape(lead) for k, v in out.items()}


# ----------------------------------------------------------------------------- series form

@dataclass(frozen=True)
class MetricResult:
    """One metric of one pair of series, with its status.

    ``float(result)`` is its value (NaN unless ``status == "ok"``).
    """

    name: str
    value: float
    status: str
    n: int
    p_value: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")

    def __float__(self) -> float:
        return float(self.value)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


def _as_times_ns(times) -> np.ndarray:
    idx = pd.DatetimeIndex(times)
    if idx.hasnans:
        raise InputError(f"{int(idx.isna().sum())} timestamps are missing (NaT)",
                         "drop the values without a time first")
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").asi8


def _prepare_1d(x, y, times):
    """1-D float arrays (kept in their own dtype when float) and sorted int64 times or None."""
    if times is None:
        for s in (x, y):
            if isinstance(s, pd.Series) and isinstance(s.index, pd.DatetimeIndex):
                times = s.index
                break
    if isinstance(x, pd.Series) and isinstance(y, pd.Series) and not x.index.equals(y.index):
        raise InputError("product and reference series have different indexes",
                         "align them first (e.g. x, y = x.align(y, join='inner'))")
    xa = np.asarray(x)
    ya = np.asarray(y)
    if xa.dtype.kind != "f":
        xa = xa.astype(np.float64)
    if ya.dtype.kind != "f":
        ya = ya.astype(np.float64)
    if xa.ndim != 1 or ya.ndim != 1 or xa.shape != ya.shape:
        raise InputError(f"expected two 1-D series of equal length, got shapes {xa.shape} and {ya.shape}",
                         "pass the matched product and reference values (use metric_map for fields)")
    tns = None
    if times is not None:
        tns = _as_times_ns(times)
        if tns.shape != xa.shape:
            raise InputError(f"times has {tns.size} values for series of length {xa.size}",
                             "give one timestamp per value")
        if np.any(np.diff(tns) < 0):
            order = np.argsort(tns, kind="stable")
            xa, ya, tns = xa[order], ya[order], tns[order]
    return xa, ya, tns


def _scalar_dict(res: dict[str, np.ndarray]) -> dict:
    out = {}
    for k, v in res.items():
        v = v[()]
        if k == "status":
            out[k] = STATUS[int(v)]
        elif k in ("N", "N_anomaly"):
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


def all_metrics(x, y, times=None, *, metrics: Iterable[str] = ALL_METRICS,
                settings: MetricSettings = DEFAULT_SETTINGS) -> dict:
    """Every metric of a product series against a reference series (the averaged form).

    Parameters
    ----------
    x : array-like or pandas.Series, (time,)
        Product, volumetric soil moisture, m3 m-3.
    y : array-like or pandas.Series, (time,)
        Reference at the same times, m3 m-3. Pairs with a NaN in either are dropped jointly.
    times : array-like of datetime, (time,), optional
        Timestamps (UTC) for the anomaly R; taken from a Series' DatetimeIndex if not given.
        Without timestamps ``anomaly_R`` is NaN and ``anomaly_status`` is ``"no times"``.
    metrics : iterable of str
        Groups of :data:`METRICS` to compute (all by default).
    settings : MetricSettings

    Returns
    -------
    dict
        The variables of :func:`~model.validation.metric_maps.metric_map` as Python scalars (``N``, ``R``, ``R_p``,
        ``R_ci_low``, ``R_ci_high``, ``bias``, ``RMSE``, ``ubRMSE``, ``rho``, ``rho_p``,
        ``anomaly_R``, ``N_anomaly``), ``status`` (``"ok"``, ``"insufficient data"`` or
        ``"constant series"``) and, with ``anomaly_R``, ``anomaly_status``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.linspace(0.1, 0.3, 12)
    >>> r = all_metrics(y + 0.02, y)
    >>> round(r["bias"], 6), round(r["ubRMSE"], 6), r["status"]
    (0.02, 0.0, 'ok')
    >>> all_metrics(y[:5], y[:5])["status"]
    'insufficient data'
    """
    groups = _check_metrics(metrics)
    xa, ya, tns = _prepare_1d(x, y, times)
    res = _scalar_dict(_evaluate(xa, ya, tns, settings, groups))
    if "anomaly_R" in groups:
        if res["status"] != "ok":
            res["anomaly_status"] = res["status"]
        elif tns is None:
            res["anomaly_status"] = "no times"
        elif res["N_anomaly"] < settings.min_n:
            res["anomaly_status"] = "insufficient data"
        elif not np.isfinite(res["anomaly_R"]):
            res["anomaly_status"] = "constant series"
        else:
            res["anomaly_status"] = "ok"
    return res


def _result(name, res, value_key, status=None, **extra) -> MetricResult:
    status = status or res["status"]
    value = res[value_key]
    if status == "constant series" and np.isfinite(value):
        status = "ok"                          # bias/RMSE/ubRMSE are defined for a constant series
    return MetricResult(name=name, value=value, status=status,
                        n=res["N_anomaly"] if value_key == "anomaly_R" else res["N"],
                        **{k: res[v] for k, v in extra.items()})


def pearson_r(x, y, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Pearson correlation coefficient of product ``x`` and reference ``y``.

    .. math:: R = \\frac{\\sum (x_i-\\bar x)(y_i-\\bar y)}
                       {\\sqrt{\\sum (x_i-\\bar x)^2 \\sum (y_i-\\bar y)^2}}

    over the N jointly valid pairs. ``p_value``: two-sided, :math:`t = R\\sqrt{(N-2)/(1-R^2)}`
    on N-2 degrees of freedom. ``ci_low``/``ci_high``: Fisher z interval
    :math:`\\tanh(\\operatorname{artanh} R \\mp z_{(1+c)/2}/\\sqrt{N-3})`, c = ``ci_level``.

    Parameters
    ----------
    x, y : array-like (time,)
        Product and reference soil moisture, m3 m-3.

    Returns
    -------
    MetricResult
        status ``"insufficient data"`` (N < min_n) or ``"constant series"`` give NaN.

    References
    ----------
    Fisher (1921); Bonett & Wright (2000), Psychometrika 65, 23-28 (as pytesmo
    ``pearson_r_ci``).

    Examples
    --------
    >>> r = pearson_r([1., 2, 3, 4, 5, 6, 7, 8, 9, 10], [2., 4, 6, 8, 10, 12, 14, 16, 18, 21])
    >>> round(r.value, 4), r.status, r.n
    (0.9991, 'ok', 10)
    """
    res = all_metrics(x, y, metrics=("R",), settings=settings)
    return _result("R", res, "R", p_value="R_p", ci_low="R_ci_low", ci_high="R_ci_high")


def spearman_r(x, y, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Spearman rank correlation: Pearson R of the average ranks of the matched pairs.

    .. math:: \\rho = R(\\operatorname{rank} x, \\operatorname{rank} y)

    Ties take the mean of their ranks (``scipy.stats.rankdata(method="average")``);
    ``p_value`` as :func:`scipy.stats.spearmanr` (t, N-2 dof).

    References
    ----------
    Spearman, C. (1904). The proof and measurement of association between two things.
    Am. J. Psychol., 15, 72-101.
    """
    res = all_metrics(x, y, metrics=("rho",), settings=settings)
    return _result("rho", res, "rho", p_value="rho_p")


def bias(x, y, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Bias = mean(product - reference) = :math:`\\bar x - \\bar y` (positive: product too wet).

    Same sign as pytesmo ``bias(x, y)`` (mean(x) - mean(y)) with the product as ``x``.

    References
    ----------
    Entekhabi et al. (2010), J. Hydrometeor. 11, 832-840.
    """
    return _result("bias", all_metrics(x, y, metrics=("bias",), settings=settings), "bias")


def rmse(x, y, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Root-mean-square error :math:`\\sqrt{\\frac{1}{N}\\sum (x_i - y_i)^2}` (pytesmo ``rmsd``).

    References
    ----------
    Entekhabi et al. (2010).
    """
    return _result("RMSE", all_metrics(x, y, metrics=("RMSE",), settings=settings), "RMSE")


def ubrmse(x, y, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Unbiased RMSE :math:`\\sqrt{\\mathrm{RMSE}^2 - \\mathrm{bias}^2}
    = \\sqrt{\\frac{1}{N}\\sum (d_i - \\bar d)^2}`, d = x - y (pytesmo ``ubrmsd``, ddof=0).

    References
    ----------
    Entekhabi et al. (2010).
    """
    return _result("ubRMSE", all_metrics(x, y, metrics=("ubRMSE",), settings=settings), "ubRMSE")


def anomaly_r(x, y, times, *, settings: MetricSettings = DEFAULT_SETTINGS) -> MetricResult:
    """Pearson R of the anomalies from a centred, time-based moving average.

    .. math:: a_x(t) = x(t) - \\operatorname{mean}\\{x(t_j) : |t_j - t| \\le W/2\\}

    on the jointly valid pairs, W = ``anomaly_window_days`` (see the module notes on edges
    and gaps); ``n`` of the result counts the anomaly pairs.

    Parameters
    ----------
    x, y : array-like (time,)
        Product and reference, m3 m-3.
    times : array-like of datetime (time,)
        UTC timestamps (any order; sorted here).

    References
    ----------
    Albergel et al. (2013); pytesmo ``time_series.anomaly.calc_anomaly(window_size=35)``.
    """
    if times is None:
        raise InputError("anomaly_r needs the timestamps of the values",
                         "pass times= (or Series with a DatetimeIndex to all_metrics)")
    res = all_metrics(x, y, times, metrics=("anomaly_R",), settings=settings)
    return _result("anomaly_R", res, "anomaly_R", status=res["anomaly_status"])


def n_pairs(x, y) -> int:
    """N: number of pairs where both product and reference are finite."""
    xa, ya, _ = _prepare_1d(x, y, None)
    return int(np.count_nonzero(np.isfinite(xa) & np.isfinite(ya)))


def moving_average(values, times, *, window_days: float = 35.0, min_periods: int = 1) -> np.ndarray:
    """Centred, time-based moving average of a (gappy, irregular) series.

    mean of the finite values with :math:`|t_j - t| \\le W/2`; NaN where the value itself
    is NaN or the window holds fewer than ``min_periods`` values. The building block of the
    anomalies (exposed for plots and tests).

    Parameters
    ----------
    values : array-like (time,)
    times : array-like of datetime (time,), increasing
    window_days : float
    min_periods : int
    """
    v = np.asarray(values, dtype=np.float64)[None, :]
    tns = _as_times_ns(times)
    if np.any(np.diff(tns) < 0):
        raise InputError("times are not increasing", "sort the series by time first")
    m = np.isfinite(v)
    lo, hi = _window_bounds(tns, window_days)
    mean, c = _centred(v, m, m.sum(-1))
    k = _window_counts(m, lo, hi)
    out = _window_means(c, k, lo, hi) + mean[:, None]
    return np.where(m & (k >= min_periods), out, np.nan)[0]
