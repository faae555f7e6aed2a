"""Page 2, station comparison: the Maqu, Ngari, Naqu and CTP-SMTMN stations on a map (with a
network picker); a click on a station draws its series through the whole period (in-situ,
SMAP 9 km, every chosen model, precipitation) and its metrics table (R, bias, ubRMSE, N, each
model's rank). The soil-moisture and precipitation panels share the time axis (zoom and pan
are linked). "Network mean" shows the mean over the network's stations instead.

The series plot is one ``DynamicMap`` per panel, fed by the state (station, network, network
mean): a click only sends new data. Changing the set of models rebuilds the plot.
"""

from __future__ import annotations

import geoviews as gv
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from .. import export, store
from ..state import NETWORK_CHOICES
from ..store import EmptyState
from .common import SOURCE_COLORS, crs, frame_size, geo_basemap, message, model_color, station_points

SERIES_PARAMS = ["station", "network", "network_mean", "series_models"]
LABELS = {"insitu": "in situ", "smap_l3_9km": "SMAP L3 9 km"}
SERIES_W = 700


def _series_or_empty(state) -> pd.DataFrame:
    try:
        return state.series()
    except EmptyState:
        return pd.DataFrame(columns=["insitu", "smap_l3_9km", *state.series_models, store.PRECIP],
                            index=pd.DatetimeIndex([], name="time"), dtype=float)


def _sm_overlay(state, models, **_) -> hv.Overlay:
    w = _series_or_empty(state)
    t = w.index.values.astype("datetime64[ns]")
    layers = []
    for src in ["insitu", "smap_l3_9km", *models]:
        v = w[src].to_numpy(dtype=float) if src in w else np.full(t.size, np.nan)
        label = LABELS.get(src, src)
        if src in ("insitu", "smap_l3_9km"):
            ok = np.isfinite(v)
            el = hv.Scatter({"time": t[ok], "soil_moisture": v[ok]}, "time", "soil_moisture", label=label)
            el = el.opts(color=SOURCE_COLORS[src], size=5, marker="square") if src == "smap_l3_9km" else \
                el.opts(color="black", size=3)
        else:
            el = hv.Curve({"time": t, "soil_moisture": v}, "time", "soil_moisture", label=label).opts(
                color=model_color(state.inv.models, src), line_width=1.6)
        layers.append(el)
    return hv.Overlay(layers)


def _precip(state, **_) -> hv.Spikes:
    w = _series_or_empty(state)
    t = w.index.values.astype("datetime64[ns]")
    p = w[store.PRECIP].to_numpy(dtype=float) if store.PRECIP in w else np.full(t.size, np.nan)
    ok = np.isfinite(p) & (p > 0)
    return hv.Spikes({"time": t[ok], "precipitation": p[ok]}, "time", "precipitation")


def series_plot(state):
    """Soil moisture (top) and precipitation (bottom): two plots whose time axes Panel links
    (same ``time`` dimension in the same page). Two panes, not an ``hv.Layout``: a Bokeh
    GridPlot collapses inside nested Panel columns (holoviz/panel#5528)."""
    models = list(state.series_models)
    stream = hv.streams.Params(state, ["station", "network", "network_mean"])
    tools = ["xpan", "xwheel_zoom", "box_zoom", "reset"]
    sm = hv.DynamicMap(lambda **kw: _sm_overlay(state, models, **kw), streams=[stream]).opts(
        hv.opts.Overlay(legend_position="right", framewise=True, width=SERIES_W + 130, height=300,
                        ylabel="soil moisture (m³ m⁻³)", xlabel="", show_grid=True, title="",
                        active_tools=["xwheel_zoom"], tools=tools),
        hv.opts.Curve(framewise=True, tools=["hover"], hover_tooltips=[("time", "@time{%F %H:%M}"),
                                                                       ("value", "@soil_moisture{0.000}")],
                      hover_formatters={"@time": "datetime"}),
        hv.opts.Scatter(framewise=True, tools=["hover"]))
    pr = hv.DynamicMap(lambda **kw: _precip(state, **kw), streams=[stream]).opts(
        hv.opts.Spikes(color="#1f77b4", framewise=True, width=SERIES_W, height=150, line_width=1.5,
                       ylabel="precip. (mm / 3 h)", xlabel="time (UTC)", show_grid=True,
                       active_tools=["xwheel_zoom"], tools=tools))
    return sm, pr


