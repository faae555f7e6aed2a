"""Build ``docs/realism.md`` and its figures: the virtual TP against published facts and the
real shared files.

Usage (from the repository root, after ``sm-downscale world --size demo``)::

    python docs/make_realism.py [--world DIR] [--seed 42]

Reads the built demo world through the project's readers, runs one extra truth-only year of
the same world (2016-09-01 .. 2017-09-30, same seed: the weather and the truth do not depend
on which land models run) for winter maps and the annual cycle, and reads the REAL shared
files (``../shared/data``: Maqu CST-01 ISMN series, the WRF TP crop) for comparison. The
product never reads ``../shared`` at run time; only this documentation script does.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

with contextlib.suppress(ImportError):  # before any NetCDF is read: see tests/world/conftest.py
    import pyproj  # noqa: F401

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from model.config import shared_data, worlds_dir  # noqa: E402
from model.data.era5 import read_era5  # noqa: E402
from model.data.ismn import read_ismn  # noqa: E402
from model.data.smap import read_smap_l3, read_smap_l4  # noqa: E402
from model.grids import get_grid, tp10  # noqa: E402
from model.world import diagnostics as D  # noqa: E402

DOCS = Path(__file__).resolve().parent
FIG = DOCS / "figures"
STATIONS = [("MAQU", "CST-01"), ("CTP_SMTMN", "L01"), ("NAQU", "NAQU-01"), ("NGARI", "NGARI-01")]


def outline(ax):
    from model.grids import tp_polygon

    geom = tp_polygon()
    polys = getattr(geom, "geoms", [geom])
    for p in polys:
        x, y = p.exterior.xy
        ax.plot(x, y, color="k", lw=0.5)
    ax.set_xlim(73, 105)
    ax.set_ylim(25.5, 40)
    ax.set_aspect(1.15)


def year_run(seed: int, hours_every: int = 1):
    """Truth-only simulation Sep 2016 - Sep 2017 over the whole TP: DJF/JJA means (liquid and
    total water), monthly network-cell means and the hourly truth at the station cells."""
    from model.world.config import get_config
    from model.world.observe import IsmnOperator
    from model.world.simulate import Simulation
    from model.world.static import build_static

    cfg = replace(get_config("demo"), sim_start="2016-09-01", start="2016-10-01", end="2017-09-30",
                  history=None, train=("2016-10-01", "2017-09-30"), test=("2017-09-30", "2017-09-30"))
    st = build_static(cfg, seed)
    sim = Simulation(st, seed, cfg.sim_start_ts, models=("truth",))
    ismn = IsmnOperator(st, seed, cfg)
    acc = {k: np.zeros(st.n) for k in ("djf_liq", "djf_tot", "jja_liq", "djf_frozen")}
    n = {"djf": 0, "jja": 0}
    end = cfg.end_ts
    t0 = time.time()
    while sim.t < end:
        t, _, s = sim.step()
        tr = s["truth"]
        ismn.record(t, tr)
        if t.month in (12, 1, 2):
            acc["djf_liq"] += tr.liq1
            acc["djf_tot"] += tr.w1
            acc["djf_frozen"] += tr.t1 <= 273.15
            n["djf"] += 1
        elif t.month in (6, 7, 8):
            acc["jja_liq"] += tr.liq1
            n["jja"] += 1
    print(f"year run: {time.time() - t0:.0f} s")
    out = {k: st.to_grid(v / n[k[:3]]) for k, v in acc.items()}
    return st, out, ismn


def read_real_maqu(shared: Path) -> pd.Series:
    from model.data.ismn import FlagPolicy, read_ismn

    path = shared / "ismn" / "header_values_tp" / "MAQU" / "CST-01"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = read_ismn(path, policy=FlagPolicy(keep=("G", "U", "C*", "D*"), drop=("M",)))
    x = s[0].data["soil_moisture"]
    x.index = x.index.tz_localize(None) if x.index.tz is not None else x.index
    return x


def monthly_clim(x: pd.Series) -> pd.DataFrame:
    g = x.groupby(x.index.month)
    return pd.DataFrame({"mean": g.mean(), "p10": g.quantile(0.1), "p90": g.quantile(0.9)})


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=str(worlds_dir() / "demo"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--facts", default=None, help="also write the numbers as JSON to this file")
    return ap.parse_args(argv)


def smap_jja_mean(world: Path, g36) -> np.ndarray:
    """Mean of the SMAP-like 36 km retrievals over June-August (cells with >= 5 of them)."""
    sums, cnt = np.zeros(g36.shape), np.zeros(g36.shape)
    for f in sorted(glob.glob(str(world / "inputs/SPL3SMP/*.h5"))):
        if f.split("_")[-3][4:6] not in ("06", "07", "08"):
            continue
        v = read_smap_l3(f)["soil_moisture"].values
        sums += np.nansum(v, 0)
        cnt += np.isfinite(v).sum(0)
    with np.errstate(invalid="ignore"):
        jja_s = np.where(cnt >= 5, sums / cnt, np.nan)
    return jja_s


def maps_figure(lon, lat, jja_t, jja_e, jja_s, year: dict, g36) -> None:
    """Mean soil moisture maps: truth in JJA and DJF, ERA5-Land-like and SMAP-like in JJA."""
    fig, axs = plt.subplots(2, 2, figsize=(13, 7.4), constrained_layout=True)
    panels = [(axs[0, 0], lon, lat, jja_t, "truth, JJA 2017 mean (liquid, 0-5 cm)"),
              (axs[0, 1], lon, lat, year["djf_liq"], "truth, DJF 2016/17 mean (liquid, 0-5 cm)"),
              (axs[1, 0], lon, lat, jja_e, "ERA5-Land-like swvl1, JJA 2017 mean"),
              (axs[1, 1], g36.lon_bounds, g36.lat_bounds, jja_s, "SMAP-like SPL3SMP 36 km, JJA 2017 mean")]
    for ax, x, y, v, title in panels:
        im = ax.pcolormesh(x, y, v, vmin=0, vmax=0.45, cmap="YlGnBu", shading="auto")
        outline(ax)
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=axs, shrink=0.8, label="soil moisture (m3 m-3)")
    fig.savefig(FIG / "world_maps_jja_djf.png", dpi=80)
    plt.close(fig)


def box(lon, lat, v, la0, la1, lo0, lo1) -> float:
    """Mean of the TP10 field ``v`` over a latitude-longitude box."""
    m = (lat[:, None] >= la0) & (lat[:, None] <= la1) & (lon[None, :] >= lo0) & (lon[None, :] <= lo1)
    return float(np.nanmean(np.where(m, v, np.nan)))


def map_facts(lon, lat, jja_t, jja_e, year: dict) -> dict:
    """East-wet / west-dry in summer, winter liquid and frozen water, ERA5-Land-like bias."""
    return {
        "jja_truth_se": box(lon, lat, jja_t, 28, 34, 97, 105),
        "jja_truth_nw": box(lon, lat, jja_t, 32, 40, 73, 85),
        "jja_truth_p1_p50_p99": [float(x) for x in np.nanpercentile(jja_t, [1, 50, 99])],
        "djf_liq_p1_p50_p99": [float(x) for x in np.nanpercentile(year["djf_liq"], [1, 50, 99])],
        "djf_total_p50": float(np.nanmedian(year["djf_tot"])),
        "djf_frozen_fraction_median": float(np.nanmedian(year["djf_frozen"])),
        "jja_era_minus_truth": float(np.nanmean(jja_e - jja_t)),
    }


def precip_facts(lon, lat, st) -> dict:
    """The annual precipitation normal: SE and NW boxes, TP percentiles."""
    pann = st.precip_annual
    return {"se_mm": box(lon, lat, pann, 28, 34, 97, 105), "nw_mm": box(lon, lat, pann, 32, 40, 73, 85),
            "p5_p50_p95": [float(x) for x in np.nanpercentile(pann, [5, 50, 95])]}


def station_cells(series: dict, g10, g36, g09) -> dict:
    """Per station: its TP10, 36 km and 9 km (row, column)."""
    loc = {}
    for k in STATIONS:
        s = series[k]
        r, c = g10.locate(s.lat, s.lon)
        r36, c36 = g36.locate(s.lat, s.lon)
        r09, c09 = g09.locate(s.lat, s.lon)
        loc[k] = (int(r[0]), int(c[0]), int(r36[0]), int(c36[0]), int(r09[0]), int(c09[0]))
    return loc


def read_station_points(world: Path, l4_files: list, loc: dict, smap_pts: dict, l4_pts: dict) -> None:
    """The SMAP-like L3 36 km retrievals (AM and PM) and every second SMAP-L4-like file at the
    stations' cells, appended to ``smap_pts`` and ``l4_pts``."""
    for f in sorted(glob.glob(str(world / "inputs/SPL3SMP/*.h5"))):
        d = read_smap_l3(f)
        for k, (_, _, r36, c36, _, _) in loc.items():
            for ov in ("AM", "PM"):
                v = float(d["soil_moisture"].sel(overpass=ov).values[r36, c36])
                if np.isfinite(v):
                    smap_pts[k].append((pd.Timestamp(d["obs_time"].sel(overpass=ov).values[r36, c36]), v))
    for f in l4_files[::2]:
        d = read_smap_l4(f)
        for k, (_, _, _, _, r09, c09) in loc.items():
            l4_pts[k].append((pd.Timestamp(d["time"].values[0]), float(d["sm_surface"].values[0, r09, c09])))


