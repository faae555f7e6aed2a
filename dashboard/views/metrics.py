"""Page 3, metric maps: R, bias and ubRMSE per model against SMAP (9 km cells) and, on the
virtual TP, against the hidden truth (10 km); two models side by side with linked zoom, their
histograms and scatter-density plots, and the temporal-generalisation table.
"""

from __future__ import annotations

import geoviews as gv
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import xarray as xr
from holoviews.operation.datashader import rasterize

from model.figures import metric_maps_figure

from .. import export, store
from ..state import METRICS
from ..store import EmptyState
from .common import crs, extent, frame_size, geo_basemap, linked_select, message

PAGE_PARAMS = ["model", "compare_to", "metric", "reference", "period"]
REF_LABEL = {"smap": "SMAP L3 9 km", "truth": "hidden truth (10 km)"}


def _mesh(da) -> gv.QuadMesh:
    """A (lat, lon) or (y, x) metric map as a GeoViews QuadMesh in lon/lat (PlateCarree,
    latitude ascending). The page draws it in PlateCarree: M09 rows are not evenly spaced in
    latitude, and reprojecting them would make a curvilinear mesh whose datashader kernel
    compiles for 6-8 s on first use; the figure export draws the picked projection."""
    lat = np.asarray(da["lat"].values, float)
    lon = np.asarray(da["lon"].values, float)
    v = np.asarray(da.values, np.float32)
    if lat[0] > lat[-1]:
        lat, v = lat[::-1], v[::-1]
    return gv.QuadMesh((lon, lat, v), kdims=["lon", "lat"], vdims=[da.attrs.get("metric", "value")],
                       crs=crs("plate_carree"))


def _map_or_empty(state, model):
    try:
        da = state.metric_map(model)
    except EmptyState:
        lat, lon = store.tp10_coords()
        return gv.QuadMesh((lon, lat, np.full((lat.size, lon.size), np.nan, np.float32)), kdims=["lon", "lat"],
                           vdims=["value"], crs=crs("plate_carree")), None
    return _mesh(da), da


def _hist(state, da, model) -> hv.Histogram:
    lo, hi = store.CLIM[state.metric]
    edges = np.linspace(lo, hi, 41)
    v = np.asarray(da.values).ravel() if da is not None else np.array([])
    v = v[np.isfinite(v)]
    counts, _ = np.histogram(np.clip(v, lo, hi), bins=edges)
    med = f", median {np.median(v):.3f}" if v.size else ""
    return hv.Histogram((edges, counts), kdims=[state.metric], vdims=["cells"],
                        label=f"{model}: {state.metric}, {v.size} cells{med}")


def _scatter(state, model) -> hv.Overlay:
    try:
        sc = store.scatter(state.home)
    except EmptyState:
        sc = None
    var = "count" if state.reference == "smap" else "truth_count"
    ref = REF_LABEL[state.reference]
    if sc is None or var not in sc or model not in [str(m) for m in sc["model"].values]:
        c = np.full((60, 60), np.nan)
        x = y = np.arange(0.005, 0.6, 0.01)
    else:
        d = sc[var].sel(model=model)
        c = np.asarray(d.values, float)
        c[c <= 0] = np.nan
        x, y = d["reference_bin"].values, d["product_bin"].values
    img = hv.Image((x, y, np.log10(c)), kdims=[hv.Dimension("reference", label=f"{ref} (m³ m⁻³)"),
                                             hv.Dimension("product", label=f"{model} (m³ m⁻³)")],
                   vdims=[hv.Dimension("log10_count", label="log10(count)")])
    one = hv.Curve([(0, 0), (0.6, 0.6)], "reference", "product")
    return img, one


