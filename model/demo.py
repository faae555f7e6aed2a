"""``sm-downscale demo``: the whole workflow on the virtual Tibetan Plateau, then the dashboard.

Steps (each reuses what a previous run finished, so a second run serves within seconds):
world -> ingest -> train every model -> archive -> validate -> ``panel serve dashboard/app.py``.

Honest exit status: a stage that fails stops the pipeline with a one-line error that names
the stage and what to do (status 2); a stage is skipped only when the user asks
(``--skip``). A trained run is reused only when it records the identity of these inputs
(world size and analysis-ready store, :func:`model.training.ard.run_input_mismatch`);
otherwise the model is retrained, and the summary says why.

Served on 127.0.0.1 by default (the page shows the server's home folder); ``--address``
exposes it on purpose, with the allowed websocket origins derived from the address
(:func:`serve_command`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time as _time
from pathlib import Path

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)


def register(sub):
    p = sub.add_parser("demo", help="world, ingest, train, archive, validate, then serve the dashboard")
    p.add_argument("--size", default="demo", help="world size: tiny, demo (default) or full")
    p.add_argument("--models", nargs="*", help="models to train (default: every registered model)")
    p.add_argument("--no-serve", action="store_true", help="stop after the pipeline, print the summary")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1",
                   help="address the dashboard listens on (default 127.0.0.1: this machine only); "
                        "give this machine's name or IP, or 0.0.0.0 for every interface, to expose "
                        "it to the network on purpose")
    p.add_argument("--allow-origin", action="append", default=[], metavar="HOST[:PORT]",
                   help="an extra allowed websocket origin (e.g. a reverse proxy's name); repeatable")
    p.add_argument("--skip", nargs="+", default=[], choices=SKIPPABLE,
                   help="stages to skip on purpose (their earlier results, if any, are used)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true",
                   help="seconds-scale training; archive only the test period and 3 training days (smoke runs, tests)")
    p.set_defaults(func=_run)


#: stages a user may skip on purpose (world, ingest and train feed everything after them)
SKIPPABLE = ("archive", "validate")

#: what to do when a stage fails (the one-line error ends with it)
TODO = {
    "world": "fix the cause above and rerun the same command (a finished world is reused)",
    "ingest": "fix the cause above and rerun the same command (world reused; ingest restarts)",
    "train": "fix the cause above and rerun the same command (finished models are reused)",
    "archive": "fix the cause above and rerun the same command (finished archive blocks are "
               "kept), or --skip archive",
    "validate": "fix the cause above and rerun the same command, or --skip validate",
}


class StageError(InputError):
    """A pipeline stage failed; ``summary`` holds what ran before it."""

    def __init__(self, stage: str, exc: BaseException, summary: dict):
        self.stage, self.summary = stage, summary
        if isinstance(exc, ModuleNotFoundError):
            pkg = (exc.name or "?").split(".")[0]
            cause = f"the Python package {pkg!r} is missing ({exc.name})"
            todo = "install it (pip install -e . in the repository), then rerun the same command"
        else:
            text = str(exc).splitlines()[0] if str(exc) else ""
            cause = text if isinstance(exc, InputError) else f"{type(exc).__name__}: {text}"
            todo = TODO.get(stage, "fix the cause and rerun the same command")
        super().__init__(f"demo stage '{stage}' failed: {cause}", todo)


def _stage(name, summary, fn, skip=()):
    if name in skip:
        summary[name] = {"status": "skipped (--skip)"}
        print(f"== {name}: skipped (--skip {name})", flush=True)
        return True
    t0 = _time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        out = fn()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure ends the pipeline, named
        summary[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        raise StageError(name, exc, summary) from exc
    summary[name] = {"seconds": round(_time.perf_counter() - t0, 1), "status": "ok", **(out or {})}
    return True


#: days of the training period the quick pipeline archives before the test period
QUICK_TRAIN_DAYS = 3

#: training settings of the quick pipeline (tests, smoke runs): seconds per model
QUICK_TRAIN = {"max_minutes": 0.25, "max_epochs": 2, "steps_per_epoch": 6, "tune_patches": 8,
               "max_pixel_samples": 5000}


def run_pipeline(size="demo", models=None, device="auto", quick: bool = False,
                 skip=()) -> dict:
    """world -> ingest -> train -> archive -> validate, reusing finished steps.

    ``quick``: seconds-scale training and an archive of the test period plus the last
    ``QUICK_TRAIN_DAYS`` training days (tests and smoke runs on the tiny world); the results
    are real but not meant to be good. ``skip``: stages of :data:`SKIPPABLE` to skip.

    Returns the summary (every stage's status "ok" or "skipped (--skip)"); a failing stage
    raises :class:`StageError` (an :class:`~model.errors.InputError`: the CLI prints one line
    and exits 2).
    """
    bad = set(skip) - set(SKIPPABLE)
    if bad:
        raise InputError(f"cannot skip {', '.join(sorted(bad))}",
                         f"only {', '.join(SKIPPABLE)} can be skipped")
    from .config import home, worlds_dir

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

    _stage("world", summary, world)

    def ingest():
        from .data.ingest import ingest as run_ingest

        if (ard / ".complete").exists():
            return {"reused": True}
        _, report = run_ingest(world_dir / "catalog.yaml", ard)
        print(report.summary())
        return {"reused": False, "skipped": len(report.skipped)}

    _stage("ingest", summary, ingest)

    def train_all():
        from .networks.registry import list_models
        from .training.cli import train_config
        from .training.trainer import train

        names = models or [m.name for m in list_models()]
        done, retrained = {}, {}
        for name in names:
            why = _reuse_problem(name, ard)
            if why is None:
                done[name] = "reused"
                continue
            if why:
                print(f"   {name}: not reusing its latest run: {why}; retraining", flush=True)
                retrained[name] = why
            over = dict(QUICK_TRAIN) if quick else {}
            cfg = train_config(name, ard, config="demo", device=device, **over)
            run = train(name, cfg, ard=ard)
            done[name] = json.loads((run / "summary.json").read_text()).get("tune_rmse")
        return {"models": done, **({"retrained": retrained} if retrained else {})}

    _stage("train", summary, train_all)

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

    _stage("archive", summary, archive, skip)

    def validate():
        from .validation.experiments import run_validation

        res = run_validation(ard=ard)
        return {"outputs": res.get("outputs")}

    _stage("validate", summary, validate, skip)
    return summary


def _reuse_problem(name: str, ard: Path) -> str | None:
    """None when ``name``'s latest run can be reused on ``ard``; "" when there is no run;
    else why it cannot (another world size or store, no recorded identity, unreadable)."""
    from .config import runs_dir

    if not (runs_dir() / name / "LATEST").exists():
        return ""
    from .inference.runner import resolve_run
    from .networks.checkpoint import read_checkpoint
    from .training.ard import run_input_mismatch

    try:
        run = resolve_run(name)
        extra = read_checkpoint(run / "checkpoint.pt").get("extra", {})
    except InputError as exc:
        return f"it cannot be read ({exc})"
    return run_input_mismatch(extra, ard)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def allowed_origins(address: str, port: int, extra=()) -> list[str]:
    """The websocket origins a server on ``address:port`` accepts: the loopback names always;
    the address itself; for every interface (0.0.0.0, ::) this machine's name, fully
    qualified name and addresses; plus ``extra`` (``HOST`` or ``HOST:PORT``)."""
    hosts = ["localhost", "127.0.0.1"]
    if address not in LOOPBACK | {"0.0.0.0", "::", ""}:
        hosts.append(address)
    if address in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
        hosts += [name, socket.getfqdn()]
        try:
            hosts += sorted({ai[4][0] for ai in socket.getaddrinfo(name, None, socket.AF_INET)})
        except OSError:
            pass
    out = []
    for h in hosts + list(extra):
        o = h if ":" in h and not h.startswith("[") and h.count(":") == 1 else f"{h}:{port}"
        if o not in out:
            out.append(o)
    return out


def serve_command(app: Path, address: str = "127.0.0.1", port: int = 5006, extra_origins=()) -> list[str]:
    """The ``panel serve`` command line of the dashboard (``--warm``: the server runs the app
    once before it listens, so the first user does not pay the imports and the first frame)."""
    cmd = [sys.executable, "-m", "panel", "serve", str(app), "--warm", "--address", address,
           "--port", str(port)]
    for o in allowed_origins(address, port, extra_origins):
        cmd += ["--allow-websocket-origin", o]
    return cmd


def _run(args) -> int:
    t0 = _time.perf_counter()
    summary = run_pipeline(args.size, args.models, args.device, quick=args.quick, skip=args.skip)
    summary["seconds_total"] = round(_time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1, default=str))
    if args.no_serve:
        return 0
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    if not app.exists():
        raise InputError("the dashboard (dashboard/app.py) is missing from this installation",
                         "run from a full checkout of the repository, or give --no-serve", app)
    cmd = serve_command(app, args.address, args.port, args.allow_origin)
    if args.address not in LOOPBACK:
        print(f"WARNING: serving on {args.address}: anyone who can reach this machine on port "
              f"{args.port} sees the dashboard (and the home folder it names)", flush=True)
    print("serving the dashboard:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)
