"""Page 4, regenerate: the runner recomputes a model's scene at a time on demand (on the GPU when
the server has one), with progress, beside the archived scene and their difference.

The work runs in a thread pool shared by the server (``_EXECUTOR``) and is awaited by an
``async`` callback, so the server's event loop, and every other session, stays responsive.
The worker only writes a progress record; a periodic callback of the session copies it into
the widgets (widgets are touched on the event loop only). The runner, and torch with it, is
imported here lazily, at the first regeneration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
import time as _time
from concurrent.futures import ThreadPoolExecutor

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr
from holoviews.operation.datashader import rasterize

from model.errors import InputError
from model.networks.registry import list_models

from .. import export, store
from ..store import EmptyState
from .common import PROJECTION_OPTIONS, basemap, extent, geo_basemap, linked_select, message
from .map import geo_frame_opts, projected_image, time_controls

log = logging.getLogger(__name__)
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="regenerate")
_DEVICE: dict = {}
_DEVICE_LOCK = threading.Lock()


def gpu_hint() -> str:
    """A cheap look for an NVIDIA GPU without importing torch (the page's first message)."""
    if os.path.exists("/proc/driver/nvidia") or shutil.which("nvidia-smi"):
        return "An NVIDIA driver is present: the runner will use the GPU if torch sees it."
    return "No GPU found on this server: the runner will run on the CPU (slower, same results)."


def device_info() -> dict:
    """Whether torch sees a GPU (checked once, lazily: imports torch)."""
    with _DEVICE_LOCK:
        if not _DEVICE:
            try:
                import torch  # lazy: torch costs 0.9 s at import; asked at the first regeneration only

                if torch.cuda.is_available():
                    _DEVICE.update(device="cuda", text=f"GPU: {torch.cuda.get_device_name(0)}")
                else:
                    _DEVICE.update(device="cpu", text="no GPU: running on the CPU")
            except Exception as exc:  # noqa: BLE001 - torch missing or broken: CPU message
                _DEVICE.update(device="cpu", text=f"no GPU: running on the CPU (torch: {exc})")
        return dict(_DEVICE)


_WARMED: set = set()
_WARMED_LOCK = threading.Lock()


def warm_runner(home: str, model: str, time: str) -> dict:
    """Make the first regeneration of a served page fast: read the input block holding
    ``time`` into the process's shared provider (``model.inference.inputs.shared_provider``),
    then load ``model``'s runner (torch and the checkpoint). Blocking: the server runs it once
    per home, in the regenerate thread pool, after its first page is built (:func:`start_warm`).
    A regeneration asked for meanwhile waits for the block being read instead of reading it
    twice. Returns the seconds of each part; a failure is logged, never raised (the page then
    loads on demand as before)."""
    out: dict = {}
    try:
        inv = store.inventory(home)
        if not inv.ard or model not in inv.all_models:
            return out
        t, _ = store.check_time(inv, time)
        from model.inference.inputs import shared_provider  # lazy: 1.7 s to import; loaded in the warm-up thread

        t0 = _time.perf_counter()
        shared_provider(inv.ard).cube_for(np.datetime64(t, "ns"))
        out["block_s"] = round(_time.perf_counter() - t0, 2)
        t0 = _time.perf_counter()
        from model.inference.runner import get_runner  # lazy: 1.4 s to import; loaded in the warm-up thread

        get_runner(model, inv.ard, device_info()["device"])
        out["runner_s"] = round(_time.perf_counter() - t0, 2)
    except Exception as exc:  # noqa: BLE001 - warming must never break a page
        log.warning("warming the regenerate page failed: %s", exc)
        out["error"] = str(exc)
    return out


def start_warm(home: str, model: str, time: str):
    """Submit :func:`warm_runner` once per (home, model) in this server process; returns the
    future (None when already warmed or nothing to warm)."""
    if not (model and time):
        return None
    with _WARMED_LOCK:
        if (home, model) in _WARMED:
            return None
        _WARMED.add((home, model))
    return _EXECUTOR.submit(warm_runner, home, model, time)


class Job:
    """One session's regeneration: progress written by the worker, read by the session."""

    def __init__(self):
        self.phase = ""
        self.running = False
        self.started = 0.0
        self.result = None      # dict(model, time, scene, archived, device, seconds)
        self.error = None


def regenerate(home: str, model: str, time: str, job: Job | None = None) -> dict:
    """Regenerate ``model``'s scene at ``time`` with the runner (blocking; run it in a thread).

    ``model`` comes from the page's URL, so it is checked before anything is loaded: it must
    be a model of the archive (complete or partial) and a registry name; the runner then
    resolves it by name through the run registry only (never as a folder path).
    """
    job = job or Job()
    inv = store.inventory(home)
    if model not in inv.all_models or model not in {m.name for m in list_models()}:
        store.check_model(inv, model)  # the archive's message with the nearest names
        raise EmptyState(f"Model {model!r} is not a registered model: pick one of the archive's "
                         f"models ({', '.join(inv.models) or 'none'}).")
    t, _ = store.check_time(inv, time)
    job.phase = "checking for a GPU"
    dev = device_info()
    job.phase = f"{dev['text']}; loading {model} (first use reads the checkpoint and the inputs)"
    t0 = _time.perf_counter()
    try:
        from model.inference.runner import get_runner  # lazy: 1.4 s to import; the first regeneration loads it

        runner = get_runner(model, inv.ard, dev["device"])
        job.phase = f"{dev['text']}; computing {model} at {store.fmt_time(t)} UTC on {runner.device}"
        scene = runner.scene(t)
    except InputError as exc:
        raise EmptyState(f"Cannot regenerate {model!r}: {exc}") from exc
    try:   # a model computed on demand has no archived values to compare with
        archived = None if model in inv.on_demand else store.frame_da(home, "product", model, time)
    except EmptyState:
        archived = None
    return {"model": model, "time": time, "scene": scene, "archived": archived, "device": runner.device,
            "device_text": dev["text"], "seconds": round(_time.perf_counter() - t0, 2)}


def result_plot(state, res) -> pn.Row:
    """Regenerated, archived and their difference: three GeoViews maps in the page's projection
    (the map page's warp and basemap), rasterized with datashader."""
    proj = state.projection
    panels = []
    new = np.asarray(res["scene"].values, np.float32)
    old = np.asarray(res["archived"].values, np.float32) if res["archived"] is not None else np.full_like(new, np.nan)
    for title, vals, kind in ((f"regenerated ({res['device']}, {res['seconds']} s)", new, "sm"),
                              ("archived", old, "sm"), ("regenerated - archived", new - old, "difference")):
        ras = rasterize(projected_image(state.home, vals, proj), aggregator="mean").opts(
            cmap=store.CMAP[kind], clim=store.CLIM[kind], colorbar=True, tools=["hover"], clabel="m³ m⁻³")
        panels.append((ras * geo_basemap(proj=proj)).opts(
            geo_frame_opts(state.home, proj, width=330, max_height=280), hv.opts.Overlay(title=title)))
    return pn.Row(*[pn.pane.HoloViews(p, css_classes=["regen-panel"]) for p in panels])


def _require(job: Job, state):
    res = job.result
    if res is None or res["model"] != state.model or res["time"] != state.time:
        raise EmptyState(f"Nothing regenerated for {state.model} at {state.time} yet: press Regenerate first.")
    return res


def figure_for(job: Job):
    def figure(state):
        res = _require(job, state)
        box = extent(state.home)
        lat, lon = store.tp10_coords()
        new = np.asarray(res["scene"].values, np.float32)
        old = (np.asarray(res["archived"].values, np.float32) if res["archived"] is not None
               else np.full_like(new, np.nan))
        items = []
        for title, vals, kind in (("regenerated", new, "sm"), ("archived", old, "sm"),
                                  ("regenerated - archived", new - old, "difference")):
            img = hv.Image((lon, lat, vals), kdims=["lon", "lat"], vdims=["value"]).opts(
                cmap=store.CMAP[kind], clim=store.CLIM[kind], colorbar=True, backend="matplotlib",
                hooks=[export.rasterize_hook])
            items.append((img * basemap("matplotlib")).opts(hv.opts.Overlay(
                backend="matplotlib", xlim=(box[0], box[2]), ylim=(box[1], box[3]),
                title=f"{res['model']} {res['time']} UTC: {title}", fontsize={"title": 8})))
        return hv.Layout(items).cols(3).opts(hv.opts.Layout(backend="matplotlib", fig_inches=(4, 3.2),
                                                            sublabel_format=""))
    return figure


def data_for(job: Job):
    def data(state):
        res = _require(job, state)
        ds = xr.Dataset({"regenerated": res["scene"].drop_attrs() if hasattr(res["scene"], "drop_attrs") else res["scene"]})
        ds["regenerated"].attrs = {k: str(v) for k, v in res["scene"].attrs.items()}
        if res["archived"] is not None:
            ds["archived"] = res["archived"]
            ds["difference"] = (res["scene"] - res["archived"]).astype("float32")
            ds["difference"].attrs = {"units": store.SM_UNITS, "long_name": "regenerated minus archived"}
        ds = ds.expand_dims(time=[np.datetime64(store.parse_time(res["time"]), "ns")])
        ds.attrs.update({"model": res["model"], "device": res["device"], "seconds": res["seconds"]})
        return export.netcdf_bytes(ds)
    return data


def page(state) -> pn.viewable.Viewable:
    job = Job()
    model = linked_select(state, "model", lambda: state.inv.models, "model", width=180)
    projection = pn.widgets.Select.from_param(state.param.projection, name="projection", width=190,
                                              options=PROJECTION_OPTIONS, css_classes=["projection-select"])
    button = pn.widgets.Button(name="Regenerate", button_type="primary", width=140, css_classes=["regenerate-button"])
    progress = pn.indicators.Progress(active=False, value=-1, width=240, visible=False, name="progress")
    status = pn.pane.Markdown("The runner recomputes the scene from the model's checkpoint and the inputs. "
                              + gpu_hint(), css_classes=["regen-status"])
    result = pn.Column(name="regen-plot", css_classes=["regen-plot"])
    err = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["regen-error"])

    def poll():
        if job.running:
            status.object = f"**Running:** {job.phase} ... {(_time.perf_counter() - job.started):.0f} s"

    async def run(_=None):
        if job.running:
            return
        job.running, job.started, job.error = True, _time.perf_counter(), None
        button.disabled = True
        progress.visible, progress.active = True, True
        err.visible = False
        cb = pn.state.add_periodic_callback(poll, period=300) if pn.state.curdoc else None
        model_name, time = state.model, state.time
        try:
            loop = asyncio.get_running_loop()
            job.result = await loop.run_in_executor(_EXECUTOR, regenerate, state.home, model_name, time, job)
            res = job.result
            status.object = (f"**Done:** {res['model']} at {res['time'].replace('T', ' ')} UTC in {res['seconds']} s "
                             f"on {res['device']} ({res['device_text']}).")
            result.objects = [result_plot(state, res)]
        except EmptyState as exc:
            job.error = str(exc)
            err.object, err.visible = str(exc), True
            status.object = "**Failed.**"
        except Exception as exc:  # noqa: BLE001 - shown, not raised into the server
            job.error = f"{type(exc).__name__}: {exc}"
            err.object, err.visible = f"The runner failed: {job.error}", True
            status.object = "**Failed.**"
        finally:
            job.running = False
            if cb is not None:
                cb.stop()
            button.disabled = False
            progress.active, progress.visible = False, False

    def reproject(*_):
        if job.result is not None and not job.running:
            result.objects = [result_plot(state, job.result)]

    button.on_click(run)
    state.param.watch(reproject, "projection")
    return pn.Column(
        pn.Row(model, projection, pn.Column(pn.Spacer(height=18), button), pn.Column(pn.Spacer(height=24), progress)),
        time_controls(state),
        message(state, "regenerate", "model", "time"),
        status, err, result,
        export.export_row(state, lambda s: f"{s.model}_{s.time}_regenerated",
                          figure=figure_for(job), data=data_for(job), data_ext="nc", watch=["model", "time"]),
        name="regenerate-page")
