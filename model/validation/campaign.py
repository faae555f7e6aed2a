"""``sm-downscale experiment``: fair method comparison with seeds, equal budgets and intervals.

For each requested method and each seed, train with the SAME stated budget (max minutes, max
epochs, steps per epoch, early-stopping patience), downscale the test period (and a sample of
training days, for temporal generalisation), and score against the virtual TP's truth (thawed
headline, frozen apart, pooled, fine-scale R), SMAP (per cell at SMAP's 9 km cells and
overpass steps, and pooled) and the stations (pooled over every station, mean of stations).
Then the tables: per run, per method (mean +- sd over seeds), ceiling rows (learners fitted
to the truth, :mod:`model.validation.ceiling`), paired 3-day block-bootstrap intervals of every
method minus PSCNet (or the best method) and temporal generalisation; Parquet + Markdown,
written atomically to the output folder.

Reference methods (``smap_bilinear``, ``era5_cdf``) have no randomness: one run each.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..config import home
from ..errors import InputError
from ..features.ard import ard_identity, ard_info, default_ard, open_group
from ..grids import get_grid, regridder, tp10, tp_mask
from ..inference.inputs import InputProvider
from ..inference.runner import Runner
from ..io import atomic_path, write_json_atomic, write_text_atomic
from ..machine import machine_info, machine_line
from ..networks.registry import model_info, split_ablation
from ..training import trainer
from ..training.schedule import SCHEDULE
from ..training.trainer import TrainConfig
from .ceiling import LABEL, fit_ceilings
from .experiments import intervals_table, load_stations
from .matching import locate_stations, match_station, prepare_station
from .metrics import DEFAULT_SETTINGS, all_metrics
from .report import md_table
from .skill import (
    cell_scores,
    pooled_metrics,
    relative_change,
    seed_paired_difference,
    seed_summary,
    thawed_mask,
    to_celsius,
    truth_scores,
)

log = logging.getLogger(__name__)

#: what every table reports for the truth (test period, thawed headline)
TRUTH_COLUMNS = ("R", "bias", "ubRMSE", "pooled_R", "pooled_ubRMSE", "fine_R", "fine_R_pooled",
                 "frozen_R", "frozen_ubRMSE")


def _train_days(steps: np.ndarray, n_days: int) -> np.ndarray:
    """The steps of the last ``n_days`` whole days of a period (all days if fewer): one
    contiguous predictor cube serves every run, so scoring costs one cube, not one per day."""
    days = np.unique(steps.astype("datetime64[D]"))
    return steps[np.isin(steps.astype("datetime64[D]"), days[-max(1, n_days):])]


class _Scorer:
    """The references of one period, loaded once: truth, thawed mask, SMAP, stations."""

    def __init__(self, ard, info, steps, *, settings, stations=True):
        self.settings = settings
        self.steps = steps
        cat = Path(info.get("catalog", ""))
        p = cat.parent / "truth" / "truth.zarr"
        if not p.exists():
            raise InputError(f"no truth beside the inputs ({p})",
                             "the experiment scores against the virtual TP's truth: build a world (sm-downscale world)")
        tds = xr.open_zarr(p)
        m = np.array(tp_mask("TP10"), bool)
        if "simulated" in tds.coords:
            m &= np.asarray(tds["simulated"].values, bool)
        self.rows, self.cols = np.nonzero(m)
        self.truth_da = tds["soil_moisture"]
        self.truth = tds["soil_moisture"].sel(time=steps).values.astype(np.float32)
        temp = tds["soil_temperature"].sel(time=steps) if "soil_temperature" in tds else None
        tc = to_celsius(temp.values, temp.attrs.get("units", "K")) if temp is not None else None
        e5 = None
        if tc is None or not np.isfinite(tc[:, self.rows, self.cols]).all():
            e5 = open_group(ard, "era5")["stl1"].reindex(time=steps).values
        self.thawed, self.thawed_source = thawed_mask(tc, e5)
        smap = open_group(ard, "smap_m09")["soil_moisture"]
        st = smap["time"].values
        self.smap_steps = st[np.isin(st, steps)]
        self.smap_idx = np.searchsorted(steps, self.smap_steps)
        self.smap = smap.sel(time=self.smap_steps).values.astype(np.float32)
        self.stations = None
        if stations:
            try:
                data, meta = load_stations(ard)
            except (OSError, FileNotFoundError):
                data = None
            if data:
                loc = locate_stations(meta, tp10())
                self.stations = {sid: (int(loc.loc[sid, "row"]), int(loc.loc[sid, "col"]), prepare_station(d, name=sid))
                                 for sid, d in data.items()
                                 if sid in loc.index and loc.loc[sid, "grid_status"] == "ok"}
        self.g9 = get_grid("M09")

    def score(self, field: np.ndarray) -> dict:
        """Every score of one (T, 150, 320) field at ``steps``."""
        row = {f"truth_{k}": v for k, v in truth_scores(field, self.truth, self.thawed, min_n=self.settings.min_n,
                                                         settings=self.settings).items()}
        if self.smap_steps.size:
            p9 = regridder("TP10", "M09")(field[self.smap_idx])
            cs = cell_scores(p9, self.smap, min_n=self.settings.min_n)
            po = pooled_metrics(p9, self.smap, settings=self.settings)
            row.update({"smap_R": cs["R"], "smap_ubRMSE": cs["ubRMSE"], "smap_bias": cs["bias"],
                        "smap_pooled_R": po["R"], "smap_pooled_ubRMSE": po["ubRMSE"]})
        if self.stations:
            pairs, rs = [], []
            for sid, (r, c, prep) in self.stations.items():
                ser = pd.Series(field[:, r, c], index=pd.DatetimeIndex(self.steps))
                res = match_station(ser, prep, name=sid, settings=self.settings)
                if len(res.pairs):
                    pairs.append(res.pairs[["product", "insitu"]])
                    rs.append(res.metrics.get("R", np.nan))
            if pairs:
                pp = pd.concat(pairs)
                po = all_metrics(pp["product"].to_numpy(), pp["insitu"].to_numpy(),
                                 metrics=("R", "bias", "ubRMSE"), settings=self.settings)
                row.update({"stations_pooled_R": po["R"], "stations_pooled_ubRMSE": po["ubRMSE"],
                            "stations_mean_R": float(np.nanmean(rs)) if np.isfinite(rs).any() else np.nan,
                            "stations_n": len(rs)})
        return row

    def cells(self, field):
        return field[:, self.rows, self.cols]


def _reference_fields(ard, steps):
    """ERA5-Land swvl1 and SMAP L4 (when ingested) at the steps, on TP10."""
    out = {"era5land": open_group(ard, "era5")["swvl1"].reindex(time=steps).values.astype(np.float32)}
    try:
        l4 = open_group(ard, "smap_l4")["sm_surface"].reindex(time=steps).values.astype(np.float32)
        out["smap_l4"] = regridder("M09", "TP10")(l4)
    except InputError:
        pass
    return out


def run_experiment(models, *, seeds: int = 5, max_minutes: float = 5.0, max_epochs: int = 40,
                   steps_per_epoch: int = 60, patience: int = 5, ard=None, out=None, device: str = "auto",
                   ceiling: bool = True, ceiling_kw: dict | None = None, n_resamples: int = 1000,
                   train_days: int = 14, test_stride: int = 1, stations: bool = True,
                   train_kw: dict | None = None, train_period=None, test_period=None,
                   progress: bool = False) -> dict:
    """Train every method for ``seeds`` seeds with one budget, score, and write the tables.

    Parameters
    ----------
    models : list of model names (see ``sm-downscale models``).
    seeds : runs per learned method (seeds 0 .. seeds-1); reference methods run once.
    max_minutes, max_epochs, steps_per_epoch, patience : the EQUAL budget of every run
        (time limit, epoch limit, early stopping on the spatial hold-out).
    ard : analysis-ready store of a virtual-TP world (default: the demo world's).
    out : results folder (default ``$SMDS_HOME/experiments/<world size>``).
    ceiling, ceiling_kw : fit the ceiling learners (:func:`model.validation.ceiling.fit_ceilings`).
    n_resamples : block-bootstrap resamples (3-day blocks, 90 % intervals).
    train_days : the last whole days of the training period scored for temporal generalisation.
    test_stride : score every ``test_stride``-th product step of the test period (1: all;
        e.g. 2 halves the inference time of a long test period; blocks stay 3 days).
    train_kw : further :class:`model.training.trainer.TrainConfig` fields, the same for every run.
    train_period, test_period : ``(start, end)`` ISO days replacing the world's training / test
        period (:func:`override_periods`), e.g. three summer months for training and one
        September for testing on the two-season world, as the demo world's split.

    Returns
    -------
    dict: ``out`` (folder), ``summary`` (DataFrame), ``seconds``.
    """
    t_all = _time.perf_counter()
    infos, ard, info, per, size = _experiment_inputs(models, seeds, ard)
    per = override_periods(per, train_period, test_period)
    folder = str(size)
    if "world_train_test" in per:                                   # not the world's split: its own folder
        folder += f"_train{per['train'][0]}_{per['train'][1]}_test{per['test'][0]}_{per['test'][1]}"
    out = Path(out) if out else home() / "experiments" / folder
    settings = DEFAULT_SETTINGS
    budget = {"max_minutes": max_minutes, "max_epochs": max_epochs, "steps_per_epoch": steps_per_epoch,
              "patience": patience, **(train_kw or {})}
    era5 = open_group(ard, "era5")
    test_steps, train_all, train_steps = _scored_steps(era5["time"].values, per, test_stride, train_days)
    scorers = {"test": _Scorer(ard, info, test_steps, settings=settings, stations=stations),
               "train": _Scorer(ard, info, train_steps, settings=settings, stations=stations)}

    provider = InputProvider(ard, max_blocks=2)
    cubes = {p: provider.cube_between(sc.steps[0], sc.steps[-1]) for p, sc in scorers.items()}
    # Each finished run (model, seed) is kept in a work folder beside ``out`` with its rows and
    # test-period cells, so an interrupted experiment resumes where it stopped; the work folder
    # belongs to one set of settings (a different budget, store or set of steps starts afresh).
    key = {"budget": budget, "lr_schedule": SCHEDULE, "device": device, "ard_identity": ard_identity(ard),
           "test_steps": [str(test_steps[0]), str(test_steps[-1]), int(test_steps.size)],
           "train_steps": [str(train_steps[0]), str(train_steps[-1]), int(train_steps.size)],
           "stations": bool(stations)}
    work = _work_folder(out, key)
    todo = [(s, name) for s in range(seeds) for name in models if infos[name].kind != "reference" or s == 0]
    rows, fields, kinds = _all_runs(todo, work, per, device, budget, ard, scorers, cubes, provider, progress)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        # references (no training) and ceilings
        ceiling_info = _add_references_and_ceilings(rows, fields, kinds, scorers, ard, era5, train_all, test_steps,
                                                    (ceiling_kw or {}) if ceiling else None)
        sc = scorers["test"]
        runs, summary, intervals, base, temporal, months = _write_tables(tmp, rows, fields, kinds, sc, test_steps,
                                                                 n_resamples, settings.min_n)
        settings_doc = {"models": list(models), "seeds": seeds, "budget": budget, "lr_schedule": SCHEDULE,
                        "device": device,
                        "test_stride": int(test_stride), "test_steps_scored": int(test_steps.size),
                        "world": {"size": size, "periods": per}, "ard": str(ard),
                        "train_days_scored": [str(d) for d in np.unique(train_steps.astype("datetime64[D]"))],
                        "thawed_source": sc.thawed_source, "baseline": base,
                        "bootstrap": {"block_days": 3, "n_resamples": n_resamples, "level": 0.9, "seed": 0},
                        "ceilings": ceiling_info, "machine": machine_info(),
                        "seconds": round(_time.perf_counter() - t_all, 1)}
        (tmp / "settings.json").write_text(json.dumps(settings_doc, indent=1, default=str))
        (tmp / "report.md").write_text(experiment_markdown(summary, intervals, temporal, settings_doc, runs=runs,
                                                              months=months))
        if (work / "runs").exists():
            os.replace(work / "runs", tmp / "runs")
    shutil.rmtree(work, ignore_errors=True)
    return {"out": str(out), "summary": summary, "intervals": intervals, "temporal": temporal,
            "seconds": round(_time.perf_counter() - t_all, 1)}


def _experiment_inputs(models, seeds: int, ard):
    """The checked inputs of an experiment: model infos (unknown names fail here, with
    suggestions), the store, its info, its training/test periods and its world's size."""
    if not models:
        raise InputError("no methods given", "name them: --model pscnet --model rf ...")
    # unknown names (and ablations, "pscnet:no_mftf") fail here, with suggestions
    infos = {m: model_info(split_ablation(m)[0]) for m in models}
    if len(set(models)) < len(models):
        raise InputError(f"a method is named twice in {list(models)}", "name each method once")
    if seeds < 1:
        raise InputError(f"seeds={seeds} is not positive", "use --seeds 5 (>= 5 for the tables' intervals)")
    ard = Path(ard) if ard else default_ard()
    info = ard_info(ard)
    world = info.get("world") or {}
    per = world.get("periods") or {}
    if not per.get("train") or not per.get("test"):
        raise InputError(f"{ard} defines no training/test periods", "use a virtual-TP world's store")
    return infos, ard, info, per, world.get("size") or "world"


def override_periods(per: dict, train=None, test=None) -> dict:
    """The world's periods with the training and/or test period replaced (``(start, end)``,
    inclusive ISO days), checked: each inside the span of the world's own training and test
    periods (the written days before it are the input history), start before end, and the two
    apart (a test day inside the training period would score a method on what it learned)."""
    if train is None and test is None:
        return per
    day = np.timedelta64(1, "D")

    def parse(pair, what):
        try:
            a, b = (np.datetime64(str(v), "D") for v in pair)
        except (TypeError, ValueError) as e:
            raise InputError(f"the {what} period {list(pair)!r} is not two ISO days ({e})",
                             f"give it as --{what}-period 2016-06-01 2016-08-31") from None
        if b < a:
            raise InputError(f"the {what} period ends ({b}) before it starts ({a})", "give the start first")
        return a, b

    lo = min(np.datetime64(per["train"][0], "D"), np.datetime64(per["test"][0], "D"))
    hi = max(np.datetime64(per["train"][1], "D"), np.datetime64(per["test"][1], "D"))
    out = dict(per)
    for what, pair in (("train", train), ("test", test)):
        if pair is None:
            continue
        a, b = parse(pair, what)
        if a < lo or b > hi:
            raise InputError(f"the {what} period {a} .. {b} is outside this world's {lo} .. {hi}",
                             f"choose days from {lo} to {hi}: the world's training and test periods and the "
                             "days between them (the written days before are the inputs' history)")
        out[what] = [str(a), str(b)]
    (ta, tb), (sa, sb) = ((np.datetime64(out[k][0], "D"), np.datetime64(out[k][1], "D")) for k in ("train", "test"))
    if ta < sb + day and sa < tb + day:
        raise InputError(f"the training period {ta} .. {tb} and the test period {sa} .. {sb} overlap",
                         "keep them apart: a method would be scored on days it was trained on")
    out["world_train_test"] = {"train": list(per["train"]), "test": list(per["test"])}
    return out


def _scored_steps(times: np.ndarray, per: dict, test_stride, train_days: int):
    """The steps scored: every ``test_stride``-th of the test period, all of the training period,
    and its last ``train_days`` whole days."""
    def period_steps(p):
        s, e = np.datetime64(per[p][0], "ns"), np.datetime64(per[p][1], "ns") + np.timedelta64(1, "D")
        return times[(times >= s) & (times < e)]

    if int(test_stride) < 1:
        raise InputError(f"test_stride={test_stride} is not a positive integer", "use 1 (every step) or more")
    test_steps = period_steps("test")[::int(test_stride)]
    train_all = period_steps("train")
    return test_steps, train_all, _train_days(train_all, train_days)


def _all_runs(todo: list, work: Path, per: dict, device: str, budget: dict, ard, scorers: dict, cubes: dict,
              provider, progress: bool):
    """Train and score every (seed, model) of ``todo``, reusing the runs finished in ``work``.
    Returns the rows, the test-period cells per model and the kind of each model."""
    rows, fields = [], {}
    kinds = {}

    def run_folder(name: str, seed: int) -> Path:       # "pscnet:no_mftf" -> runs/pscnet--no_mftf/seed0
        return work / "runs" / name.replace(":", "--") / f"seed{seed}"

    done_before = sum((run_folder(n, s) / "result.json").exists() for s, n in todo)
    if done_before:
        log.warning("experiment: resuming, %d of %d runs already done in %s", done_before, len(todo), work)
    for s, name in todo:
        kinds[name] = "product"
        run_dir = run_folder(name, s)
        result = run_dir / "result.json"
        if result.exists() and (run_dir / "test_cells.npy").exists():
            rows += json.loads(result.read_text())
            fields.setdefault(name, []).append(np.load(run_dir / "test_cells.npy"))
            continue
        if run_dir.exists():          # an interrupted run: train it again
            shutil.rmtree(run_dir)
        base, ablation = split_ablation(name)
        cfg = TrainConfig(model=base, train_start=str(per["train"][0]), train_end=str(per["train"][1]),
                          seed=s, device=device,
                          **{**budget, "model_kwargs": {**budget.get("model_kwargs", {}), **ablation}})
        t0 = _time.perf_counter()
        run_rows, cells = _train_and_score(cfg, ard, run_dir, scorers, cubes, provider, progress, label=name)
        rows += run_rows
        fields.setdefault(name, []).append(cells)
        log.info("experiment: %s seed %d done in %.0f s", name, s, _time.perf_counter() - t0)
    return rows, fields, kinds


def _write_tables(tmp: Path, rows: list, fields: dict, kinds: dict, sc, test_steps, n_resamples: int,
                  min_n: int):
    """Write the tables of an experiment into ``tmp``: every run's rows, the summary per
    method, the intervals against the baseline and the temporal generalisation. Returns
    (runs, summary, intervals, baseline, temporal, by-month table)."""
    runs = pd.DataFrame(rows)
    runs.to_parquet(tmp / "runs.parquet")
    # per method: mean +- sd over seeds (test period)
    summary = _method_summary(runs)
    summary.to_parquet(tmp / "summary.parquet")
    # intervals vs PSCNet (or the best learned method); the truth and thawed mask at the scored cells, once
    truth, thawed = sc.cells(sc.truth), sc.cells(sc.thawed)
    intervals, base = _intervals(fields, kinds, summary, truth, thawed, test_steps, n_resamples, min_n)
    intervals = _seed_paired(intervals, runs)
    intervals.to_parquet(tmp / "intervals.parquet")
    # temporal generalisation (paper: relative change train -> test), per run then mean +- sd
    temporal = _temporal(runs)
    temporal.to_parquet(tmp / "temporal.parquet")
    months = by_month(fields, kinds, truth, thawed, test_steps, base, min_n)
    months.to_parquet(tmp / "by_month.parquet")
    return runs, summary, intervals, base, temporal, months


def by_month(fields: dict, kinds: dict, truth: np.ndarray, thawed: np.ndarray, times, baseline: str | None,
             min_n: int) -> pd.DataFrame:
    """Thawed per-cell scores against the truth in each calendar month of the test period.

    ``fields``: per method, one (time, cell) array per seed, in seed order (reference methods and
    ceilings: one); ``truth`` and ``thawed``: the same (time, cell) shape; ``times``: the steps.
    One row per (month, method): its runs, mean and sd over seeds of R and ubRMSE, the month's
    thawed share of cell-steps, the method's rank among the products by mean R, and, for a
    method with seeds, the seed-paired difference in R from ``baseline`` (mean, paired t test p,
    seeds where the method is better). A season's ranking can come from a few months: this
    table shows which."""
    months = np.asarray(times).astype("datetime64[M]")
    thawed = np.asarray(thawed, bool)
    rows = []
    for mo in np.unique(months):
        sel = months == mo
        tr, th = truth[sel], thawed[sel]
        per_seed = {}
        for name, runs in fields.items():
            sc = [cell_scores(f[sel], tr, th, min_n) for f in runs]
            per_seed[name] = {k: s["R"] for k, s in enumerate(sc)}
            r, u = seed_summary([s["R"] for s in sc]), seed_summary([s["ubRMSE"] for s in sc])
            rows.append({"month": str(mo), "model": name, "kind": kinds.get(name, "product"), "runs": len(runs),
                         "R": r["mean"], "R_sd": r["sd"], "ubRMSE": u["mean"], "ubRMSE_sd": u["sd"],
                         "thawed_share": float(th.mean()) if th.size else np.nan})
        if baseline in per_seed:
            for row in rows[-len(fields):]:
                if row["model"] != baseline and row["runs"] > 1:
                    d = seed_paired_difference(per_seed[row["model"]], per_seed[baseline])
                    row.update({"d_R_seeds": d["d"], "p_R_seeds": d["p"],
                                "wins_R_seeds": d["wins"] if d["n"] >= 2 else np.nan, "seeds_paired": d["n"]})
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    prod = t["kind"] == "product"
    t.loc[prod, "rank"] = t[prod].groupby("month")["R"].rank(ascending=False, method="min")
    return t


def by_month_markdown(t: pd.DataFrame, baseline: str | None) -> list[str]:
    """The by-month table as Markdown lines: per method and month, R mean ± sd (rank among the
    products), the thawed share per month, then the seed-paired differences from ``baseline``."""
    if t is None or t.empty:
        return []
    months = list(dict.fromkeys(t["month"]))
    kind_order = t["kind"].map({"product": 0, "reference": 1, "ceiling": 2}).fillna(3)
    order = (t.assign(k=kind_order).groupby("model", sort=False).agg(k=("k", "first"), R=("R", "mean"))
             .sort_values(["k", "R"], ascending=[True, False]).index)
    cell = t.set_index(["model", "month"])

    def fmt(name, mo):
        r = cell.loc[(name, mo)]
        if not np.isfinite(r["R"]):
            return ""
        s = _pm(r, "R")
        return s + (f" ({int(r['rank'])})" if "rank" in r and np.isfinite(r["rank"]) else "")

    wide = pd.DataFrame([{"model": name, "kind": cell.loc[(name, months[0]), "kind"],
                          **{mo: fmt(name, mo) for mo in months}} for name in order])
    share = t.groupby("month", sort=False)["thawed_share"].first()
    lines = ["## By test month (thawed per-cell R against the truth; rank among the products)", "",
             "Thawed share of cell-steps: " + ", ".join(f"{mo} {share[mo]:.0%}" for mo in months) + ".", "",
             md_table(wide), ""]
    if baseline and "d_R_seeds" in t and t["d_R_seeds"].notna().any():
        d = t[t["d_R_seeds"].notna()]
        text = [f"{r.d_R_seeds:+.3f} (p {r.p_R_seeds:.3f}, {int(r.wins_R_seeds)}/{int(r.seeds_paired)})"
                if np.isfinite(r.wins_R_seeds) else "" for r in d.itertuples()]
        wide = (d.assign(text=text).pivot(index="model", columns="month", values="text")
                .reindex(index=list(dict.fromkeys(d["model"])), columns=months).fillna("").reset_index())
        wide.columns.name = None
        lines += [f"Minus {baseline}, paired by seed (mean difference in R, paired t test p, seeds where the "
                  "method is better):", "", md_table(wide), ""]
    return lines


def _add_references_and_ceilings(rows: list, fields: dict, kinds: dict, scorers: dict, ard, era5, train_all,
                                 test_steps, ceiling_kw: dict | None) -> dict:
    """Score the reference products (ERA5-Land, SMAP L4 when ingested) on every period and,
    unless ``ceiling_kw`` is None, fit and score the ceiling learners on the test period;
    appends to ``rows``/``fields``/``kinds``; returns the ceilings' description."""
    for period, sc in scorers.items():
        for name, f in _reference_fields(ard, sc.steps).items():
            kinds[name] = "reference"
            rows.append({"model": name, "kind": "reference", "seed": 0, "period": period, **sc.score(f)})
            if period == "test":
                fields[name] = [sc.cells(f)]
    if ceiling_kw is None:
        return {}
    sc = scorers["test"]
    preds, info = fit_ceilings(era5, open_group(ard, "static"), sc.truth_da, sc.rows, sc.cols,
                               train_all, test_steps, **ceiling_kw)
    for name, f in preds.items():
        kinds[name] = "ceiling"
        rows.append({"model": name, "kind": "ceiling", "note": LABEL, "seed": 0, "period": "test", **sc.score(f)})
        fields[name] = [sc.cells(f)]
    return info


def _work_folder(out: Path, key: dict) -> Path:
    """The folder beside ``out`` that keeps each finished run (rows and test-period cells), so
    an interrupted experiment resumes where it stopped. It belongs to one set of settings
    (``key``): other settings (budget, store, steps) start afresh."""
    key = json.loads(json.dumps(key, default=str))
    work = out.with_name(f".{out.name}.work")
    if work.exists():
        try:
            old_key = json.loads((work / "key.json").read_text())
        except (OSError, ValueError):
            old_key = None
        if old_key != key:
            log.warning("experiment: the unfinished runs in %s were made with other settings; starting afresh", work)
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "key.json", key)
    return work


