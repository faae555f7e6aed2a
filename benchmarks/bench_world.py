"""Benchmark the virtual Tibetan Plateau build.

Usage::

    python benchmarks/bench_world.py [--size demo] [--seed 42] [--out DIR] [--workers N]
                                     [--keep] [--json FILE] [--per-hour 240]

Builds the world (``--force``) in ``--out`` (default a temporary folder, removed unless
``--keep``) and prints the machine (CPU count and model, load average: other processes on the
machine slow the build down), the wall time and CPU time of each stage, the disk used per
product, and (``--per-hour N``) the CPU milliseconds per simulated hour of each component,
measured over N hours of the whole-TP simulation without writing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def per_hour(n_hours: int, seed: int) -> dict:
    """CPU ms per simulated hour: weather, each land model, observation operators."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from model.world.config import get_config
    from model.world.observe import Era5Operator, L4Operator, SmapL3Operator, TruthOperator
    from model.world.simulate import Simulation
    from model.world.static import build_static

    with threadpool_limits(1, user_api="blas"):
        cfg = get_config("demo")
        st = build_static(cfg, seed)
        sim = Simulation(st, seed, pd.Timestamp("2017-06-01"))
        era, smap = Era5Operator(st, cfg), SmapL3Operator(st, seed, cfg)
        l4 = L4Operator(st, cfg, 50.0, 450.0)
        truth = TruthOperator(st, cfg)
        acc = {"weather": 0.0, "truth": 0.0, "era": 0.0, "l4": 0.0, "operators": 0.0}
        for _ in range(n_hours):
            sim.t += pd.Timedelta(hours=1)
            t = sim.t
            a = time.process_time()
            f = sim.weather.step(t)
            acc["weather"] += time.process_time() - a
            s = {}
            for k, m in sim.models.items():
                a = time.process_time()
                s[k] = m.step(f[k])
                acc[k] += time.process_time() - a
            a = time.process_time()
            smap.observe(t, s["truth"], f["truth"]["precip"])
            smap.finished(t)
            l4.record(t, s["l4"])
            era.record(t, s["era"], f["era"])
            truth.record(t, s["truth"], f["truth"]["precip"])
            acc["operators"] += time.process_time() - a
    return {k: round(v / n_hours * 1e3, 2) for k, v in acc.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="demo")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the world (default: removed if --out is not given)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--per-hour", type=int, default=0, metavar="N",
                    help="measure CPU per simulated hour over N hours (no writing)")
    args = ap.parse_args(argv)

    from model.world import build_world
    from model.machine import machine_info

    info = machine_info()
    info["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    tmp = None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"world-{args.size}-")) / args.size
    if args.out is None:
        tmp = out.parent
    t0 = time.perf_counter()
    man = build_world(args.size, out, args.seed, progress=True, force=True, workers=args.workers)
    wall = time.perf_counter() - t0
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    res = {"size": args.size, "seed": args.seed, "machine": info, "wall_s": round(wall, 1),
           "timings_s": man.timings,
           "disk_mb": {k: round(v["bytes"] / 1e6, 1) for k, v in man.products.items()},
           "files": {k: v["files"] for k, v in man.products.items()},
           "total_mb": round(man.total_bytes / 1e6, 1)}
    if args.per_hour:
        res["cpu_ms_per_simulated_hour"] = per_hour(args.per_hour, args.seed)

    print("\n=== bench_world ===")
    print(f"machine: {info['cpus']} CPU(s), {info['cpu_model']}, python {info['python']}")
    print(f"load average before {info['load_average_before']}, after {info['load_average_after']}")
    print(f"size {args.size}: wall {wall:.0f} s, disk {res['total_mb']:.0f} MB")
    for k, v in man.timings.items():
        print(f"  {k:<24} {v:8.1f} s")
    for k, v in res["disk_mb"].items():
        print(f"  {k:<24} {v:8.1f} MB  ({res['files'][k]} files)")
    if "cpu_ms_per_simulated_hour" in res:
        print("CPU ms per simulated hour (whole TP):", res["cpu_ms_per_simulated_hour"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
