"""Build a virtual Tibetan Plateau: simulate, observe, write through the project's writers.

:func:`build_world` is the one entry point (``sm-downscale world`` calls it). It

1. checks its input before any work (size, seed, folder writable, free space, an existing
   world in the folder built with another seed/size/code);
2. writes ``world.json`` with ``complete: false``;
3. generates the static fields and writes ``inputs/static/static_tp10.nc``;
4. steps the simulation hour by hour from the spin-up start, handing each finished day
   (SMAP L3), 3-hour window (SMAP L4) and month (ERA5-Land, truth) to the writers, in
   worker processes when ``workers > 1`` (the simulation goes on meanwhile);
5. writes the ISMN station files, the Intake catalog, and finally ``world.json`` with
   ``complete: true`` (atomically, last).

Every file is written atomically (temporary sibling + rename), so an interrupted build leaves
nothing that looks complete. A rerun with the same size/seed resumes: the simulation is
deterministic and is re-run, but every file that already exists is skipped. ``force=True``
removes the previous world's files first.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numcodecs
import numpy as np
import pandas as pd
import zarr
from tqdm.auto import tqdm

from .. import __version__
from ..config import worlds_dir
from ..data.catalog import write_catalog
from ..data.smap_format import smap_filename
from ..errors import InputError
from ..io import atomic_path, check_writable, write_text_atomic
from ..machine import machine_info
from . import observe  # the write tasks are looked up on the module when called (a test swaps one)
from .config import WorldConfig, check_seed, get_config
from .observe import Era5Operator, IsmnOperator, L4Operator, SmapL3Operator, TruthOperator
from .simulate import Simulation
from .static import build_static, soil_params, user_static_dataset

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
    threadpool_limits = None

MANIFEST = "world.json"
CATALOG = "catalog.yaml"
#: output sub-folders, relative to the world folder
LAYOUT = {
    "smap_l3_36km": "inputs/SPL3SMP",
    "smap_l3_9km": "inputs/SPL3SMP_E",
    "smap_l4": "inputs/SPL4SMGP",
    "era5land": "inputs/ERA5-Land",
    "ismn": "inputs/ISMN",
    "static_extra": "inputs/static",
    "truth": "truth",
}
#: catalog entry -> location (relative to the catalog's folder)
CATALOG_LOCATIONS = {
    "smap_l3_36km": "inputs/SPL3SMP/*.h5",
    "smap_l3_9km": "inputs/SPL3SMP_E/*.h5",
    "smap_l4": "inputs/SPL4SMGP/*.h5",
    "era5land": "inputs/ERA5-Land/*.nc",
    "ismn": "inputs/ISMN",
    "static_dem": None,
    "static_extra": "inputs/static/static_tp10.nc",
    "truth": "truth/truth.zarr",
}


def code_version() -> str:
    """Package version + a digest of the world's own source (a resume needs the same code)."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return f"{__version__}+world.{h.hexdigest()[:12]}"


@dataclass
class WorldManifest:
    """What a world folder holds (``world.json``)."""

    folder: str
    size: str
    seed: int
    complete: bool = False
    code_version: str = ""
    created: str = ""
    periods: dict = field(default_factory=dict)
    bbox: list | None = None
    config: dict = field(default_factory=dict)
    products: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    done: list = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    catalog: str = CATALOG
    written_this_run: int = 0
    skipped_existing: int = 0

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self) -> Path:
        d = self.to_dict()
        d.pop("folder")
        return write_text_atomic(self.path / MANIFEST, json.dumps(d, indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, folder) -> "WorldManifest":
        folder = Path(folder)
        p = folder / MANIFEST
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the world manifest ({exc})",
                             "rebuild the world (sm-downscale world --force)", p) from exc
        known = set(cls.__dataclass_fields__)
        return cls(folder=str(folder), **{k: v for k, v in d.items() if k in known})

    @property
    def total_bytes(self) -> int:
        return int(sum(p.get("bytes", 0) for p in self.products.values()))

    def summary(self) -> str:
        lines = [f"virtual TP '{self.size}' (seed {self.seed}) in {self.folder}",
                 f"  periods: written {self.periods.get('written')}, train {self.periods.get('train')}, "
                 f"test {self.periods.get('test')}, history {self.periods.get('history')}"]
        for name, p in self.products.items():
            lines.append(f"  {name:<14} {p['files']:>6} file(s) {p['bytes'] / 1e6:>9.1f} MB  {p['path']}")
        lines.append(f"  {'total':<14} {'':>6}         {self.total_bytes / 1e6:>9.1f} MB")
        if self.timings:
            t = ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items())
            lines.append(f"  time: {t}")
        lines.append(f"  written this run: {self.written_this_run} file(s); skipped (already there): "
                     f"{self.skipped_existing}; catalog: {self.path / self.catalog}")
        return "\n".join(lines)