def station_panel(ax, k, s, rc, sm, era, smap_pts: list, l4_pts: list) -> dict:
    """One station's series in ``ax``; returns its facts."""
    r, c = rc
    ins = s.data["soil_moisture"]
    ins.index = ins.index.tz_localize(None)
    tr = sm[:, r, c].to_series()
    ev = era["swvl1"][:, r, c].to_series()
    ax.plot(ins.index, ins.values, ".", ms=1.2, color="0.4", label="ISMN-like in situ (flag policy)")
    ax.plot(tr.index, tr.values, color="k", lw=0.9, label="truth (10 km cell)")
    ax.plot(ev.index, ev.values, color="tab:blue", lw=0.8, label="ERA5-Land-like swvl1")
    if l4_pts:
        lt, lv = zip(*l4_pts)
        ax.plot(lt, lv, color="tab:green", lw=0.8, label="SMAP-L4-like (9 km)")
    if smap_pts:
        stt, sv = zip(*smap_pts)
        ax.plot(stt, sv, "o", ms=2.5, color="tab:red", label="SMAP-like L3 36 km")
    ax.set_ylabel("m3 m-3")
    ax.set_title(f"{k[0]} {k[1]} ({s.lat:.2f} N, {s.lon:.2f} E, {s.elevation:.0f} m)", fontsize=10)
    ax.set_ylim(0, 0.6)
    j = pd.concat([ins.rename("insitu"), tr.rename("truth"), ev.rename("era")], axis=1).dropna()
    return {"n": int(len(j)), "insitu_mean": float(j.insitu.mean()), "truth_mean": float(j.truth.mean()),
            "era_mean": float(j.era.mean()), "r_insitu_truth": float(j.corr().loc["insitu", "truth"])}


