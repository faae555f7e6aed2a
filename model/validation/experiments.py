"""``sm-downscale validate``: the paper's four experiments plus the truth at 10 km.

1. against SMAP: per-cell metric maps (product aggregated to SMAP's 9 km cells by area
   overlap, at SMAP's overpass steps), histograms and scatter-density data;
2. against stations: per station and per network (both forms), with each model's rank;
3. temporal generalisation: metrics in the training period vs the test period, relative change;
4. temporal dynamics: per-station series of in-situ, SMAP, each model and precipitation;
5. against the virtual TP's hidden truth at 10 km (when the inputs have a ``truth`` entry).

References beside the archived models: ``smap_l4`` (SMAP L4 surface soil moisture, 9 km
3-hourly) and ``era5land`` (ERA5-Land swvl1). Results are data first (NetCDF, Parquet, see
docs/architecture.md), then a static Markdown report with PNG figures made from that data.
A model missing from the archive is an error naming what is there; a failure in one
experiment is recorded in ``settings.json`` and the others still run.
"""

from __future__ import annotations

import json
import logging
import time as _time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

import xarray as xr

from ..config import validation_dir as vd
from ..errors import InputError
from ..features.ard import ard_info, default_ard, open_group
from ..grids import get_grid, regridder, tp10, tp_mask
from ..inference.archive import open_archive, product_variables
from ..io import atomic_path
from .ceiling import LABEL, fit_ceilings
from .matching import (extract_station_series, locate_stations, match_station, network_metrics,
                       prepare_station, rank_models)
from .metric_maps import map_summary, metric_map
from .metrics import DEFAULT_SETTINGS, MetricSettings
from .report import make_report
from .skill import (POOLED, block_bootstrap_difference, pooled_metrics, relative_change, thawed_mask, to_celsius,
                    truth_scores)

log = logging.getLogger(__name__)

REFERENCES = ("smap_l4", "era5land")
SMAP_METRICS = ("R", "bias", "RMSE", "ubRMSE", "rho", "anomaly_R")
TRUTH_METRICS = ("R", "bias", "RMSE", "ubRMSE")
#: ceiling learners' size in ``validate`` (kept small: the demo's first-run time must not grow)
CEILING_DEFAULTS = {"max_samples": 20_000, "max_iter": 100}
BINS = np.round(np.arange(0.0, 0.6001, 0.01), 4)


def validation_dir(path=None) -> Path:
    return Path(path) if path else vd()


class Inputs:
    """Lazy access to everything the experiments compare."""

    def __init__(self, ard, archive=None, models=None):
        self.ard = Path(ard)
        self.info = ard_info(self.ard)
        self.maps = open_archive("maps", archive)
        self.series = open_archive("series", archive)
        avail = product_variables(self.maps)
        complete = self.maps.attrs.get("complete_models", {})
        avail = [m for m in avail if complete.get(m, False)] or avail
        if models:
            missing = [m for m in models if m not in avail]
            if missing:
                raise InputError(f"models {missing} are not (completely) in the archive, which holds {avail}",
                                 "build them first: sm-downscale archive --model NAME")
            self.models = list(models)
        else:
            self.models = avail
        self.times = self.maps["time"].values
        self.smap = open_group(self.ard, "smap_m09")["soil_moisture"]
        self.era5 = open_group(self.ard, "era5")
        try:
            self.l4 = open_group(self.ard, "smap_l4")["sm_surface"]
        except InputError:
            self.l4 = None
        self.truth = self._open_truth()
        per = (self.info.get("world") or {}).get("periods") or {}
        t0, t1 = str(self.times[0])[:10], str(self.times[-1])[:10]
        self.periods = {"train": tuple(per.get("train") or (t0, t1)), "test": tuple(per.get("test") or (t0, t1))}

    def _open_truth(self):
        self.truth_ds = None
        cat = Path(self.info.get("catalog", ""))
        p = cat.parent / "truth" / "truth.zarr"
        if p.exists():
            try:
                self.truth_ds = xr.open_zarr(p)
                return self.truth_ds["soil_moisture"]
            except Exception as exc:  # noqa: BLE001
                log.warning("truth at %s unreadable: %s", p, exc)
        return None

    def steps(self, period: str) -> np.ndarray:
        s, e = self.periods[period]
        s = np.datetime64(s, "ns")
        e = np.datetime64(e, "ns") + np.timedelta64(1, "D")
        return self.times[(self.times >= s) & (self.times < e)]

    def smap_steps(self, period: str) -> np.ndarray:
        st = self.steps(period)
        t = self.smap["time"].values
        return t[np.isin(t, st)]

    def product_tp10(self, name: str, times) -> np.ndarray:
        """(T, 150, 320) m3 m-3 of a model or reference at product steps."""

        if name == "era5land":
            return self.era5["swvl1"].sel(time=times).values.astype(np.float32)
        if name == "smap_l4":
            if self.l4 is None:
                raise InputError("no SMAP L4 in the inputs", "add the smap_l4 catalog entry")
            v = self.l4.reindex(time=times).values.astype(np.float32)
            return regridder("M09", "TP10")(v)
        return self.maps[name].sel(time=times).values

    def product_m09(self, name: str, times) -> np.ndarray:
        if name == "smap_l4":
            return self.l4.reindex(time=times).values.astype(np.float32)
        return regridder("TP10", "M09")(self.product_tp10(name, times))

    @property
    def products(self) -> list[str]:
        return self.models + [r for r in REFERENCES if r != "smap_l4" or self.l4 is not None]