def plots(state):
    """Two metric maps, their histograms and scatter-density plots: ([map A, map B], [hist A,
    hist B], [scatter A, scatter B]). Drawn as separate panes whose axes Panel links (same
    dimensions), so zoom and pan on one map follow on the other."""
    box = extent(state.home)
    fw, fh = frame_size(box, width=420, max_height=300)
    kind = state.metric
    maps, hists, scats = [], [], []
    for model in (state.model, state.compare_to):
        mesh, da = _map_or_empty(state, model)
        ras = rasterize(mesh, aggregator="mean").opts(
            cmap=store.CMAP[kind], clim=store.CLIM[kind], colorbar=True, tools=["hover"],
            title=f"{model}: {state.metric} against {REF_LABEL[state.reference]}",
            clabel=f"{state.metric} ({store.METRIC_UNITS[kind]})", toolbar="above")
        maps.append((ras * geo_basemap()).opts(projection=crs("plate_carree"), global_extent=False,
                                              xlim=(box[0], box[2]), ylim=(box[1], box[3]), frame_width=fw,
                                              frame_height=fh, xlabel="longitude (°E)", ylabel="latitude (°N)",
                                              active_tools=["wheel_zoom"]))
        h = _hist(state, da, model)
        hists.append(h.opts(frame_width=fw, height=210, color="#4c72b0", tools=["hover"], xlim=store.CLIM[kind],
                            title=h.label, toolbar="above", fontsize={"title": "10pt"}))
        img, one = _scatter(state, model)
        scats.append((img.opts(cmap="viridis", colorbar=True, tools=["hover"], frame_width=fh, frame_height=fh,
                               toolbar="above",
                               title=f"{model} vs {REF_LABEL[state.reference]} (test period)")
                      * one.opts(color="black", line_dash="dashed", line_width=1)))
    return maps, hists, scats


def temporal(state) -> pd.DataFrame:
    try:
        return state.temporal_table()
    except EmptyState:
        return pd.DataFrame(columns=["model", "reference"])


#: columns of the truth/skill table (validation's main table), in order, with their labels
SCIENCE_COLUMNS = {"model": "model", "kind": "kind", "truth_R": "R (thawed)", "truth_ubRMSE": "ubRMSE (thawed)",
                   "truth_bias": "bias (thawed)", "truth_pooled_R": "pooled R", "truth_fine_R": "fine-scale R (cell)",
                   "truth_fine_R_pooled": "fine-scale R (pooled)", "truth_frozen_R": "frozen R",
                   "truth_frozen_ubRMSE": "frozen ubRMSE", "smap_R": "SMAP R", "smap_pooled_R": "SMAP pooled R",
                   "stations_pooled_R": "stations pooled R"}
INTERVAL_COLUMNS = {"model": "model", "kind": "kind", "baseline": "minus", "d_R": "ΔR", "d_R_low": "ΔR 5 %",
                    "d_R_high": "ΔR 95 %", "p_R": "p (R)", "d_ubRMSE": "ΔubRMSE", "d_ubRMSE_low": "ΔubRMSE 5 %",
                    "d_ubRMSE_high": "ΔubRMSE 95 %", "p_ubRMSE": "p (ubRMSE)"}


def _labelled(t: pd.DataFrame, columns: dict, digits: int) -> pd.DataFrame:
    keep = [c for c in columns if c in t]
    out = t[keep].copy()
    for c in keep:
        if out[c].dtype.kind == "f":
            out[c] = out[c].round(digits)
    return out.rename(columns=columns)


def science_table(state) -> pd.DataFrame:
    """Test-period scores per model: against the truth on thawed steps (per cell, pooled,
    fine-scale R), frozen steps apart, against SMAP and the stations pooled; the ceiling rows
    (learners fitted to the truth, not products) last."""
    try:
        t = store.table(state.home, "summary")
    except EmptyState:
        return pd.DataFrame(columns=list(SCIENCE_COLUMNS.values()))
    return _labelled(t, SCIENCE_COLUMNS, 3)


def intervals_table(state) -> pd.DataFrame:
    """Paired 3-day block-bootstrap 90 % intervals of every method minus PSCNet (or the best)."""
    try:
        t = store.table(state.home, "intervals")
    except EmptyState:
        return pd.DataFrame(columns=list(INTERVAL_COLUMNS.values()))
    return _labelled(t, INTERVAL_COLUMNS, 4)


def figure(state):
    """The paper's metric-map figure for models A and B (cartopy, ``model.figures``): R, bias and
    ubRMSE maps in the page's projection with each map's histogram beneath."""
    ds = store.metric_maps(state.home, state.reference)
    have = [str(m) for m in ds["model"].values]
    models = [m for m in dict.fromkeys((state.model, state.compare_to)) if m]
    missing = [m for m in models if m not in have]
    if missing or not models:
        raise EmptyState(f"No {state.reference} metric maps for {missing or 'no model'}.")
    box = extent(state.home)
    return metric_maps_figure(ds, models, METRICS, reference=f"{REF_LABEL[state.reference]} (test period)",
                              proj=state.projection, extent=(box[0], box[2], box[1], box[3]))