def default_folder(size: str) -> Path:
    return worlds_dir() / size


def load_manifest(folder) -> WorldManifest:
    return WorldManifest.load(folder)


# ------------------------------------------------------------------------------------------
# the writer pool
# ------------------------------------------------------------------------------------------
def _noop():
    return None


def _single_thread_blas():
    """One BLAS thread: on a busy 2-core machine multi-threaded OpenBLAS makes the small
    regridding matrix products 50-100x slower (spinning threads); the world never needs more."""
    if threadpool_limits is None:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class _Writer:
    """Runs write tasks inline (workers <= 1) or in worker processes, with back-pressure."""

    def __init__(self, workers: int, max_pending: int = 3):
        self.pool = None
        if workers > 1:
            # fork (where there is one) before this process starts any thread: the children
            # are started at once by the warm-up task, and scripts need no __main__ guard
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self.pool = cf.ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx,
                                               initializer=_single_thread_blas)
            self.pool.submit(_noop).result()
        self.pending: list = []
        self.max_pending = max_pending
        self.busy_s = 0.0
        self.done = 0

    def submit(self, fn, *args, inline_ok: bool = True):
        """Queue a write; when the workers already have ``max_pending`` tasks, this process
        writes it itself (so both cores stay busy whichever side is the bottleneck)."""
        if self.pool is not None:
            self._reap(block_until=None)
            if len(self.pending) < self.max_pending or not inline_ok:
                self.pending.append(self.pool.submit(fn, *args))
                return
        t = time.perf_counter()
        fn(*args)
        self.busy_s += time.perf_counter() - t
        self.done += 1

    def _reap(self, block_until: int | None):
        still = []
        for f in self.pending:
            if f.done():
                f.result()  # re-raise a worker's error here
                self.done += 1
            else:
                still.append(f)
        self.pending = still
        while block_until is not None and len(self.pending) > block_until:
            f = self.pending.pop(0)
            f.result()
            self.done += 1

    def drain(self):
        if self.pool is not None:
            self._reap(block_until=0)

    def close(self, cancel: bool = False):
        if self.pool is not None:
            self.pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self.pool = None


# ------------------------------------------------------------------------------------------
# build
# ------------------------------------------------------------------------------------------
def _check_folder(out: Path, cfg: WorldConfig, seed: int, force: bool, version: str) -> WorldManifest | None:
    """The existing manifest, if the folder holds a world of this size/seed/code to resume."""
    if out.exists() and not out.is_dir():
        raise InputError("the target is a file, not a folder", "choose a folder (--out DIR)", out)
    mpath = out / MANIFEST
    if not mpath.exists():
        if out.exists() and any(out.iterdir()) and not force:
            known = {MANIFEST, CATALOG, "inputs", "truth"}
            other = [p.name for p in out.iterdir() if p.name not in known and not p.name.startswith(".")]
            if other:
                raise InputError(f"the folder is not empty and holds no world ({', '.join(sorted(other)[:5])})",
                                 "choose an empty folder or a world folder (--out DIR)", out)
        return None
    old = WorldManifest.load(out)
    if force:
        return None
    same = old.size == cfg.name and int(old.seed) == seed
    if not same:
        raise InputError(f"the folder holds a world of size {old.size!r}, seed {old.seed}; asked for "
                         f"{cfg.name!r}, seed {seed}", "use --force to replace it, or another --out", out)
    if old.code_version != version and not (old.complete and _all_there(out, old)):
        raise InputError(f"the folder holds an unfinished world built by another version of the code "
                         f"({old.code_version}; this is {version})",
                         "rebuild it with --force (its files would not match)", out)
    return old