def _da(values, times, grid_name):
    g = get_grid(grid_name)
    return xr.DataArray(values, dims=("time",) + g.dims, coords={"time": times, **g.coords()})


def _exp_against(inp: Inputs, settings, periods, *, steps, reference, product, grid, metrics, ref_name,
                 count_name):
    """One reference against every product: per-period map summaries, the test-period metric
    maps (dim ``model``) and scatter-density counts. ``steps(period)`` gives the times,
    ``reference(steps)`` and ``product(name, steps)`` the (time, y, x) arrays on ``grid``."""

    maps, summaries, scatter = {}, [], {}
    for period in periods:
        st = steps(period)
        if st.size == 0:
            continue
        ref = _da(reference(st), st, grid)
        for name in inp.products:
            prod = _da(product(name, st), st, grid)
            m = metric_map(prod, ref, metrics=metrics, settings=settings).compute()
            po = pooled_metrics(prod.values, ref.values, settings=settings)
            summaries.append({"model": name, "reference": ref_name, "period": period,
                              "kind": "reference" if name in REFERENCES else "product", **map_summary(m),
                              **{f"pooled_{k}": po[k] for k in ("R", "bias", "ubRMSE", "N")}})
            if period == "test":
                maps[name] = m
                p, r = prod.values.ravel(), ref.values.ravel()
                ok = np.isfinite(p) & np.isfinite(r)
                scatter[name] = np.histogram2d(p[ok], r[ok], bins=[BINS, BINS])[0]
    ds = xr.concat([maps[n] for n in maps], dim=xr.DataArray(list(maps), dims="model", name="model")) if maps else None
    sc = None
    if scatter:
        sc = xr.Dataset({count_name: (("model", "product_bin", "reference_bin"), np.stack([scatter[n] for n in scatter]))},
                        coords={"model": list(scatter), "product_bin": BINS[:-1] + 0.005,
                                "reference_bin": BINS[:-1] + 0.005})
    return ds, pd.DataFrame(summaries), sc


def exp_vs_smap(inp: Inputs, settings, periods=("train", "test")):
    """Experiment 1 (maps, histograms, scatter density) and the SMAP half of experiment 3."""
    return _exp_against(inp, settings, periods, steps=inp.smap_steps,
                        reference=lambda st: inp.smap.sel(time=st).values.astype(np.float32),
                        product=inp.product_m09, grid="M09", metrics=SMAP_METRICS,
                        ref_name="smap_l3_9km", count_name="count")


def _truth_cells(inp: Inputs):
    """TP10 (rows, cols) of the cells the truth covers (simulated TP cells)."""

    ds = inp.truth_ds
    m = np.asarray(tp_mask("TP10"))
    if ds is not None and "simulated" in ds.coords:
        m = m & np.asarray(ds["simulated"].values, bool)
    return np.nonzero(m)


