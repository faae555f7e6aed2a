"""Science scores that tell methods apart: thawed/frozen split, fine-scale R, pooled metrics,
seed summaries, paired block-bootstrap intervals and temporal generalisation.

Small pure functions on numpy arrays (pytesmo / weatherbench2 style); each is tested against an
independent reference (hand-computed cases, ``scipy.stats``) in ``tests/validation/test_skill.py``.
Definitions (also in ``docs/validation.md``):

* **thawed** (:func:`thawed_mask`): a 10 km cell-step is thawed when the truth's soil
  temperature is above 0 degC (the virtual TP's truth file carries ``soil_temperature``);
  where the truth has none, ERA5-Land's top-layer soil temperature ``stl1`` is used instead
  (> 273.15 K). Frozen = not thawed. Headline truth scores use thawed steps only, as the
  stations do (DESIGN section 4); frozen steps are scored apart.
* **coarse parent** (:func:`coarse_parent`): a 10 km field aggregated to SMAP's 36 km cells with
  the project's exact area-overlap operator (TP10 -> M36) and mapped back (M36 -> TP10, area
  overlap again, so a 10 km cell that straddles two 36 km cells gets their area-weighted mix).
* **fine-scale part**: value minus its coarse parent. Product and truth are masked JOINTLY
  (only cell-steps where both are finite) before aggregation, so both parents average the same
  cells. **Fine-scale R** (:func:`fine_scale_r`) = Pearson R of the product's fine-scale part
  with the truth's, per cell over time (mean over cells reported) and pooled over every
  cell-step.
* **pooled ("overall") metrics** (:func:`pooled_metrics`): :func:`model.validation.metrics.all_metrics`
  of every matched pair of every cell and step taken as one sample, as the paper's scatter
  figure (its "mean R 0.881 against SMAP").
* **paired block bootstrap** (:func:`block_bootstrap_difference`): the test period is cut into
  consecutive blocks of ``block_days`` (3) days; a resample draws as many blocks with
  replacement, the SAME blocks for both methods (paired), and recomputes each method's
  cell-mean R and ubRMSE on the same cells and steps; the 90 % interval is the 5th-95th
  percentile of the resampled differences (percentile method) and the paired test's p-value is
  two-sided: ``2 min(P(d* <= 0), P(d* >= 0))`` (capped at 1).
* **temporal generalisation** (:func:`relative_change`): as the paper, the relative change of a
  metric from the training period to the test period, ``(test - train) / |train|``.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..grids import regridder
from .metrics import DEFAULT_SETTINGS, MetricSettings, all_metrics, t_two_sided_p

__all__ = ["FREEZING_K", "block_bootstrap_difference", "block_index", "cell_scores", "coarse_parent",
           "fine_scale_anomaly", "fine_scale_r", "POOLED", "pooled_metrics", "relative_change", "seed_summary",
           "thawed_mask", "to_celsius"]

FREEZING_K = 273.15


# ----------------------------------------------------------------------------- frozen soil

def to_celsius(values, units: str | None) -> np.ndarray:
    """Soil temperature in degC from K (``units`` "K"/"kelvin") or degC (anything else)."""
    v = np.asarray(values, np.float64)
    return v - FREEZING_K if str(units).strip().lower() in ("k", "kelvin") else v


def thawed_mask(truth_soil_temperature=None, era5_stl1=None) -> tuple[np.ndarray, str]:
    """Thawed cell-steps and the source of the decision.

    Parameters
    ----------
    truth_soil_temperature : array, degC, optional
        The truth's soil temperature (virtual TP). Used wherever it is finite.
    era5_stl1 : array, K, optional
        ERA5-Land top-layer soil temperature, same shape; used where the truth's is missing.

    Returns
    -------
    (mask, source)
        ``mask`` True where thawed (T > 0 degC); cell-steps with neither temperature count as
        thawed (no evidence of frost, as the stations' convention). ``source`` says which input
        decided: ``"truth soil_temperature"``, ``"ERA5-Land stl1"`` or both joined by ``" + "``.
    """
    if truth_soil_temperature is None and era5_stl1 is None:
        raise InputError("no soil temperature to tell frozen from thawed steps",
                         "give the truth's soil_temperature (degC) or ERA5-Land stl1 (K)")
    shape = np.shape(truth_soil_temperature if truth_soil_temperature is not None else era5_stl1)
    thawed = np.ones(shape, bool)
    decided = np.zeros(shape, bool)
    src = []
    if truth_soil_temperature is not None:
        t = np.asarray(truth_soil_temperature, np.float64)
        ok = np.isfinite(t)
        thawed[ok] = t[ok] > 0.0
        decided |= ok
        src.append("truth soil_temperature")
    if era5_stl1 is not None:
        e = np.asarray(era5_stl1, np.float64)
        if e.shape != shape:
            raise InputError(f"ERA5-Land stl1 has shape {e.shape}, the truth's temperature {shape}",
                             "select the same steps and cells for both")
        use = ~decided & np.isfinite(e)
        if use.any() or truth_soil_temperature is None:
            thawed[use] = e[use] > FREEZING_K
            src.append("ERA5-Land stl1")
    return thawed, " + ".join(src)


# ----------------------------------------------------------------------------- fine scale

def coarse_parent(field: np.ndarray, up: Callable | None = None, down: Callable | None = None) -> np.ndarray:
    """The 36 km parent of a 10 km field, back on the 10 km grid.

    ``up`` aggregates (..., y, x) to the coarse grid, ``down`` maps coarse values back; both
    default to the project's exact area-overlap regridders TP10 -> M36 -> TP10. NaN cells do not
    take part in the aggregation (the regridder's ``min_coverage`` rule applies).
    """
    if up is None or down is None:
        up = up or regridder("TP10", "M36")
        down = down or regridder("M36", "TP10")
    f = np.asarray(field)
    parent = down(up(f))
    return np.where(np.isfinite(f), parent, np.nan)


def fine_scale_anomaly(product: np.ndarray, truth: np.ndarray, up=None, down=None,
                       valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fine-scale parts (value minus coarse parent) of product and truth, (time, y, x).

    Both fields are masked jointly (and with ``valid`` if given) before aggregation.
    """
    p = np.asarray(product, np.float64)
    t = np.asarray(truth, np.float64)
    m = np.isfinite(p) & np.isfinite(t)
    if valid is not None:
        m &= np.asarray(valid, bool)
    p = np.where(m, p, np.nan)
    t = np.where(m, t, np.nan)
    return p - coarse_parent(p, up, down), t - coarse_parent(t, up, down)


def _time_r(x: np.ndarray, y: np.ndarray, min_n: int) -> np.ndarray:
    """Pearson R along the first (time) axis of (time, ...) arrays; NaN pairs dropped jointly.

    Time-first, as the fields are stored: reductions over axis 0 need no transposed copy."""
    m = np.isfinite(x) & np.isfinite(y)
    n = m.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(m, x, 0).sum(0) / n
        my = np.where(m, y, 0).sum(0) / n
        dx = np.where(m, x - mx, 0)
        dy = np.where(m, y - my, 0)
        sxx, syy, sxy = (dx * dx).sum(0), (dy * dy).sum(0), (dx * dy).sum(0)
        r = sxy / np.sqrt(sxx * syy)
    return np.where((n >= min_n) & (sxx > 0) & (syy > 0), np.clip(r, -1, 1), np.nan)


def fine_scale_r(product: np.ndarray, truth: np.ndarray, up=None, down=None, valid=None,
                 min_n: int = DEFAULT_SETTINGS.min_n) -> dict:
    """Fine-scale R of a product against the truth, per cell and pooled.

    Parameters
    ----------
    product, truth : (time, y, x) arrays on TP10 (or on any grid ``up``/``down`` accept), m3 m-3.
    valid : (time, y, x) bool, optional
        Cell-steps that take part (e.g. thawed).

    Returns
    -------
    dict
        ``fine_R_map`` (y, x) per-cell R over time (NaN with fewer than ``min_n`` pairs),
        ``fine_R`` its mean over cells, ``fine_R_pooled`` the R of all cell-steps together,
        ``fine_N`` the pooled pair count, ``fine_sd_product``/``fine_sd_truth`` the pooled
        standard deviations of the fine-scale parts (m3 m-3).
    """
    fp, ft = fine_scale_anomaly(product, truth, up, down, valid)
    rmap = _time_r(fp, ft, min_n)
    pooled = _time_r(fp.reshape(-1), ft.reshape(-1), min_n)[()]
    ok = np.isfinite(fp) & np.isfinite(ft)
    return {"fine_R_map": rmap,
            "fine_R": float(np.nanmean(rmap)) if np.isfinite(rmap).any() else np.nan,
            "fine_R_pooled": float(pooled), "fine_N": int(ok.sum()),
            "fine_sd_product": float(np.std(fp[ok])) if ok.any() else np.nan,
            "fine_sd_truth": float(np.std(ft[ok])) if ok.any() else np.nan}


# ----------------------------------------------------------------------------- pooled

#: the pooled metrics the tables use; Spearman's rho (``"rho"``) is asked for only where shown:
#: ranking millions of pooled pairs cost ~1 s per product in the truth table, which never shows it
POOLED = ("R", "bias", "RMSE", "ubRMSE")


def pooled_metrics(product, reference, valid=None, *, metrics=POOLED,
                   settings: MetricSettings = DEFAULT_SETTINGS) -> dict:
    """Overall metrics of every matched pair taken as one sample (the paper's scatter-plot R).

    ``R``, ``bias``, ``RMSE``, ``ubRMSE`` (and ``rho`` if in ``metrics``), ``N`` and ``status``
    of :func:`model.validation.metrics.all_metrics` on the flattened pairs (``valid`` restricts
    them). No anomaly R: pooled pairs are not one time series.
    """
    x = np.asarray(product, np.float64).ravel()
    y = np.asarray(reference, np.float64).ravel()
    if valid is not None:
        v = np.asarray(valid, bool).ravel()
        x, y = x[v], y[v]
    ok = np.isfinite(x) & np.isfinite(y)
    return all_metrics(x[ok], y[ok], metrics=metrics, settings=settings)


# ----------------------------------------------------------------------------- per-cell (fast)

def cell_scores(product: np.ndarray, truth: np.ndarray, valid=None, min_n: int = DEFAULT_SETTINGS.min_n) -> dict:
    """Per-cell R, bias, ubRMSE (over time) of (time, y, x) fields, their cell means and counts.

    The same definitions as :func:`model.validation.metric_maps.metric_map` (tested equal); a light
    form for the many seeds and subsets of the experiment tables.
    """
    x = np.asarray(product, np.float64)
    y = np.asarray(truth, np.float64)
    m = np.isfinite(x) & np.isfinite(y)
    if valid is not None:
        m &= np.asarray(valid, bool)
    xs = np.where(m, x, np.nan)                    # time-first throughout: no transposed copies
    ys = np.where(m, y, np.nan)
    n = m.sum(0)
    r = _time_r(xs, ys, min_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(m, x - y, 0.0)
        b = d.sum(0) / n
        ub = np.sqrt((np.where(m, d - b, 0.0) ** 2).sum(0) / n)
    enough = n >= min_n
    b = np.where(enough, b, np.nan)
    ub = np.where(enough, ub, np.nan)
    mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan  # noqa: E731
    return {"R": mean(r), "bias": mean(b), "ubRMSE": mean(ub), "n_cells": int((enough & np.isfinite(ub)).sum()),
            "N": int(n.sum()), "R_map": r, "ubRMSE_map": ub}


# ----------------------------------------------------------------------------- seeds

def seed_summary(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (ddof=1; NaN for one run) and count of finite values."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else np.nan,
            "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan, "n": int(v.size)}


def seed_paired_difference(a: dict, b: dict, higher_is_better: bool = True) -> dict:
    """Difference a - b of two methods' scores paired by seed (``{seed: value}``; the same seed
    gives both the same tuning tiles, sample order and initial draw), with a two-sided paired t
    test over the pairs: ``n`` pairs, mean ``d``, its ``sd`` (ddof=1), ``p`` and ``wins`` (pairs
    where a is better). NaN (and n < 2) when fewer than two seeds are shared.

    Unlike the block bootstrap (:func:`block_bootstrap_difference`), which resamples time with
    the seeds averaged, this carries the seed-to-seed variation."""
    seeds = sorted(k for k in set(a) & set(b) if np.isfinite(a[k]) and np.isfinite(b[k]))
    d = np.array([a[k] - b[k] for k in seeds], np.float64)
    n = int(d.size)
    out = {"n": n, "d": float(d.mean()) if n else np.nan, "sd": np.nan, "p": np.nan,
           "wins": int((d > 0).sum() if higher_is_better else (d < 0).sum())}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd == 0.0:
        out["p"] = 1.0 if out["d"] == 0.0 else 0.0
        return out
    out["p"] = float(t_two_sided_p(out["d"] / (sd / np.sqrt(n)), n - 1))
    return out


def relative_change(train: float, test: float) -> float:
    """Temporal generalisation as the paper: ``(test - train) / |train|`` (NaN if train is 0)."""
    if train is None or test is None or not np.isfinite(train) or not np.isfinite(test) or train == 0:
        return np.nan
    return float((test - train) / abs(train))


# ----------------------------------------------------------------------------- bootstrap

def block_index(times, block_days: float = 3.0) -> np.ndarray:
    """Block number of each time: consecutive ``block_days`` windows from the first time."""
    t = np.asarray(times).astype("datetime64[ns]")
    if t.size == 0:
        return np.zeros(0, int)
    dt = (t - t.min()) / np.timedelta64(1, "s")
    return np.floor(dt / (block_days * 86400.0)).astype(int)


def _block_sums(x, y, blocks, nb):
    """Per (block, cell) sums n, Sx, Sy, Sxx, Syy, Sxy of (time, cells) arrays (0 off-mask).

    Values are centred by their per-cell means first: R and ubRMSE are shift invariant and the
    raw-moment formulas then keep their precision."""
    m = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        cx = np.nanmean(np.where(m, x, np.nan), axis=0)
        cy = np.nanmean(np.where(m, y, np.nan), axis=0)
    x = np.where(m, x - cx, 0.0)
    y = np.where(m, y - cy, 0.0)
    onehot = np.zeros((nb, x.shape[0]))           # (block, time): one BLAS product per moment
    onehot[blocks, np.arange(x.shape[0])] = 1.0
    return np.stack([onehot @ v for v in (m.astype(np.float64), x, y, x * x, y * y, x * y)], axis=1)


def _scores_from_sums(S, min_n):
    """Cell-mean R and ubRMSE from summed moments S (..., 6, cells)."""
    n, sx, sy, sxx, syy, sxy = (S[..., k, :] for k in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        cxy = sxy - sx * sy / n
        r = cxy / np.sqrt(vx * vy)
        ub = np.sqrt(np.maximum(vx + vy - 2 * cxy, 0) / n)
    ok = n >= min_n
    r = np.where(ok & (vx > 0) & (vy > 0), r, np.nan)
    ub = np.where(ok, ub, np.nan)
    with np.errstate(invalid="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(r, axis=-1), np.nanmean(ub, axis=-1)


def block_bootstrap_difference(a, b, reference: np.ndarray, times, *,
                               valid=None, block_days: float = 3.0, n_resamples: int = 1000,
                               level: float = 0.90, seed: int = 0,
                               min_n: int = DEFAULT_SETTINGS.min_n, chunk: int = 100,
                               memo: dict | None = None) -> dict:
    """Paired block-bootstrap interval of (method a minus method b) in cell-mean R and ubRMSE.

    Parameters
    ----------
    a, b : (time, ...) arrays, or lists of them (several runs/seeds of one method: the
        statistic is then the mean over its runs of the cell-mean score).
    reference : (time, ...) array; the trailing axes are cells.
    times : (time,) datetimes of the first axis.
    valid : (time, ...) bool, optional: cell-steps that take part (e.g. thawed). Only
        cell-steps where every run of a and b and the reference are finite are used.
    block_days, n_resamples, level, seed : the bootstrap (3-day blocks, >= 1000, 90 %, seeded).
    memo : dict, optional
        Shared by calls that compare several methods with the SAME ``b``, ``reference`` and
        ``times`` (and settings): ``b``'s scores on the data and on every resample are kept
        per cell-step mask, so a comparison on the same mask does not compute them again
        (the resamples are the same draws: same seed). The results are identical.

    Returns
    -------
    dict
        For ``R`` and ``ubRMSE``: ``d_<k>`` (the difference on the data), ``d_<k>_low`` /
        ``d_<k>_high`` (the interval), ``p_<k>`` (paired two-sided test, see the module notes);
        ``n_blocks``, ``n_resamples``, ``block_days``, ``level``.
    """
    A, B, y = _paired_cells(a, b, reference, valid)
    T = y.shape[0]
    blocks = block_index(times, block_days)
    if blocks.size != T:
        raise InputError(f"{blocks.size} times for {T} steps", "give one time per step")
    _, blocks = np.unique(blocks, return_inverse=True)
    nb = int(blocks.max()) + 1 if T else 0
    rng = np.random.default_rng(seed)
    weights = []                                   # the resamples' block weights, drawn once
    for s in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - s)
        draws = rng.integers(0, nb, size=(k, nb))
        W = np.zeros((k, nb))
        np.add.at(W, (np.repeat(np.arange(k), nb), draws.ravel()), 1.0)
        weights.append(W)

    def scores(runs):
        """Mean over runs of (cell-mean R, cell-mean ubRMSE): on the data, then per chunk of
        resamples (one BLAS product (resamples x blocks) @ (blocks x moments*cells) each)."""
        S = [_block_sums(v, y, blocks, nb) for v in runs]
        out = []
        for W in [None] + weights:
            rs, us = [], []
            for Sk in S:
                tot = Sk.sum(0) if W is None else (W @ Sk.reshape(nb, -1)).reshape((len(W),) + Sk.shape[1:])
                r, u = _scores_from_sums(tot, min_n)
                rs.append(r)
                us.append(u)
            out.append((np.mean(rs, axis=0), np.mean(us, axis=0)))
        return out

    sa = scores(A)
    mask_key = None                                # b's scores depend on b, the reference and the mask
    if memo is not None:
        mask_key = (hashlib.sha1(np.packbits(np.isfinite(y)).tobytes()).hexdigest(), y.shape, len(B),
                    block_days, n_resamples, seed, min_n, chunk)
    sb = memo.get(mask_key) if mask_key is not None else None
    if sb is None:
        sb = scores(B)
        if mask_key is not None:
            memo[mask_key] = sb
    d_r, d_u = sa[0][0] - sb[0][0], sa[0][1] - sb[0][1]
    out = {"d_R": float(d_r), "d_ubRMSE": float(d_u), "n_blocks": nb, "runs_a": len(A), "runs_b": len(B),
           "n_resamples": int(n_resamples), "block_days": block_days, "level": level}
    dR = [ra - rb for (ra, _), (rb, _) in zip(sa[1:], sb[1:])]
    dU = [ua - ub for (_, ua), (_, ub) in zip(sa[1:], sb[1:])]
    for key, d in (("R", np.concatenate(dR)), ("ubRMSE", np.concatenate(dU))):
        out.update(_interval(key, d, level))
    return out


def _paired_cells(a, b, reference, valid):
    """Runs of a and b and the reference as (time, cell) float64, NaN outside the cell-steps
    where all are finite (and ``valid``), cells without any such step dropped."""
    A = [np.asarray(v, np.float64) for v in (a if isinstance(a, (list, tuple)) else [a])]
    B = [np.asarray(v, np.float64) for v in (b if isinstance(b, (list, tuple)) else [b])]
    y = np.asarray(reference, np.float64)
    if any(v.shape != y.shape for v in A + B):
        raise InputError(f"shapes differ: a {[v.shape for v in A]}, b {[v.shape for v in B]}, reference {y.shape}",
                         "compare both methods on the same cells and steps")
    T = y.shape[0]
    A = [v.reshape(T, -1) for v in A]
    B = [v.reshape(T, -1) for v in B]
    y = y.reshape(T, -1)
    m = np.isfinite(y)
    for v in A + B:
        m &= np.isfinite(v)
    if valid is not None:
        m &= np.asarray(valid, bool).reshape(T, -1)
    keep = m.any(0)
    m = m[:, keep]
    return ([np.where(m, v[:, keep], np.nan) for v in A], [np.where(m, v[:, keep], np.nan) for v in B],
            np.where(m, y[:, keep], np.nan))


def _interval(key: str, d: np.ndarray, level: float) -> dict:
    """Percentile interval at ``level`` and the paired two-sided p of resampled differences."""
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {f"d_{key}_low": np.nan, f"d_{key}_high": np.nan, f"p_{key}": np.nan}
    lo, hi = np.percentile(d, ((0.5 - level / 2) * 100, (0.5 + level / 2) * 100))
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return {f"d_{key}_low": float(lo), f"d_{key}_high": float(hi), f"p_{key}": float(p)}


def truth_scores(product: np.ndarray, truth: np.ndarray, thawed: np.ndarray, *, up=None, down=None,
                 min_n: int = DEFAULT_SETTINGS.min_n, settings: MetricSettings = DEFAULT_SETTINGS) -> dict:
    """One truth-table row: thawed (headline) per-cell and pooled scores, fine-scale R, and the
    frozen steps' scores apart (``frozen_`` prefix)."""
    th = cell_scores(product, truth, thawed, min_n)
    fr = cell_scores(product, truth, ~np.asarray(thawed, bool), min_n)
    po = pooled_metrics(product, truth, thawed, settings=settings)
    fs = fine_scale_r(product, truth, up, down, valid=thawed, min_n=min_n)
    row = {"R": th["R"], "bias": th["bias"], "ubRMSE": th["ubRMSE"], "n_cells": th["n_cells"], "N": th["N"],
           "pooled_R": po["R"], "pooled_ubRMSE": po["ubRMSE"], "pooled_bias": po["bias"],
           "fine_R": fs["fine_R"], "fine_R_pooled": fs["fine_R_pooled"],
           "frozen_R": fr["R"], "frozen_bias": fr["bias"], "frozen_ubRMSE": fr["ubRMSE"], "frozen_N": fr["N"]}
    return row


__all__ += ["truth_scores"]