def station_series(world: Path, g36, sm, era) -> dict:
    """The station figure; returns the facts per station."""
    series = {(s.network, s.station): s for s in read_ismn(world / "inputs/ISMN")}
    l4_files = sorted(glob.glob(str(world / "inputs/SPL4SMGP/*.h5")))
    fig, axs = plt.subplots(len(STATIONS), 1, figsize=(13, 11), sharex=True, constrained_layout=True)
    g10 = tp10()
    g09 = get_grid("M09")
    smap_pts = {k: [] for k in STATIONS}
    l4_pts = {k: [] for k in STATIONS}
    loc = station_cells(series, g10, g36, g09)
    read_station_points(world, l4_files, loc, smap_pts, l4_pts)
    stations = {}
    for ax, k in zip(axs, STATIONS):
        stations[f"{k[0]}/{k[1]}"] = station_panel(ax, k, series[k], loc[k][:2], sm, era, smap_pts[k], l4_pts[k])
    axs[0].legend(ncol=5, fontsize=8, loc="upper left")
    fig.savefig(FIG / "world_station_series.png", dpi=80)
    plt.close(fig)
    return stations


def smap_errors(world: Path, g36) -> list[float]:
    """The SMAP error figure; returns the 10th and 90th percentiles of the per-cell ubRMSE at 36 km."""
    o36, r36_ = D.smap_matchups(world, "SPL3SMP")
    o09, r09_ = D.smap_matchups(world, "SPL3SMP_E", every=2)
    ub36 = D.per_cell_ubrmse(o36, r36_, min_n=10)
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for o, r, lab in ((o36, r36_, "SPL3SMP-like 36 km"), (o09, r09_, "SPL3SMP_E-like 9 km")):
        d = (o - r)[np.isfinite(o - r)]
        axs[0].hist(d, bins=np.linspace(-0.2, 0.2, 81), histtype="step", density=True,
                    label=f"{lab}: bias {d.mean():+.3f}, ubRMSE {d.std():.3f}")
    axs[0].set_xlabel("retrieval - truth aggregated over the cell (m3 m-3)")
    axs[0].legend(fontsize=8)
    im = axs[1].pcolormesh(g36.lon_bounds, g36.lat_bounds, ub36, vmin=0.02, vmax=0.06, cmap="magma_r")
    outline(axs[1])
    axs[1].set_title("per-cell ubRMSE, 36 km (>= 10 retrievals)", fontsize=10)
    fig.colorbar(im, ax=axs[1], shrink=0.8)
    ok = np.isfinite(o36) & np.isfinite(r36_)
    axs[2].hexbin(r36_[ok], o36[ok], gridsize=60, extent=(0, 0.55, 0, 0.55), bins="log", cmap="viridis")
    axs[2].plot([0, 0.55], [0, 0.55], "w--", lw=0.8)
    axs[2].set_xlabel("truth aggregated to 36 km")
    axs[2].set_ylabel("SMAP-like retrieval")
    fig.savefig(FIG / "world_smap_errors.png", dpi=80)
    plt.close(fig)
    return [float(x) for x in np.nanpercentile(ub36, [10, 90])]