def _train_and_score(cfg, ard, run_dir: Path, scorers: dict, cubes: dict, provider, progress: bool,
                     label: str | None = None):
    """Train one run into ``run_dir``, score it on every period; keep its rows (method named
    ``label``, default the model's name) and test-period cells there (``result.json`` last: it
    marks the run done). Returns (rows, test cells)."""
    name, s, device = label or cfg.model, cfg.seed, cfg.device
    t0 = _time.perf_counter()
    run = trainer.train(cfg.model, cfg, ard=ard, out=run_dir, progress=progress)
    tsum = json.loads((run / "summary.json").read_text())
    wall_train = round(_time.perf_counter() - t0, 1)
    runner = Runner(run, ard, device=device, provider=provider, allow_path=True)  # its own run folders
    rows, cells = [], None
    for period, sc in scorers.items():
        t1 = _time.perf_counter()
        f = runner.scenes(sc.steps, cube=cubes[period])  # the method's batch
        wall_infer = round(_time.perf_counter() - t1, 1)
        rows.append({"model": name, "kind": "product", "seed": s, "period": period,
                     "train_seconds": tsum.get("train_seconds"), "epochs": tsum.get("epochs"),
                     "best_epoch": tsum.get("best_epoch"), "stopped": tsum.get("stopped"),
                     "tune_rmse": tsum.get("tune_rmse"), "wall_train_seconds": wall_train,
                     "wall_inference_seconds": wall_infer, "steps_scored": int(sc.steps.size), **sc.score(f)})
        if period == "test":
            cells = sc.cells(f)
    del runner
    with atomic_path(run_dir / "test_cells.npy") as tmp_npy:
        with open(tmp_npy, "wb") as fh:
            np.save(fh, cells)
    write_json_atomic(run_dir / "result.json", rows, default=_json_default)   # last: marks the run done
    return rows, cells


