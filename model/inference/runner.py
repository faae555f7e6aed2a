"""The runner: regenerate any 10 km TP scene with any trained model, on demand.

* Loads a checkpoint by run folder or by model name (the latest run in the registry of
  trained runs, ``$SMDS_HOME/runs/<model>/LATEST``).
* Assembles the multi-frequency input window of any 3-hourly step from the analysis-ready
  store (cached blocks, :class:`~model.inference.inputs.InputProvider`).
* Runs on the GPU when there is one (bf16 autocast where it keeps the answer within
  0.001 m3 m-3 of fp32, checked once per model at load time), else on the CPU; a GPU that
  is absent or out of memory falls back to the CPU with a logged message.
* On a GPU the inputs are device-resident (:mod:`model.training.resident`): each block's
  cube is copied to the GPU once and every window is cut there, batched; on the CPU the
  NumPy path below is used unless ``resident=True`` is asked for (tests do, to check that the
  two agree).
* Thread-safe: :func:`get_runner` returns one shared runner per (run, store, device), so a
  web server's sessions never load a model twice; predictions hold a lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time as _time
from pathlib import Path

import numpy as np
import xarray as xr

from ..config import runs_dir
from ..errors import InputError
from ..features.ard import default_ard
from ..features.channels import Normalisation
from ..features.cube import REGION_MARGIN
from ..grids import tp10, tp_mask
from ..machine import keep_freed_memory
from ..networks.registry import list_models, model_info
from ..runs.folders import latest_run
from ..schema import SM_CLIP as CLIP
from ..schema import sm_attrs
from ..training.resident import _Forward, predict_steps, resident_cube
from .inputs import InputProvider, normalise_batch, shared_provider
from .references import ReferenceRunner

log = logging.getLogger(__name__)

#: most pixel sequences a per-pixel model (MLP, LSTM) runs in one forward pass
PIXEL_CHUNK = 32768

#: pixel sequences per forward pass of a per-pixel model on the CPU: the LSTM's gates and the
#: MLP's layers then stay in the caches (session 19, demo scenes on one Xeon core, the LSTM
#: 651 -> 390 ms, the MLP 114 -> 94 ms against 32,768; 2,048 and 8,192 were slower for the
#: LSTM; docs/benchmarks.md "Shared standardised inputs, per-pixel pieces")
CPU_PIXEL_CHUNK = 4096

#: cells of one call on the CPU when no batch is given: a whole 10 km TP scene (150 x 320). A
#: batch of whole scenes runs slower per scene than one at a time (docs/benchmarks.md "Scenes
#: per call on the CPU"); the scenes of a small region (a 3 x 3 degree world) are batched up to
#: this size (at most 8), where one call per scene would be mostly call overhead
CPU_CALL_CELLS = 150 * 320



def data_region(cube, mask: np.ndarray, margin: int = REGION_MARGIN):
    """The TP10 cells a scene is computed on: TP mask cells whose ERA5-Land inputs exist.

    Returns (valid (H, W) bool, ys, xs): the slices of the bounding box of ``valid`` widened by
    ``margin`` cells (clipped to the grid). Outside the inputs (a regional world, the sea of
    a sub-box) the normalised inputs are all zeros, so spatial models computed on the box see
    what they would see on the whole grid up to ``margin`` cells away from the data; the box
    is what makes a 3 x 3 degree world cost 3 x 3 degrees, not the whole plateau.
    Cached on the cube.
    """
    hit = getattr(cube, "_region", None)
    if hit is not None and hit[0] is mask:
        return hit[1]
    valid = mask & np.isfinite(cube.x3).any(axis=(0, 1))
    if valid.any():
        r = np.flatnonzero(valid.any(1))
        c = np.flatnonzero(valid.any(0))
        ys = slice(max(r[0] - margin, 0), min(r[-1] + 1 + margin, valid.shape[0]))
        xs = slice(max(c[0] - margin, 0), min(c[-1] + 1 + margin, valid.shape[1]))
    else:
        ys = xs = slice(0, 0)
    cube._region = (mask, (valid, ys, xs))
    return valid, ys, xs


#: files that unpickle (run code) when loaded; a run folder holding one is refused
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".cloudpickle")

#: run folders outside the registry given by an explicit option (resolve_run(allow_path=True))
_EXPLICIT_RUNS: set = set()


def resolve_run(model_or_run: str | Path, allow_path: bool = False) -> Path:
    """The run folder of a model, through the run registry (``$SMDS_HOME/runs``).

    ``model_or_run`` is a registry model name (its latest run, ``runs/<model>/LATEST``), or a
    run folder of the registry itself (``runs/<model>/<run>``, as :func:`resolve_run` returns
    it). Any other folder (or ``checkpoint.pt``) is accepted only with ``allow_path=True``,
    which only an explicit command-line option may pass (``sm-downscale downscale --run``);
    never pass a value from a URL with it. Once accepted, that folder is accepted again in
    this process (the runner resolves it a second time). A run folder holding a pickle or
    joblib file is refused: nothing in a run folder may need unpickling.
    """
    text = str(model_or_run)
    names = {m.name for m in list_models()}
    if not isinstance(model_or_run, Path) and text in names:
        run = latest_run(text)
    elif isinstance(model_or_run, Path) or "/" in text or os.sep in text or text.endswith(".pt"):
        p = Path(model_or_run)
        run = p.parent if p.suffix == ".pt" else p
        real = run.resolve()
        registry = runs_dir().resolve()
        in_registry = real.parent.parent == registry and real.parent.name in names
        if not (in_registry or allow_path or real in _EXPLICIT_RUNS):
            raise InputError(f"{text!r} is not a model of the run registry ({registry})",
                             "give a model name (sm-downscale models lists them); a run folder "
                             "elsewhere is accepted only through an explicit option (--run PATH)")
        if not (run / "checkpoint.pt").is_file():
            raise InputError("this folder holds no checkpoint.pt", "give a run folder written by "
                             "sm-downscale train", run)
        if allow_path:
            _EXPLICIT_RUNS.add(real)
    else:
        model_info(text)  # an unknown name: the nearest valid names
        raise InputError(f"model {text!r} is not registered", "see sm-downscale models")  # pragma: no cover
    planted = sorted(f.name for f in run.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES)
    if planted:
        raise InputError(f"the run folder holds {', '.join(planted)}: pickle/joblib files can run "
                         "arbitrary code when loaded, and sm-downscale never loads them",
                         "remove them (this version stores every model in checkpoint.pt, read "
                         "with torch.load(weights_only=True)), or retrain the model", run)
    return run


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Runner:
    """One trained model + its inputs, ready to produce scenes.

    Parameters
    ----------
    run : run folder or model name.
    ard : the analysis-ready store (default: the demo world's).
    device : "auto" (GPU when present), "cpu" or "cuda".
    resident : build windows from a device-resident cube (:mod:`model.training.resident`);
        default: on for torch models on a GPU, off on the CPU.
    """

    def __init__(self, run, ard=None, device: str = "auto", provider=None, resident: bool | None = None,
                 allow_path: bool = False):
        self.run = resolve_run(run, allow_path=allow_path)   # a folder only when the caller says so
        self.ard = Path(ard) if ard else default_ard()
        self.provider = provider or InputProvider(self.ard)
        self.checkpoint = self.run / "checkpoint.pt"
        self.checkpoint_sha256 = sha256(self.checkpoint)
        self._lock = threading.Lock()
        self._resident_req = resident
        self._load(device)

    def _load(self, device):
        # lazy: model.networks.checkpoint imports torch (0.9 s); the dashboard imports this module at start-up
        from ..networks.checkpoint import load_checkpoint

        # whole scenes allocate tens of MiB per layer: keep freed memory in this process
        # (a Dask worker, the server, the CLI) instead of faulting in fresh pages each layer
        keep_freed_memory()
        dev = _pick(device)
        model, extra = load_checkpoint(self.checkpoint, map_location=dev)
        self.extra = extra
        self.name = model.name
        self.kind = model.kind
        if self.kind == "reference":
            self.model = ReferenceRunner(model, extra, self.ard)
            self.device = "cpu"
        else:
            self.model = model
            self.device = dev if self.kind == "torch" else "cpu"
        self.norm = Normalisation.from_dict(self.extra["normalisation"])
        #: per-pixel models (no spatial context) run on the cells with inputs only
        self.per_pixel = bool(model.per_pixel)
        #: scenes per call on the CPU (the method's capability; whole scenes one at a time
        #: run fastest per scene there, the LSTM takes a day)
        self.cpu_batch = max(1, int(getattr(model, "cpu_batch", 1)))
        self.amp = False
        req = self._resident_req
        self.resident = self.kind == "torch" and (self.device.startswith("cuda") if req is None else bool(req))
        if self.kind == "torch" and self.device.startswith("cuda"):
            self.amp = self._amp_ok()

    def _amp_ok(self) -> bool:
        """bf16 autocast only if it stays within 0.001 m3 m-3 of fp32 on a real scene."""
        try:
            t = self.provider.times[min(self.provider.times.size - 1, 8 * 29)]
            a = self._predict([t], amp=False)
            b = self._predict([t], amp=True)
            err = float(np.nanmax(np.abs(a - b)))
            log.info("%s: bf16 vs fp32 max difference %.5f m3 m-3", self.name, err)
            return err <= 1e-3
        except Exception as exc:  # noqa: BLE001
            log.warning("mixed precision check failed (%s); using fp32", exc)
            return False

    @property
    def provenance(self) -> dict:
        return {"model": self.name, "run": str(self.run), "checkpoint_sha256": self.checkpoint_sha256,
                "train_period": self.extra.get("train_period"), "target": self.extra.get("target"),
                "inputs": str(self.ard), "code_version": self.extra.get("code_version"),
                "device": self.device, "mixed_precision": self.amp}

    # ---------------------------------------------------------------- predict
    def _predict(self, times, amp=None, cube=None, dev_batch: int | None = None) -> np.ndarray:
        amp = self.amp if amp is None else amp
        mask = np.asarray(tp_mask("TP10"))
        out = np.empty((len(times),) + mask.shape, np.float32)
        if not self.model.batchable:        # the references: one scene per call
            for k, t in enumerate(times):
                c = (cube or self.provider.cube_for(t)) if self.model.reads_channel else None
                out[k] = self.model.predict(t, c)
        else:
            groups: dict = {}
            for k, t in enumerate(times):
                c = cube if cube is not None else self.provider.cube_for(t)
                groups.setdefault(id(c), (c, []))[1].append((k, t))
            out[:] = np.nan
            for c, items in groups.values():
                valid, ys, xs = data_region(c, mask)
                if not valid.any():
                    continue
                if self.resident and self._predict_resident(c, items, valid, ys, xs, amp, out, dev_batch):
                    continue
                # a cube the caller holds for many steps (the archive's block, an experiment's
                # period) is standardised once, its copy shared by the models of the same
                # statistics (unless the copy would take too much of the memory); a scene on
                # demand standardises its own window
                src = c.normalised_copy(self.norm) if cube is not None and c.shares_a_copy() else c
                wins = [src.window(src.step_index(t), ys, xs) for _, t in items]
                sub = valid[ys, xs]
                if self.per_pixel:  # only the cells with inputs, as a 1 x N strip, cut per scene
                    wins = [{key: v[..., sub][..., None, :] for key, v in w.items()} for w in wins]
                batch = {key: np.stack([w[key] for w in wins]) for key in wins[0]}
                if src is c:
                    batch = normalise_batch(batch, self.norm)
                if self.per_pixel:
                    # in pieces of about PIXEL_CHUNK sequences (CPU_PIXEL_CHUNK on the CPU), of
                    # equal size: a whole-TP LSTM strip at once asks a GPU for ~150 GiB
                    # (measured on an H100) and the CPU for several GiB
                    n = int(sub.sum())
                    chunk = CPU_PIXEL_CHUNK if self.device == "cpu" else PIXEL_CHUNK
                    pieces = -(-n // max(1, chunk // len(items)))
                    edges = np.linspace(0, n, pieces + 1).round().astype(int)
                    pred = np.concatenate([self._forward({key: v[..., a:b] for key, v in batch.items()}, amp)
                                           for a, b in zip(edges[:-1], edges[1:])], axis=-1)[:, 0, :]
                    pred = self.norm.denorm_target(pred)
                    for j, (k, _) in enumerate(items):
                        out[k, ys, xs][sub] = pred[j]
                else:
                    pred = self.norm.denorm_target(self._forward(batch, amp))
                    for j, (k, _) in enumerate(items):
                        out[k, ys, xs] = np.where(sub, pred[j], np.nan)  # no inputs, no product
        out = np.clip(out, *CLIP)
        out[:, ~mask] = np.nan
        return out

    def _predict_resident(self, cube, items, valid, ys, xs, amp, out, batch: int | None = None) -> bool:
        """Scenes of ``items`` ((k, time) pairs) from the cube's device-resident copy, written
        (physical units, clipped) into ``out[k, ys, xs]``. False (nothing written) when the GPU
        ran out of memory: the model then runs on the CPU path from here on."""
        # lazy: torch costs 0.9 s at import; the dashboard imports this module at start-up
        import torch

        try:
            rc = resident_cube(cube, ys, xs, self.device)
            fwd = self.resident_forward(valid[ys, xs], amp)
            steps = rc.step_indices([t for _, t in items])
            region = np.empty((len(items),) + rc.shape, np.float32)
            predict_steps(fwd, rc, steps, batch or len(items), region)
        except torch.OutOfMemoryError:  # pragma: no cover - GPU only
            log.warning("GPU out of memory with device-resident inputs: running %s on the CPU", self.name)
            getattr(cube, "_resident", {}).clear()
            self.model.to("cpu")
            self.device, self.amp, self.resident = "cpu", False, False
            return False
        for j, (k, _) in enumerate(items):
            out[k, ys, xs] = region[j]
        return True

    def scenes_resident(self, rc, times, batch: int = 32) -> np.ndarray:
        """Scenes (T, 150, 320) of product steps ``times`` from a device-built
        :class:`~model.training.resident.ResidentCube` (:func:`~model.training.resident.build_resident`)."""
        mask = np.asarray(tp_mask("TP10"))
        out = np.full((len(times),) + mask.shape, np.nan, np.float32)
        if rc.valid is None or not rc.valid.any():
            return out
        steps = rc.step_indices(times)
        region = np.empty((len(steps),) + rc.shape, np.float32)
        with self._lock:
            predict_steps(self.resident_forward(rc.valid), rc, steps, batch, region)
        out[:, rc.ys, rc.xs] = region
        out[:, ~mask] = np.nan
        return out

    def resident_forward(self, valid_sub: np.ndarray, amp: bool | None = None):
        """The model as a function of resident windows (:class:`model.training.resident._Forward`),
        kept per data region (its mask on the device, pinned buffers and copy stream are reused)."""
        amp = self.amp if amp is None else amp
        key = (valid_sub.shape, hash(valid_sub.tobytes()), amp, self.device, PIXEL_CHUNK)
        cache = self.__dict__.setdefault("_forwards", {})
        fwd = cache.get(key)
        if fwd is None:
            if len(cache) > 8:
                cache.clear()
            fwd = cache[key] = _Forward(self.model, self.norm, valid_sub, self.device, amp, self.per_pixel,
                                        PIXEL_CHUNK)
        return fwd

    def _forward(self, batch: dict, amp: bool) -> np.ndarray:
        if self.kind == "sklearn":
            return np.asarray(self.model.predict_batch(batch), np.float32)[:, 0]
        # lazy: torch costs 0.9 s at import; the dashboard imports this module at start-up
        import torch

        dev = self.device
        tb = {k: torch.from_numpy(v).to(dev) for k, v in batch.items()}
        try:
            with torch.no_grad(), torch.autocast(device_type="cuda" if dev.startswith("cuda") else "cpu",
                                                 dtype=torch.bfloat16, enabled=amp):
                return self.model(tb).float()[:, 0].cpu().numpy()
        except torch.OutOfMemoryError:  # pragma: no cover - GPU only
            log.warning("GPU out of memory: falling back to the CPU for %s", self.name)
            self.model.to("cpu")
            self.device = "cpu"
            self.amp = False
            return self._forward(batch, False)

    def scenes(self, times, batch: int | None = None, cube=None) -> np.ndarray:
        """Scenes (T, 150, 320) in m3 m-3 for product steps ``times`` (NaN outside the TP).

        ``batch``: scenes per call; None: on the CPU the method's ``cpu_batch`` (1 for all but
        the LSTM: batches of whole scenes run slower per scene there), raised for a small
        region up to :data:`CPU_CALL_CELLS` cells per call (:meth:`_cpu_call_scenes`); 32 with
        device-resident inputs, 8 otherwise. ``cube``: a TP10 predictor cube that holds every
        step (else the provider's cache).
        """
        times = [self.provider.check_time(t) for t in np.atleast_1d(times)]
        if batch is None:
            batch = self._cpu_call_scenes(times, cube) if self.device == "cpu" else (32 if self.resident else 8)
        with self._lock:
            if self.resident:  # one pass: batches of ``batch`` on the device, copies overlapped
                parts = [self._predict(times, cube=cube, dev_batch=batch)] if times else []
            else:
                parts = [self._predict(times[k:k + batch], cube=cube) for k in range(0, len(times), batch)]
        return np.concatenate(parts) if parts else np.empty((0, 150, 320), np.float32)

    def _cpu_call_scenes(self, times, cube) -> int:
        """Scenes per CPU call: the method's ``cpu_batch`` when above 1 (the LSTM's day), else
        as many scenes (at most 8) as fit :data:`CPU_CALL_CELLS` cells of the data region."""
        if self.cpu_batch > 1 or not self.model.batchable or not times:
            return self.cpu_batch
        c = cube if cube is not None else self.provider.cube_for(times[0])
        _, ys, xs = data_region(c, np.asarray(tp_mask("TP10")))
        cells = max(1, (ys.stop - ys.start) * (xs.stop - xs.start))
        return int(max(1, min(8, CPU_CALL_CELLS // cells)))

    def scene(self, time):
        """One scene as an xarray DataArray (lat, lon) with CF attributes and provenance."""
        t0 = _time.perf_counter()
        v = self.scenes([time])[0]
        g = tp10()
        da = xr.DataArray(v, dims=("lat", "lon"), coords=g.coords(), name=self.name,
                          attrs=sm_attrs(f"surface soil moisture (0-5 cm), {self.name}",
                                         time=str(np.datetime64(time, "m")),
                                         **{k: str(v) for k, v in self.provenance.items()}))
        da.attrs["seconds"] = round(_time.perf_counter() - t0, 3)
        return da


def _pick(device: str) -> str:
    try:
        # lazy: torch costs 0.9 s at import; the dashboard imports this module at start-up
        import torch
    except ImportError:  # pragma: no cover
        return "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("no GPU available: running %s on the CPU", device)
        return "cpu"
    return device


_RUNNERS: dict = {}
_RUNNERS_LOCK = threading.Lock()


def get_runner(run_or_name, ard=None, device: str = "auto") -> Runner:
    """The shared runner of a model (loaded once per process; safe from several threads)."""
    run = resolve_run(run_or_name)
    # the checkpoint's identity is part of the key: a checkpoint rewritten in place (train
    # --out of an existing folder) is loaded again, never served stale from this cache
    st = (run / "checkpoint.pt").stat()
    key = (str(run), str(Path(ard) if ard else default_ard()), device, st.st_mtime_ns, st.st_size)
    with _RUNNERS_LOCK:
        r = _RUNNERS.get(key)
        if r is None:
            r = Runner(run, key[1], device, provider=shared_provider(key[1]))
            _RUNNERS[key] = r
        return r