def maqu_cst01(shared: Path, ismn, st) -> dict:
    """The real against the virtual Maqu CST-01 figure; returns their facts."""
    real = read_real_maqu(shared)
    pts = {(m["network"], m["station"]): df for m, df in ismn.station_series(
        _porosity(st), artifacts=False)}
    world_cst = pts[("MAQU", "CST-01")]["soil_moisture"].dropna()
    cr, cw = monthly_clim(real), monthly_clim(world_cst)
    fig, axs = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
    for clim, lab, col in ((cr, "real CST-01, 2008-2010 (all flags but M)", "k"),
                           (cw, "virtual CST-01, Oct 2016 - Sep 2017", "tab:red")):
        axs[0].plot(clim.index, clim["mean"], "-o", color=col, label=lab)
        axs[0].fill_between(clim.index, clim["p10"], clim["p90"], color=col, alpha=0.15)
    axs[0].set_xticks(range(1, 13))
    axs[0].set_xlabel("month")
    axs[0].set_ylabel("5 cm soil moisture (m3 m-3)")
    axs[0].legend(fontsize=8)
    axs[0].set_title("Maqu CST-01: monthly mean and 10-90 % range", fontsize=10)
    bins = np.linspace(0, 0.65, 66)
    axs[1].hist(real.values, bins=bins, density=True, histtype="step", color="k", label="real")
    axs[1].hist(world_cst.values, bins=bins, density=True, histtype="step", color="tab:red", label="virtual")
    axs[1].set_xlabel("hourly 5 cm soil moisture (m3 m-3)")
    axs[1].legend(fontsize=8)
    fig.savefig(FIG / "world_maqu_cst01.png", dpi=80)
    plt.close(fig)
    return {
        "real_range": [float(real.min()), float(real.max())],
        "real_p5_p95": [float(x) for x in real.quantile([0.05, 0.95])],
        "world_range": [float(world_cst.min()), float(world_cst.max())],
        "world_p5_p95": [float(x) for x in world_cst.quantile([0.05, 0.95])],
        "real_monthly": {int(k): round(float(v), 3) for k, v in cr["mean"].items()},
        "world_monthly": {int(k): round(float(v), 3) for k, v in cw["mean"].items()},
    }


