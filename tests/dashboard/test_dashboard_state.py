"""The dashboard's state without a browser: set parameters, assert the derived state.

All tests share one real tiny demo home (``demo_home``, built by ``sm-downscale demo``).
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ layering
def test_startup_imports_no_torch_and_model_no_panel(demo_home):
    """In a clean interpreter every dashboard module imports and a whole session page (all
    pages) builds without importing torch (which also covers an import guarded by
    ``except ImportError``: torch is installed here, so it would load). And ``model`` modules
    the dashboard uses import no Panel, HoloViews or Bokeh."""
    code = r"""
import sys, os
mode = sys.argv[1]
import importlib
if mode == "model":
    for m in ["model.config", "model.grids", "model.data.stations", "model.inference.archive",
              "model.inference.export", "model.validation.results", "model.features.ard"]:
        importlib.import_module(m)
    bad = [m for m in ("panel", "holoviews", "bokeh") if m in sys.modules]
    assert not bad, f"model imports {bad}"
    print("OK")
    raise SystemExit
for m in ["dashboard", "dashboard.store", "dashboard.state", "dashboard.export", "dashboard.shell",
          "dashboard.views.common", "dashboard.views.map", "dashboard.views.stations",
          "dashboard.views.metrics", "dashboard.views.regenerate", "dashboard.views.about"]:
    importlib.import_module(m)
from bokeh.document import Document
from dashboard.shell import build
from dashboard.state import DashboardState, PAGES
for page in PAGES:
    build(state=DashboardState(page=page)).get_root(Document())
assert "torch" not in sys.modules, "building the pages imported torch"
print("OK")
"""
    for mode in ("clean", "model"):
        out = subprocess.run([sys.executable, "-c", code, mode], cwd=REPO, capture_output=True, text=True,
                             timeout=300, env={**__import__("os").environ, "SMDS_HOME": str(demo_home)})
        assert out.returncode == 0 and out.stdout.strip().endswith("OK"), (mode, out.stderr[-3000:])


def test_a_failing_callback_is_logged_and_the_session_goes_on(caplog):
    """Panel re-raises a callback's exception by default, and its ``_event_coroutine`` (a
    click that arrives while a property change from the browser is still pending) runs the
    pending change first: the change's exception drops the click. The dashboard's handler logs
    it with the traceback and the click goes through. Panel's own path, without and with it."""
    import asyncio
    from functools import partial

    import panel as pn
    from bokeh.document import Document
    from bokeh.events import ButtonClick
    from panel.io.state import state as pn_state

    from dashboard.shell import load_extensions

    def session(doc):
        text = pn.widgets.TextInput(value="a")
        text.param.watch(lambda e: (_ for _ in ()).throw(ValueError("a watcher failed")), "value")
        button = pn.widgets.Button(label="next")
        clicks = []
        button.on_click(clicks.append)
        text.get_root(doc)
        model = button.get_root(doc)
        # the browser changed the text (pending) and then clicked
        text._events = {"value": "b"}
        pn_state._change_callbacks[doc] = {"e1": partial(text._change_coroutine, doc, event_id="e1")}
        return button, model, clicks

    doc = Document()
    button, model, clicks = session(doc)
    pn.config.exception_handler = None
    try:
        with pytest.raises(ValueError, match="a watcher failed"):
            asyncio.run(button._event_coroutine(doc, ButtonClick(model)))
        assert clicks == []  # Panel's default: the click is lost
        load_extensions()
        assert pn.config.exception_handler is not None
        doc = Document()
        button, model, clicks = session(doc)
        with caplog.at_level("ERROR", logger="dashboard.shell"):
            asyncio.run(button._event_coroutine(doc, ButtonClick(model)))
    finally:
        pn_state._change_callbacks.pop(doc, None)
    assert len(clicks) == 1
    assert "a watcher failed" in caplog.text and "Traceback" in caplog.text


