"""The product archive: every model side by side in Zarr, in two chunk layouts, built on Dask.

Layout (``$SMDS_HOME/archive``)::

    maps.zarr     map-shaped chunks   (8 steps, 150, 320): one chunk read per map frame
    series.zarr   series-shaped chunks (all steps, 10, 10): one chunk read per station series
    build/        progress ledger: one marker file per finished (model, day block), each
                  naming the checkpoint (SHA-256) that computed the block
    VERSION       a new stamp after every build (JSON: version, checkpoint per model); the
                  dashboard keys its caches on it, so a running server shows new values

Zarr format 2 with consolidated metadata (read by xarray, GDAL, netCDF-C and older zarr).
One float32 variable per model (its registry name), dims (time, lat, lon), CF attributes and
provenance (model, checkpoint SHA-256, inputs, code version); coordinates ``time``, ``lat``,
``lon`` and the ``tp_mask``.

Resumable and honest: a build first lays out the full time axis (values NaN), then computes
blocks of days as Dask tasks (inputs assembled once per block, every model run on them);
each task writes each model's aligned chunk region and only then drops that model's marker. A killed build resumes at the first missing marker. The series layout is rewritten
from the maps once a model is complete; ``maps.zarr/.zattrs`` says ``complete`` per model only
after both layouts hold all its blocks.

Keyed to the checkpoint: a block counts as done only when its marker names the SHA-256 of the
checkpoint of the model's current run. After a retrain, ``archive`` therefore recomputes every
block of that model (it logs both hashes), so archived values always equal the current
runner's output. A model that was complete stays on show, whole, while that happens: its new
blocks go to a shadow variable (``<model>__next``, never listed as a product) that replaces
the old values in one swap of folders once its last block is written (a provisional model
replaced by its full-budget run, issue 16). A model that was not complete is marked
incomplete until its last block is rewritten. A torn marker is treated as absent (warning)
and its block recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time as _time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from ..config import archive_path
from ..errors import InputError
from ..features.ard import default_ard, load_inputs
from ..grids import tp10, tp_mask_da
from ..io import check_writable, read_json_marker, write_json_atomic
from ..runs.folders import run_input_mismatch
from ..schema import SM_CLIP, sm_attrs
from ..training.resident import build_resident
from .inputs import HISTORY_DAYS, InputProvider
from .runner import Runner, _pick, get_runner, resolve_run

log = logging.getLogger(__name__)

MAP_CHUNK_T = 8
SERIES_CHUNK_XY = 10

#: suffix of the shadow variable a complete model's re-archive is written to (then swapped in)
NEXT = "__next"
#: variables of the stores that are not products
NOT_PRODUCTS = ("tp_mask", "crs")


def product_variables(ds) -> list[str]:
    """The products (models) of an archive dataset: no grid variables, no shadow variables."""
    return [v for v in ds.data_vars if v not in NOT_PRODUCTS and not str(v).endswith(NEXT)]


def archive_dir(path=None) -> Path:
    return Path(path) if path else archive_path()


def _time_axis(provider, start, end) -> np.ndarray:
    s = np.datetime64(start, "D")
    e = np.datetime64(end, "D") + np.timedelta64(1, "D") - np.timedelta64(3, "h")
    times = np.arange(np.datetime64(s, "ns"), np.datetime64(e, "ns") + np.timedelta64(1, "ns"),
                      np.timedelta64(3, "h"))
    provider.check_time(times[0])
    provider.check_time(times[-1])
    return times


def _base_dataset(times):
    g = tp10()
    ds = xr.Dataset(coords={"time": ("time", times, {"standard_name": "time", "axis": "T"}),
                            **g.coords()})
    ds["tp_mask"] = tp_mask_da("TP10")
    ds["lat"].attrs["axis"] = "Y"
    ds["lon"].attrs["axis"] = "X"
    ds["crs"] = xr.DataArray(np.int32(0), attrs={"grid_mapping_name": "latitude_longitude",
                                                  "epsg_code": "EPSG:4326",
                                                  "semi_major_axis": 6378137.0,
                                                  "inverse_flattening": 298.257223563})
    ds.attrs.update({"Conventions": "CF-1.8", "title": "10 km 3-hourly surface soil moisture over the Tibetan Plateau",
                     "institution": "sm-downscale", "source": "downscaled SMAP L3 with ERA5-Land predictors",
                     "time_coverage_start": str(times[0]), "time_coverage_end": str(times[-1])})
    return ds


def _var_attrs(name: str, provenance: dict) -> dict:
    return sm_attrs(f"surface (0-5 cm) volumetric soil moisture, model {name}",
                    grid_mapping="crs", valid_min=SM_CLIP[0], valid_max=SM_CLIP[1],
                    **{f"provenance_{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in provenance.items()})


def _init_store(path: Path, times, models_prov: dict):
    """Create (or extend with new models) a store with the full time axis, values NaN."""
    # lazy: dask costs 0.26 s at import; the dashboard imports this module at start-up
    import dask.array as da

    ds = _base_dataset(times)
    exists = (path / ".zmetadata").exists()
    if exists:
        cur = xr.open_zarr(path, consolidated=True)
        if cur.sizes["time"] != times.size or cur["time"].values[0] != times[0]:
            raise InputError(f"the archive at {path} covers {cur.time.values[0]} .. {cur.time.values[-1]}, "
                             "not the period asked for",
                             "use another --out, or --force to rebuild it for the new period")
        new = [m for m in models_prov if m not in cur.data_vars]
    else:
        new = list(models_prov)
    is_series = path.name.startswith("series")
    chunks = (times.size, SERIES_CHUNK_XY, SERIES_CHUNK_XY) if is_series else (MAP_CHUNK_T, 150, 320)
    for m in new:
        ds[m] = (("time", "lat", "lon"), da.full((times.size, 150, 320), np.nan, dtype="float32", chunks=chunks),
                 _var_attrs(m, models_prov[m]))
        ds[m].encoding = {"chunks": chunks, "_FillValue": np.float32(np.nan)}
    if not exists:
        ds.to_zarr(path, mode="w", compute=False, zarr_format=2, consolidated=True)
    elif new:
        # appending variables rewrites the group's attributes: keep which models are complete
        # (a model added to an archive must not make the others look unfinished)
        comp = zarr.open_group(path, mode="r", zarr_format=2).attrs.get("complete_models")
        ds[new].to_zarr(path, mode="a", compute=False, zarr_format=2, consolidated=True)
        if comp is not None:
            g = zarr.open_group(path, mode="r+", zarr_format=2)
            g.attrs["complete_models"] = {**comp, **{m: False for m in new if not m.endswith(NEXT)}}
            zarr.consolidate_metadata(path)
    old = [m for m in models_prov if m not in new]
    if exists and old:  # refresh the provenance of re-run models (even when others are new)
        g = zarr.open_group(path, mode="r+", zarr_format=2)
        for m in old:
            g[m].attrs.update(_var_attrs(m, models_prov[m]))
        zarr.consolidate_metadata(path)


# ------------------------------------------------------------------ tasks (run on workers)
_WORKER_RUNNERS: dict = {}


def block_marker(ledger, model: str, t0: int) -> Path:
    return Path(ledger) / model / f"{t0:06d}.done"


def block_done(ledger, model: str, t0: int, sha: str) -> bool:
    """Whether the block at ``t0`` of ``model`` was written by the checkpoint ``sha``."""
    m = read_json_marker(block_marker(ledger, model, t0), "archive block marker")
    return m is not None and m.get("checkpoint_sha256") == sha


def block_sha(ledger, model: str, t0: int) -> str | None:
    """The checkpoint hash a block marker names (None: no marker, torn, or an old marker)."""
    m = read_json_marker(block_marker(ledger, model, t0), "archive block marker")
    return None if m is None else m.get("checkpoint_sha256")


def _block_task(runs: dict, ard: str, device: str, maps_path: str, ledger: str, t0: int,
                times: list, shas: dict | None = None, targets: dict | None = None) -> dict:
    """Compute one block of days for every model still missing it (or holding it from another
    checkpoint than ``shas[model]``), assembling the inputs once, and write each model's
    aligned chunk region (of variable ``targets[model]``, default the model's name; then its
    marker, naming the checkpoint)."""
    # lazy: dask costs 0.26 s at import; the dashboard imports this module at start-up
    import dask

    shas = shas or {}
    todo = {m: r for m, r in runs.items() if not block_done(ledger, m, t0, shas.get(m))}
    if not todo:
        return {"skipped": list(runs)}
    tt = np.array(times, dtype="datetime64[ns]")
    done = {}
    with dask.config.set(scheduler="threads"):  # never the cluster's client from inside a task
        cube = None
        for model, run in todo.items():
            t_m = _time.perf_counter()
            # the driver resolved this folder (the registry, or an explicit option); a worker
            # of a cluster kept between builds may have started under another $SMDS_HOME
            runner = get_runner(resolve_run(Path(run), allow_path=True), ard, device)
            if shas.get(model) and runner.checkpoint_sha256 != shas[model]:
                raise InputError(f"the checkpoint of {model!r} changed while the archive was being "
                                 f"built ({shas[model][:12]} -> {runner.checkpoint_sha256[:12]})",
                                 "rerun the same archive command once training has finished")
            if cube is None:
                cube = runner.provider.cube_between(tt[0], tt[-1])
            vals = runner.scenes(tt, cube=cube)  # the method's batch (runner.cpu_batch on a CPU)
            var = (targets or {}).get(model, model)
            ds = xr.Dataset({var: (("time", "lat", "lon"), vals)})
            ds[var].encoding = {}
            ds.to_zarr(maps_path, region={"time": slice(t0, t0 + len(times)), "lat": slice(0, 150),
                                          "lon": slice(0, 320)}, zarr_format=2, consolidated=False)
            write_json_atomic(block_marker(ledger, model, t0),
                              {"steps": len(times), "time": str(times[0]),
                               "checkpoint_sha256": runner.checkpoint_sha256,
                               "seconds": round(_time.perf_counter() - t_m, 2)})
            done[model] = round(_time.perf_counter() - t_m, 2)
    return done


#: compressed bytes per model and step of both layouts (demo archive: 595 MB for 320 steps x 11
#: models = 0.17 MB; float32 150 x 320 is 0.19 MB per layout before compression), with margin
BYTES_PER_MODEL_STEP = 0.25 * 2**20


def _bytes_needed(steps: int, models: int) -> int:
    return int(steps * models * BYTES_PER_MODEL_STEP)


@contextlib.contextmanager
def _disk_full_is_clear(out: Path, need: int):
    """Turn "no space left on device" (from this process or a Dask worker) into an InputError
    that says what to do; the blocks already written keep their markers, so a rerun resumes."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(out).free if out.exists() else 0
        raise InputError(
            f"the disk is full while writing the archive ({exc.strerror}; {free / 1e9:.2f} GB free, "
            f"about {need / 1e9:.2f} GB needed for what is left)",
            "free space or give --out on a larger disk, then rerun the same command: finished "
            "blocks are kept and the archive is not marked complete until every block is written", out) from exc