def station_map(state):
    """The station map: click (tap) a station to choose it. Shows the whole TP for all networks,
    the network's stations (with a margin) when one network is picked."""
    st_all = store.station_table(state.home)
    if state.network == "ALL":
        box = store.BBOX
    else:
        sub = st_all[st_all["network"] == state.network]
        box = (sub["lon"].min() - 1.5, sub["lat"].min() - 1.0, sub["lon"].max() + 1.5, sub["lat"].max() + 1.0)
    fw, fh = frame_size(box, width=440, max_height=300)

    def points(network, **_):
        st = store.station_table(state.home)
        return station_points(st if network == "ALL" else st[st["network"] == network], size=9,
                              element=gv.Points, crs=crs("plate_carree")).opts(
            tools=["hover"], legend_position="bottom_left",
            hover_tooltips=[("station", "@station"), ("network", "@label"), ("in-situ values", "@n_insitu")])

    def chosen(station, **_):
        row = state.station_row()
        pts = [] if row is None else [(row["lon"], row["lat"])]
        return gv.Points(pts, kdims=["lon", "lat"], group="Chosen", crs=crs("plate_carree")).opts(
            size=18, fill_alpha=0, line_color="black", line_width=2.5, tools=[], apply_ranges=False)

    dmap = hv.DynamicMap(points, streams=[hv.streams.Params(state, ["network"])])
    mark = hv.DynamicMap(chosen, streams=[hv.streams.Params(state, ["station"])])
    tap = hv.streams.Tap(source=dmap, x=None, y=None)

    def on_tap(x=None, y=None):
        """The station nearest the click (within half a degree), among those shown."""
        if x is None or y is None:
            return
        st = state.stations()
        if st.empty:
            return
        d = np.hypot((st["lon"].to_numpy() - x) * np.cos(np.deg2rad(y)), st["lat"].to_numpy() - y)
        k = int(np.argmin(d))
        if d[k] <= 0.5:
            state.param.update(station=str(st.iloc[k]["id"]), network_mean=False)

    tap.add_subscriber(on_tap)
    # GeoViews in PlateCarree (the station page keeps lon/lat axes: the click is a lon/lat)
    plot = (geo_basemap(proj="plate_carree") * dmap * mark).opts(hv.opts.Overlay(
        projection=crs("plate_carree"), global_extent=False, xlim=(box[0], box[2]), ylim=(box[1], box[3]), frame_width=fw, frame_height=fh, title="",
        xlabel="longitude (°E)", ylabel="latitude (°N)", active_tools=["wheel_zoom"], toolbar="above"))
    return plot, tap


def _metric_df(state) -> pd.DataFrame:
    try:
        return state.metrics_table()
    except EmptyState:
        return pd.DataFrame(columns=store.METRIC_COLUMNS)


def controls(state):
    network = pn.widgets.RadioButtonGroup.from_param(state.param.network, name="network",
                                                     options={("All" if n == "ALL" else store.NETWORK_LABELS[n]): n
                                                              for n in NETWORK_CHOICES},
                                                     button_type="light", css_classes=["network-picker"])
    station = pn.widgets.Select(name="station", width=200, css_classes=["station-select"])

    filling = {"on": False}

    def fill(*_):
        st = state.stations()
        opts = {f"{r.station} ({r.label}){'' if r.has_data else ' - no data'}": r.id for r in st.itertuples()}
        if state.station and state.station not in opts.values():
            opts[state.station] = state.station
        filling["on"] = True
        try:
            station.param.update(options=opts, value=state.station if state.station in opts.values() else None)
        finally:
            filling["on"] = False

    def pick(e):
        if not filling["on"] and e.new and e.new != state.station:
            state.param.update(station=e.new, network_mean=False)

    fill()
    state.param.watch(fill, ["network", "station"])
    station.param.watch(pick, "value")
    models = pn.widgets.MultiChoice.from_param(state.param.series_models, options=list(state.inv.models),
                                               name="models in the series", width=330, css_classes=["series-models"])
    state.param.watch(lambda e: setattr(models, "options", list(state.inv.models)), "version")
    mean = pn.widgets.Checkbox.from_param(state.param.network_mean, name="network mean", css_classes=["network-mean"])
    period = pn.widgets.RadioButtonGroup.from_param(state.param.period, name="metrics period", button_type="light",
                                                    options={"test period": "test", "training period": "train"})
    return network, station, models, mean, period


