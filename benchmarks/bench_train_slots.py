#!/usr/bin/env python
"""Trainings alone against trainings side by side: does a second core give a second training?

Session 18 tried training the demo's torch models two at a time on the 2-core VM (each in a
worker process on one core) to shorten the first run; it was measured and dropped (the two
vCPUs do not give two trainings the compute of one each: docs/benchmarks.md, "Trainings side
by side"). This script keeps the measurement reproducible.

For each pair of ``--models`` (on the demo home's ARD, ``$SMDS_HOME``): each model trained
alone in a worker process with every core given to torch, then the two trained at once in two
worker processes with half the cores each, every run on the same budget (``--seconds``; the
demo's settings otherwise). Prints the machine, then per run the wall seconds (including the
worker's start and its data preparation), the samples per second, the epochs and the tuning
RMSE, and per pair the wall time saved and each model's samples per second side by side as a
share of alone. One command::

    SMDS_HOME=<demo home> python benchmarks/bench_train_slots.py
    SMDS_HOME=<demo home> python benchmarks/bench_train_slots.py --models mlp lstm --seconds 30

Run folders go to a temporary folder (the home's runs are not touched).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.machine import machine_info, machine_line  # noqa: E402


def _train_child(model_name: str, cfg: dict, ard: str, threads: int, out: str) -> str:
    """One training in a worker process, on ``threads`` torch threads."""
    # lazy: the worker (a spawned interpreter) imports torch and the trainer itself
    import torch

    from model.training.trainer import TrainConfig, train

    torch.set_num_threads(threads)
    return str(train(model_name, TrainConfig(**cfg), ard=ard, out=Path(out), progress=False))


def _run(jobs, ard, tmp, cores: int):
    """``jobs`` (model, config) trained at once, each in a spawned worker on ``cores // len(jobs)``
    torch threads; returns the wall seconds and each run's figures."""
    threads = max(1, cores // len(jobs))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_train_child, name, asdict(cfg), str(ard), threads,
                            tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)) for name, cfg in jobs]
        runs = [Path(f.result()) for f in futs]
    wall = time.perf_counter() - t0
    out = []
    for (name, _), run in zip(jobs, runs):
        s = json.loads((run / "summary.json").read_text())
        out.append({"model": name, "samples_per_second": s.get("samples_per_second"),
                    "epochs": s.get("epochs"), "tune_rmse": s.get("tune_rmse"),
                    "train_seconds": s.get("train_seconds"), "seconds_total": s.get("seconds_total")})
    return wall, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "lstm", "convlstm", "resnet", "unet", "vit"],
                    help="torch models, taken in pairs (default: the demo's six later torch models)")
    ap.add_argument("--seconds", type=float, default=60.0, help="each training's budget (the demo's: 60)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    from model.features.ard import default_ard
    from model.training.cli import train_config

    info = machine_info()
    print(machine_line(info), flush=True)
    ard = default_ard()
    cores = info["cpus"]
    pairs = [args.models[k:k + 2] for k in range(0, len(args.models), 2)]
    rows, report = [], {"machine": info, "seconds": args.seconds, "pairs": []}
    with tempfile.TemporaryDirectory(prefix="bench-slots-") as tmp:
        for pair in pairs:
            cfgs = [(n, replace(train_config(n, ard, config="demo", device="cpu"), max_minutes=args.seconds / 60))
                    for n in pair]
            alone = []
            for job in cfgs:
                wall, out = _run([job], ard, tmp, cores)
                alone.append((wall, out[0]))
            wall2, both = _run(cfgs, ard, tmp, cores)
            entry = {"models": pair, "alone_wall_s": [round(w, 1) for w, _ in alone],
                     "side_by_side_wall_s": round(wall2, 1),
                     "alone": [o for _, o in alone], "side_by_side": both}
            report["pairs"].append(entry)
            for (w, o), b in zip(alone, both):
                share = b["samples_per_second"] / o["samples_per_second"] if o["samples_per_second"] else float("nan")
                rows.append(f"| {o['model']} | {w:.1f} | {o['samples_per_second']:.0f} | {o['epochs']} | "
                            f"{o['tune_rmse']:.4f} | {b['samples_per_second']:.0f} ({share:.0%}) | {b['epochs']} | "
                            f"{b['tune_rmse']:.4f} |")
            print(f"pair {' + '.join(pair)}: alone {sum(w for w, _ in alone):.1f} s in all, side by side "
                  f"{wall2:.1f} s", flush=True)
    print(f"\nbudget {args.seconds:g} s per training; alone: {cores} torch threads; side by side: "
          f"{max(1, cores // 2)} each\n")
    print("| model | alone: wall s | samples/s | epochs | tune RMSE | side by side: samples/s (share) | epochs | tune RMSE |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