def _method_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method, test period: mean and sd over seeds of every score; the share of the
    perfect-36-km ceiling's pooled fine-scale R."""
    test = runs[runs["period"] == "test"]
    metric_cols = [c for c in test.columns if c.startswith(("truth_", "smap_", "stations_")) and c != "stations_n"]
    summ = []
    for name, g in test.groupby("model", sort=False):
        row = {"model": name, "kind": g["kind"].iloc[0], "runs": len(g)}
        for c in metric_cols + ["train_seconds"]:
            if c in g:
                ss = seed_summary(g[c].to_numpy(dtype=float))
                row[c], row[f"{c}_sd"] = ss["mean"], ss["sd"]
        summ.append(row)
    summary = pd.DataFrame(summ)
    c36 = summary.loc[summary["model"] == "ceiling_36km", "truth_fine_R_pooled"]
    if len(c36) and np.isfinite(c36.iloc[0]) and c36.iloc[0] > 0:
        summary["share_of_ceiling_fine_R"] = summary["truth_fine_R_pooled"] / float(c36.iloc[0])
    return summary


def _intervals(fields: dict, kinds: dict, summary: pd.DataFrame, truth, thawed, test_steps, n_resamples: int,
               min_n: int):
    """Paired block-bootstrap differences of every method from PSCNet (or the best learned
    method): (table, baseline name or None)."""
    learned = [m for m in fields if kinds.get(m) == "product"]
    base = "pscnet" if "pscnet" in learned else (
        summary[summary["model"].isin(learned)].sort_values("truth_R", ascending=False)["model"].iloc[0]
        if learned else None)
    if base is None:
        return pd.DataFrame(), base
    iv = intervals_table(fields, truth, thawed, test_steps, base,
                         n_resamples=n_resamples, min_n=min_n, kinds=kinds)
    if iv.empty:
        return iv, base
    return iv[["model", "kind", "baseline"] + [c for c in iv.columns if c not in ("model", "kind", "baseline")]], base


