"""Trainings side by side on a CPU: every torch model on the same share of the machine.

A torch training of the demo uses its second core poorly: its batch assembly (NumPy windows
cut from the predictor cube, one thread) and the many small operators of a 16 x 32 x 32-patch
step leave torch's intra-op threads idle much of the time. Measured on the 2-core VM with
``benchmarks/bench_train_slots.py`` (docs/benchmarks.md), a second thread gives 1.4-1.8x the
samples per second of one, so a second training on the other core gives more in all: two
1-minute budgets side by side take the wall time of one.

On a CPU with two or more cores (and memory for two workers) the demo therefore trains every
torch model on ``cores // 2`` threads (:func:`torch_threads`): the wave's torch models two at
a time, each in a worker process (:class:`TrainingPool`), and a torch model trained alone (the
first page's PSCNet) on the same thread count, so every method has the same compute budget.
The tree ensembles keep every core busy (scikit-learn's threads) and are trained alone, as are
the reference methods (seconds) and every training on a GPU.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from ..networks.registry import get_model_class
from .trainer import TrainConfig, pick_device, train

#: the most trainings run at once on a CPU
MAX_SLOTS = 2

#: memory a training worker needs on the demo world: its own copy of the prepared training
#: data (the predictor cube of the training period, normalised) and the model (6.1 GB resident
#: per worker measured on the demo world, 2026-12-07), with a margin
WORKER_BYTES = 7 * 2**30


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - no affinity on this platform
        return max(1, os.cpu_count() or 1)


def training_slots(device: str = "auto", cores: int | None = None, memory: int | None = None,
                   worker_bytes: int = WORKER_BYTES) -> int:
    """Trainings run at once: up to :data:`MAX_SLOTS` on a CPU, one per core and per
    ``worker_bytes`` of available memory (``memory``, default :func:`available_bytes`; unknown:
    one), else 1 (a GPU trains one model at a time, with every core feeding it)."""
    cores = usable_cores() if cores is None else cores
    if pick_device(device) != "cpu":
        return 1
    memory = available_bytes() if memory is None else memory
    by_memory = 1 if memory is None else memory // max(1, worker_bytes)
    return int(max(1, min(MAX_SLOTS, cores, by_memory)))


def side_by_side(model_name: str) -> bool:
    """Whether ``model_name`` is trained beside another one on a CPU: the torch models (one
    busy core each); the trees use every core and the references take seconds."""
    return get_model_class(model_name).kind == "torch"


def threads_per_training(slots: int, cores: int | None = None) -> int:
    """torch threads of each of ``slots`` trainings at once."""
    return max(1, (usable_cores() if cores is None else cores) // max(1, slots))


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` inside the block (restored after)."""
    # lazy: torch costs 0.9 s at import; callers that never train must not pay it
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_child(model_name: str, cfg: dict, ard: str, threads: int, out: str | None) -> str:
    """The training of one model in a worker process, with ``threads`` torch threads."""
    with torch_threads(threads):
        return str(train(model_name, TrainConfig(**cfg), ard=ard, out=out and Path(out), progress=False))


class TrainingPool:
    """``slots`` worker processes (spawned: a fresh interpreter, no inherited threads) that
    train one model each at a time with ``usable_cores() // slots`` torch threads. A worker
    keeps its prepared training data for its next model (:func:`model.training.trainer.prepare`).
    Use as a context manager; :meth:`submit` returns a future of the run folder."""

    def __init__(self, slots: int, cores: int | None = None):
        self.slots = max(1, int(slots))
        self.threads = threads_per_training(self.slots, cores)
        self._pool = ProcessPoolExecutor(self.slots, mp_context=mp.get_context("spawn"))

    def submit(self, model_name: str, cfg: TrainConfig, ard, out: Path | None = None) -> Future:
        """Train ``model_name`` in a worker; ``out``: its run folder (default: a new one in the
        home's runs, marked latest)."""
        return self._pool.submit(_train_child, model_name, asdict(cfg), str(Path(ard)), self.threads,
                                 out and str(out))

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> "TrainingPool":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self.close(cancel=exc_type is not None)
