"""``sm-downscale demo``: the whole workflow on the virtual Tibetan Plateau, then the dashboard.

Steps (each reuses what a previous run finished, so a second run serves within seconds):
world -> ingest -> train every model -> archive -> validate -> ``panel serve dashboard/app.py``.

Honest exit status: a stage that fails stops the pipeline with a one-line error that names
the stage and what to do (status 2); a stage is skipped only when the user asks
(``--skip``). A trained run is reused only when it records the identity of these inputs
(world size and analysis-ready store, :func:`model.runs.folders.run_input_mismatch`);
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
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from .config import home, worlds_dir
from .data.ingest import ingest as run_ingest
from .errors import InputError
from .features.ard import ard_info
from .inference.archive import build_archive, lay_out_archive
from .inference.cli import default_period
from .inference.runner import resolve_run
from .io import write_json_atomic
from .networks.registry import list_models, model_names
from .products import refresh_products
from .progress import Progress, Step
from .runs.folders import PROVISIONAL_MARK, has_run, provisional_minutes, run_input_mismatch
from .training.cli import train_config
from .training.trainer import train
from .validation.experiments import run_validation
from .world import build_world, get_config

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

#: validation settings of the quick pipeline: smaller ceiling learners, 200 bootstrap resamples
QUICK_VALIDATION = {"ceiling_kw": {"max_samples": 2000, "max_iter": 20}, "n_resamples": 200}


#: estimates of the progress plan (seconds; shown as "about ... left" until a step has run):
#: archiving one model and validating, on the demo world (session 11's stopwatch: 11 models in
#: 881 s, validation 268 s, on 2 cores) and in a quick run
ARCHIVE_S_PER_MODEL = {"demo": 80.0, "quick": 10.0}
VALIDATE_S = {"demo": 270.0, "quick": 20.0}

#: processes of the archive's local Dask cluster in the demo, and the largest block of days a
#: task computes (its inputs, with 28 days of history, are held in memory: ~0.8 GB for 20 days)
ARCHIVE_WORKERS = 2
MAX_BLOCK_DAYS = 20

#: the model the first page shows; with the reference methods (cheap) it makes the first wave
FIRST_MODEL = "pscnet"

#: minutes of a provisional PSCNet for the first page, used when PSCNet's budget is longer (its
#: full-budget run then replaces it behind the open page). Every method's demo budget is one
#: minute (equal budgets, as the season2 comparison), so the demo trains no provisional run.
PROVISIONAL_MINUTES = 2.0


def waves(names: list[str], serve_early: bool, provisional: bool = False) -> list[list[str]]:
    """The models in the order they are made: one wave, or (``serve_early``) PSCNet and the
    reference methods first (the first page), then the others (appearing on the open page).
    ``provisional``: the first page's PSCNet is a short run, retrained on its full budget
    (and re-archived) in a wave of its own right after the first page."""
    if not serve_early:
        return [list(names)]

    first = [n for n in names if n == FIRST_MODEL or n in model_names(kind="reference")]
    full = [FIRST_MODEL] if provisional and FIRST_MODEL in first else []
    rest = [n for n in names if n not in first]
    return [w for w in (first, full, rest) if w]


def _wave_suffix(k: int, wave: list, provisional: bool) -> str:
    """The summary's stage suffix of wave ``k``: "" (first page), "_full" (PSCNet's
    full-budget run after a provisional one), "_rest" (the other models)."""
    if k == 0:
        return ""
    return "_full" if provisional and k == 1 and wave == [FIRST_MODEL] else "_rest"


def _train_items(plan: list, configs: dict, provisional_minutes: float | None) -> list[list[tuple]]:
    """Per wave, what each training step is: (model, step name, config, provisional?)."""
    out = []
    for k, wave in enumerate(plan):
        row = []
        for n in wave:
            if provisional_minutes and k == 0 and n == FIRST_MODEL:
                row.append((n, f"train {n} (provisional, {provisional_minutes:g} min)",
                            replace(configs[n], max_minutes=provisional_minutes), True))
            else:
                row.append((n, f"train {n}", configs[n], False))
        out.append(row)
    return out


def run_pipeline(size="demo", models=None, device="auto", quick: bool = False,
                 skip=(), on_first_page=None, provisional_minutes: float | None = None) -> dict:
    """world -> ingest -> train -> archive -> validate, reusing finished steps.

    ``quick``: seconds-scale training and an archive of the test period plus the last
    ``QUICK_TRAIN_DAYS`` training days, validated with :data:`QUICK_VALIDATION` (tests and
    smoke runs on the tiny world); the results
    are real but not meant to be good. ``skip``: stages of :data:`SKIPPABLE` to skip.

    ``on_first_page``: called with the summary once PSCNet and the reference methods are
    trained and the archive is laid out for them (stage ``lay_out``: time axis, NaN values;
    the first page computes their maps on demand, as the dashboard does for any trained model
    not archived yet, and says so on the map); the demo starts the dashboard there. They are
    then archived (stage ``archive``) and the other models trained and archived behind the
    open page (:func:`waves`), and the validation of every
    product runs once, last (its pages say it is still being made until then). Each step is
    recorded in ``$SMDS_HOME/progress.json`` (:mod:`model.progress`), which the page shows.
    Without it every model is made before the function returns, in one wave.

    ``provisional_minutes``: with ``on_first_page``, the first page's PSCNet is trained on
    this budget (default :data:`PROVISIONAL_MINUTES` when PSCNet's budget is longer, none
    in a ``quick`` run), and the first wave is not archived on its own: right after the
    first page PSCNet is retrained on its full budget and archived with the references
    (stages ``train_full`` and
    ``archive_full``), then the other models follow. (Alone in the first wave, the
    provisional PSCNet is archived, and its full run is swapped in whole when archived.)

    Returns the summary (every stage's status "ok" or "skipped (--skip)"; with two waves the
    second wave's stages are ``train_rest`` and ``archive_rest``); a failing
    stage raises :class:`StageError` (an :class:`~model.errors.InputError`: the CLI prints one
    line and exits 2) after marking it failed in the progress record.
    """
    bad = set(skip) - set(SKIPPABLE)
    if bad:
        raise InputError(f"cannot skip {', '.join(sorted(bad))}",
                         f"only {', '.join(SKIPPABLE)} can be skipped")

    summary: dict = {"home": str(home())}
    world_dir = worlds_dir() / size
    os.environ.setdefault("SMDS_CATALOG", str(world_dir / "catalog.yaml"))
    ard = world_dir / "ard.zarr"
    _stage("world", summary, partial(_world, size, world_dir))
    _stage("ingest", summary, partial(_ingest, world_dir, ard))

    names = models or [m.name for m in list_models()]
    configs = {n: train_config(n, ard, config="demo", device=device, **(dict(QUICK_TRAIN) if quick else {}))
               for n in names}
    if on_first_page is None:
        provisional_minutes = None
    elif provisional_minutes is None and not quick:
        provisional_minutes = PROVISIONAL_MINUTES
    if FIRST_MODEL not in configs or (provisional_minutes or 0) >= configs[FIRST_MODEL].max_minutes:
        provisional_minutes = None
    prov = bool(provisional_minutes)
    plan = waves(names, on_first_page is not None, prov)
    items = _train_items(plan, configs, provisional_minutes)
    # what each wave archives: all it trains. Serving early, the first wave lays the archive out
    # before the first page (the page computes the maps of trained models on demand) and
    # archives behind it; with a provisional PSCNet, the next wave archives the first wave with
    # PSCNet's full-budget run (one pass over the inputs for all of them)
    early = on_first_page is not None and len(plan[0]) > 1
    archived = [list(wave) for wave in plan]
    if early and prov:
        archived[1] = list(dict.fromkeys(plan[1] + plan[0]))
        archived[0] = []
    # the progress step of each wave's archive; one validation of every product, last
    labels = [f"archive {', '.join(wave)}" if wave else "" for wave in archived]
    progress = _progress_plan(items, archived, labels, "quick" if quick else "demo")
    step = partial(_progress_step, progress)
    for k, (wave, lab) in enumerate(zip(plan, labels)):
        suffix = _wave_suffix(k, wave, prov)
        _stage("train" + suffix, summary, partial(_train_wave, items[k], step, ard))
        if k == 0 and early:
            _stage("lay_out", summary, partial(_lay_out, plan[0], ard, quick))
            on_first_page(summary)
            if prov:
                continue
        if "archive" in skip:
            progress.done(lab, "skipped", "--skip archive")
        _stage("archive" + suffix, summary, partial(_archive_wave, archived[k], lab, step, ard, quick, device), skip)
        if k == 0 and on_first_page is not None and not early:
            on_first_page(summary)
    if "validate" in skip:
        progress.done("validate", "skipped", "--skip validate")
    _stage("validate", summary, partial(_validate_wave, "validate", step, ard, quick), skip)
    progress.finish()
    return summary


def _world(size: str, world_dir: Path) -> dict:
    """Stage ``world``: build the virtual TP of ``size`` unless a complete one is there."""
    man = world_dir / "world.json"
    if man.exists() and json.loads(man.read_text()).get("complete"):
        return {"reused": True}
    build_world(get_config(size), world_dir, seed=42, progress=True)
    return {"reused": False}


def _ingest(world_dir: Path, ard: Path) -> dict:
    """Stage ``ingest``: the analysis-ready store of the world, unless a complete one is there."""
    if (ard / ".complete").exists():
        return {"reused": True}
    _, report = run_ingest(world_dir / "catalog.yaml", ard)
    print(report.summary())
    return {"reused": False, "skipped": len(report.skipped)}


def _progress_plan(items: list, archived: list, labels: list, kind: str) -> Progress:
    """The progress record of the pipeline's steps: per wave its trainings (``items`` of
    :func:`_train_items`) and the archive of its ``archived`` models (step ``labels[k]``; none
    when empty), then one validation."""
    steps = []
    for row, wave, lab in zip(items, archived, labels):
        steps += [Step(label, cfg.max_minutes * 60, n) for n, label, cfg, _ in row]
        if wave:
            steps.append(Step(lab, ARCHIVE_S_PER_MODEL[kind] * len(wave), ", ".join(wave)))
    steps.append(Step("validate", VALIDATE_S[kind], "validation"))
    return Progress(home(), steps)


def _progress_step(progress: Progress, name: str, fn):
    """Run ``fn`` as progress step ``name`` (failed/skipped recorded, errors re-raised)."""
    progress.start(name)
    try:
        out = fn()
    except BaseException as exc:
        progress.done(name, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    progress.done(name, "skipped" if out == "skipped" else "done")
    return out


def _train_wave(row: list, step, ard: Path) -> dict:
    """Stage ``train``: each model of a wave (``row`` of :func:`_train_items`) trained (a
    progress step each), unless its latest run can be reused. A provisional step reuses any
    run of these inputs and marks what it trains provisional; a full step never reuses a
    provisional run."""
    done, retrained = {}, {}
    for name, label, cfg, provisional in row:
        def one(name=name, cfg=cfg, provisional=provisional):
            why = _reuse_problem(name, ard, allow_provisional=provisional)
            if why is None:
                done[name] = "reused"
                return "skipped"
            if why:
                print(f"   {name}: not reusing its latest run: {why}; retraining", flush=True)
                retrained[name] = why
            run_dir = train(name, cfg, ard=ard)
            if provisional:
                write_json_atomic(run_dir / PROVISIONAL_MARK, {"max_minutes": cfg.max_minutes})
            done[name] = json.loads((run_dir / "summary.json").read_text()).get("tune_rmse")
        step(label, one)
    return {"models": done, **({"retrained": retrained} if retrained else {})}


def _archive_period(ard: Path, quick: bool) -> tuple[str, str]:
    """The demo's archive period: :func:`default_period`, or in a quick run the test period
    with the last :data:`QUICK_TRAIN_DAYS` training days before it."""
    s, e = default_period(ard)
    if quick:
        test = ard_info(ard)["world"]["periods"]["test"]
        s = str(np.datetime64(test[0], "D") - np.timedelta64(QUICK_TRAIN_DAYS, "D"))
        e = test[1]
    return s, e


def _lay_out(models: list, ard: Path, quick: bool) -> dict:
    """Stage ``lay_out`` (the first page's wave with a provisional PSCNet): the archive laid
    out for ``models`` (time axis, NaN values); the page computes their maps on demand."""
    s, e = _archive_period(ard, quick)
    res = lay_out_archive(models, s, e, ard=ard)
    return {"models": res["models"], "steps": res["steps"]}


def _archive_wave(wave: list, label: str, step, ard: Path, quick: bool, device: str) -> dict:
    """Stage ``archive``: the models of ``wave`` archived (progress step ``label``), then the
    products catalog refreshed."""
    s, e = _archive_period(ard, quick)
    # one block per worker: each block reads its days plus 28 days of history once
    # (5-day blocks read the history 8 times over for a 40-day archive)
    days = int((np.datetime64(e, "D") - np.datetime64(s, "D")).astype(int)) + 1
    block_days = int(min(MAX_BLOCK_DAYS, max(5, -(-days // ARCHIVE_WORKERS))))
    res = step(label, lambda: build_archive(wave, s, e, ard=ard, workers=ARCHIVE_WORKERS, device=device,
                                            block_days=block_days))
    return {"complete": res["complete"], "size_mb": res["size_mb"],
            "catalog": refresh_products(home() / "archive", ard)}


def _validate_wave(label: str, step, ard: Path, quick: bool = False) -> dict:
    """Stage ``validate``: every product validated (progress step ``label``; a ``quick`` run
    with :data:`QUICK_VALIDATION`), then the products catalog refreshed."""
    kw = dict(QUICK_VALIDATION) if quick else {}
    res = step(label, lambda: run_validation(ard=ard, **kw))
    return {"outputs": res.get("outputs"), "catalog": refresh_products(home() / "validation", ard)}


def _reuse_problem(name: str, ard: Path, allow_provisional: bool = False) -> str | None:
    """None when ``name``'s latest run can be reused on ``ard``; "" when there is no run;
    else why it cannot (another world size or store, no recorded identity, unreadable, a
    provisional run where the full budget is asked for)."""
    # lazy: model.networks.checkpoint imports torch (0.9 s); `sm-downscale --help` imports this module
    from .networks.checkpoint import read_checkpoint

    if not has_run(name):
        return ""

    try:
        run = resolve_run(name)
        extra = read_checkpoint(run / "checkpoint.pt").get("extra", {})
    except InputError as exc:
        return f"it cannot be read ({exc})"
    minutes = provisional_minutes(run)
    if minutes is not None and not allow_provisional:
        return f"it is the provisional {minutes}-minute run of the first page"
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


#: seconds the demo waits for its server to listen before going on with the other models
SERVER_START_S = 120.0


def local_host(address: str) -> str:
    """The host this machine reaches a server on ``address`` by (every interface: loopback)."""
    return "127.0.0.1" if address in ("0.0.0.0", "::", "") else address


def wait_for_port(address: str, port: int, proc=None, timeout_s: float = SERVER_START_S) -> float:
    """Wait until something listens on ``address:port`` (or ``proc`` ended, or the timeout);
    returns the seconds waited."""
    host = local_host(address)
    t0 = _time.perf_counter()
    while _time.perf_counter() - t0 < timeout_s:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection((host, port), timeout=1.0):
                break
        except OSError:
            _time.sleep(0.25)
    return _time.perf_counter() - t0


#: niceness added to the demo's own process once the dashboard is served: the training, the
#: archive's Dask workers (started later, they inherit it) and the validation behind the open
#: page yield the CPU to the server (added in session 14 for the responsiveness of the open
#: page on 2 cores; its effect on the first page's time is not measured)
BACKGROUND_NICE = 10


def lower_priority(step: int = BACKGROUND_NICE) -> int | None:
    """Lower this process's CPU priority, and that of the processes it starts from now on, by
    ``step``; returns the new niceness, or None where the system has no ``nice``."""
    try:
        return os.nice(step)
    except (AttributeError, OSError):
        return None


def _run(args) -> int:
    """The pipeline; unless ``--no-serve``, the dashboard starts as soon as PSCNet and the
    reference methods are trained (the first page, their maps computed on demand), and their
    archive, the other models and the validation are made behind it, at a lower CPU priority
    (the page shows a progress line and picks models up as they are archived, the
    validation's tables and maps when it is done).
    A stage failing after the server started is reported, recorded in the progress record
    (shown on the page) and ends the command with status 2 once the server is stopped."""
    t0 = _time.perf_counter()
    server: dict = {}
    cmd = None
    if not args.no_serve:
        app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
        if not app.exists():
            raise InputError("the dashboard (dashboard/app.py) is missing from this installation",
                             "run from a full checkout of the repository, or give --no-serve", app)
        cmd = serve_command(app, args.address, args.port, args.allow_origin)

    def first_page(summary):
        summary["first_page_s"] = round(_time.perf_counter() - t0, 1)
        if args.address not in LOOPBACK:
            print(f"WARNING: serving on {args.address}: anyone who can reach this machine on port "
                  f"{args.port} sees the dashboard (and the home folder it names)", flush=True)
        print(f"serving the dashboard after {summary['first_page_s']:.0f} s (the other models follow "
              "behind it):", " ".join(cmd), flush=True)
        server["proc"] = subprocess.Popen(cmd)
        # the models still to come use every core: let the server finish its start-up (imports,
        # the --warm run of the page) first, so the first page is not slowed by them
        waited = wait_for_port(args.address, args.port, server["proc"], SERVER_START_S)
        print(f"the dashboard answers at http://{local_host(args.address)}:{args.port}/app "
              f"({waited:.0f} s to start)", flush=True)
        # and the server keeps the cores whenever a page asks for them (the first page computes
        # its maps on demand): what is made behind it runs at a lower priority
        lower_priority()

    failed = None
    try:
        summary = run_pipeline(args.size, args.models, args.device, quick=args.quick, skip=args.skip,
                               on_first_page=None if args.no_serve else first_page)
    except InputError as exc:
        if "proc" not in server:
            raise
        failed = exc
        summary = getattr(exc, "summary", {})
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except BaseException:
        if "proc" in server:
            server["proc"].terminate()
        raise
    summary["seconds_total"] = round(_time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1, default=str), flush=True)
    if args.no_serve:
        return 0
    if "proc" not in server:  # nothing was served early (every stage reused or skipped the hook)
        first_page(summary)
    print("every model is made; the dashboard keeps serving (Ctrl-C stops it)", flush=True)
    try:
        rc = server["proc"].wait()
    except KeyboardInterrupt:
        server["proc"].terminate()
        rc = server["proc"].wait()
    return 2 if failed is not None else rc