def _seed_paired(intervals: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Add to each row of ``intervals`` the seed-paired difference from its baseline (paired t
    test over the shared seeds, test period): ``seeds_paired``, ``d_R_seeds_sd``, ``p_R_seeds``,
    ``wins_R_seeds`` and the same for ubRMSE (wins: lower). Methods run once get NaN."""
    if intervals.empty:
        return intervals
    test = runs[runs["period"] == "test"]
    by = {m: g.set_index("seed") for m, g in test.groupby("model")}
    base = by[intervals["baseline"].iloc[0]]
    extra = []
    for name in intervals["model"]:
        row = {}
        for metric, col, hib in (("R", "truth_R", True), ("ubRMSE", "truth_ubRMSE", False)):
            if col in test:
                r = seed_paired_difference(by[name][col].to_dict(), base[col].to_dict(), higher_is_better=hib)
                row.update({"seeds_paired": r["n"], f"d_{metric}_seeds_sd": r["sd"], f"p_{metric}_seeds": r["p"],
                            f"wins_{metric}_seeds": r["wins"] if r["n"] >= 2 else np.nan})
        extra.append(row)
    return pd.concat([intervals.reset_index(drop=True), pd.DataFrame(extra)], axis=1)


def _temporal(runs: pd.DataFrame) -> pd.DataFrame:
    """Temporal generalisation as the paper defines it (relative change training -> test),
    per run, then mean and sd over seeds."""
    tg = []
    for (name, seed), g in runs.groupby(["model", "seed"]):
        g = g.set_index("period")
        if not {"train", "test"} <= set(g.index):
            continue
        r = {"model": name, "seed": seed}
        for ref in ("truth", "smap"):
            for k in ("R", "ubRMSE"):
                c = f"{ref}_{k}"
                if c in g:
                    r[f"{c}_train"], r[f"{c}_test"] = float(g.loc["train", c]), float(g.loc["test", c])
                    r[f"rel_change_{c}"] = relative_change(r[f"{c}_train"], r[f"{c}_test"])
        tg.append(r)
    temporal = pd.DataFrame(tg)
    if not temporal.empty:
        temporal = temporal.groupby("model").agg(["mean", "std"])
        temporal.columns = [f"{a}" if b == "mean" else f"{a}_sd" for a, b in temporal.columns]
        temporal = temporal.drop(columns=[c for c in temporal.columns if c.startswith("seed")]).reset_index()
    return temporal


def _json_default(v):
    """numpy scalars in a run's rows (Python's json writes and reads NaN as is)."""
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


def _pm(row, col, fmt="{:.3f}"):
    v, sd = row.get(col, np.nan), row.get(f"{col}_sd", np.nan)
    if v is None or not np.isfinite(v):
        return ""
    return fmt.format(v) + (f" ± {fmt.format(sd)}" if sd is not None and np.isfinite(sd) else "")


def _wins_as_text(iv: pd.DataFrame) -> pd.DataFrame:
    """The seed counts of an intervals table as text: ``wins`` as "4/5", ``seeds_paired`` as "5"."""
    if "seeds_paired" not in iv:            # a table written before the seed-paired columns
        return iv
    iv, n = iv.copy(), iv["seeds_paired"]
    for c in [c for c in iv.columns if c.startswith("wins_")]:
        iv[c] = [f"{int(w)}/{int(k)}" if np.isfinite(w) else "" for w, k in zip(iv[c], n)]
    iv["seeds_paired"] = [str(int(k)) for k in n]
    return iv


def experiment_markdown(summary: pd.DataFrame, intervals: pd.DataFrame, temporal: pd.DataFrame, st: dict,
                        runs: pd.DataFrame | None = None, months: pd.DataFrame | None = None) -> str:
    """The experiment's Markdown tables (mean ± sd over seeds; ceilings labelled)."""
    b = st["budget"]
    lines = ["# Method comparison", "",
             f"World `{st['world']['size']}`: training {st['world']['periods']['train'][0]} .. "
             f"{st['world']['periods']['train'][1]}, test {st['world']['periods']['test'][0]} .. "
             f"{st['world']['periods']['test'][1]}. {st['seeds']} seeds per learned method, the same budget for "
             f"every run: at most {b['max_minutes']} min, {b['max_epochs']} epochs x {b['steps_per_epoch']} steps, "
             f"early stopping after {b['patience']} epochs without improvement on the spatial hold-out; "
             f"networks' learning rate: {st.get('lr_schedule', 'one-cycle over the step limit (before issue 12)')}. "
             f"Thawed steps decided by {st['thawed_source']}. Values: mean ± sd over seeds. Machine: "
             f"{machine_line(st['machine'])}.", "",
             "Ceiling rows are learners fitted to the TRUTH (not products): they show the reachable skill.", "",
             "## Against the truth (test period, thawed steps; frozen apart)", ""]
    cols = [("truth_R", "R"), ("truth_ubRMSE", "ubRMSE"), ("truth_bias", "bias"), ("truth_pooled_R", "pooled R"),
            ("truth_fine_R", "fine R (cell)"), ("truth_fine_R_pooled", "fine R (pooled)"),
            ("truth_frozen_R", "frozen R"), ("truth_frozen_ubRMSE", "frozen ubRMSE")]
    t = pd.DataFrame([{"model": r["model"], "kind": r["kind"], "runs": r["runs"],
                       **{lab: _pm(r, c) for c, lab in cols if c in summary},
                       **({"share of ceiling fine R": _pm(r, "share_of_ceiling_fine_R", "{:.2f}")}
                          if "share_of_ceiling_fine_R" in summary else {})}
                      for _, r in summary.sort_values(["kind", "truth_R"], ascending=[False, False]).iterrows()])
    lines += [md_table(t), ""]
    cols = [("smap_R", "SMAP R"), ("smap_ubRMSE", "SMAP ubRMSE"), ("smap_pooled_R", "SMAP pooled R"),
            ("stations_pooled_R", "stations pooled R"), ("stations_mean_R", "stations mean R")]
    t = pd.DataFrame([{"model": r["model"], **{lab: _pm(r, c) for c, lab in cols if c in summary}}
                      for _, r in summary.iterrows() if r["kind"] != "ceiling"])
    lines += ["## Against SMAP (9 km, overpass steps) and the stations (test period)", "", md_table(t), ""]
    if not intervals.empty:
        cols = ["model", "kind", "baseline", "d_R", "d_R_low", "d_R_high", "p_R",
                "d_ubRMSE", "d_ubRMSE_low", "d_ubRMSE_high", "p_ubRMSE"]
        seeded = [c for c in ("seeds_paired", "p_R_seeds", "wins_R_seeds", "p_ubRMSE_seeds", "wins_ubRMSE_seeds")
                  if c in intervals]
        lines += [f"## Differences from {intervals['baseline'].iloc[0]} (paired 3-day block bootstrap, "
                  f"{st['bootstrap']['n_resamples']} resamples, 90 % intervals, two-sided p)", "",
                  "The bootstrap resamples time, with each method's seeds averaged; the *_seeds columns pair "
                  "the runs by seed (paired t test over the shared seeds, two-sided; wins: seeds where the "
                  "method is better), which carries the seed-to-seed variation.", "",
                  md_table(_wins_as_text(intervals[cols + seeded]), "{:.4f}"), ""]
    if not temporal.empty:
        keep = ["model"] + [c for c in temporal.columns if c.startswith("rel_change") or c.endswith(("_train", "_test"))]
        lines += ["## Temporal generalisation (relative change training -> test, mean over seeds)", "",
                  md_table(temporal[keep]), ""]
    lines += by_month_markdown(months, st.get("baseline"))
    if runs is not None:
        lines += ["## Standing of each learned method", "",
                  "Fine-scale R as a share of the perfect-36-km ceiling's; ubRMSE against the truth relative to "
                  "the SMAP L4-like product's and to the ERA5-Land input's (negative = lower, better); the lead "
                  "in thawed per-cell R over the next method, in units of the larger of the two seed sd; how the "
                  "runs ended (time budget or early stopping).", "", md_table(standing(summary, runs), "{:.3f}"), ""]
    return "\n".join(lines)


