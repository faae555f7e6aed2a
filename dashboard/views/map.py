"""Page 1, map exploration: the 10 km product (or SMAP, ERA5-Land, the truth, a difference) at
any 3-hourly step, rendered by datashader over an offline basemap, with the four station
networks on top.

The map is GeoViews: the frame is a ``gv.Image`` in PlateCarree (the TP10 grid is regular in
lon/lat), the basemap is packaged Natural Earth and the TP outline as ``gv.Feature`` elements,
the stations ``gv.Points``; GeoViews projects them to the projection picked on the page
(``state.projection``: an equal-area Lambert azimuthal view centred on the plateau, or
PlateCarree). No tiles, nothing fetched. The hover inverts the projection in the browser
(spherical Lambert azimuthal equal-area, the constants of ``model.figures``) to show the
cell's lon/lat and row/col.

The time player (first / previous / play / next / last), a slider that redraws on release
(``value_throttled``) and a date + hour jump all write ``state.time``; the map redraws through
one ``DynamicMap`` stream, so a step only sends the new raster. Colour limits are fixed per
variable (``store.CLIM``), never per frame.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import geoviews as gv
import holoviews as hv
import numpy as np
import panel as pn
from bokeh.models import CustomJSHover, CustomJSTickFormatter
from holoviews.operation.datashader import rasterize

from model.figures import LAEA_CENTRE, SPHERE_RADIUS, map_figure

from .. import export, store
from ..store import EmptyState
from .common import (FRAME_W, NETWORK_COLORS, PROJECTION_OPTIONS, crs, extent, frame_size, geo_basemap, geo_station_points, linked_select,
                     message, projected_box)

VARIABLE_LABELS = {"product": "Product (model)", "smap_36km": "SMAP 36 km", "smap_9km": "SMAP 9 km",
                   "era5land": "ERA5-Land swvl1", "truth": "Truth (virtual TP)", "difference": "Difference A - B"}
SOURCE_LABELS = {"product": "model product", "compare": "second model", "smap_36km": "SMAP 36 km",
                 "smap_9km": "SMAP 9 km", "era5land": "ERA5-Land", "truth": "truth"}
STREAM_PARAMS = ["model", "compare_to", "variable", "diff_a", "diff_b", "time"]

# (x, y) of the plot -> lon/lat (inverse spherical Lambert azimuthal equal-area, Snyder 1987
# eq. 24-16, 20-14, 24-26, for the equal-area view; identity for PlateCarree) -> TP10 row/col
_CELL_JS = """
const lon0 = 73.0, lat0 = 25.0, d = 0.1;
let lon = special_vars.x, lat = special_vars.y;
if (proj == 'equal_area') {
  const x = special_vars.x, y = special_vars.y, r = Math.hypot(x, y), rad = Math.PI / 180;
  const p0 = clat * rad;
  if (r < 1e-6) { lon = clon; lat = clat; } else {
    const c = 2 * Math.asin(Math.min(1, r / (2 * R)));
    lat = Math.asin(Math.cos(c) * Math.sin(p0) + y * Math.sin(c) * Math.cos(p0) / r) / rad;
    lon = clon + Math.atan2(x * Math.sin(c), r * Math.cos(p0) * Math.cos(c) - y * Math.sin(p0) * Math.sin(c)) / rad;
  }
}
if (format == 'col') { return String(Math.floor((lon - lon0) / d)); }
if (format == 'row') { return String(Math.floor((lat - lat0) / d)); }
return (format == 'lat' ? lat : lon).toFixed(3);
"""


def _values(state) -> np.ndarray:
    lat, lon = store.tp10_coords()
    try:
        return np.asarray(state.map_data().values, np.float32)
    except EmptyState:
        return np.full((lat.size, lon.size), np.nan, np.float32)


def _cut(home: str):
    """Row and column slices of the TP10 grid inside the region the page shows (``extent``)."""
    lat, lon = store.tp10_coords()
    lon0, lat0, lon1, lat1 = extent(home)
    return slice(*np.searchsorted(lat, [lat0, lat1])), slice(*np.searchsorted(lon, [lon0, lon1]))


@lru_cache(maxsize=8)
def _warp(home: str, proj: str):
    """GeoViews' projection of the cut grid, done ONCE per home and projection: ``gv.project``
    warps an image of cell numbers (nearest neighbour, as for data), giving the projected grid's
    x, y and, per projected pixel, the source cell (-1 outside)."""
    lat, lon = store.tp10_coords()
    i, j = _cut(home)
    ny, nx = lat[i].size, lon[j].size
    cells = gv.Image((lon[j], lat[i], np.arange(ny * nx, dtype=np.float64).reshape(ny, nx)),
                     kdims=["lon", "lat"], vdims=["value"], crs=crs("plate_carree"))
    out = gv.project(cells, projection=crs(proj))
    xs, ys = out.dimension_values(0, expanded=False), out.dimension_values(1, expanded=False)
    idx = out.dimension_values(2, flat=False)
    idx = np.where(np.isfinite(idx), np.rint(np.nan_to_num(idx, nan=-1)), -1).astype(np.int64)
    return xs, ys, idx


def projected_image(home: str, values: np.ndarray, proj: str) -> hv.Image:
    """A TP10 field ``values`` (lat, lon) in the view's projection ``proj``: the PlateCarree cut
    of the region the page shows, moved through the cached warp (:func:`_warp`), so a frame
    costs one indexing, not a re-projection. Used by every page that draws a TP10 field."""
    i, j = _cut(home)
    if proj == "plate_carree":
        lat, lon = store.tp10_coords()
        return hv.Image((lon[j], lat[i], values[i, j]), kdims=["lon", "lat"], vdims=["value"])
    xs, ys, idx = _warp(home, proj)
    v = values[i, j].ravel()
    out = np.where(idx >= 0, v[np.clip(idx, 0, None)], np.nan).astype(np.float32)
    return hv.Image((xs, ys, out), kdims=["x", "y"], vdims=["value"])


def geo_frame_opts(home: str, proj: str, width: int = FRAME_W, max_height: int = 480):
    """Overlay options of a map in projection ``proj``: the region the page shows, its frame
    size, and lon/lat axes where the projection is PlateCarree (none for the equal-area view)."""
    x0, y0, x1, y1 = projected_box(extent(home), proj)
    fw, fh = frame_size((x0, y0, x1, y1), width=width, max_height=max_height)
    lonlat = proj == "plate_carree"
    return hv.opts.Overlay(projection=crs(proj), global_extent=False, xlim=(x0, x1), ylim=(y0, y1),
                           frame_width=fw, frame_height=fh, xaxis="bottom" if lonlat else None,
                           yaxis="left" if lonlat else None, xlabel="longitude (°E)",
                           ylabel="latitude (°N)", active_tools=["wheel_zoom"], toolbar="above")


def _projected(state, proj: str, **_) -> hv.Image:
    """The page's frame in the view's projection (:func:`projected_image`)."""
    return projected_image(state.home, _values(state), proj)


def _hover_hook(state, proj: str):
    args = {"proj": proj, "clon": LAEA_CENTRE[0], "clat": LAEA_CENTRE[1], "R": SPHERE_RADIUS}
    fmt = {"$x": CustomJSHover(code=_CELL_JS, args=args), "$y": CustomJSHover(code=_CELL_JS, args=args)}

    def hook(plot, element):
        hover = plot.handles.get("hover")
        if hover is None:
            return
        hover.tooltips = [("map", state.map_title), ("value", "@image{0.000} m³ m⁻³"),
                          ("lon, lat", "$x{lon} E, $y{lat} N"), ("cell (row, col)", "$y{row}, $x{col}")]
        hover.formatters = fmt
    return hook


def map_plot(state, kind: str, proj: str | None = None):
    """The bokeh map: rasterized frame * basemap * stations (GeoViews, PlateCarree data), for a
    colour ``kind``, drawn in projection ``proj`` (default ``state.projection``)."""
    proj = proj or state.projection
    dmap = hv.DynamicMap(lambda **kw: _projected(state, proj, **kw), streams=[hv.streams.Params(state, STREAM_PARAMS)])
    label = "soil moisture (m³ m⁻³)" if kind == "sm" else "difference A - B (m³ m⁻³)"
    # the frame arrives projected (GeoViews' warp, cached), is rasterized in the view's
    # coordinates (zoom ranges and pixels agree) and goes on as a plain Image, so GeoViews does
    # not warp it again on every frame
    ras = rasterize(dmap, aggregator="mean").opts(
        cmap=store.CMAP[kind], clim=store.CLIM[kind], colorbar=True, tools=["hover"],
        clabel=label, hooks=[_hover_hook(state, proj)])
    st = geo_station_points(store.station_table(state.home), proj)
    return (ras * geo_basemap(proj=proj) * st).opts(geo_frame_opts(state.home, proj), hv.opts.Overlay(title=""))


def time_controls(state, interval_ms: int = 1000) -> pn.Column:
    """Step / play buttons, a slider that redraws on release, and a date + hour jump."""
    times = state.times
    n = max(int(times.size), 1)
    i0 = state.time_index or 0
    t0 = int(times[0].astype("datetime64[ms]").astype(np.int64)) if times.size else 0
    fmt = CustomJSTickFormatter(code=f"const d = new Date({t0} + tick * 3 * 3600 * 1000); "
                                     "return d.toISOString().slice(0, 13).replace('T', ' ') + ':00 UTC';")
    slider = pn.widgets.IntSlider(name="time (redraws on release)", start=0, end=n - 1, value=i0, format=fmt,
                                  width=420, css_classes=["time-slider"])
    buttons = {key: pn.widgets.Button(name=label, width=62, button_type="light", css_classes=[f"time-{key}"],
                                      description=desc, margin=(5, 2))
               for key, label, desc in (("first", "« first", "first step"),
                                        ("prev", "‹ −3 h", "previous step (3 h earlier)"),
                                        ("play", "▶ play", "play: one step a second"), ("pause", "pause", "pause"),
                                        ("next", "+3 h ›", "next step (3 h later)"), ("last", "last »", "last step"))}
    d0 = dt.date.fromisoformat(store.time_key(times[0])[:10]) if times.size else None
    d1 = dt.date.fromisoformat(store.time_key(times[-1])[:10]) if times.size else None
    date = pn.widgets.DatePicker(name="jump to date", start=d0, end=d1, width=140, css_classes=["time-date"],
                                 value=dt.date.fromisoformat(state.time[:10]) if state.time_index is not None else d0)
    hour = pn.widgets.Select(name="hour (UTC)", options=[f"{h:02d}" for h in range(0, 24, 3)], width=80,
                             css_classes=["time-hour"],
                             value=state.time[11:13] if state.time_index is not None else "00")
    label = pn.pane.Markdown("", css_classes=["time-label"], margin=(8, 5, 0, 10))
    player = {"cb": None}

    def stop(*_):
        if player["cb"] is not None:
            player["cb"].stop()
            player["cb"] = None

    def tick():
        i = state.time_index
        if i is None or i >= n - 1:
            stop()
            return
        state.set_index(i + 1)

    def play(*_):
        if player["cb"] is None and pn.state.curdoc is not None:
            player["cb"] = pn.state.add_periodic_callback(tick, period=interval_ms)

    buttons["first"].on_click(lambda e: state.set_index(0))
    buttons["prev"].on_click(lambda e: state.step(-1))
    buttons["next"].on_click(lambda e: state.step(1))
    buttons["last"].on_click(lambda e: state.set_index(n - 1))
    buttons["play"].on_click(play)
    buttons["pause"].on_click(stop)

    def from_slider(e):
        if e.new is not None and e.new != state.time_index:
            state.set_index(int(e.new))

    def from_date(*_):
        if date.value is not None:
            state.jump(f"{date.value.isoformat()}T{hour.value}:00")

    def to_widgets(*_):
        i = state.time_index
        label.object = f"**{state.time.replace('T', ' ')}:00 UTC**" + ("" if i is not None else " (not in the archive)")
        if i is None:
            return
        if slider.value != i:
            slider.value = i
        d = dt.date.fromisoformat(state.time[:10])
        if date.value != d:
            date.value = d
        if hour.value != state.time[11:13]:
            hour.value = state.time[11:13]

    slider.param.watch(from_slider, "value_throttled")
    date.param.watch(from_date, "value")
    hour.param.watch(from_date, "value")
    state.param.watch(to_widgets, "time")
    to_widgets()
    return pn.Column(pn.Row(*buttons.values(), label), slider, pn.Row(date, hour), css_classes=["time-player"])


def controls(state) -> pn.Column:
    projection = pn.widgets.Select.from_param(state.param.projection, name="projection", width=190,
                                              options=PROJECTION_OPTIONS, css_classes=["projection-select"])
    model = linked_select(state, "model", lambda: state.inv.shown, "model", width=160, css_classes=["model-select"])
    variable = pn.widgets.Select.from_param(state.param.variable, name="variable", width=180,
                                            options={VARIABLE_LABELS[v]: v for v in store.VARIABLES})
    compare = linked_select(state, "compare_to", lambda: state.inv.shown, "second model", width=160)
    a = pn.widgets.Select.from_param(state.param.diff_a, name="A", width=140,
                                     options={SOURCE_LABELS[k]: k for k in store.SOURCES})
    b = pn.widgets.Select.from_param(state.param.diff_b, name="B", width=140,
                                     options={SOURCE_LABELS[k]: k for k in store.SOURCES})
    diff_row = pn.Row(a, b, compare, visible=state.variable == "difference")
    state.param.watch(lambda e: setattr(diff_row, "visible", e.new == "difference"), "variable")
    return pn.Column(pn.Row(model, variable, projection), diff_row, time_controls(state))


def figure(state):
    """The current map for export: a cartopy figure (``model.figures.map_figure``) in the page's
    projection, with the packaged Natural Earth, the TP outline, gridline labels, the stations
    and a colour bar with units (PNG, SVG, PDF)."""
    da = state.map_data()
    box = extent(state.home)
    kind = state.color_kind
    st = store.station_table(state.home)
    st = st.assign(network=st["label"]) if "label" in st else st
    return map_figure(da, title=state.map_title, cmap=store.CMAP[kind], clim=store.CLIM[kind],
                      label="soil moisture (m³ m⁻³)" if kind == "sm" else "difference A - B (m³ m⁻³)",
                      proj=state.projection, extent=(box[0], box[2], box[1], box[3]), stations=st,
                      station_colors=NETWORK_COLORS)


def data(state):
    da = state.map_data()
    da = da.assign_coords(time=np.datetime64(store.parse_time(state.time), "ns")).expand_dims("time")
    da.attrs.update({"source": "sm-downscale dashboard export", "home": state.home})
    if state.variable in ("product", "difference"):
        da.attrs["model"] = state.model
    return export.netcdf_bytes(da)


def stem(state) -> str:
    kind = "diff" if state.variable == "difference" else "sm"
    return f"{state.map_tag()}_{state.time}_{kind}"


def page(state) -> pn.viewable.Viewable:
    plot = pn.pane.HoloViews(map_plot(state, state.color_kind), name="map-plot", css_classes=["map-plot"])
    state.param.watch(lambda e: setattr(plot, "object", map_plot(state, state.color_kind)), ["color_kind", "projection"])
    title = pn.pane.Markdown("", css_classes=["map-title"])

    def retitle(*_):
        title.object = f"### {state.map_title}"

    retitle()
    state.param.watch(retitle, STREAM_PARAMS)
    return pn.Column(
        controls(state),
        message(state, "map", *STREAM_PARAMS),
        title,
        plot,
        pn.pane.Markdown("Colour limits are fixed per variable: soil moisture 0-0.5 m³ m⁻³, differences "
                         "-0.15..0.15 m³ m⁻³. SMAP is drawn on the 10 km grid by area overlap; it exists only at "
                         "its overpass steps (near 00 and 12 UTC). The equal-area view (Lambert azimuthal, centred "
                         "89° E 33° N) keeps areas comparable; the data stay on their lon/lat grid. Hover shows "
                         "value, cell and time; stations: "
                         "CTP-SMTMN (red), Maqu (purple), Naqu (orange), Ngari (cyan).",
                         styles={"font-size": "12px", "color": "#555"}),
        export.export_row(state, stem, figure=figure, data=data, data_ext="nc", watch=STREAM_PARAMS),
        name="map-page",
    )
