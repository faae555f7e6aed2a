#!/usr/bin/env python
"""PSCNet ablation on the demo world: what each part of the network buys.

Trains PSCNet and three variants with the same data, seed and budget (the ``demo`` training
configuration, ``--minutes`` per variant), downscales the test period with each, and scores
every 10 km scene against the virtual TP's hidden truth (R, bias = product - truth, RMSE,
ubRMSE; per-cell metrics averaged over the TP cells, m3 m-3) and, at SMAP's 9 km cells and
overpass times, against the SMAP-like L3 retrievals.

Variants (constructor arguments of :class:`model.networks.pscnet.PSCNet`):

* ``full``          the default PSCNet;
* ``no_mftf``       ``use_mftf=False``: one temporal branch over the concatenated windows
                    instead of the multi-frequency temporal fusion module;
* ``global_se``     ``se_mode="global"``: plain squeeze-and-excitation (global pooling)
                    instead of the detail-preserving local SE;
* ``single_scale``  ``scales=[1], depths=[3]``: three Stage blocks at full resolution instead of
                    one at each of the progressive scales 4, 2, 1.

Usage (after ``sm-downscale demo --no-serve`` built the demo world's store)::

    python benchmarks/bench_ablation.py [--ard var/worlds/demo/ard.zarr] [--minutes 6] [--seed 0]
        [--variants full no_mftf ...] [--reuse-full RUN] [--out var/ablation]

Prints the machine and a Markdown table; writes ``ablation.json`` and ``ablation.md`` to
``--out``. Runs on the CPU (``--device``) so that the variants compare like with like.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.networks.registry import ABLATIONS  # noqa: E402  (after the path set-up)

VARIANTS = {"full": {}, **ABLATIONS["pscnet"]}
METRICS = ("R", "bias", "RMSE", "ubRMSE")


def score(run: Path, ard: Path, device: str) -> dict:
    """Test-period metrics of one trained run against the truth (10 km) and SMAP (9 km)."""
    import numpy as np
    import xarray as xr

    from model.grids import get_grid, regridder, tp10
    from model.inference.runner import Runner, resolve_run
    from model.features.ard import ard_info, open_group
    from model.validation.metric_maps import map_summary, metric_map

    info = ard_info(ard)
    s, e = info["world"]["periods"]["test"]
    r = Runner(resolve_run(run, allow_path=True), ard, device)  # this script's own run folders
    times = r.provider.steps(s, np.datetime64(e, "D") + np.timedelta64(21, "h"))
    t0 = time.perf_counter()
    prod = r.scenes(times)  # the method's batch (runner.cpu_batch on a CPU)
    seconds = time.perf_counter() - t0
    truth = xr.open_zarr(Path(info["catalog"]).parent / "truth" / "truth.zarr")["soil_moisture"]
    g = tp10()
    ref = truth.sel(time=times).values.astype(np.float32)

    def da(v, grid):
        gg = get_grid(grid) if isinstance(grid, str) else grid
        return xr.DataArray(v, dims=("time",) + gg.dims, coords={"time": times, **gg.coords()})

    out = {"scenes": int(times.size), "scene_seconds": round(seconds / times.size, 3)}
    m = metric_map(da(prod, g), da(ref, g), metrics=METRICS).compute()
    out["truth"] = {k: v for k, v in map_summary(m).items() if k in METRICS}
    smap = open_group(ard, "smap_m09")["soil_moisture"]
    st = smap["time"].values[np.isin(smap["time"].values, times)]
    idx = np.searchsorted(times, st)
    p9 = regridder("TP10", "M09")(prod[idx])
    gm = get_grid("M09")
    sda = xr.DataArray(smap.sel(time=st).values.astype(np.float32), dims=("time",) + gm.dims,
                       coords={"time": st, **gm.coords()})
    pda = xr.DataArray(p9, dims=("time",) + gm.dims, coords={"time": st, **gm.coords()})
    m9 = metric_map(pda, sda, metrics=METRICS).compute()
    out["smap"] = {k: v for k, v in map_summary(m9).items() if k in METRICS}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ard", type=Path, default=None, help="analysis-ready store (default: the demo world's)")
    ap.add_argument("--minutes", type=float, default=6.0, help="training budget per variant (demo: 6)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--reuse-full", type=Path, help="a trained default PSCNet run to score as 'full'")
    ap.add_argument("--out", type=Path, default=None, help="folder of the runs and results (default $SMDS_HOME/ablation)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0, help="training seed (also draws the spatial tuning split)")
    a = ap.parse_args(argv)

    from model.config import home
    from model.machine import machine_info, machine_line
    from model.features.ard import default_ard
    from model.training.cli import train_config
    from model.training.trainer import train

    ard = a.ard or default_ard()
    out = a.out or home() / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    import torch

    mach = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads())
    print("machine:", machine_line(mach), flush=True)
    rows = {}
    for v in a.variants:
        t0 = time.perf_counter()
        if v == "full" and a.reuse_full:
            run, trained = a.reuse_full, "reused"
        else:
            cfg = train_config("pscnet", ard, config="demo", device=a.device, max_minutes=a.minutes,
                               model_kwargs=VARIANTS[v], seed=a.seed)
            run = train("pscnet", cfg, ard=ard, out=out / v)
            trained = json.loads((run / "summary.json").read_text())
        res = score(Path(run), ard, a.device)
        res.update({"kwargs": VARIANTS[v], "run": str(run), "seconds": round(time.perf_counter() - t0, 1),
                    "training": trained})
        rows[v] = res
        print(v, json.dumps({k: res[k] for k in ("truth", "smap", "seconds")}), flush=True)
        (out / "ablation.json").write_text(json.dumps({"machine": mach, "ard": str(ard), "minutes": a.minutes,
                                                       "seed": a.seed,
                                                       "variants": rows}, indent=1, default=str))
    lines = ["| variant | constructor | truth R | truth bias | truth ubRMSE | SMAP R | SMAP bias | SMAP ubRMSE | params |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v, r in rows.items():
        t, s = r["truth"], r["smap"]
        tr = r["training"] if isinstance(r["training"], dict) else {}
        lines.append(f"| {v} | `{json.dumps(r['kwargs'])}` | {t['R']:.3f} | {t['bias']:+.4f} | {t['ubRMSE']:.4f} | "
                     f"{s['R']:.3f} | {s['bias']:+.4f} | {s['ubRMSE']:.4f} | {tr.get('parameters', '')} |")
    table = "\n".join(lines)
    print(table)
    (out / "ablation.md").write_text(f"machine: {machine_line(mach)}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