def standing(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each learned method against the reachable skill and the references: share of the
    perfect-36-km ceiling's pooled fine-scale R, relative ubRMSE change against ``smap_l4`` and
    ``era5land`` (the truth, thawed steps), the lead in truth R over the next method (ranked
    by mean R) in seed standard deviations, and how its runs ended."""
    s = summary.set_index("model")
    learned = s[s["kind"] == "product"].sort_values("truth_R", ascending=False)

    def ub(name):
        return float(s.loc[name, "truth_ubRMSE"]) if name in s.index else np.nan

    rows = []
    names = list(learned.index)
    for k, name in enumerate(names):
        r = learned.loc[name]
        row = {"model": name, "truth R": r["truth_R"],
               "share of ceiling fine R": r.get("share_of_ceiling_fine_R", np.nan),
               "ubRMSE vs L4-like": r["truth_ubRMSE"] / ub("smap_l4") - 1,
               "ubRMSE vs ERA5-Land": r["truth_ubRMSE"] / ub("era5land") - 1}
        if k + 1 < len(names):
            nxt = learned.loc[names[k + 1]]
            sds = [v for v in (r.get("truth_R_sd"), nxt.get("truth_R_sd")) if v is not None and np.isfinite(v)]
            sd = max(sds) if sds else np.nan
            row["lead over next (sd)"] = (r["truth_R"] - nxt["truth_R"]) / sd if np.isfinite(sd) and sd > 0 else np.nan
            row["next"] = names[k + 1]
        g = runs[(runs["model"] == name) & (runs["period"] == "test")]
        if "stopped" in g:
            row["runs ended by"] = ", ".join(f"{v} x{n}" for v, n in g["stopped"].fillna("?").value_counts().items())
        rows.append(row)
    return pd.DataFrame(rows)


def rewrite_report(out) -> Path:
    """Write ``report.md`` of an experiment folder again from its tables (e.g. after the report
    gained a section); nothing is recomputed."""
    out = Path(out)
    st = json.loads((out / "settings.json").read_text())
    months = pd.read_parquet(out / "by_month.parquet") if (out / "by_month.parquet").exists() else None
    text = experiment_markdown(pd.read_parquet(out / "summary.parquet"), pd.read_parquet(out / "intervals.parquet"),
                               pd.read_parquet(out / "temporal.parquet"), st,
                               runs=pd.read_parquet(out / "runs.parquet"), months=months)
    return write_text_atomic(out / "report.md", text)


def register(sub):
    p = sub.add_parser("experiment", help="fair comparison: every method x seeds with one budget -> tables")
    p.add_argument("--model", action="append", required=True, help="a method (repeat), e.g. --model pscnet --model rf; an ablation as "
                   "model:ablation, e.g. --model pscnet:no_mftf (see docs/pscnet.md)")
    p.add_argument("--seeds", type=int, default=5, help="runs per learned method (default 5)")
    p.add_argument("--max-minutes", type=float, default=5.0, help="time budget of every run (default 5)")
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=60)
    p.add_argument("--patience", type=int, default=5, help="early stopping: epochs without improvement")
    p.add_argument("--ard", help="analysis-ready store of a virtual-TP world (default: the demo world's)")
    p.add_argument("--out", help="results folder (default $SMDS_HOME/experiments/<size>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ceiling", action="store_true")
    p.add_argument("--ceiling-samples", type=int, default=60_000)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--test-stride", type=int, default=1, help="score every k-th test step (default 1: all)")
    p.add_argument("--train-days", type=int, default=14, help="last training days scored for temporal generalisation (default 14)")
    p.add_argument("--train-period", nargs=2, metavar=("START", "END"),
                   help="replace the world's training period (inclusive ISO days), e.g. 2016-06-01 2016-08-31")
    p.add_argument("--test-period", nargs=2, metavar=("START", "END"),
                   help="replace the world's test period (inclusive ISO days), e.g. 2017-09-01 2017-09-30")
    p.set_defaults(func=_run)


def _run(args) -> int:
    res = run_experiment(args.model, seeds=args.seeds, max_minutes=args.max_minutes, max_epochs=args.max_epochs,
                         steps_per_epoch=args.steps_per_epoch, patience=args.patience, ard=args.ard, out=args.out,
                         device=args.device, ceiling=not args.no_ceiling,
                         ceiling_kw={"max_samples": args.ceiling_samples}, n_resamples=args.resamples,
                         train_days=args.train_days, test_stride=args.test_stride,
                         train_period=args.train_period, test_period=args.test_period, progress=True)
    print(Path(res["out"], "report.md").read_text())
    print(f"written to {res['out']} in {res['seconds']} s")
    return 0