def truth_thawed(inp: Inputs, steps) -> tuple[np.ndarray, str]:
    """Thawed cell-steps (T, 150, 320) at ``steps``: the truth's soil temperature > 0 C where the
    truth file has it, else ERA5-Land stl1 (:func:`model.validation.skill.thawed_mask`)."""

    ds = inp.truth_ds
    tt = None
    if ds is not None and "soil_temperature" in ds:
        da = ds["soil_temperature"]
        tt = to_celsius(da.sel(time=steps).values, da.attrs.get("units", "K"))
    e5 = None
    rows, cols = _truth_cells(inp)
    if tt is None or not np.isfinite(tt[:, rows, cols]).all():
        e5 = inp.era5["stl1"].reindex(time=steps).values
    if e5 is not None and tt is not None:          # only the scored cells may fall back to ERA5-Land
        keep = np.zeros(tt.shape[1:], bool)
        keep[rows, cols] = True
        e5 = np.where(keep, e5, np.nan)
    return thawed_mask(tt, e5)


def _baseline(names, rows: pd.DataFrame, prefer="pscnet"):
    """The method every other is compared with: PSCNet when present, else the best thawed R."""
    learned = [n for n in names if n not in REFERENCES]
    if prefer in learned:
        return prefer
    g = rows[rows["model"].isin(learned)].dropna(subset=["R"])
    return str(g.sort_values("R", ascending=False)["model"].iloc[0]) if len(g) else None


def intervals_table(fields: dict, truth, thawed, times, baseline: str, *, n_resamples: int = 1000,
                    seed: int = 0, min_n: int = 10, kinds: dict | None = None) -> pd.DataFrame:
    """Paired block-bootstrap (3-day blocks) 90 % intervals of every method minus ``baseline``
    in thawed cell-mean R and ubRMSE against the truth, on the same cells and steps."""

    rows = []
    memo: dict = {}                        # the baseline's resampled scores, computed once per mask
    for name, f in fields.items():
        if name == baseline:
            continue
        r = block_bootstrap_difference(f, fields[baseline], truth, times, valid=thawed,
                                       n_resamples=n_resamples, seed=seed, min_n=min_n, memo=memo)
        rows.append({"model": name, "baseline": baseline, "kind": (kinds or {}).get(name, "product"), **r})
    return pd.DataFrame(rows)


def exp_vs_truth(inp: Inputs, settings, periods=("train", "test"), *, ceiling: bool = True,
                 ceiling_kw: dict | None = None, n_resamples: int = 1000, seed: int = 0):
    """Experiment 5: every product against the virtual TP's hidden 10 km truth.

    Headline scores (``R``, ``bias``, ``ubRMSE`` per cell, the maps) use THAWED steps only;
    ``frozen_*`` columns score the frozen steps apart; ``pooled_*`` are the overall metrics of
    all thawed cell-steps; ``fine_R`` / ``fine_R_pooled`` the fine-scale R
    (:mod:`model.validation.skill`). In the test period the ceiling rows
    (:mod:`model.validation.ceiling`, ``kind`` = ceiling) are added and every method is
    compared with PSCNet (or the best method) by a paired block bootstrap (``intervals``).

    Returns (maps, summary, scatter, extras) with extras = {"intervals", "ceiling_info",
    "thawed_source", "fine_R_maps"}.
    """
    extras = {"intervals": pd.DataFrame(), "ceiling_info": {}, "thawed_source": None}
    if inp.truth is None:
        return None, pd.DataFrame(), None, extras
    tt = inp.truth["time"].values
    rows_c, cols_c = _truth_cells(inp)
    maps, summaries, scatter = {}, [], {}
    for period in periods:
        st = inp.steps(period)
        st = st[np.isin(st, tt)]
        if st.size == 0:
            continue
        truth = inp.truth.sel(time=st).values.astype(np.float32)
        thawed, extras["thawed_source"] = truth_thawed(inp, st)
        ref = _da(np.where(thawed, truth, np.nan), st, "TP10")
        fields, kinds = {}, {}
        for name in inp.products:
            v = inp.product_tp10(name, st)
            kinds[name] = "reference" if name in REFERENCES else "product"
            m, row = _truth_row(name, v, truth, thawed, ref, st, settings, period, kinds[name])
            summaries.append(row)
            if period == "test":
                maps[name] = m
                p, r = v[thawed], truth[thawed]
                ok = np.isfinite(p) & np.isfinite(r)
                scatter[name] = np.histogram2d(p[ok], r[ok], bins=[BINS, BINS])[0]
                fields[name] = v[:, rows_c, cols_c]
        if period != "test":
            continue
        if ceiling:
            preds, extras["ceiling_info"] = _ceiling_fields(inp, tt, st, rows_c, cols_c, seed, ceiling_kw)
            for name, v in preds.items():
                kinds[name] = "ceiling"
                maps[name], row = _truth_row(name, v, truth, thawed, ref, st, settings, period, "ceiling")
                summaries.append(row)
                fields[name] = v[:, rows_c, cols_c]
        summ = pd.DataFrame(summaries)
        base = _baseline(list(fields), summ[summ["period"] == "test"])
        if base is not None:
            extras["intervals"] = intervals_table(fields, truth[:, rows_c, cols_c], thawed[:, rows_c, cols_c], st,
                                                  base, n_resamples=n_resamples, seed=seed,
                                                  min_n=settings.min_n, kinds=kinds)
    ds, sc = _truth_datasets(maps, scatter)
    return ds, pd.DataFrame(summaries), sc, extras


