"""Training under scale invariance: the same code for every method, on CPU or GPU.

Learn f(predictors) -> SMAP where SMAP observes: the 10 km predictors are aggregated (area
overlap) to the SMAP grid (M09 by default: SPL3SMP_E, posted at 9 km, close to the 10 km product
scale, so convolution kernels see nearly the same spacing at training and at inference), and
paired with SMAP retrievals at their overpass steps. The trained f is applied to the 10 km
predictors at every 3-hourly step (:mod:`model.inference`).

Splits: by time (the world's / user's training period; the test period is never seen), and a
spatial hold-out of whole 16 x 16 tiles of the SMAP grid (20 %) inside the training period for
early stopping ("tuning"). Normalisation statistics come from the training period only and are
stored in the checkpoint, with the constructor arguments, so the model rebuilds from it alone.
"""

from __future__ import annotations

import json
import logging
import math
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..errors import InputError, unknown_name
from ..features.ard import TARGETS, ard_identity, default_ard, load_inputs, open_group
from ..features.cube import build_cube, spatial_holdout, target_on_steps
from ..io import write_text_atomic
from ..networks.registry import get_model, get_model_class
from ..networks.tree_arrays import TreeArrays
from ..runs.folders import mark_latest, new_run_dir
from .references import fit_reference
from .resident import ResidentPatches
from .schedule import SCHEDULE, BudgetOneCycle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (all JSON-serialisable; stored in the run folder)."""

    model: str
    train_start: str
    train_end: str
    target: str = "smap_l3_9km"
    patch: int = 32
    batch_size: int = 16
    pixel_batch: int = 2048
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_epochs: int = 40
    steps_per_epoch: int = 60
    patience: int = 5
    max_minutes: float = 10.0
    max_pixel_samples: int = 150_000
    tune_patches: int = 48
    holdout_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    model_kwargs: dict = field(default_factory=dict)
    #: cut patch batches on the device from a resident cube (model.training.resident);
    #: None: on a GPU only (the CPU keeps the NumPy batches and their results)
    resident: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device(requested: str = "auto") -> str:
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        log.info("no GPU found: training on the CPU")
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        log.warning("CUDA requested but no GPU is available: falling back to the CPU")
        return "cpu"
    return requested


@dataclass
class TrainingData:
    cube: "object"
    target: np.ndarray          # (T, H, W) physical, NaN where none
    train_steps: np.ndarray      # step indices with any training target
    train_mask: np.ndarray       # (H, W) cells whose targets train
    tune_mask: np.ndarray        # (H, W) spatial hold-out
    norm: "object"


_PREPARED: dict = {}


def prepare(ard, cfg: TrainConfig) -> TrainingData:
    """Load the store, aggregate to the SMAP grid, fit the normalisation, split.

    The result depends only on the store, the period, the target, the hold-out and the seed,
    so it is kept in memory for the next model of the same process (``sm-downscale demo``
    trains every model on the same data)."""
    key = (str(Path(ard).resolve()), cfg.train_start, cfg.train_end, cfg.target, cfg.holdout_fraction, cfg.seed)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = _prepare(ard, cfg)
    return _PREPARED[key]


def _prepare(ard, cfg: TrainConfig) -> TrainingData:
    if cfg.target not in TARGETS:
        raise unknown_name("training target", cfg.target, list(TARGETS))
    group, grid = TARGETS[cfg.target]
    era5, static = load_inputs(ard, cfg.train_start, cfg.train_end)
    cube = build_cube(era5, static, grid)
    smap = open_group(ard, group).sel(time=slice(era5.time.values[0], era5.time.values[-1])).load()
    if smap.sizes["time"] == 0:
        raise InputError(f"no SMAP ({cfg.target}) retrieval between {cfg.train_start} and {cfg.train_end}",
                         "choose a period the SMAP inputs cover (sm-downscale inspect)")
    y = target_on_steps(cube, smap)
    s, e = np.datetime64(cfg.train_start, "ns"), np.datetime64(cfg.train_end, "ns") + np.timedelta64(1, "D")
    in_period = (cube.times >= s) & (cube.times < e)
    has_y = np.isfinite(y).reshape(y.shape[0], -1).any(axis=1)
    steps = np.nonzero(in_period & has_y)[0]
    if steps.size == 0:
        raise InputError(f"no SMAP retrieval in the training period {cfg.train_start} .. {cfg.train_end}",
                         "choose a period the SMAP inputs cover")
    tune = spatial_holdout(cube.mask, fraction=cfg.holdout_fraction, seed=cfg.seed)
    train_mask = cube.mask & ~tune
    norm = cube.fit_normalisation(np.nonzero(in_period)[0], np.where(train_mask, y[steps], np.nan))
    cube.normalise(norm)
    return TrainingData(cube, y, steps, train_mask, tune, norm)


def _sample_patches(rng, data: TrainingData, n: int, size: int, mask: np.ndarray, steps=None):
    """Random (step, row, col) patches whose window holds at least one target in ``mask``."""
    h, w = data.cube.shape
    steps = data.train_steps if steps is None else steps
    out = []
    tries = 0
    while len(out) < n and tries < n * 50:
        tries += 1
        i = int(rng.choice(steps))
        r = int(rng.integers(0, max(1, h - size + 1)))
        c = int(rng.integers(0, max(1, w - size + 1)))
        tgt = data.target[i, r:r + size, c:c + size]
        if np.isfinite(tgt[mask[r:r + size, c:c + size]]).sum() >= 4:
            out.append((i, r, c))
    if not out:
        raise InputError("no training patch with SMAP targets was found",
                         "the training period or region holds too few SMAP retrievals")
    return np.array(out)


def _pixel_samples(rng, data: TrainingData, mask: np.ndarray, max_n: int):
    i, r, c = np.nonzero(np.isfinite(data.target[data.train_steps]) & mask[None])
    i = data.train_steps[i]
    if i.size > max_n:
        sel = rng.choice(i.size, max_n, replace=False)
        i, r, c = i[sel], r[sel], c[sel]
    return i, r, c


def _to_torch(batch: dict, device):
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()}


def train(model_name: str, cfg: TrainConfig, ard=None, out: Path | None = None,
          progress: bool = True) -> Path:
    """Train ``model_name`` and write its run folder; returns the folder.

    The folder holds ``checkpoint.pt`` (the model's constructor arguments, weights,
    normalisation, training period and config), ``log.csv`` (per epoch: train loss, tuning
    RMSE in m3 m-3, seconds), ``config.json`` and ``summary.json``.
    """
    cls = get_model_class(model_name)     # unknown names fail here; its capabilities decide below
    ard = Path(ard) if ard else default_ard()
    t_start = _time.perf_counter()
    data = prepare(ard, cfg)
    out = Path(out) if out else new_run_dir(model_name, cfg.to_dict())
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    extra = {"normalisation": data.norm.to_dict(), "train_config": cfg.to_dict(),
             "train_period": [cfg.train_start, cfg.train_end], "target": cfg.target,
             "ard": str(ard), "ard_identity": ard_identity(ard), "code_version": __version__}
    if cls.kind == "torch":
        summary = _train_torch(model_name, cls, cfg, data, out, extra, progress)
    elif cls.kind == "sklearn":
        summary = _train_sklearn(model_name, cfg, data, out, extra)
    else:
        summary = _fit_reference(model_name, cfg, data, out, extra, ard)
    summary["history"] = history_report(data)
    summary["seconds_total"] = round(_time.perf_counter() - t_start, 1)
    summary["model"] = model_name
    summary["run"] = str(out)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    mark_latest(out)
    return out


#: days of history a window reads (the weekly MFTF branch: 4 weeks)
HISTORY_DAYS = 28


def history_report(data) -> dict:
    """How many training steps have less than :data:`HISTORY_DAYS` of predictors before them.

    Such windows repeat the first available step as their history (``model.features.cube``
    clamps the indices). They are counted and said once (log and ``summary.json``), never
    padded silently; for real data ingest's default training period starts
    :data:`HISTORY_DAYS` in when the record is long enough, so the count is 0.
    """
    times = np.asarray(data.cube.times, "datetime64[ns]")
    steps = times[data.train_steps]
    padded = steps - np.timedelta64(HISTORY_DAYS, "D") < times[0]
    n = int(padded.sum())
    rep = {"history_days": HISTORY_DAYS, "first_predictor_step": str(times[0])[:16],
           "training_steps": int(steps.size), "padded_windows": n}
    if n:
        rep["padded_until"] = str(steps[padded].max())[:16]
        log.warning("%d of %d training steps (until %s) have less than %d days of ERA5-Land before them: "
                    "their history repeats the first step (%s); start the training period later to avoid it",
                    n, steps.size, rep["padded_until"], HISTORY_DAYS, rep["first_predictor_step"])
    return rep


def _masked_mse(pred, target, mask):
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    diff = torch.where(mask, pred - target, torch.zeros_like(pred))
    return (diff * diff).sum() / mask.sum().clamp(min=1)


def _batch_targets(data: TrainingData, idx, size, mask, device):
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    ys, ms = [], []
    for i, r, c in idx:
        t = data.target[i, r:r + size, c:c + size]
        m = np.isfinite(t) & mask[r:r + size, c:c + size]
        ys.append(np.where(m, data.norm.norm_target(np.nan_to_num(t)), 0.0))
        ms.append(m)
    y = torch.from_numpy(np.stack(ys)[:, None].astype(np.float32)).to(device)
    m = torch.from_numpy(np.stack(ms)[:, None]).to(device)
    return y, m


def _train_torch(model_name, cls, cfg, data, out, extra, progress):
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    # lazy: model.networks.checkpoint imports torch (0.9 s); `sm-downscale --help` imports this module
    from ..networks.checkpoint import save_checkpoint

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device(cfg.device)
    cube = data.cube
    kwargs = {"n_dynamic": len(cube.channels), "n_static": len(cube.static_channels), **cfg.model_kwargs}
    model = get_model(model_name, **kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.max_epochs * cfg.steps_per_epoch
    use_amp = cfg.amp and device.startswith("cuda")
    pixel = cls.per_pixel

    tune = _tune_set(cfg, data, pixel)       # fixed tuning set
    pix = _pixel_samples(rng, data, data.train_mask, 10**9) if pixel else None
    rp = None
    if not pixel and (device.startswith("cuda") if cfg.resident is None else cfg.resident) \
            and min(cube.shape) >= cfg.patch:
        rp = ResidentPatches(data, cfg.patch, device, seed=cfg.seed)

    best, best_epoch, bad = float("inf"), -1, 0
    log_rows = []
    # one-cycle learning rate that anneals by the step limit or the time budget, whichever binds
    sched = BudgetOneCycle(opt, cfg.lr, total_steps, cfg.max_minutes * 60, pct_start=0.1)
    deadline = sched.t0 + cfg.max_minutes * 60
    ckpt = out / "checkpoint.pt"
    n_samples = 0
    t0 = _time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"train {model_name} ({device})", disable=not progress, unit="step")
    stopped = "max_epochs"
    for epoch in range(cfg.max_epochs):
        losses, n = _train_epoch(model, opt, sched, cfg, data, rng, device, use_amp, pix, rp, bar, deadline)
        n_samples += n
        rmse = _tune_rmse(model, cfg, data, device, use_amp, pixel, tune, rp)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "tune_rmse": rmse,
               "lr": sched.get_last_lr()[0], "seconds": round(_time.perf_counter() - t0, 1)}
        log_rows.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", tune_rmse=f"{rmse:.4f}")
        if rmse < best - 1e-5:
            best, best_epoch, bad = rmse, epoch, 0
            save_checkpoint(ckpt, model, {**extra, "epoch": epoch, "tune_rmse": rmse})
        else:
            bad += 1
        _write_log(out, log_rows)
        if bad >= cfg.patience:
            stopped = "early stop"
            break
        if _time.perf_counter() > deadline:
            stopped = "time budget"
            break
    bar.close()
    secs = _time.perf_counter() - t0
    return {"kind": "torch", "device": device, "epochs": len(log_rows), "best_epoch": best_epoch,
            "tune_rmse": best, "stopped": stopped, "train_seconds": round(secs, 1),
            "samples_per_second": round(n_samples / max(secs, 1e-9), 1),
            "resident_batches": rp is not None, "lr_schedule": SCHEDULE,
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def _tune_set(cfg, data, pixel: bool):
    """The fixed tuning set, drawn with seed ``cfg.seed + 1``: batches (inputs, targets, mask)
    of tuning pixels for a per-pixel model, else tuning patch positions."""
    rng = np.random.default_rng(cfg.seed + 1)
    if not pixel:
        return _sample_patches(rng, data, cfg.tune_patches, cfg.patch, data.tune_mask)
    ti, tr, tc = _pixel_samples(rng, data, data.tune_mask, 20_000)
    tune_batches = []
    for k in range(0, ti.size, cfg.pixel_batch):
        sl = slice(k, k + cfg.pixel_batch)
        b = data.cube.pixel_batch(ti[sl], tr[sl], tc[sl])
        y = data.norm.norm_target(data.target[ti[sl], tr[sl], tc[sl]]).astype(np.float32)
        tune_batches.append((b, y[:, None, None, None], np.ones_like(y, bool)[:, None, None, None]))
    return tune_batches


def _tune_rmse(model, cfg, data, device, use_amp: bool, pixel: bool, tune, rp) -> float:
    """RMSE (m3 m-3) of ``model`` on the tuning set ``tune`` (:func:`_tune_set`)."""
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    model.eval()
    se, n = 0.0, 0
    with torch.no_grad(), torch.autocast(device_type="cuda" if use_amp else "cpu", dtype=torch.bfloat16,
                                         enabled=use_amp):
        if pixel:
            for b, y, m in tune:
                p = model(_to_torch(b, device)).float()
                yt = torch.from_numpy(y).to(device)
                mt = torch.from_numpy(m).to(device)
                se += float(((p - yt) ** 2)[mt].sum())
                n += int(mt.sum())
        else:
            for k in range(0, len(tune), cfg.batch_size):
                idx = tune[k:k + cfg.batch_size]
                if rp is not None:
                    b, y, m = rp.batch(idx, data.tune_mask)
                    p = model(b).float()
                    se += float(((p - y) ** 2)[m].sum())
                    n += int(m.sum())
                    continue
                b = data.cube.patch_batch(idx[:, 0], idx[:, 1], idx[:, 2], cfg.patch)
                y, m = _batch_targets(data, idx, cfg.patch, data.tune_mask, device)
                p = model(_to_torch(b, device)).float()
                se += float(((p - y) ** 2)[m].sum())
                n += int(m.sum())
    model.train()
    return math.sqrt(se / max(n, 1)) * data.norm.target_std


def _train_epoch(model, opt, sched, cfg, data, rng, device, use_amp: bool, pix, rp, bar, deadline: float):
    """One epoch: up to ``cfg.steps_per_epoch`` optimizer steps (none begun past ``deadline``).
    Returns the losses (resident batches: their mean, one device sync) and the samples seen."""
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    model.train()
    losses, n_samples = [], 0
    n_dev = None  # samples counted on the device (resident batches)
    for _ in range(cfg.steps_per_epoch):
        b, y, m, n = _train_batch(cfg, data, rng, device, pix, rp)
        n_samples += n
        if rp is not None:
            n_dev = m.sum() if n_dev is None else n_dev + m.sum()
        try:
            with torch.autocast(device_type="cuda" if use_amp else "cpu", dtype=torch.bfloat16, enabled=use_amp):
                pred = model(b if rp is not None else _to_torch(b, device))
            loss = _masked_mse(pred.float(), y, m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        except torch.OutOfMemoryError as exc:  # pragma: no cover - GPU only
            raise InputError(f"the GPU ran out of memory with batch size {cfg.batch_size}",
                             f"retry with --batch-size {max(1, cfg.batch_size // 2)}") from exc
        losses.append(loss.detach() if rp is not None else loss.detach().item())
        bar.update(1)
        if _time.perf_counter() > deadline:
            break
    if rp is not None:  # one device sync per epoch, not per step
        losses = [float(torch.stack(losses).mean())] if losses else [float("nan")]
        if n_dev is not None:
            n_samples += int(n_dev)
    return losses, n_samples


def _train_batch(cfg, data, rng, device, pix, rp):
    """One training batch: inputs, targets, mask, and the samples counted on the host (0 for
    resident batches: they are counted on the device)."""
    # lazy: torch costs 0.9 s at import; `sm-downscale --help` imports this module
    import torch

    cube = data.cube
    if pix is not None:
        pi, pr, pc = pix
        sel = rng.integers(0, pi.size, cfg.pixel_batch)
        b = cube.pixel_batch(pi[sel], pr[sel], pc[sel])
        yv = data.norm.norm_target(data.target[pi[sel], pr[sel], pc[sel]]).astype(np.float32)
        y = torch.from_numpy(yv[:, None, None, None]).to(device)
        return b, y, torch.ones_like(y, dtype=torch.bool), sel.size
    if rp is not None:  # windows and targets cut on the device, no host round trip
        b, y, m = rp.batch(rp.sample(cfg.batch_size, data.train_mask), data.train_mask)
        return b, y, m, 0
    idx = _sample_patches(rng, data, cfg.batch_size, cfg.patch, data.train_mask)
    b = cube.patch_batch(idx[:, 0], idx[:, 1], idx[:, 2], cfg.patch)
    y, m = _batch_targets(data, idx, cfg.patch, data.train_mask, device)
    return b, y, m, int(m.sum())


def _write_log(out: Path, rows):
    pd.DataFrame(rows).to_csv(out / "log.csv", index=False)


def _train_sklearn(model_name, cfg, data, out, extra):
    # lazy: model.networks.checkpoint imports torch (0.9 s); `sm-downscale --help` imports this module
    from ..networks.checkpoint import save_checkpoint

    rng = np.random.default_rng(cfg.seed)
    cube = data.cube
    model = get_model(model_name, n_dynamic=len(cube.channels), n_static=len(cube.static_channels),
                      **cfg.model_kwargs)
    i, r, c = _pixel_samples(rng, data, data.train_mask, cfg.max_pixel_samples)
    t0 = _time.perf_counter()
    deadline = t0 + cfg.max_minutes * 60
    X = model.features(cube.pixel_batch(i, r, c))
    y = data.norm.norm_target(data.target[i, r, c])
    grown = fit_trees_within_budget(model, X, y, deadline)
    secs = _time.perf_counter() - t0
    ti, tr, tc = _pixel_samples(np.random.default_rng(cfg.seed + 1), data, data.tune_mask, 20_000)
    p = model.predict_batch(cube.pixel_batch(ti, tr, tc))
    p = np.asarray(p).reshape(-1)
    rmse = float(np.sqrt(np.mean((p - data.norm.norm_target(data.target[ti, tr, tc])) ** 2)) * data.norm.target_std)
    save_checkpoint(out / "checkpoint.pt", model, {**extra, "tune_rmse": rmse})
    _write_log(out, [{"epoch": 0, "train_loss": float("nan"), "tune_rmse": rmse, "seconds": round(secs, 1)}])
    return {"kind": "sklearn", "device": "cpu", "samples": int(i.size), "tune_rmse": rmse,
            "train_seconds": round(secs, 1), "samples_per_second": round(i.size / max(secs, 1e-9), 1),
            **grown}


#: trees (forest) or boosting iterations added per round while growing within a time budget
TREE_ROUND = {"n_estimators": 8, "max_iter": 20}


def fit_trees_within_budget(model, X, y, deadline: float) -> dict:
    """Fit a forest or boosting model in rounds and stop at ``deadline`` (``perf_counter``).

    scikit-learn's ``warm_start`` keeps the trees already grown: a forest adds
    ``TREE_ROUND["n_estimators"]`` trees per round, histogram boosting
    ``TREE_ROUND["max_iter"]`` iterations, up to the model's own count. A round is started
    only when the time left exceeds the slowest round so far (so the budget is kept within a
    fraction of one round); the first round always runs. Returns ``{"stopped", "rounds",
    "grown", "requested"}`` (``grown`` trees or iterations).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[1] != model.dims.n_features or len(y) != len(X):
        raise InputError(f"{model.name}: expected X (pixels, features) = (N, {model.dims.n_features}) "
                         f"and y (N,), got {X.shape} and {y.shape}", "build X with features(batch)")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError(f"{model.name}: X or y holds NaN/inf", "drop pixels without a target before fitting")
    est = model._make_estimator()
    key = "n_estimators" if "n_estimators" in est.get_params() else "max_iter"
    requested = int(est.get_params()[key])
    step = TREE_ROUND[key]
    est.set_params(warm_start=True)
    grown, rounds, slowest, stopped = 0, 0, 0.0, "complete"
    while grown < requested:
        left = deadline - _time.perf_counter()
        if rounds and left < slowest:
            stopped = "time budget"
            break
        t = _time.perf_counter()
        grown = min(requested, grown + step)
        est.set_params(**{key: grown})
        est.fit(X, y)
        rounds += 1
        slowest = max(slowest, _time.perf_counter() - t)
    est.set_params(warm_start=False, **{key: grown})
    model.estimator = est
    if hasattr(model, "arrays"):   # tree models predict from plain arrays (no pickle in checkpoints)

        model.arrays = TreeArrays.from_estimator(est)
    if stopped != "complete":
        log.info("%s: time budget reached after %d of %d %s", model.name, grown, requested, key)
    return {"stopped": stopped, "rounds": rounds, "grown": grown, "requested": requested}


def _fit_reference(model_name, cfg, data, out, extra, ard):
    # lazy: model.networks.checkpoint imports torch (0.9 s); `sm-downscale --help` imports this module
    from ..networks.checkpoint import save_checkpoint

    t0 = _time.perf_counter()
    model = fit_reference(model_name, data, cfg)
    secs = _time.perf_counter() - t0
    save_checkpoint(out / "checkpoint.pt", model, extra)
    return {"kind": "reference", "train_seconds": round(secs, 1), "tune_rmse": None}