def data(state):
    das = {}
    for model in (state.model, state.compare_to):
        da = state.metric_map(model)
        das[f"{state.metric}_{model}"] = da.drop_vars("model", errors="ignore")
    ds = xr.Dataset(das)
    ds.attrs.update({"reference": REF_LABEL[state.reference], "metric": state.metric,
                     "source": "sm-downscale validation results (test period)"})
    return export.netcdf_bytes(ds)


def temporal_data(state):
    return export.csv_bytes(state.temporal_table(), index=False)


def controls(state):
    try:
        have = [str(m) for m in store.metric_maps(state.home, state.reference)["model"].values]
    except EmptyState:
        have = list(state.inv.models)
    a = linked_select(state, "model", have, "model A", width=160)
    b = linked_select(state, "compare_to", have, "model B", width=160)
    metric = pn.widgets.RadioButtonGroup.from_param(state.param.metric, options=METRICS, button_type="light",
                                                    css_classes=["metric-picker"])
    ref = pn.widgets.RadioButtonGroup.from_param(state.param.reference, button_type="light",
                                                 options={"against SMAP": "smap", "against the truth": "truth"})
    return pn.Row(a, b, pn.Column(pn.pane.Markdown("metric", margin=(0, 5)), metric),
                  pn.Column(pn.pane.Markdown("reference", margin=(0, 5)), ref))


def page(state) -> pn.viewable.Viewable:
    maps, hists, scats = plots(state)
    panes = [[pn.pane.HoloViews(o, name=f"metric-{kind}-{ab}", css_classes=[f"metric-{kind}"])
              for o, ab in zip(objs, "ab")] for objs, kind in ((maps, "map"), (hists, "hist"), (scats, "scatter"))]

    def rebuild(*_):
        for row, objs in zip(panes, plots(state)):
            for pane, o in zip(row, objs):
                pane.object = o

    state.param.watch(rebuild, ["model", "compare_to", "metric", "reference"])
    tbl = pn.widgets.Tabulator(temporal(state), show_index=False, disabled=True, name="temporal-table",
                               css_classes=["temporal-table"], height=300, layout="fit_data_table")
    return pn.Column(
        controls(state),
        message(state, "metrics", *PAGE_PARAMS),
        *[pn.Row(*row) for row in panes],
        pn.pane.Markdown("Histograms count values beyond the fixed colour range in its end bins "
                         "(R -1..1, bias -0.1..0.1, ubRMSE 0..0.08 m³ m⁻³).", styles={"font-size": "12px"}),
        pn.pane.Markdown("### Temporal generalisation\nMetrics in the training period and the test period "
                         "(spatial mean of the per-cell metrics) and the relative change test vs train "
                         "(the paper: within 6 % for R and 2 % for ubRMSE)."),
        tbl,
        pn.pane.Markdown("### Against the truth, SMAP and the stations (test period)\nThe truth's headline "
                         "scores use thawed steps only (frozen apart); *pooled* is the overall R of every "
                         "matched pair (the paper's scatter plot); *fine-scale R* correlates the 10 km detail "
                         "(value minus its 36 km parent) with the truth's. **Ceiling rows are learners fitted "
                         "to the truth, not products**: the skill the inputs allow."),
        pn.widgets.Tabulator(science_table(state), show_index=False, disabled=True, name="science-table",
                             css_classes=["science-table"], height=320, layout="fit_data_table"),
        pn.pane.Markdown("### Differences and their 90 % intervals\nEvery method minus the baseline on the same "
                         "cells and thawed steps, paired block bootstrap (3-day blocks); p: two-sided paired test."),
        pn.widgets.Tabulator(intervals_table(state), show_index=False, disabled=True, name="intervals-table",
                             css_classes=["intervals-table"], height=300, layout="fit_data_table"),
        export.export_row(state, lambda s: s.metric_tag(), figure=figure, data=data, data_ext="nc",
                          extra=[("temporal CSV", "_temporal", "csv", temporal_data)], watch=PAGE_PARAMS),
        name="metrics-page")