def wrf_range(shared: Path, sm, lon, lat, era) -> dict:
    """The real WRF crop against the virtual truth in the same box on the same day of the year:
    the figure; returns the facts."""
    wrf = xr.open_dataset(shared / "wrf_tp" / "wrf_d01_allvars_cropped_compressed.nc")
    zdim = [d for d in wrf["SMOIS"].dims if "soil" in d.lower()][0]
    smois = wrf["SMOIS"].isel({zdim: 0}).values
    land = smois < 0.99                      # SMOIS = 1 on water cells
    wlat, wlon = wrf["XLAT"].values, wrf["XLONG"].values
    la0, la1, lo0, lo1 = float(np.min(wlat)), float(np.max(wlat)), float(np.min(wlon)), float(np.max(wlon))
    day = sm.sel(time=slice("2017-09-21T00", "2017-09-21T21")).values
    boxm = (lat[:, None] >= la0) & (lat[:, None] <= la1) & (lon[None, :] >= lo0) & (lon[None, :] <= lo1)
    wv = day[:, boxm].ravel()
    wv = wv[np.isfinite(wv)]
    t2w = wrf["T2"].values.ravel()
    t2e = era["t2m"].sel(time=slice("2017-09-21T00", "2017-09-21T23")).values[:, boxm].ravel()
    facts = {"box": [la0, la1, lo0, lo1],
             "smois_land_range": [float(smois[land].min()), float(smois[land].max())],
             "smois_land_p5_p95": [float(x) for x in np.percentile(smois[land], [5, 95])],
             "world_range": [float(wv.min()), float(wv.max())],
             "world_p5_p95": [float(x) for x in np.percentile(wv, [5, 95])],
             "wrf_t2_range": [float(t2w.min()), float(t2w.max())],
             "world_t2m_range": [float(np.nanmin(t2e)), float(np.nanmax(t2e))]}
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    ax.boxplot([smois[land].ravel(), wv], whis=(0, 100))
    ax.set_xticks([1, 2], ["real WRF (HAR) SMOIS layer 1\n2005-09-21, land cells",
                           "virtual truth 0-5 cm\n2017-09-21, same box"])
    ax.set_ylabel("m3 m-3")
    ax.set_title(f"{la0:.1f}-{la1:.1f} N, {lo0:.1f}-{lo1:.1f} E", fontsize=10)
    fig.savefig(FIG / "world_wrf_range.png", dpi=80)
    plt.close(fig)
    return facts