def figure(state):
    """Series (top) and precipitation (bottom) for export, matplotlib backend."""
    w = state.series()
    layers = []
    for src in ["insitu", "smap_l3_9km", *state.series_models]:
        if src not in w or not w[src].notna().any():
            continue
        d = pd.DataFrame({"time": w.index, "soil_moisture": w[src].to_numpy(float)})
        if src in ("insitu", "smap_l3_9km"):
            el = hv.Scatter(d.dropna(), "time", "soil_moisture", label=LABELS[src]).opts(
                color=SOURCE_COLORS[src], s=6 if src == "insitu" else 14, backend="matplotlib")
        else:
            el = hv.Curve(d, "time", "soil_moisture", label=src).opts(
                color=model_color(state.inv.models, src), linewidth=1.2, backend="matplotlib")
        layers.append(el)
    sm = hv.Overlay(layers).opts(hv.opts.Overlay(backend="matplotlib", legend_position="right", aspect=3.2,
                                                 fig_inches=(10, 3), title=state.series_title(),
                                                 ylabel="soil moisture (m³ m⁻³)", xlabel=""))
    p = pd.DataFrame({"time": w.index, "precipitation": w[store.PRECIP].to_numpy(float)}).dropna()
    pr = hv.Spikes(p, "time", "precipitation").opts(color="#1f77b4", aspect=6.4, backend="matplotlib",
                                                     ylabel="precip. (mm / 3 h)", xlabel="time (UTC)")
    return (sm + pr).cols(1).opts(hv.opts.Layout(backend="matplotlib", fig_inches=(11, 6), sublabel_format=""))


def data(state):
    w = state.series().copy()
    w.index.name = "time_utc"
    return export.csv_bytes(w.rename(columns={c: f"{c}_m3m-3" for c in w.columns if c != store.PRECIP}))


def metrics_data(state):
    return export.csv_bytes(state.metrics_table(), index=False)


def page(state) -> pn.viewable.Viewable:
    network, station, models, mean, period = controls(state)
    smap, _tap = station_map(state)
    map_pane = pn.pane.HoloViews(smap, name="station-map", css_classes=["station-map"])
    state.param.watch(lambda e: setattr(map_pane, "object", station_map(state)[0]), "network")
    sm, pr = series_plot(state)
    sm_pane = pn.pane.HoloViews(sm, name="series-plot", css_classes=["series-plot"])
    pr_pane = pn.pane.HoloViews(pr, name="precip-plot", css_classes=["precip-plot"])

    def rebuild(*_):
        sm_pane.object, pr_pane.object = series_plot(state)

    state.param.watch(rebuild, "series_models")
    header = pn.pane.Markdown("", css_classes=["series-title"])
    table = pn.widgets.Tabulator(_metric_df(state), show_index=False, disabled=True, name="metrics-table",
                                 css_classes=["metrics-table"], width=860, height=260,
                                 layout="fit_data_table")

    def refresh(*_):
        header.object = f"### {state.series_title()}"
        table.value = _metric_df(state)

    refresh()
    state.param.watch(refresh, SERIES_PARAMS + ["period"])
    left = pn.Column(network, map_pane, station, mean, models, width=520)
    right = pn.Column(header, message(state, "stations", *SERIES_PARAMS), sm_pane, pr_pane,
                      pn.pane.Markdown("**Metrics** (R, bias = product - in situ, ubRMSE in m³ m⁻³, N matched "
                                       "pairs, rank among all products; frozen soil excluded)", margin=(0, 5)),
                      period, table, width=900)
    extra = [("metrics CSV", "_metrics", "csv", metrics_data)]
    return pn.Column(
        pn.Row(left, right),
        export.export_row(state, lambda s: s.series_tag(), figure=figure, data=data, data_ext="csv",
                          suffix="_series", extra=extra, watch=SERIES_PARAMS + ["period"]),
        name="stations-page")
