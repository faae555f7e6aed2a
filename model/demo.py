"""``sm-downscale demo``: the whole workflow on the virtual Tibetan Plateau, then the dashboard.

Steps (each reuses what a previous run finished, so a second run serves within seconds):
world -> ingest -> train every model -> archive -> validate -> ``panel serve dashboard/app.py``.
"""

from __future__ import annotations

import json

import numpy as np
import logging
import os
import subprocess
import sys
import time as _time
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub):
    p = sub.add_parser("demo", help="world, ingest, train, archive, validate, then serve the dashboard")
    p.add_argument("--size", default="demo", help="world size: tiny, demo (default) or full")
    p.add_argument("--models", nargs="*", help="models to train (default: every registered model)")
    p.add_argument("--no-serve", action="store_true", help="stop after the pipeline, print the summary")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true",
                   help="seconds-scale training; archive only the test period and 3 training days (smoke runs, tests)")
    p.set_defaults(func=_run)


def _stage(name, summary, fn):
    t0 = _time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        out = fn()
        summary[name] = {"seconds": round(_time.perf_counter() - t0, 1), "status": "ok", **(out or {})}
    except ModuleNotFoundError as exc:
        summary[name] = {"status": f"not available yet ({exc.name})"}
        print(f"   {name}: not available in this version ({exc.name})", flush=True)
        return False
    return True


#: days of the training period the quick pipeline archives before the test period
QUICK_TRAIN_DAYS = 3

#: training settings of the quick pipeline (tests, smoke runs): seconds per model
QUICK_TRAIN = {"max_minutes": 0.25, "max_epochs": 2, "steps_per_epoch": 6, "tune_patches": 8,
               "max_pixel_samples": 5000}


def run_pipeline(size="demo", models=None, device="auto", quick: bool = False) -> dict:
    """world -> ingest -> train -> archive -> validate, reusing finished steps.

    ``quick``: seconds-scale training and an archive of the test period plus the last
    ``QUICK_TRAIN_DAYS`` training days (tests and smoke runs on the tiny world); the results
    are real but not meant to be good.
    """
    from .config import home, runs_dir, worlds_dir

    summary: dict = {"home": str(home())}
    world_dir = worlds_dir() / size
    os.environ.setdefault("SMDS_CATALOG", str(world_dir / "catalog.yaml"))
    ard = world_dir / "ard.zarr"

    def world():
        from .world import build_world, get_config

        man = world_dir / "world.json"
        if man.exists() and json.loads(man.read_text()).get("complete"):
            return {"reused": True}
        build_world(get_config(size), world_dir, seed=42, progress=True)
        return {"reused": False}

    if not _stage("world", summary, world):
        return summary

    def ingest():
        from .data.ingest import ingest as run_ingest

        if (ard / ".complete").exists():
            return {"reused": True}
        _, report = run_ingest(world_dir / "catalog.yaml", ard)
        print(report.summary())
        return {"reused": False, "skipped": len(report.skipped)}

    if not _stage("ingest", summary, ingest):
        return summary

    def train_all():
        from .networks.registry import list_models
        from .training.cli import train_config
        from .training.trainer import train

        names = models or [m.name for m in list_models()]
        done = {}
        for name in names:
            if (runs_dir() / name / "LATEST").exists():
                done[name] = "reused"
                continue
            over = dict(QUICK_TRAIN) if quick else {}
            cfg = train_config(name, ard, config="demo", device=device, **over)
            run = train(name, cfg, ard=ard)
            done[name] = json.loads((run / "summary.json").read_text()).get("tune_rmse")
        return {"models": done}

    if not _stage("train", summary, train_all):
        return summary

    def archive():
        from .inference.archive import build_archive
        from .inference.cli import default_period

        names = list(summary["train"]["models"])
        s, e = default_period(ard)
        if quick:
            from .training.ard import ard_info

            test = ard_info(ard)["world"]["periods"]["test"]
            s = str(np.datetime64(test[0], "D") - np.timedelta64(QUICK_TRAIN_DAYS, "D"))
            e = test[1]  # the whole test period, with the last training days before it
        res = build_archive(names, s, e, ard=ard, workers=2, device=device, block_days=5)
        return {"complete": res["complete"], "size_mb": res["size_mb"]}

    if not _stage("archive", summary, archive):
        return summary

    def validate():
        from .validation.experiments import run_validation

        res = run_validation(ard=ard)
        return {"outputs": res.get("outputs")}

    _stage("validate", summary, validate)
    return summary


def _run(args) -> int:
    t0 = _time.perf_counter()
    summary = run_pipeline(args.size, args.models, args.device, quick=args.quick)
    summary["seconds_total"] = round(_time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1, default=str))
    if args.no_serve:
        return 0
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    if not app.exists():
        print("the dashboard is not part of this version yet; pipeline finished", flush=True)
        return 0
    # --warm: the server runs the app once before it listens (imports, datashader JIT, first
    # frame), so the first user does not pay it (benchmarks/bench_dashboard.py --warm)
    cmd = [sys.executable, "-m", "panel", "serve", str(app), "--warm", "--address", "0.0.0.0", "--port", str(args.port),
           "--allow-websocket-origin", f"localhost:{args.port}", "--allow-websocket-origin", f"127.0.0.1:{args.port}"]
    print("serving the dashboard:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)