def test_queued_page_messages_are_written_when_the_write_block_is_gone():
    """Panel 1.9's race (``dashboard.shell.keep_pending_writes``): messages queued for a session
    while no write block is set. Panel's own writer returns and leaves them queued (the page
    does not change until the next event); with the mend they are written."""
    import asyncio

    from bokeh.document import Document
    from panel.io import document as pdoc

    from dashboard.shell import keep_pending_writes

    class Socket:  # a socket type of its own: Panel writes to it through extra_socket_handlers
        pass

    class Connection:
        def __init__(self):
            self._socket = Socket()

    written = []
    pdoc.extra_socket_handlers[Socket] = lambda conn, msg=None: written.append(msg) or []
    doc, conn = Document(), Connection()
    try:
        # what a finished writer leaves behind: messages queued, the block cleared
        pdoc._WRITE_MSGS[doc] = {conn: ["the step's patch"]}
        pdoc._WRITE_BLOCK.pop(doc, None)
        panels_own = getattr(pdoc._dispatch_msgs, "original", pdoc._dispatch_msgs)
        asyncio.run(panels_own(doc))
        assert written == [] and pdoc._WRITE_MSGS[doc] == {conn: ["the step's patch"]}
        keep_pending_writes()
        asyncio.run(pdoc._dispatch_msgs(doc))
        assert written == ["the step's patch"]
        assert not pdoc._WRITE_MSGS.get(doc) and doc not in pdoc._WRITE_BLOCK
    finally:
        pdoc.extra_socket_handlers.pop(Socket, None)
        pdoc._WRITE_MSGS.pop(doc, None)
        pdoc._WRITE_BLOCK.pop(doc, None)


# ------------------------------------------------------------------ defaults and the map
def test_defaults_come_from_the_archive(state_factory):
    s = state_factory()
    inv = s.inv
    assert inv.models, "the demo archive holds no complete model"
    assert s.model in inv.models and s.compare_to in inv.models
    assert s.model == ("pscnet" if "pscnet" in inv.models else inv.models[0])
    assert s.time_index is not None and s.problems("map") == []
    assert s.series_models and set(s.series_models) <= set(inv.models)
    row = s.station_row()
    assert row is not None and bool(row["has_data"]), "the default station should have data"


def test_map_frame_units_limits_and_variables(state_factory):
    from dashboard import store

    s = state_factory()
    da = s.map_data()
    assert da.shape == (150, 320) and da.attrs["units"] == "m3 m-3"
    v = da.values[np.isfinite(da.values)]
    assert v.size > 0 and v.min() >= 0 and v.max() <= 0.7
    assert s.color_kind == "sm" and store.CLIM["sm"] == (0.0, 0.5)
    # the colour limits do not follow the frame
    s.step(1)
    assert store.CLIM["sm"] == (0.0, 0.5)
    for var in ("era5land", "truth"):
        s.variable = var
        assert s.problems("map") == [], var
        assert np.isfinite(s.map_data().values).any()
    s.variable = "difference"
    assert s.color_kind == "difference"
    s.param.update(diff_a="product", diff_b="truth")
    d = s.map_data().values
    a = store.frame(s.home, "product", s.model, s.time)
    b = store.frame(s.home, "truth", "", s.time)
    np.testing.assert_allclose(d, a - b, equal_nan=True)
    s.diff_b = "product"
    assert "two different sources" in s.problems("map")[0]


def test_smap_only_at_overpass_steps(state_factory):
    s = state_factory(variable="smap_9km")
    times = s.inv.times
    # an overpass step (00 or 12 UTC) with data, and a step between overpasses with a message
    ok = [t for t in times if str(t)[11:13] in ("00", "12")]
    found = False
    from dashboard import store
    for t in ok[:12]:
        s.time = store.time_key(t)
        if not s.problems("map"):
            found = s.time
            assert np.isfinite(s.map_data().values).any()
            break
    assert found, "no SMAP 9 km frame at any overpass step"
    s.time = s.time[:11] + "06"
    msg = s.problems("map")
    assert msg and "No SMAP 9 km overpass" in msg[0] and "nearest" in msg[0]
    s.variable = "smap_36km"
    s.time = found
    assert s.problems("map") == [] or "SMAP 36 km" in s.problems("map")[0]