def _truth_row(name, v, truth, thawed, ref, st, settings, period, kind):
    """The metric maps of one field against the thawed truth, and its summary-table row."""
    m = metric_map(_da(v, st, "TP10"), ref, metrics=TRUTH_METRICS, settings=settings).compute()
    extra = truth_scores(v, truth, thawed, min_n=settings.min_n, settings=settings)
    row = {"model": name, "reference": "truth_10km", "period": period, "kind": kind,
           **({"note": LABEL} if kind == "ceiling" else {}), **map_summary(m),
           **{k: extra[k] for k in extra if k not in ("R", "bias", "ubRMSE", "N", "n_cells")}}
    return m, row


def _ceiling_fields(inp: Inputs, tt, st, rows_c, cols_c, seed, ceiling_kw):
    """The ceiling learners fitted on the whole training period of the truth (not only the
    archived steps) and predicted at the test steps ``st``; ({}, {"error"}) if they fail."""
    s0, e0 = inp.periods["train"]
    train_st = tt[(tt >= np.datetime64(s0, "ns")) & (tt < np.datetime64(e0, "ns") + np.timedelta64(1, "D"))]
    train_st = train_st[np.isin(train_st, inp.era5["time"].values)]
    try:
        return fit_ceilings(inp.era5, open_group(inp.ard, "static"), inp.truth, rows_c, cols_c,
                            train_st, st, seed=seed, **(ceiling_kw or {}))
    except Exception as exc:  # noqa: BLE001 - the products' scores stand without the ceilings
        log.error("ceiling rows failed: %s", exc)
        return {}, {"error": str(exc)}


def _truth_datasets(maps: dict, scatter: dict):
    """The test period's metric maps stacked along ``model``, and the scatter densities."""
    ds = xr.concat([maps[n] for n in maps], dim=xr.DataArray(list(maps), dims="model", name="model")) if maps else None
    sc = None
    if scatter:
        sc = xr.Dataset({"truth_count": (("model", "product_bin", "reference_bin"), np.stack([scatter[n] for n in scatter]))},
                        coords={"model": list(scatter), "product_bin": BINS[:-1] + 0.005,
                                "reference_bin": BINS[:-1] + 0.005})
    return ds, sc