def main(argv=None):
    args = parse_args(argv)
    world = Path(args.world)
    if not (world / "world.json").exists():
        raise SystemExit(f"{world}: no world there; build it first: sm-downscale world --size demo")
    shared = shared_data()
    if shared is None:
        raise SystemExit("../shared/data is absent: the realism document compares with the real files there")
    FIG.mkdir(parents=True, exist_ok=True)
    man = json.loads((world / "world.json").read_text())
    warnings.simplefilter("ignore")
    facts: dict = {"world": str(world), "size": man["size"], "seed": man["seed"]}

    # ---------------------------------------------------------------- error statistics
    facts["smap36"] = D.smap_error_stats(world, "SPL3SMP")
    facts["smap09"] = D.smap_error_stats(world, "SPL3SMP_E", every=2)
    facts["gridded"] = D.gridded_vs_truth(world, every=8)

    # ---------------------------------------------------------------- maps
    truth = D.open_truth(world)
    sm = truth["soil_moisture"]
    jja_t = sm.sel(time=sm["time"].dt.month.isin([6, 7, 8])).mean("time").values
    era_files = sorted(glob.glob(str(world / "inputs/ERA5-Land/*.nc")))
    era = read_era5(era_files, variables=["swvl1", "t2m"])
    jja_e = era["swvl1"].sel(time=era["time"].dt.month.isin([6, 7, 8])).mean("time").values
    g36 = get_grid("M36")
    jja_s = smap_jja_mean(world, g36)
    st, year, ismn = year_run(args.seed)
    lon, lat = truth["lon"].values, truth["lat"].values
    maps_figure(lon, lat, jja_t, jja_e, jja_s, year, g36)
    facts["maps"] = map_facts(lon, lat, jja_t, jja_e, year)
    facts["precip"] = precip_facts(lon, lat, st)

    # ---------------------------------------------------------------- station series
    facts["stations"] = station_series(world, g36, sm, era)

    # ---------------------------------------------------------------- SMAP error statistics
    facts["smap36"]["ubrmse_per_cell_p10_p90"] = smap_errors(world, g36)

    # ---------------------------------------------------------------- real Maqu CST-01
    facts["maqu"] = maqu_cst01(shared, ismn, st)

    # ---------------------------------------------------------------- real WRF crop
    facts["wrf"] = wrf_range(shared, sm, lon, lat, era)

    if args.facts:
        Path(args.facts).write_text(json.dumps(facts, indent=1, default=float))
    (DOCS / "realism.md").write_text(render(facts, man))
    print(f"wrote {DOCS / 'realism.md'} and figures in {FIG}")


def _porosity(st):
    from model.world.static import soil_params

    return soil_params(st.c("sand"), st.c("clay"), st.c("organic")).theta_s


def f3(x):
    return "n/a" if x is None else f"{x:.3f}"


def render(F: dict, man: dict) -> str:
    return "\n".join((render_summary(F, man), render_maps_stations(F), render_smap_maqu(F), render_wrf(F)))


