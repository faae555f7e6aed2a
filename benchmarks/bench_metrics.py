"""Benchmark of the validation metrics: metric maps and station matching.

Times :func:`model.validation.metric_maps.metric_map` (all metrics) on a (time=2000, 150, 320)
float32 product/reference pair with NaNs (outside the TP mask, and 10 % random gaps in the
reference), numpy-backed and Dask-backed (2 chunks, 2 threads), and the matching of 118
stations (locate + one vectorised extraction + 118 ``match_station`` + network metrics).

Target (DESIGN/brief): the metric maps of ~10 models in <= 60 s on 2 cores, i.e. <= 6 s per
model. The script prints the machine and its load (other work on the same cores inflates
wall times; CPU time is printed next to wall time for that reason).

Run: ``python benchmarks/bench_metrics.py [--ntime 2000] [--models 10] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dask  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from model.grids import tp10, tp_mask  # noqa: E402
from model.validation.matching import match_stations, network_metrics  # noqa: E402
from model.machine import machine_info, machine_line  # noqa: E402
from model.validation.metric_maps import metric_map  # noqa: E402
from model.validation.metrics import ALL_METRICS  # noqa: E402


def machine() -> str:
    return machine_line(machine_info(numpy=np.__version__, xarray=xr.__version__, dask=dask.__version__,
                                     pandas=pd.__version__))


def make_fields(ntime: int, seed: int = 0):
    g = tp10()
    mask = tp_mask("TP10")
    rng = np.random.default_rng(seed)
    t = pd.date_range("2016-01-01", periods=ntime, freq="3h")
    season = 0.08 * np.sin(2 * np.pi * np.arange(ntime) / (8 * 365))[:, None, None]
    ref = (0.22 + season + 0.05 * rng.standard_normal((ntime, *g.shape))).astype(np.float32)
    prod = (0.9 * ref + 0.03 + 0.03 * rng.standard_normal((ntime, *g.shape))).astype(np.float32)
    ref[:, ~mask] = np.nan
    prod[:, ~mask] = np.nan
    ref[rng.random(ref.shape) < 0.10] = np.nan
    coords = {"time": t, "lat": g.lat, "lon": g.lon}
    p = xr.DataArray(prod, dims=("time", "lat", "lon"), coords=coords, name="pscnet", attrs={"units": "m3 m-3"})
    r = xr.DataArray(ref, dims=("time", "lat", "lon"), coords=coords, name="truth", attrs={"units": "m3 m-3"})
    return p, r, mask


def make_stations(product: xr.DataArray, mask: np.ndarray, n: int = 118, seed: int = 1):
    """n stations at random TP cells with hourly in-situ series (soil temperature, flags)."""
    rng = np.random.default_rng(seed)
    g = tp10()
    rows, cols = np.nonzero(mask)
    pick = rng.choice(rows.size, n, replace=False)
    table = pd.DataFrame({"lat": g.lat[rows[pick]] + rng.uniform(-0.04, 0.04, n),
                          "lon": g.lon[cols[pick]] + rng.uniform(-0.04, 0.04, n)},
                         index=[f"ST-{i:03d}" for i in range(n)])
    table.iloc[0, 0] = 50.0                                    # one station outside the grid
    t = product.indexes["time"]
    hourly = pd.date_range(t[0], t[-1], freq="1h")
    doy = hourly.day_of_year.to_numpy()
    stations = {}
    for i, sid in enumerate(table.index):
        base = 0.2 + 0.08 * np.sin(2 * np.pi * doy / 365 + i)
        sm = base + 0.03 * rng.standard_normal(hourly.size)
        sm[rng.random(hourly.size) < 0.05] = np.nan            # outages
        st = 10 * np.sin(2 * np.pi * (doy - 100) / 365) + rng.normal(0, 2, hourly.size)
        flag = np.where(st < 0, "D01", "G")
        stations[sid] = pd.DataFrame({"soil_moisture": sm, "soil_temperature": st, "flag": flag}, index=hourly)
    return table, stations


def timed(fn, repeat: int):
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if best is None or w < best[0]:
            best = (w, c)
    return out, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ntime", type=int, default=2000)
    ap.add_argument("--models", type=int, default=10, help="models the per-model time is scaled to")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--per-metric", action="store_true", help="also time each metric group alone")
    args = ap.parse_args(argv)

    print("machine:", machine())
    p, r, mask = make_fields(args.ntime)
    print(f"fields: {p.shape} float32, {int(mask.sum())} TP cells of {mask.size}, "
          f"{float(np.isnan(r.values).mean()):.0%} NaN in the reference")

    _, (w_np, c_np) = timed(lambda: metric_map(p, r), args.repeat)
    print(f"metric_map all metrics, numpy        : {w_np:6.2f} s wall, {c_np:6.2f} s CPU")

    pc, rc = p.chunk({"time": -1, "lat": 75}), r.chunk({"time": -1, "lat": 75})
    with dask.config.set(scheduler="threads", num_workers=2):
        _, (w_dk, c_dk) = timed(lambda: metric_map(pc, rc).compute(), args.repeat)
    print(f"metric_map all metrics, Dask 2 chunks: {w_dk:6.2f} s wall, {c_dk:6.2f} s CPU (2 threads)")

    if args.per_metric:
        for g in ALL_METRICS:
            _, (w, c) = timed(lambda: metric_map(p, r, metrics=(g,)), args.repeat)
            print(f"  {g:10s} alone, numpy: {w:6.2f} s wall, {c:6.2f} s CPU")

    table, stations = make_stations(p, mask)
    res, (w_st, c_st) = timed(lambda: match_stations(p, stations, table), args.repeat)
    _, (w_net, c_net) = timed(lambda: network_metrics(res), args.repeat)
    statuses = pd.Series([m.status for m in res.values()]).value_counts().to_dict()
    print(f"118 station matches (locate+extract+match+metrics): {w_st:6.2f} s wall, {c_st:6.2f} s CPU; "
          f"network metrics {w_net:.2f} s; statuses {statuses}")

    per_model = min(w_np, w_dk)
    print(f"per model (best of numpy/Dask): {per_model:.2f} s wall -> {args.models} models "
          f"{per_model * args.models:.1f} s (target <= 60 s on 2 cores); "
          f"CPU per model {min(c_np, c_dk):.2f} s")
    print("machine at the end: load avg", machine_info()["load_avg"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