def temporal_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Experiment 3: train vs test metrics and their relative change, per model and reference."""
    rows = []
    for (model, ref), g in summary.groupby(["model", "reference"]):
        g = g.set_index("period")
        if not {"train", "test"} <= set(g.index):
            continue
        row = {"model": model, "reference": ref}
        for k in ("R", "ubRMSE", "bias", "RMSE", "pooled_R", "pooled_ubRMSE", "fine_R"):
            if k in g:
                tr, te = float(g.loc["train", k]), float(g.loc["test", k])
                row[f"{k}_train"], row[f"{k}_test"] = tr, te
                row[f"rel_change_{k}"] = relative_change(tr, te)
        rows.append(row)
    return pd.DataFrame(rows)


def load_stations(ard) -> tuple[dict, pd.DataFrame]:
    p = Path(ard)
    data = pd.read_parquet(p / "stations.parquet")
    meta = pd.read_parquet(p / "stations_meta.parquet")
    meta["id"] = meta["network"] + "/" + meta["station"]
    stations = {}
    for (net, sta), g in data.groupby(["network", "station"]):
        d = g.set_index(pd.DatetimeIndex(g["time"]))
        stations[f"{net}/{sta}"] = d[[c for c in ("soil_moisture", "soil_temperature", "flag") if c in d]]
    return stations, meta.set_index("id")


def exp_stations(inp: Inputs, settings, periods=("train", "test"), timings: dict | None = None):
    """Experiments 2 and 4: station and network metrics with ranks, and station series.

    ``timings`` (optional) receives the seconds of the parts: ``station_extract`` (product
    series at the stations from the archive), ``station_tables`` (matching, station and network
    metrics, ranks) and ``station_series`` (experiment 4's series table).
    """
    timings = {} if timings is None else timings
    t0 = _time.perf_counter()
    stations, meta = load_stations(inp.ard)
    prepared = {sid: prepare_station(d, name=sid) for sid, d in stations.items()}   # cleaned once
    prod_series, era_tp = _station_product_series(inp, meta)
    timings["station_extract"] = round(_time.perf_counter() - t0, 1)
    t0 = _time.perf_counter()
    rows, net_rows = [], []
    for period in periods:
        results = _match_period(inp, period, prod_series, stations, prepared, meta, settings, rows)
        net_rows += _network_rows(results, meta, period, settings)
    st, nets = _ranked(pd.DataFrame(rows), ["period", "id"]), _ranked(pd.DataFrame(net_rows), ["period", "network", "form"])
    timings["station_tables"] = round(_time.perf_counter() - t0, 1)
    t0 = _time.perf_counter()
    ser = _station_series(stations, prod_series, era_tp, inp.times)
    timings["station_series"] = round(_time.perf_counter() - t0, 1)
    return st, nets, ser


def _station_product_series(inp: Inputs, meta: pd.DataFrame) -> tuple[dict, dict]:
    """Every product's series at the stations (archive series layout: one chunk per station
    tile; ERA5-Land, SMAP L3 and L4 from the inputs), and ERA5-Land's precipitation there."""
    located = locate_stations(meta, tp10())
    prod_series = {name: extract_station_series(inp.series[name], located) for name in inp.models}
    era = inp.era5[["swvl1", "tp"]].sel(time=inp.times)
    prod_series["era5land"] = extract_station_series(era["swvl1"], located)
    era_tp = extract_station_series(era["tp"], located)
    loc9 = locate_stations(meta, get_grid("M09"))
    smap_s = extract_station_series(inp.smap, loc9, dims=("y", "x"))
    if inp.l4 is not None:
        prod_series["smap_l4"] = extract_station_series(inp.l4.reindex(time=inp.times), loc9, dims=("y", "x"))
    prod_series["smap_l3_9km"] = smap_s
    return prod_series, era_tp