def render_summary(F: dict, man: dict) -> str:
    """The title, the sources and the table of facts."""
    s36, s09, g = F["smap36"], F["smap09"], F["gridded"]
    mp, pr = F["maps"], F["precip"]
    return f"""# Realism of the virtual Tibetan Plateau

Generated by `python docs/make_realism.py` (`--facts FILE` also writes the numbers as JSON) from the demo world (`{man['size']}`, seed {man['seed']},
written {man['periods']['written'][0]} .. {man['periods']['written'][1]}), one extra truth-only year of
the same world (Sep 2016 - Sep 2017, for winter and the annual cycle) and the REAL shared files
(`../shared/data`). Numbers below are recomputed each time the script runs. How the world
works: `docs/world.md`.

## What the project asked for, and what the world gives

| fact (DESIGN sections 2 and 4, the issue) | virtual TP |
|---|---|
| east-wet / west-dry: ~600 mm/yr in the SE, < 100 mm/yr in the NW | annual precipitation normal: SE box {pr['se_mm']:.0f} mm, NW box {pr['nw_mm']:.0f} mm (TP 5/50/95 %: {pr['p5_p50_p95'][0]:.0f} / {pr['p5_p50_p95'][1]:.0f} / {pr['p5_p50_p95'][2]:.0f} mm) |
| summer wetter in the SE than the NW | JJA truth mean SE {mp['jja_truth_se']:.3f}, NW {mp['jja_truth_nw']:.3f} m3 m-3 |
| SMAP retrieval error about 0.04 m3/m3 ubRMSE, some bias | SPL3SMP-like (recommended retrievals vs truth aggregated over the cell, nearest product step): ubRMSE per cell median {s36['ubrmse_per_cell_median']:.3f} (10-90 %: {s36['ubrmse_per_cell_p10_p90'][0]:.3f}-{s36['ubrmse_per_cell_p10_p90'][1]:.3f}), pooled ubRMSE {s36['ubrmse']:.3f}, bias {s36['bias']:+.3f}, R {s36['r']:.2f}, N {s36['n']} |
| SPL3SMP_E is the 36 km radiometer interpolated to 9 km | SPL3SMP_E-like vs truth at 9 km: ubRMSE per cell {s09['ubrmse_per_cell_median']:.3f}, pooled {s09['ubrmse']:.3f}, bias {s09['bias']:+.3f}, R {s09['r']:.2f} (larger than at 36 km: the retrieval sees ~30 km, the truth has 10 km detail) |
| ERA5-Land too wet on the TP, smoother | ERA5-Land-like swvl1 - truth on TP10: bias {g['era5_tp10']['bias']:+.3f}, ubRMSE {g['era5_tp10']['ubrmse']:.3f}, R {g['era5_tp10']['r']:.2f}; JJA map difference {mp['jja_era_minus_truth']:+.3f} |
| SMAP L4: smoother than truth, closer to it than ERA5-Land | at 9 km: L4-like RMSE {g['l4_m09']['rmse']:.3f} (bias {g['l4_m09']['bias']:+.3f}, R {g['l4_m09']['r']:.2f}) vs ERA5-Land-like RMSE {g['era5_m09']['rmse']:.3f} (bias {g['era5_m09']['bias']:+.3f}, R {g['era5_m09']['r']:.2f}) |
| frozen soil in winter: L-band sees liquid water drop | DJF liquid 0-5 cm water: median {mp['djf_liq_p1_p50_p99'][1]:.3f} (1-99 %: {mp['djf_liq_p1_p50_p99'][0]:.3f}-{mp['djf_liq_p1_p50_p99'][2]:.3f}) while total water stays {mp['djf_total_p50']:.3f}; median share of DJF hours frozen {mp['djf_frozen_fraction_median']:.2f} |
"""


def render_maps_stations(F: dict) -> str:
    mp = F["maps"]
    st_rows = "\n".join(
        f"| {k} | {v['n']} | {v['insitu_mean']:.3f} | {v['truth_mean']:.3f} | {v['era_mean']:.3f} | {v['r_insitu_truth']:.2f} |"
        for k, v in F["stations"].items())
    return f"""## Maps

![mean soil moisture maps](figures/world_maps_jja_djf.png)

Mean 0-5 cm soil moisture: truth in summer (JJA 2017, demo world) and winter (DJF 2016/17,
liquid water, from the truth-only year), the ERA5-Land-like `swvl1` and the SMAP-like 36 km
retrievals (recommended quality only, so snow, frozen, mountainous and dense-vegetation cells are
missing). The truth carries 10 km structure (soil texture, organic meadow soils, elevation,
aspect, storms) that ERA5-Land-like fields smooth away and SMAP-like retrievals average out.
Truth JJA 1/50/99 %: {mp['jja_truth_p1_p50_p99'][0]:.3f} / {mp['jja_truth_p1_p50_p99'][1]:.3f} / {mp['jja_truth_p1_p50_p99'][2]:.3f} m3 m-3.

## Stations

![station series](figures/world_station_series.png)

One station per network, demo period: the ISMN-like series (point = truth + persistent
representativeness offset + gain + slow AR(1) + sensor noise, with outages; the default flag
policy drops the flagged frozen hours and spikes), the 10 km truth, ERA5-Land-like, SMAP-L4-like
and SMAP-like 36 km values at the station's cells.

| station | N (h) | in situ mean | truth mean | ERA5-Land-like mean | R in situ vs truth |
|---|---|---|---|---|---|
{st_rows}
"""