def local_cluster(workers: int):
    """A local Dask cluster of ``workers`` single-threaded processes on 127.0.0.1 (the archive's
    own, started per build; the test suite keeps one for all its builds)."""
    # lazy: distributed (0.26 s at import); the dashboard imports this module at start-up
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0",
                        processes=True)


def default_scheduler() -> str | None:
    """The Dask scheduler an archive build uses when none is named: ``$SMDS_DASK_SCHEDULER``
    (a cluster kept running between builds: its workers have imported the methods and loaded
    the runners once), else None (a local cluster per build)."""
    return os.environ.get("SMDS_DASK_SCHEDULER") or None


def build_archive(models: list[str], start, end, out=None, ard=None, scheduler: str | None = None,
                  workers: int = 2, device: str = "auto", force: bool = False, progress: bool = True,
                  block_days: int | None = None, resident: bool | None = None, batch: int = 32) -> dict:
    """Build (or resume) the archive for ``models`` over [start, end] (whole days).

    Parameters
    ----------
    models : registry names with trained runs (``sm-downscale train``).
    scheduler : address of an existing Dask scheduler; default :func:`default_scheduler`
        (``$SMDS_DASK_SCHEDULER``), else a local cluster of ``workers`` processes on 127.0.0.1
        started for this build.
    block_days : days per task: a task assembles the inputs of its days once and runs every
        model on them (markers per model and block, so a resume redoes nothing finished).
        Default 5 (Dask) or 20 (resident: fewer re-reads of the 28-day history).
    resident : one process drives the device with device-resident inputs and batches of
        ``batch`` scenes, writing the map layout as blocks finish (writer threads) and the
        series layout from the same pass (no second full read). Default: on when ``device``
        is a GPU, else the Dask cluster of ``workers`` processes.
    """
    if scheduler is None:
        scheduler = default_scheduler()
    if resident is None:
        resident = _pick(device).startswith("cuda") and not scheduler
    if block_days is None:
        block_days = 20 if resident else 5
    out, ard, provider, times, runs, prov = _set_up(models, start, end, out, ard, force)
    shas = {m: prov[m]["checkpoint_sha256"] for m in runs}
    maps, series, ledger = out / "maps.zarr", out / "series.zarr", out / "build"
    t_start = _time.perf_counter()
    block = MAP_CHUNK_T * block_days
    tasks, stale = _blocks_todo(runs, shas, ledger, times.size, block)
    summary_stale = {m: {"archived": old, "current": shas[m]} for m, old in stale.items()}
    summary = {"models": models, "steps": int(times.size), "blocks_todo": len(tasks),
               "blocks_total": int(np.ceil(times.size / block))}
    need = _bytes_needed(len(tasks) * block, len(runs))
    check_writable(out, need_bytes=need)      # before anything is written
    shadow = _shadowed(maps, runs, stale)
    targets = {m: m + NEXT if m in shadow else m for m in runs}
    with _disk_full_is_clear(out, need):
        _init_store(maps, times, {targets[m]: prov[m] for m in runs})
    summary["shadowed"] = shadow
    if stale:  # never show a model complete while its blocks come from two checkpoints
        _mark_incomplete(maps, series, [m for m in stale if m not in shadow])
        _write_version(out, shas, building=True)
    host: dict = {}
    summary["resident"] = bool(resident)
    summary["maps_window"] = [_time.time(), None]
    if tasks and resident:
        with _disk_full_is_clear(out, need):
            host = _resident_maps(runs, ard, device, maps, ledger, times, tasks, block, provider, batch,
                                  progress, summary, shas, targets)
    elif tasks:
        _dask_maps(runs, ard, device, maps, ledger, times, tasks, block, shas, scheduler=scheduler,
                   workers=workers, out=out, need=need, block_days=block_days, progress=progress,
                   targets=targets)
    summary["maps_seconds"] = round(_time.perf_counter() - t_start, 1)
    summary["maps_window"][1] = _time.time()
    for m in shadow:   # every block of the new checkpoint written: it replaces the old values
        if all(block_done(ledger, m, t0, shas[m]) for t0 in range(0, times.size, block)):
            _swap_in(maps, m)
    zarr.consolidate_metadata(maps)
    # series layout, per model, from the finished maps
    t1 = _time.perf_counter()
    _series_layout(models, runs, prov, shas, host, out, maps, series, ledger, times, block, summary, progress)
    summary["series_seconds"] = round(_time.perf_counter() - t1, 1)
    summary.pop("_computed", None)
    status = _record_complete(models, shas, maps, series, ledger, times.size, block)
    summary["complete"] = status
    summary["recomputed_after_retrain"] = summary_stale
    summary["version"] = _write_version(out, shas)
    summary["seconds"] = round(_time.perf_counter() - t_start, 1)
    summary["size_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20, 1)
    summary["path"] = str(out)
    return summary


def lay_out_archive(models: list[str], start, end, out=None, ard=None) -> dict:
    """Lay out the archive for ``models`` over [start, end] without computing anything: the
    full time axis and one variable per model, values NaN, none complete (a later
    :func:`build_archive` of the same period fills them). A server started on it shows the
    period and computes the maps of trained models on demand (the demo's first page)."""
    out, ard, provider, times, runs, prov = _set_up(models, start, end, out, ard)
    maps = out / "maps.zarr"
    fresh = not (maps / ".zmetadata").exists()
    _init_store(maps, times, prov)
    if fresh:
        _mark_incomplete(maps, out / "series.zarr", list(models))
    version = _write_version(out, {m: prov[m]["checkpoint_sha256"] for m in runs}, building=True)
    return {"models": list(models), "steps": int(times.size), "version": version, "path": str(out)}


def _set_up(models, start, end, out, ard, force: bool = False):
    """What a build and a lay-out both start from: the archive folder (emptied with ``force``),
    the store, its input provider, the time axis of [start, end], each model's run and its
    provenance."""
    out = archive_dir(out)
    ard = Path(ard) if ard else default_ard()
    check_writable(out.parent, need_bytes=50 * 2**20)
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    provider = InputProvider(ard)
    times = _time_axis(provider, start, end)
    runs = {m: resolve_run(m) for m in models}
    return out, ard, provider, times, runs, _provenance(runs, ard, provider)


def _provenance(runs: dict, ard: Path, provider) -> dict:
    """The provenance of every model's latest run; a run trained on other inputs than ``ard``
    is refused (or, when it recorded no input identity, archived with a warning)."""
    prov = {}
    for m, run in runs.items():
        r = Runner(run, ard, "cpu", provider=provider)
        why = run_input_mismatch(r.extra, ard)
        if why and r.extra.get("ard_identity"):
            raise InputError(f"the latest run of {m!r} ({run.name}) does not belong to these inputs: {why}",
                             f"retrain it on them (sm-downscale train --model {m} --ard {ard}), or give "
                             "--ard of the store it was trained on", ard)
        if why:
            log.warning("archive: %s's run %s: %s; archiving it anyway", m, run.name, why)
        prov[m] = {**r.provenance, "archive_build": "sm-downscale archive"}
        del r
    return prov


def _blocks_todo(runs: dict, shas: dict, ledger: Path, n_steps: int, block: int):
    """The first steps of the blocks some model still needs, and the models whose finished
    blocks came from another checkpoint (model -> that checkpoint's SHA-256; logged)."""
    tasks, stale = [], {}
    for t0 in range(0, n_steps, block):
        todo = [m for m in runs if not block_done(ledger, m, t0, shas[m])]
        if todo:
            tasks.append(t0)
        for m in todo:
            old = block_sha(ledger, m, t0)
            if old and old != shas[m]:
                stale.setdefault(m, old)
    for m, old in stale.items():
        log.warning("archive: %s's blocks were computed by checkpoint %s, its current run %s has "
                    "checkpoint %s: recomputing every block of %s", m, old[:12], runs[m].name,
                    shas[m][:12], m)
    return tasks, stale


def _shadowed(maps: Path, runs: dict, stale: dict) -> list[str]:
    """The models whose re-archive goes to a shadow variable: complete in the store and
    recomputed after a retrain, or with a shadow variable left by an interrupted build."""
    if not (maps / ".zmetadata").exists():
        return []
    comp = zarr.open_group(maps, mode="r", zarr_format=2).attrs.get("complete_models", {}) or {}
    return sorted(m for m in runs if (maps / f"{m}{NEXT}").is_dir() or (m in stale and comp.get(m)))


def _swap_in(maps: Path, model: str) -> None:
    """Replace ``model``'s values by its shadow variable's (same shape and chunks; the
    shadow's attributes carry the new provenance): two folder renames, then the old folder
    goes. A build stopped between the renames is completed by the next one."""
    nxt, cur, old = maps / f"{model}{NEXT}", maps / model, maps / f".{model}.replaced"
    if nxt.is_dir():
        if old.exists():
            shutil.rmtree(old)
        if cur.exists():
            os.rename(cur, old)
        os.rename(nxt, cur)
    if old.exists():
        shutil.rmtree(old)
    zarr.consolidate_metadata(maps)
    log.info("archive: %s's new values are swapped in", model)


def _dask_maps(runs: dict, ard: Path, device: str, maps: Path, ledger: Path, times, tasks, block: int,
               shas: dict, *, scheduler, workers: int, out: Path, need: int, block_days: int,
               progress: bool, targets: dict) -> None:
    """The map phase on Dask: one task per block of days, on the scheduler at ``scheduler`` or
    on a local cluster of ``workers`` processes."""
    # lazy: the Dask client (distributed, 0.26 s at import); the dashboard imports this module at start-up
    from dask.distributed import Client, as_completed

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"the Dask scheduler at {scheduler} does not answer ({exc})",
                             "check the address (tcp://host:8786) or omit --scheduler for a local cluster") from exc
        cluster = None
    else:
        cluster = local_cluster(workers)
        client = Client(cluster)
    try:
        runs_s = {m: str(r) for m, r in runs.items()}
        futs = [client.submit(_block_task, runs_s, str(ard), device, str(maps), str(ledger), t0,
                              [str(t) for t in times[t0:t0 + block]], shas, targets,
                              key=f"block-{t0}", pure=False)
                for t0 in tasks]
        bar = tqdm(total=len(futs), desc=f"archive (maps, {block_days}-day blocks x {len(runs)} models)",
                   disable=not progress, unit="block")
        for f in as_completed(futs):
            with _disk_full_is_clear(out, need):
                f.result()
            bar.update(1)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _series_layout(models, runs: dict, prov: dict, shas: dict, host: dict, out: Path, maps: Path,
                   series: Path, ledger: Path, times, block: int, summary: dict, progress: bool) -> None:
    """Write the series layout, per model, from the finished maps (or from the scenes the
    resident pass kept in ``host``); a model's marker follows its region."""
    with _disk_full_is_clear(out, _bytes_needed(times.size, len(runs)) // 2):
        _init_store(series, times, prov)
    mds = xr.open_zarr(maps, consolidated=True)
    done_series = ledger / "series"
    for m in tqdm(models, desc="archive (series)", disable=not progress, unit="model"):
        marker = done_series / f"{m}.done"
        stamp = {"checkpoint_sha256": prov[m]["checkpoint_sha256"]}
        if read_json_marker(marker, "archive series marker") == stamp:
            continue
        if m in host:  # from the same pass: blocks finished before this run are read back alone
            _fill_from_maps(host[m], mds[m], ledger, m, shas[m], times.size, block,
                            host_done=summary.get("_computed", {}).get(m, set()))
            arr = (("time", "lat", "lon"), host[m])
        else:
            arr = mds[m].chunk({"time": times.size, "lat": SERIES_CHUNK_XY, "lon": SERIES_CHUNK_XY})
        sub = xr.Dataset({m: arr})
        sub[m].encoding = {}
        with _disk_full_is_clear(out, _bytes_needed(times.size, 1) // 2):
            sub.to_zarr(series, region={"time": slice(0, times.size), "lat": slice(0, 150), "lon": slice(0, 320)},
                        zarr_format=2, consolidated=False)
        write_json_atomic(marker, stamp)
    zarr.consolidate_metadata(series)


def _record_complete(models, shas: dict, maps: Path, series: Path, ledger: Path, n_steps: int,
                     block: int) -> dict:
    """Which models hold every block and their series (model -> bool), recorded in both
    stores' ``complete_models``."""
    status = {}
    for m in models:
        n_done = sum(block_done(ledger, m, t0, shas[m]) for t0 in range(0, n_steps, block))
        status[m] = (n_done == int(np.ceil(n_steps / block))
                     and read_json_marker(ledger / "series" / f"{m}.done", "archive series marker")
                     == {"checkpoint_sha256": shas[m]})
    for store in (maps, series):
        g = zarr.open_group(store, mode="r+", zarr_format=2)
        comp = dict(g.attrs.get("complete_models", {}))
        comp.update(status)
        g.attrs["complete_models"] = comp
        zarr.consolidate_metadata(store)
    return status


def _mark_incomplete(maps: Path, series: Path, models: list[str]) -> None:
    for store in (maps, series):
        if not (store / ".zmetadata").exists():
            continue
        g = zarr.open_group(store, mode="r+", zarr_format=2)
        comp = dict(g.attrs.get("complete_models", {}))
        comp.update({m: False for m in models})
        g.attrs["complete_models"] = comp
        zarr.consolidate_metadata(store)


def _write_version(out: Path, shas: dict, building: bool = False) -> str:
    """A new ``VERSION`` stamp of the archive (written atomically); returns the version."""
    prev = read_json_marker(out / "VERSION", "archive version") or {}
    models = {**(prev.get("models") or {}), **shas}
    version = uuid.uuid4().hex
    write_json_atomic(out / "VERSION", {"version": version, "models": models, "building": building,
                                        "written": str(np.datetime64("now", "s"))}, indent=1)
    return version


def archive_version(path=None) -> str:
    """The archive's current version stamp ("" when there is none): changes after every build."""
    v = read_json_marker(archive_dir(path) / "VERSION", "archive version")
    return str((v or {}).get("version", ""))


def _resident_maps(runs: dict, ard: Path, device: str, maps: Path, ledger: Path, times, tasks, block: int,
                   provider, batch: int, progress: bool, summary: dict, shas: dict, targets: dict) -> dict:
    """The map phase in this process: per block of days, the inputs are loaded once (the next
    block's load runs in a thread meanwhile), made resident on the device, and every model runs
    on them in batches; each model's block is written by a writer thread, then its marker.
    Returns the scenes per model (time, lat, lon), for the series layout."""
    t_r = _time.perf_counter()
    runners = _resident_runners(runs, ard, device, provider, shas)
    summary["runners_s"] = round(_time.perf_counter() - t_r, 2)  # checkpoints + the bf16 check, once per model
    host = {m: np.full((times.size, 150, 320), np.nan, np.float32) for m in runs}
    computed: dict = {m: set() for m in runs}
    stages = {"load_s": 0.0, "compute_s": 0.0, "write_wait_s": 0.0}

    # torch models only: the inputs go to the device raw and the cube is built there
    on_device = all(r.resident for r in runners.values())
    dev = next(iter(runners.values())).device

    def load(t0):
        tt = times[t0:t0 + block]
        if on_device:
            era5, static = load_inputs(ard, tt[0], tt[-1], history_days=HISTORY_DAYS)
            return build_resident(era5, static, dev)
        return provider.cube_between(tt[0], tt[-1])

    def write(model, t0, n, seconds):
        var = targets[model]
        ds = xr.Dataset({var: (("time", "lat", "lon"), host[model][t0:t0 + n])})
        ds[var].encoding = {}
        ds.to_zarr(maps, region={"time": slice(t0, t0 + n), "lat": slice(0, 150), "lon": slice(0, 320)},
                   zarr_format=2, consolidated=False)
        write_json_atomic(block_marker(ledger, model, t0),
                          {"steps": n, "time": str(times[t0]), "checkpoint_sha256": shas[model],
                           "seconds": round(seconds, 2), "resident": True})

    bar = tqdm(total=len(tasks), desc=f"archive (maps, resident on {device}, {len(runs)} models)",
               disable=not progress, unit="block")
    with ThreadPoolExecutor(1, thread_name_prefix="archive-load") as loader, \
            ThreadPoolExecutor(4, thread_name_prefix="archive-write") as writer:
        nxt = loader.submit(load, tasks[0])
        writes = []
        for j, t0 in enumerate(tasks):
            t_l = _time.perf_counter()
            cube = nxt.result()
            stages["load_s"] += _time.perf_counter() - t_l
            nxt = loader.submit(load, tasks[j + 1]) if j + 1 < len(tasks) else None
            tt = times[t0:t0 + block]
            for m, r in runners.items():
                if block_done(ledger, m, t0, shas[m]):
                    continue
                t_c = _time.perf_counter()
                if on_device:
                    host[m][t0:t0 + tt.size] = r.scenes_resident(cube, tt, batch=batch)
                else:
                    host[m][t0:t0 + tt.size] = r.scenes(tt, batch=None if r.device == "cpu" else batch, cube=cube)
                secs = _time.perf_counter() - t_c
                stages["compute_s"] += secs
                computed[m].add(t0)
                writes.append(writer.submit(write, m, t0, tt.size, secs))
            del cube
            bar.update(1)
        t_w = _time.perf_counter()
        for f in writes:
            f.result()
        stages["write_wait_s"] += _time.perf_counter() - t_w
    bar.close()
    summary.update({k: round(v, 2) for k, v in stages.items()})
    summary["inputs_built_on_device"] = on_device
    summary["_computed"] = computed
    return host


def _resident_runners(runs: dict, ard: Path, device: str, provider, shas: dict) -> dict:
    """A resident runner per model, each checked to load the checkpoint the build is keyed to."""
    runners = {m: Runner(run, ard, device, provider=provider, resident=True) for m, run in runs.items()}
    for m, r in runners.items():
        if r.checkpoint_sha256 != shas[m]:
            raise InputError(f"the checkpoint of {m!r} changed while the archive was being built "
                             f"({shas[m][:12]} -> {r.checkpoint_sha256[:12]})",
                             "rerun the same archive command once training has finished")
    return runners


def _fill_from_maps(arr: np.ndarray, da, ledger: Path, model: str, sha: str, n: int, block: int,
                    host_done: set):
    """Read back from the map layout the blocks a previous (resumed) run of the same checkpoint
    wrote."""
    for t0 in range(0, n, block):
        if t0 not in host_done and block_done(ledger, model, t0, sha):
            arr[t0:t0 + block] = da[t0:t0 + block].values


def open_archive(layout: str = "maps", path=None):
    """Open the archive (``layout`` "maps" or "series") lazily."""
    p = archive_dir(path) / f"{layout}.zarr"
    if not (p / ".zmetadata").exists():
        raise InputError("no archive", "build it with `sm-downscale archive` (or `sm-downscale demo`)", p)
    return xr.open_zarr(p, consolidated=True)


def complete_models(path=None) -> list[str]:
    ds = open_archive("maps", path)
    comp = ds.attrs.get("complete_models", {})
    return [m for m, ok in comp.items() if ok]