def _clear(out: Path) -> None:
    for name in (MANIFEST, CATALOG):
        (out / name).unlink(missing_ok=True)
    for sub in ("inputs", "truth"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for p in out.glob(".*.tmp-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _folder_stats(out: Path) -> tuple[dict, dict]:
    products, files = {}, {}
    for name, sub in LAYOUT.items():
        base = out / sub
        n, size = 0, 0
        if base.exists():
            for p in sorted(base.rglob("*")):
                if p.is_file() and ".tmp-" not in p.name and ".partial" not in str(p):
                    s = p.stat().st_size
                    size += s
                    if name == "truth":
                        continue
                    n += 1
                    files[str(p.relative_to(out))] = s
        if name == "truth" and (base / "truth.zarr").exists():
            n = 1
            files["truth/truth.zarr"] = size
        products[name] = {"path": sub, "files": n, "bytes": size}
    return products, files


def build_world(config: WorldConfig | str = "demo", out: str | Path | None = None, seed=42,
                progress: bool = True, *, force: bool = False, workers: int | None = None) -> WorldManifest:
    """Build (or finish) a virtual TP world; returns its manifest.

    Parameters
    ----------
    config : WorldConfig or str
        A size of :data:`model.world.SIZES` (``tiny``, ``demo``, ``full``).
    out : path, optional
        World folder (default ``model.config.worlds_dir() / size``).
    seed : int
        Random seed; the same seed gives the same world, file by file.
    progress : bool
        Show a progress bar (tqdm) and print the summary at the end.
    force : bool
        Rebuild from scratch (removes the folder's previous world files).
    workers : int, optional
        Processes in all (1 = everything in this process); default ``min(2, CPUs)``. Extra
        processes write files while this one simulates.

    Raises
    ------
    InputError
        Unknown size, a seed that is not an integer, a folder that is not writable or lacks
        free space, or a folder holding another world (all before any work starts).
    """
    with _single_thread_blas():
        return _build(config, out, seed, progress, force, workers)


def _build(config, out, seed, progress, force, workers) -> WorldManifest:
    t_start = time.perf_counter()
    cfg = get_config(config)
    seed = check_seed(seed)
    if workers is None:
        workers = min(2, machine_info()["cpus"])
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}", "pass e.g. --workers 2")
    out = Path(out) if out is not None else default_folder(cfg.name)
    out = out.expanduser().resolve()
    version = code_version()
    old = _check_folder(out, cfg, seed, force, version)
    existing = 0
    if old is not None and out.exists():
        existing = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    check_writable(out, max(cfg.need_bytes - existing, 0))
    if force:
        _clear(out)
    elif old is not None and old.complete and _all_there(out, old):
        if progress:
            note = "" if old.code_version == version else (
                f" (built by code {old.code_version}; this is {version}: --force rebuilds it)")
            print(f"world already complete{note}: {out}\n" + old.summary())
        return old

    man = WorldManifest(folder=str(out), size=cfg.name, seed=seed, complete=False, code_version=version,
                        created=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
                        periods=cfg.periods(), bbox=list(cfg.bbox) if cfg.bbox else None,
                        config=cfg.to_dict(), machine=machine_info(),
                        done=list(old.done) if old is not None else [])
    man.save()

    cpu0 = time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    writer = _Writer(workers)
    timings: dict = {}
    try:
        counts = _run(cfg, seed, out, man, writer, timings, progress)
        t = time.perf_counter()
        writer.drain()
        timings["wait_for_writers"] = time.perf_counter() - t
    except BaseException:
        writer.close(cancel=True)
        raise
    writer.close()

    timings["cpu_this_process"] = time.process_time() - cpu0
    timings["cpu_writer_processes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - child0
    man.written_this_run, man.skipped_existing = counts

    # catalog, then the manifest (complete) last
    write_catalog(out / CATALOG, CATALOG_LOCATIONS,
                  kwargs={"smap_l3_36km": {"product": "SPL3SMP"}, "smap_l3_9km": {"product": "SPL3SMP_E"}},
                  metadata={"title": f"virtual Tibetan Plateau ({cfg.name}, seed {seed})",
                            "world": cfg.name, "seed": seed, "periods": cfg.periods()})
    man.products, man.files = _folder_stats(out)
    timings["total"] = time.perf_counter() - t_start
    man.timings = {k: round(v, 1) for k, v in timings.items()}
    man.complete = True
    man.save()
    if progress:
        print(man.summary())
    return man


def _all_there(out: Path, man: WorldManifest) -> bool:
    return all((out / rel).exists() for rel in man.files) and (out / CATALOG).exists()


def _run(cfg: WorldConfig, seed: int, out: Path, man: WorldManifest, writer: _Writer,
         timings: dict, progress: bool) -> tuple[int, int]:
    """The simulation loop with its observation operators; returns (written, skipped)."""
    run = _WorldRun(cfg, seed, out, man, writer)
    t = time.perf_counter()
    run.write_static()
    timings["static"] = time.perf_counter() - t
    run.make_operators()

    hours = cfg.hours()
    bar = tqdm(total=len(hours), unit="h", desc=f"world {cfg.name}", disable=not progress,
               mininterval=0.5, smoothing=0.05)
    t_sim = time.perf_counter()
    t_obs = 0.0
    try:
        for k in range(len(hours)):
            t, forcing, states = run.sim.step()
            t0 = time.perf_counter()
            run.observe_hour(t, forcing, states)
            t_obs += time.perf_counter() - t0
            if k % 24 == 23 or k == len(hours) - 1:
                bar.update(24 if k % 24 == 23 else (k % 24) + 1)
                bar.set_postfix_str(f"{t:%Y-%m-%d} writes queued {len(writer.pending)}", refresh=False)
    finally:
        bar.close()
    timings["simulate"] = time.perf_counter() - t_sim - t_obs
    timings["observe"] = t_obs

    t = time.perf_counter()
    run.finish()
    timings["finish"] = time.perf_counter() - t
    timings["writes_in_this_process"] = writer.busy_s
    return run.written, run.skipped


class _WorldRun:
    """The state of one :func:`_run`: the static fields, the simulation, the observation
    operators, where their files go and the counts of files written and skipped."""

    def __init__(self, cfg: WorldConfig, seed: int, out: Path, man: WorldManifest, writer: _Writer):
        self.cfg, self.seed, self.out, self.man, self.writer = cfg, seed, out, man, writer
        self.written = self.skipped = 0

    def path_of(self, key: str, name: str) -> Path:
        return self.out / LAYOUT[key] / name

    def era_path(self, m: pd.Period) -> Path:
        return self.path_of("era5land", f"era5-land_tp_{m.year:04d}-{m.month:02d}.nc")

    def write_static(self) -> None:
        """The true static fields, and the user's static layers written (once)."""
        self.st = st = build_static(self.cfg, self.seed)
        user = user_static_dataset(st, self.seed)
        p_static = self.path_of("static_extra", "static_tp10.nc")
        if p_static.exists():
            self.skipped += 1
        else:
            p_static.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(p_static) as tmp:
                enc = {v: {"zlib": True, "complevel": 4} for v in user.data_vars}
                user.to_netcdf(tmp, engine="netcdf4", encoding=enc)
            self.written += 1

    def make_operators(self) -> None:
        """The simulation and the operators of what is still to write."""
        cfg, seed, st, out = self.cfg, self.seed, self.st, self.out
        self.sim = Simulation(st, seed, cfg.sim_start_ts)
        self.smap = SmapL3Operator(st, seed, cfg)
        l4p = self.sim.models["l4"].p
        self.l4 = L4Operator(st, cfg, l4p.d1, l4p.d2)
        self.era = Era5Operator(st, cfg, skip=lambda m: self.era_path(m).exists())
        self.truth_final = out / LAYOUT["truth"] / "truth.zarr"
        do_truth = not self.truth_final.exists()
        self.truth = TruthOperator(st, cfg) if do_truth else None
        self.truth_tmp = out / LAYOUT["truth"] / ".truth.zarr.partial"
        self.truth_first = True
        if do_truth:
            shutil.rmtree(self.truth_tmp, ignore_errors=True)
            self.truth_tmp.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.skipped += 1
        self.ismn_root = out / LAYOUT["ismn"]
        do_ismn = not ("ismn" in self.man.done and self.ismn_root.exists())
        self.ismn = IsmnOperator(st, seed, cfg) if do_ismn else None
        if not do_ismn:
            self.skipped += 1

    def _submit(self, p: Path, task, *args) -> None:
        """Queue a write of ``p`` unless it exists (a resumed build)."""
        if p.exists():
            self.skipped += 1
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        self.writer.submit(task, str(p), *args)
        self.written += 1

    def observe_hour(self, t: pd.Timestamp, forcing: dict, states: dict) -> None:
        """Feed hour ``t`` to every operator; queue the files that are complete."""
        smap, tr = self.smap, states["truth"]
        feed = smap.observe(t, tr, forcing["truth"]["precip"])
        if feed is not None:
            idx36, val = feed
            _assimilate(self.sim, smap, idx36, val)
        for day, res in smap.finished(t):
            for prod, (am, pm) in res.items():
                key = "smap_l3_36km" if prod == "SPL3SMP" else "smap_l3_9km"
                self._submit(self.path_of(key, smap_filename(prod, str(day))), observe.write_smap_l3_task,
                             prod, str(day), am, pm)
        r = self.l4.record(t, states["l4"])
        if r is not None:
            centre, ds = r
            self._submit(self.path_of("smap_l4", smap_filename("SPL4SMGP", centre.to_datetime64())),
                         observe.write_smap_l4_task, centre.to_datetime64(), ds)
        r = self.era.record(t, states["era"], forcing["era"])
        if r is not None:
            m, times, bufs = r
            p = self.era_path(m)
            p.parent.mkdir(parents=True, exist_ok=True)
            self.writer.submit(observe.write_era5_task, str(p), times, self.st.cells, self.st.shape, bufs)
            self.written += 1
        if self.truth is not None:
            r = self.truth.record(t, tr, forcing["truth"]["precip"])
            if r is not None:
                _, times, bufs = r
                ds = self.truth.dataset(times, bufs, self.seed)
                _append_truth(ds, self.truth_tmp, first=self.truth_first)
                self.truth_first = False
        if self.ismn is not None:
            self.ismn.record(t, tr)

    def finish(self) -> None:
        """Consolidate the truth store; write the station files (half in a worker)."""
        if self.truth is not None:
            _finish_truth(self.truth_tmp, self.truth_final)
            self.written += 1
        if self.ismn is not None:
            st, ismn_root = self.st, self.ismn_root
            porosity = soil_params(st.c("sand"), st.c("clay"), st.c("organic")).theta_s
            items = self.ismn.station_series(porosity)
            if ismn_root.exists():
                shutil.rmtree(ismn_root)
            half = len(items) // 2
            self.writer.submit(observe.write_ismn_task, str(ismn_root), items[:half], inline_ok=False)
            observe.write_ismn_task(str(ismn_root), items[half:])
            self.writer.drain()
            self.man.done = sorted(set(self.man.done) | {"ismn"})
            self.man.save()
            self.written += len(items)


def _assimilate(sim, smap, idx36: np.ndarray, val: np.ndarray) -> None:
    """L4-like analysis: nudge the L4 model's surface layer toward the SMAP 36 km retrievals
    (the increment is uniform within each observed 36 km cell)."""
    st = smap.st
    l4 = sim.models["l4"].s
    agg = smap.rg["M36"].apply(st.to_grid(l4.w1)).ravel()
    obs = np.full(agg.shape, np.nan, np.float32)
    obs[idx36] = val
    incr36 = obs - agg
    par = smap.cell_parent36
    ok = par >= 0
    incr = np.full(st.n, np.nan, np.float32)
    incr[ok] = incr36[par[ok]]
    cells = np.flatnonzero(np.isfinite(incr))
    if cells.size:
        sim.assimilate(cells, incr[cells])


def _append_truth(ds, store: Path, first: bool) -> None:
    """Append one month of truth to the (partial) Zarr store (format 2, chunks 8 x 150 x 320)."""
    if first:
        comp = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
        enc = {v: {"chunks": (8, ds.sizes["lat"], ds.sizes["lon"]), "compressors": [comp]} for v in ds.data_vars}
        enc["time"] = {"units": "hours since 2000-01-01 00:00:00", "dtype": "int64"}
        ds.to_zarr(store, mode="w", encoding=enc, zarr_format=2, consolidated=True)
    else:
        ds.drop_vars(["tp_mask", "simulated", "lat", "lon"]).to_zarr(
            store, append_dim="time", zarr_format=2, consolidated=True)


def _finish_truth(tmp: Path, final: Path) -> None:
    zarr.consolidate_metadata(str(tmp), zarr_format=2)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