def test_time_player_steps_and_jumps(state_factory):
    s = state_factory()
    times = s.inv.times
    s.set_index(times.size // 2)  # a step with neighbours on both sides, whatever the archive length
    i = s.time_index
    s.step(1)
    assert s.time_index == i + 1
    assert np.datetime64(s.time) - np.datetime64(times[i], "h") == np.timedelta64(3, "h")
    s.step(-2)
    assert s.time_index == i - 1
    s.set_index(10**6)
    assert s.time_index == times.size - 1
    s.step(1)
    assert s.time_index == times.size - 1, "stepping past the end stays at the last step"
    # a free-form date snaps to the product step it falls in
    t5 = np.datetime64(times[5], "m") + np.timedelta64(70, "m")
    s.jump(str(t5).replace("T", " "))
    assert s.time == str(np.datetime64(times[5], "h"))
    s.jump("1990-01-01 00:00")
    assert s.time_index == 0, "a date before the archive goes to its first step"


# ------------------------------------------------------------------ empty states
def test_empty_state_messages(state_factory, demo_home):
    s = state_factory(model="pscnett")
    msg = " ".join(s.problems("map"))
    assert "not in the archive" in msg and "Did you mean" in msg and "pscnet" in msg
    s = state_factory(time="2030-01-01T00")
    assert "outside the archive" in s.problems("map")[0]
    inside = str(np.datetime64(s.inv.times[3], "h") + np.timedelta64(1, "h"))  # between two steps
    s = state_factory(time=inside)
    assert "not a product step" in s.problems("map")[0]
    s = state_factory(time="yesterday")
    assert "is not a time" in s.problems("map")[0]
    from dashboard import store
    st = store.station_table(str(demo_home))
    empty = st[~st["has_data"]]
    assert len(empty), "the tiny world should leave some stations without data"
    s = state_factory(page="stations", station=str(empty.iloc[0]["id"]))
    msg = s.problems("stations")[0]
    assert "no data in the period" in msg
    s = state_factory(page="stations", station="NOWHERE/X1")
    assert "Unknown station" in s.problems("stations")[0]


def test_empty_home_says_what_to_build(tmp_path):
    from dashboard.state import DashboardState

    s = DashboardState(home=str(tmp_path / "empty"))
    msg = " ".join(s.problems("map"))
    assert "No product archive" in msg and "sm-downscale demo" in msg
    assert s.model == "" and s.times.size == 0


def test_gpu_message(demo_home):
    from dashboard.views.regenerate import device_info

    info = device_info()
    import torch

    if torch.cuda.is_available():
        assert info["device"] == "cuda" and info["text"].startswith("GPU")
    else:
        assert info == {"device": "cpu", "text": "no GPU: running on the CPU"}


def test_regenerate_warm_reads_the_block_and_loads_the_runner_once(state_factory):
    """Issue 16: a served page warms the regenerate page's first scene in the background: the
    input block of the default time sits in the process's shared provider and the default
    model's runner is loaded, so the first regeneration reuses both (same objects); a second
    start for the same home and model submits nothing."""
    import numpy as np

    from dashboard.views.regenerate import _WARMED, regenerate, start_warm
    from model.inference.inputs import shared_provider
    from model.inference.runner import _RUNNERS

    s = state_factory(page="regenerate")
    _WARMED.discard((s.home, s.model))
    fut = start_warm(s.home, s.model, s.time)
    out = fut.result(timeout=300)
    assert set(out) == {"block_s", "runner_s"}, out
    assert start_warm(s.home, s.model, s.time) is None
    prov = shared_provider(s.inv.ard)
    cube = prov.cube_for(np.datetime64(s.time, "ns"))
    n_blocks, n_runners = len(prov._blocks), len(_RUNNERS)
    res = regenerate(s.home, s.model, s.time)
    assert len(prov._blocks) == n_blocks and len(_RUNNERS) == n_runners   # nothing loaded again
    assert prov.cube_for(np.datetime64(s.time, "ns")) is cube
    assert np.isfinite(res["scene"].values).any()


# ------------------------------------------------------------------ stations
def test_station_series_metrics_and_network_mean(state_factory):
    s = state_factory(page="stations")
    w = s.series()
    assert list(w.columns[:2]) == ["insitu", "smap_l3_9km"] and "precipitation_mm" in w
    for m in s.series_models:
        assert w[m].notna().sum() > 0.9 * len(w), m
    assert w["insitu"].notna().sum() > 10
    t = s.metrics_table()
    assert {"model", "R", "bias", "ubRMSE", "N", "rank_R", "rank_ubRMSE"} <= set(t.columns)
    assert set(s.series_models) <= set(t["model"])
    assert t["rank_R"].dropna().is_monotonic_increasing
    net = str(s.station_row()["network"])
    s.network_mean = True
    assert s.series_network == net
    wm = s.series()
    assert len(wm) and wm["insitu"].notna().any()
    tm = s.metrics_table()
    assert len(tm) and "network mean" in s.series_title()
    s.period = "train"
    assert len(s.metrics_table())


def test_picking_a_network_shows_one_of_its_stations(state_factory):
    from panel.io.location import Location

    from dashboard.state import URL_PARAMS

    s = state_factory(page="stations")
    home_net = str(s.station_row()["network"])
    nets = sorted(set(s.stations()["network"]) - {home_net})
    assert nets, "the test world needs stations of two networks"
    for net in nets:
        s.network = net
        assert str(s.station_row()["network"]) == net
        assert s.station in set(s.stations()["id"])
    # back to all networks: the station stays
    kept = s.station
    s.network = "ALL"
    assert s.station == kept
    # a link with a network only opens one of its stations; with a station of it, that one
    s2 = state_factory()
    Location(search=f"?page=stations&network={nets[0]}").sync(s2, URL_PARAMS)
    assert str(s2.station_row()["network"]) == nets[0]
    st = s.stations()  # all networks
    sid = str(st[st["network"] == nets[-1]]["id"].iloc[-1])
    s3 = state_factory()
    Location(search=f"?page=stations&network={nets[-1]}&station={sid}").sync(s3, URL_PARAMS)
    assert s3.station == sid and s3.network == nets[-1]


# ------------------------------------------------------------------ metric maps
def test_metric_maps_and_temporal_table(state_factory):
    s = state_factory(page="metrics")
    for ref in ("smap", "truth"):
        s.reference = ref
        for metric in ("R", "bias", "ubRMSE"):
            s.metric = metric
            assert s.problems("metrics") == [], (ref, metric)
            da = s.metric_map(s.model)
            assert np.isfinite(da.values).any()
    t = s.temporal_table()
    assert {"model", "reference", "R_train", "R_test", "rel_change_R"} <= set(t.columns)
    assert s.model in set(t["model"])


# ------------------------------------------------------------------ URL
def test_url_sync_roundtrip(state_factory):
    from panel.io.location import Location
    from panel.util import parse_query

    from dashboard.state import URL_PARAMS

    s0 = state_factory()
    t = s0.inv.times
    target = {"page": "stations", "model": s0.compare_to, "time": str(np.datetime_as_string(t[5], unit="h")),
              "station": s0.station}
    loc = Location(search="?page=stations&model={model}&time={time}&station={station}".format(**target))
    s = state_factory()
    loc.sync(s, URL_PARAMS)
    assert (s.page, s.model, s.time, s.station) == tuple(target.values())
    # and the state writes back into the URL
    s.step(1)
    q = parse_query(loc.search)
    assert q["time"] == s.time and q["page"] == "stations" and q["station"] == s.station
    assert q["models"] == s.series_models
    # the query of one state reopens the same view in another
    loc2 = Location(search="?" + s.url_query())
    s2 = state_factory()
    loc2.sync(s2, URL_PARAMS)
    for p in URL_PARAMS:
        assert getattr(s2, p) == getattr(s, p), p


# ------------------------------------------------------------------ laziness
def test_archive_is_never_fully_loaded(state_factory, monkeypatch):
    """Count the chunks read from the archive while a user browses: one map chunk per frame
    block visited, nothing of the other models' or steps' chunks."""
    import panel as pn
    import zarr.storage

    reads: list[str] = []
    orig = zarr.storage.LocalStore.get

    async def get(self, key, *a, **k):
        if "archive" in str(self.root):
            reads.append(f"{Path(str(self.root)).name}/{key}")
        return await orig(self, key, *a, **k)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    pn.state.clear_caches()
    from dashboard import store

    s = state_factory()
    model = s.model
    for _ in range(3):          # three steps inside one 8-step chunk, or two chunks at most
        s.map_data()
        s.step(1)
    s.page = "stations"
    s.series()
    s.station = str(store.station_table(s.home).query("has_data").iloc[-1]["id"])
    s.series()
    chunks = {r for r in reads if r.split("/")[1] in s.inv.models and not r.endswith((".zarray", ".zattrs"))}
    maps_chunks = {c for c in chunks if c.startswith("maps.zarr/")}
    assert {c.split("/")[1] for c in maps_chunks} <= {model}, maps_chunks
    assert 1 <= len(maps_chunks) <= 3, maps_chunks
    n_total = len(s.inv.models) * int(np.ceil(s.inv.times.size / 8))
    assert len(chunks) < 0.1 * n_total + 4, (len(chunks), n_total)


# ------------------------------------------------------------------ exports
def test_exports_files_and_names(state_factory):
    import xarray as xr

    from dashboard import export
    from dashboard.views import map as mapv, metrics as metv, stations as stv

    export.ensure_matplotlib()
    s = state_factory()
    stem = mapv.stem(s)
    assert stem == f"{s.model}_{s.time}_sm" and ":" not in stem
    t0 = time.perf_counter()
    png = export.figure_bytes(mapv.figure(s), "png").getvalue()
    png_s = time.perf_counter() - t0
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000 and png_s < 5
    svg = export.figure_bytes(mapv.figure(s), "svg").getvalue()
    assert svg.lstrip().startswith(b"<?xml") and b"<image" in svg and len(svg) < 3_000_000
    ds = xr.open_dataset(io.BytesIO(mapv.data(s).getvalue()), engine="h5netcdf")
    assert s.model in ds and ds[s.model].attrs["units"] == "m3 m-3" and ds.sizes["time"] == 1
    np.testing.assert_allclose(ds[s.model].values[0], s.map_data().values, equal_nan=True)
    s.variable = "difference"
    assert mapv.stem(s).startswith(f"{s.model}-minus-") and mapv.stem(s).endswith("_diff")

    s.page = "stations"
    csv = pd.read_csv(io.BytesIO(stv.data(s).getvalue()), index_col=0, parse_dates=True)
    assert "insitu_m3m-3" in csv and "precipitation_mm" in csv and len(csv) > 100
    assert s.series_tag().startswith("-".join(s.series_models) + "_" + s.station.replace("/", "-"))
    png = export.figure_bytes(stv.figure(s), "png").getvalue()
    assert png[:4] == b"\x89PNG"
    m = pd.read_csv(io.BytesIO(stv.metrics_data(s).getvalue()))
    assert {"model", "R", "rank_R"} <= set(m.columns)

    s.page = "metrics"
    ds = xr.open_dataset(io.BytesIO(metv.data(s).getvalue()), engine="h5netcdf")
    assert f"R_{s.model}" in ds and f"R_{s.compare_to}" in ds
    assert export.figure_bytes(metv.figure(s), "png").getvalue()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ regeneration
def test_regenerate_matches_archive_and_does_not_block(state_factory):
    """The runner recomputes the archived scene (same model, same inputs) in a worker thread;
    meanwhile the main thread keeps serving map frames."""
    from concurrent.futures import ThreadPoolExecutor

    from dashboard import store
    from dashboard.views.regenerate import Job, regenerate

    s = state_factory()
    job = Job()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(regenerate, s.home, s.model, s.time, job)
        lags = []
        while not fut.done():
            t0 = time.perf_counter()
            s.step(1)
            s.map_data()
            lags.append(time.perf_counter() - t0)
            time.sleep(0.05)
            if len(lags) > 2000:
                break
        res = fut.result(timeout=600)
    assert res["device"] in ("cpu", "cuda") and res["archived"] is not None
    new, old = res["scene"].values, res["archived"].values
    both = np.isfinite(new) & np.isfinite(old)
    assert both.sum() > 100
    assert np.nanmax(np.abs(new[both] - old[both])) < 2e-3, "the runner does not reproduce the archive"
    assert not lags or max(lags) < 2.0, f"the main thread waited {max(lags):.2f} s during a regeneration"
    with pytest.raises(store.EmptyState, match="outside the archive"):
        regenerate(s.home, s.model, "2031-01-01T00")