def render_smap_maqu(F: dict) -> str:
    mq = F["maqu"]
    months = "\n".join(
        f"| {m} | {mq['real_monthly'].get(m, float('nan')):.3f} | {mq['world_monthly'].get(m, float('nan')):.3f} |"
        for m in range(1, 13))
    return f"""## SMAP-like retrieval errors

![SMAP-like error statistics](figures/world_smap_errors.png)

Differences between the SMAP-like retrievals and the truth aggregated over the same cell (36 km:
area-overlap mean; 9 km: 30 km-smoothed truth, then the cell mean) at the nearest 3-hourly
product step of each cell's observation time. The retrieval error has a static part (spatially
smooth bias, mean -0.015), a day-to-day spatially correlated part (~90 km) and white noise that
grows with vegetation water content.

## Against the real Maqu CST-01 series

![Maqu CST-01](figures/world_maqu_cst01.png)

Real: `../shared/data/ismn/header_values_tp/MAQU/CST-01` (ISMN, 2008-2010, all records but `M`,
including the `C03` wet end and the `D01/D03` frozen winter). Virtual: the ISMN-like point series
of the same station in the truth-only year (Oct 2016 - Sep 2017), without its simulated spikes
and outages, before any flag policy (frozen hours included, as in the real series).

| | real | virtual |
|---|---|---|
| range | {mq['real_range'][0]:.2f} - {mq['real_range'][1]:.2f} | {mq['world_range'][0]:.2f} - {mq['world_range'][1]:.2f} |
| 5-95 % | {mq['real_p5_p95'][0]:.2f} - {mq['real_p5_p95'][1]:.2f} | {mq['world_p5_p95'][0]:.2f} - {mq['world_p5_p95'][1]:.2f} |

| month | real mean | virtual mean |
|---|---|---|
{months}

Both have the TP's seasonal cycle: a dry, frozen winter (liquid water only: the probe and L-band
see the unfrozen part; winter levels agree), a rise in spring and a wet monsoon summer-autumn.
The virtual station is clearly drier from March to November and less extreme: it is a 10 km cell
plus point-scale noise, and with seed 42 the CST-01 cell happens to lie in a low-organic patch
(porosity about 0.49, where this wet riparian meadow's organic topsoil reaches the real series'
0.5-0.56 wet end); the world's spring thaw is also too dry (see "Known limitations" in
`docs/world.md`). The range of the 10 km truth over the whole Maqu area is wider than this one
cell's (JJA truth 99th percentile over the TP above).
"""


def render_wrf(F: dict) -> str:
    wr = F["wrf"]
    return f"""## Against the real WRF TP crop

![WRF range](figures/world_wrf_range.png)

`../shared/data/wrf_tp/wrf_d01_allvars_cropped_compressed.nc` (HAR, 30 km, 2005-09-21): top-layer
`SMOIS` over its land cells spans {wr['smois_land_range'][0]:.3f}-{wr['smois_land_range'][1]:.3f} m3 m-3
(5-95 %: {wr['smois_land_p5_p95'][0]:.3f}-{wr['smois_land_p5_p95'][1]:.3f}); the virtual truth on
2017-09-21 in the same box ({wr['box'][0]:.1f}-{wr['box'][1]:.1f} N, {wr['box'][2]:.1f}-{wr['box'][3]:.1f} E)
spans {wr['world_range'][0]:.3f}-{wr['world_range'][1]:.3f} (5-95 %:
{wr['world_p5_p95'][0]:.3f}-{wr['world_p5_p95'][1]:.3f}); 10 km cells spread wider than 30 km model
cells, as expected. 2 m air temperature: WRF {wr['wrf_t2_range'][0]:.1f}-{wr['wrf_t2_range'][1]:.1f} K,
ERA5-Land-like {wr['world_t2m_range'][0]:.1f}-{wr['world_t2m_range'][1]:.1f} K.
"""


if __name__ == "__main__":
    main()