def _match_period(inp, period, prod_series, stations, prepared, meta, settings, rows: list) -> dict:
    """Match every product with every station over ``period``; appends one row per
    (product, station) to ``rows`` and returns the matches by product and station."""
    net_of, sta_of = meta["network"].to_dict(), meta["station"].to_dict()
    s, e = inp.periods[period]
    s, e = pd.Timestamp(s), pd.Timestamp(e) + pd.Timedelta(days=1)
    results: dict = {}
    for name, ser in prod_series.items():
        for sid in stations:
            if sid not in ser:
                continue
            ps = ser[sid]
            ps = ps[(ps.index >= s) & (ps.index < e)]
            r = match_station(ps, prepared[sid], name=sid, settings=settings)
            results.setdefault(name, {})[sid] = r
            rows.append({"model": name, "period": period, "network": net_of[sid],
                         "station": sta_of[sid], "id": sid, "status": r.status,
                         "N": r.counts.get("n_pairs", 0), "n_frozen": r.counts.get("n_frozen", 0),
                         **{k: r.metrics.get(k, np.nan) for k in ("R", "R_p", "bias", "RMSE", "ubRMSE", "rho", "anomaly_R")},
                         "metric_status": r.metrics.get("status")})
    return results


def _network_rows(results: dict, meta: pd.DataFrame, period: str, settings) -> list[dict]:
    """Per product and network: pooled over the stations, mean of the station metrics, and the
    metrics of the network-mean series."""
    net_of = meta["network"].to_dict()
    nets = sorted(meta["network"].unique())
    out = []
    for name, per in results.items():
        for net in nets + ["all"]:
            sub = [r for sid, r in per.items() if net in ("all", net_of[sid]) and len(r.pairs)]
            if not sub:
                continue
            pp = pd.concat([r.pairs[["product", "insitu"]] for r in sub])
            po = pooled_metrics(pp["product"].to_numpy(), pp["insitu"].to_numpy(), metrics=POOLED + ("rho",),
                                settings=settings)
            out.append({"model": name, "period": period, "network": net, "form": "pooled",
                        **{k: po[k] for k in ("R", "bias", "RMSE", "ubRMSE", "rho", "N")}})
        for net in nets:
            sub = {sid: r for sid, r in per.items() if net_of[sid] == net}
            if not sub:
                continue
            nm = network_metrics(sub, settings=settings)
            out.append({"model": name, "period": period, "network": net, "form": "mean_of_stations",
                        **{k: v for k, v in nm["mean_of_stations"].items() if not isinstance(v, dict)}})
            out.append({"model": name, "period": period, "network": net, "form": "network_mean_series",
                        **{k: nm["network_mean"].get(k, np.nan) for k in ("R", "bias", "RMSE", "ubRMSE", "rho", "anomaly_R", "N")}})
    return out


def _ranked(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``rank_R``, ``rank_bias``, ``rank_ubRMSE`` of the models within each group of ``by``."""
    if table.empty:
        return table
    parts = []
    for _, g in table.groupby(by):
        rk = rank_models(g.set_index("model")[["R", "bias", "ubRMSE"]])
        parts.append(g.join(rk.add_prefix("rank_"), on="model"))
    return pd.concat(parts, ignore_index=True)


def _station_series(stations: dict, prod_series: dict, era_tp: dict, steps) -> pd.DataFrame:
    """Experiment 4: in situ (nearest within 1.5 h), every product and the precipitation (mm)
    at each station, at the product steps (long table: network, station, time, source, value)."""
    idx = pd.DatetimeIndex(steps)
    parts = []
    for sid, insitu in stations.items():
        if sid not in era_tp:
            continue
        net, sta = sid.split("/", 1)
        base = {"network": net, "station": sta}
        ins = insitu["soil_moisture"].dropna().sort_index()
        if len(ins):
            near = ins.reindex(idx, method="nearest", tolerance=pd.Timedelta("1.5h"))
            parts.append(pd.DataFrame({**base, "time": idx, "source": "insitu", "value": near.to_numpy()}))
        for name, ser in prod_series.items():
            if sid in ser:
                parts.append(pd.DataFrame({**base, "time": idx, "source": name, "value": ser[sid].reindex(idx).to_numpy()}))
        parts.append(pd.DataFrame({**base, "time": idx, "source": "precipitation_mm",
                                   "value": era_tp[sid].reindex(idx).to_numpy() * 1000.0}))
    ser = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not ser.empty:
        ser = ser.dropna(subset=["value"])
        ser["value"] = ser["value"].astype("float32")
    return ser


def run_validation(ard=None, archive=None, out=None, models=None, settings: MetricSettings = DEFAULT_SETTINGS,
                   report: bool = True, ceiling: bool = True, ceiling_kw: dict | None = None,
                   n_resamples: int = 1000) -> dict:
    """Run the five experiments and write their data (and the report) atomically to ``out``.

    ``ceiling``: fit the ceiling learners on the truth (virtual TP only; ``ceiling_kw`` goes to
    :func:`model.validation.ceiling.fit_ceilings`); ``n_resamples``: block-bootstrap resamples.
    """

    t0 = _time.perf_counter()
    ard = Path(ard) if ard else default_ard()
    inp = Inputs(ard, archive, models)
    out = validation_dir(out)
    ceiling_kw = {**CEILING_DEFAULTS, **(ceiling_kw or {})}
    results, status, timings = _run_experiments(inp, settings, ceiling, ceiling_kw, n_resamples)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        allsum, truth_extras = _write_map_experiments(tmp, results)
        temporal = temporal_table(allsum) if not allsum.empty else pd.DataFrame()
        temporal.to_parquet(tmp / "temporal.parquet")
        allsum.to_parquet(tmp / "period_summary.parquet")
        nets = pd.DataFrame()
        if results.get("stations"):
            st, nets, ser = results["stations"]
            st.to_parquet(tmp / "stations.parquet")
            nets.to_parquet(tmp / "networks.parquet")
            ser.to_parquet(tmp / "station_series.parquet")
        main = main_table(allsum, nets)
        main.to_parquet(tmp / "summary.parquet")
        settings_doc = _settings_doc(inp, settings, truth_extras, n_resamples, status, timings, ard)
        (tmp / "settings.json").write_text(json.dumps(settings_doc, indent=1, default=str))
        if report:
            try:
                make_report(tmp)
                status["report"] = "ok"
            except Exception as exc:  # noqa: BLE001
                status["report"] = f"failed: {exc}"
                log.error("report failed: %s", exc)
            (tmp / "settings.json").write_text(json.dumps({**settings_doc, "status": status}, indent=1, default=str))
    return {"outputs": str(out), "status": status, "seconds": round(_time.perf_counter() - t0, 1),
            "timings": timings, "main_table": main}


def _run_experiments(inp: Inputs, settings, ceiling: bool, ceiling_kw: dict, n_resamples: int):
    """The experiments, each on its own: one that fails is logged and leaves the others.
    Returns (results, status, seconds) by experiment name."""
    status, timings, results = {}, {}, {}

    def step(name, fn):
        t = _time.perf_counter()
        try:
            results[name] = fn()
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - one failing experiment must not lose the others
            log.error("experiment %s failed: %s", name, exc)
            status[name] = f"failed: {exc}"
            results[name] = None
            log.debug(traceback.format_exc())
        timings[name] = round(_time.perf_counter() - t, 1)

    step("vs_smap", lambda: exp_vs_smap(inp, settings))
    step("vs_truth", lambda: exp_vs_truth(inp, settings, ceiling=ceiling, ceiling_kw=ceiling_kw,
                                          n_resamples=n_resamples))
    parts: dict = {}
    step("stations", lambda: exp_stations(inp, settings, timings=parts))
    timings.update(parts)
    return results, status, timings


def _write_map_experiments(tmp: Path, results: dict) -> tuple[pd.DataFrame, dict]:
    """Write the maps, scatter densities and intervals of the SMAP and truth experiments into
    ``tmp``; return their joined period summary and the truth experiment's extras."""
    summary_parts, truth_extras = [], {}
    if results.get("vs_smap"):
        maps, summ, sc = results["vs_smap"]
        if maps is not None:
            maps.to_netcdf(tmp / "vs_smap_maps.nc")
        summary_parts.append(summ)
        if sc is not None:
            sc.to_netcdf(tmp / "scatter_density.nc")
    if results.get("vs_truth"):
        maps, summ, sc, truth_extras = results["vs_truth"]
        if truth_extras.get("intervals") is not None:
            truth_extras["intervals"].to_parquet(tmp / "intervals.parquet")
        if maps is not None:
            maps.to_netcdf(tmp / "vs_truth_maps.nc")
            if sc is not None:
                sc.to_netcdf(tmp / "scatter_density.nc", mode="a" if (tmp / "scatter_density.nc").exists() else "w")
        summary_parts.append(summ)
    return (pd.concat(summary_parts, ignore_index=True) if summary_parts else pd.DataFrame()), truth_extras


def _settings_doc(inp: Inputs, settings, truth_extras: dict, n_resamples: int, status: dict, timings: dict,
                  ard) -> dict:
    """settings.json: the metric settings, periods, models, matching and truth rules, status."""
    return {"settings": asdict(settings), "periods": inp.periods, "models": inp.models,
            "references": [r for r in REFERENCES if r in inp.products],
            "matching": {"stations": "TP10 cell holding the station, nearest in-situ value within 1.5 h "
                                     "of each 3-hourly step, frozen soil (T <= 0 C or ISMN D01/D03) excluded",
                         "smap": "product aggregated to SMAP L3 9 km cells by area overlap at SMAP's "
                                 "overpass steps"},
            "truth": {"thawed": "truth soil temperature > 0 C where the truth has it, else ERA5-Land "
                                "stl1 > 273.15 K; headline scores on thawed steps, frozen_* apart",
                      "thawed_source": truth_extras.get("thawed_source"),
                      "fine_scale": "R of (10 km value minus its 36 km area-overlap parent), product vs "
                                    "truth, masked jointly; per cell (fine_R) and pooled (fine_R_pooled)",
                      "ceilings": truth_extras.get("ceiling_info", {}),
                      "bootstrap": {"block_days": 3, "n_resamples": n_resamples, "level": 0.9, "seed": 0}},
            "status": status, "seconds": timings, "ard": str(ard)}


def main_table(summary: pd.DataFrame, nets: pd.DataFrame) -> pd.DataFrame:
    """One row per model: vs SMAP (per cell and pooled), vs truth (test period, thawed steps:
    per cell, pooled, fine-scale R; frozen steps apart) and per network (mean of the station
    metrics, and pooled over every station). ``kind`` says product, reference or ceiling (the
    ceiling rows are fitted to the truth and are not products). Products scored only against
    the stations (SMAP L3 itself) get a row too."""
    if summary.empty:
        return pd.DataFrame()
    test = summary[summary["period"] == "test"]
    tnets = nets[nets["period"] == "test"] if not nets.empty else nets
    mos = tnets[tnets["form"] == "mean_of_stations"] if not tnets.empty else tnets
    pooled = tnets[(tnets["form"] == "pooled") & (tnets["network"] == "all")] if not tnets.empty else tnets
    models = list(dict.fromkeys(sorted(test["model"].unique())))
    models += sorted(set(mos["model"]) - set(models)) if not mos.empty else []
    cols = {"smap": ("R", "bias", "ubRMSE", "pooled_R"),
            "truth": ("R", "bias", "ubRMSE", "pooled_R", "fine_R", "fine_R_pooled", "frozen_R", "frozen_ubRMSE")}
    rows = []
    for model in models:
        g = test[test["model"] == model]
        kind = g["kind"].dropna().iloc[0] if "kind" in g and g["kind"].notna().any() else (
            "reference" if model in REFERENCES + ("smap_l3_9km",) else "product")
        row = {"model": model, "kind": kind}
        for ref, tag in (("smap_l3_9km", "smap"), ("truth_10km", "truth")):
            r = g[g["reference"] == ref]
            if len(r):
                for k in cols[tag]:
                    row[f"{tag}_{k}"] = float(r.iloc[0].get(k, np.nan)) if k in r else np.nan
        if not pooled.empty:
            p = pooled[pooled["model"] == model]
            if len(p):
                row["stations_pooled_R"] = float(p.iloc[0]["R"])
        if not mos.empty:
            for _, r in mos[mos["model"] == model].iterrows():
                for k in ("R", "bias", "ubRMSE"):
                    row[f"{r['network']}_{k}"] = r.get(k)
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {"product": 0, "reference": 1, "ceiling": 2}
    return out.sort_values("kind", key=lambda k: k.map(order).fillna(3), kind="stable").reset_index(drop=True)
