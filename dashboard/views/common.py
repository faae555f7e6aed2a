"""Pieces every page uses: the offline basemap, the station layer, messages, linked selects."""

from __future__ import annotations

from functools import lru_cache

import cartopy.feature as cf
import geoviews as gv
import holoviews as hv
import numpy as np
import panel as pn

from model.figures import features, projection

from .. import store

NETWORK_COLORS = {"CTP-SMTMN": "#d62728", "Maqu": "#9467bd", "Naqu": "#ff7f0e", "Ngari": "#17becf"}
SOURCE_COLORS = {"insitu": "black", "smap_l3_9km": "#d62728", "smap_l4": "#8c564b", "era5land": "#7f7f7f"}
MODEL_PALETTE = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#e377c2", "#17becf", "#bcbd22", "#8c564b",
                 "#7f7f7f", "#aec7e8", "#98df8a"]
FRAME_W, FRAME_H = 760, 356  # map frame (px): 32 x 15 degrees at equal degree scaling
BASEMAP_STYLE = {"coastline": dict(color="#555555", line_width=0.8),
                 "borders": dict(color="#777777", line_width=0.8, line_dash="dashed"),
                 "lakes": dict(color="#3b7bbf", line_width=0.8),
                 "rivers": dict(color="#7fb2e0", line_width=0.6),
                 "tp_outline": dict(color="black", line_width=1.4)}
MPL_BASEMAP_STYLE = {"coastline": dict(color="#555555", linewidth=0.6),
                     "borders": dict(color="#777777", linewidth=0.6, linestyle="dashed"),
                     "lakes": dict(color="#3b7bbf", linewidth=0.6),
                     "rivers": dict(color="#7fb2e0", linewidth=0.5),
                     "tp_outline": dict(color="black", linewidth=1.0)}


def model_color(models, m) -> str:
    models = list(models)
    return MODEL_PALETTE[models.index(m) % len(MODEL_PALETTE)] if m in models else "#444444"


def basemap(backend: str = "bokeh") -> hv.Overlay:
    """Coastlines, borders, lakes, rivers (Natural Earth 1:50m, packaged) and the TP outline.

    Each layer is ONE line with NaN breaks, drawn as a ``Curve`` (columnar, cheap to overlay
    on every frame) rather than a ``Path`` of many pieces (HoloViews' multi-path overhead made
    every map update several times slower)."""
    lines = store.basemap_lines()
    layers = []
    for name in ("rivers", "lakes", "borders", "coastline", "tp_outline"):
        arr = lines.get(name)
        arr = arr if arr is not None and len(arr) else np.full((1, 2), np.nan)
        curve = hv.Curve((arr[:, 0], arr[:, 1]), kdims=["lon"], vdims=["lat"], label=name, group="Basemap")
        if backend == "bokeh":
            curve = curve.opts(**BASEMAP_STYLE[name], tools=[], default_tools=[], apply_ranges=False,
                               show_legend=False)
        else:
            curve = curve.opts(**MPL_BASEMAP_STYLE[name], backend="matplotlib", show_legend=False)
        layers.append(curve)
    return hv.Overlay(layers)


def station_points(table, backend: str = "bokeh", size: int = 7, element=hv.Points, **kw) -> hv.Points:
    pts = element(table, kdims=["lon", "lat"], **kw,
                    vdims=[hv.Dimension("label", label="network"), "station", "id", "n_insitu"], group="Stations")
    if backend == "bokeh":
        return pts.opts(color="label", cmap=NETWORK_COLORS, size=size, line_color="white", line_width=0.8,
                        tools=["hover"], show_legend=True, legend_position="top_left", apply_ranges=False)
    return pts.opts(color="label", cmap=NETWORK_COLORS, s=size * 4, edgecolor="white", backend="matplotlib",
                    show_legend=True, legend_position="top_left")


def message(state, page: str, *deps):
    """An alert that shows why the page cannot draw its view (hidden when it can)."""
    alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                          css_classes=["empty-state"], name=f"{page}-message")

    def update(*_):
        probs = state.problems(page)
        alert.object = "\n\n".join(probs)
        alert.visible = bool(probs)

    update()
    state.param.watch(update, list(deps))
    return alert


def linked_select(state, pname: str, options, name: str, **kw) -> pn.widgets.Select:
    """A Select that edits a String parameter of the state (both ways); a value not among the
    options (e.g. an unknown model from a URL) shows as an extra, flagged choice. ``options``
    may be a function: it is asked again whenever the home's data change (``state.version``),
    so a model archived while the page is open becomes a choice."""
    get = options if callable(options) else (lambda: options)
    opts = list(get())
    cur = getattr(state, pname)

    def with_current(v):  # a new list each time: an option list changed in place is no change to param
        return list(opts) if (v in opts or not v) else [*opts, v]

    w = pn.widgets.Select(name=name, options=with_current(cur), value=cur if cur else (opts[0] if opts else None), **kw)

    def to_state(e):
        if e.new is not None and e.new != getattr(state, pname):
            setattr(state, pname, e.new)

    def to_widget(e):
        w.options = with_current(e.new)
        if w.value != e.new:
            w.value = e.new

    def new_options(_):
        opts[:] = list(get())
        w.options = with_current(getattr(state, pname))

    w.param.watch(to_state, "value")
    state.param.watch(to_widget, pname)
    if callable(options):
        state.param.watch(new_options, "version")
    return w


def extent(home: str, margin: float = 1.0):
    """(lon0, lat0, lon1, lat1): the region the product covers (the whole TP box if it covers
    most of it; the simulated area of a small virtual world)."""
    box = store.data_extent(home)
    if box is None:
        return store.BBOX
    lon0, lat0, lon1, lat1 = box
    return (max(store.BBOX[0], lon0 - margin), max(store.BBOX[1], lat0 - margin),
            min(store.BBOX[2], lon1 + margin), min(store.BBOX[3], lat1 + margin))


def frame_size(box, width: int = FRAME_W, max_height: int = 480):
    """Frame width and height (px) that keep one degree of longitude = one degree of latitude."""
    lon0, lat0, lon1, lat1 = box
    h = int(round(width * (lat1 - lat0) / (lon1 - lon0)))
    if h > max_height:
        return int(round(max_height * (lon1 - lon0) / (lat1 - lat0))), max_height
    return width, h


def nan_image(value_name="value") -> hv.Image:
    lat, lon = store.tp10_coords()
    return hv.Image((lon, lat, np.full((lat.size, lon.size), np.nan, np.float32)), kdims=["lon", "lat"],
                    vdims=[value_name])


# ------------------------------------------------------------------ GeoViews maps
#: projection picker: label -> name (model.figures.projection)
PROJECTION_OPTIONS = {"Lambert equal-area (TP)": "equal_area", "PlateCarree (lon/lat)": "plate_carree"}


def crs(name: str = "plate_carree"):
    """The cartopy CRS of a projection name (PlateCarree data; equal-area TP view)."""
    return projection(name)


@lru_cache(maxsize=4)
def _projected_features(proj: str) -> tuple:
    """(name, cartopy feature) of the basemap with its geometries projected ONCE to ``proj``
    (cartopy), so no session and no frame pays the projection of the lines again."""
    target = crs(proj)
    out = []
    for name, (feat, _style) in features().items():
        if proj == "plate_carree":
            out.append((name, feat))
            continue
        # projected, then simplified to 1 km (below a screen pixel of the TP view): GeoViews
        # re-projects a Feature's lines on every render, at a cost that grows with the vertices
        geoms = [target.project_geometry(g, feat.crs).simplify(1000.0) for g in feat.geometries()]
        out.append((name, cf.ShapelyFeature([g for g in geoms if not g.is_empty], target)))
    return tuple(out)


def geo_basemap(backend: str = "bokeh", proj: str = "plate_carree") -> hv.Overlay:
    """Coastlines, borders, lakes, rivers (packaged Natural Earth 1:50m, clipped to the TP box
    once per process) and the TP outline, as GeoViews ``Feature`` elements, already in the
    plot's projection ``proj`` (projected once per process)."""
    layers = []
    for name, feat in _projected_features(proj):
        el = gv.Feature(feat, group="Basemap", label=name)
        if backend == "bokeh":
            el = el.opts(**BASEMAP_STYLE[name], fill_color=None, tools=[], default_tools=[], apply_ranges=False,
                         show_legend=False)
        layers.append(el)
    return hv.Overlay(layers)


def geo_station_points(table, proj: str = "plate_carree") -> hv.Points:
    """The station layer as GeoViews points, given in the plot's projection ``proj`` (the
    lon/lat of the table projected here with cartopy, once per render; GeoViews would otherwise
    reproject the layer's extent on every render), lon/lat kept for the hover."""
    if proj == "plate_carree":
        return station_points(table, element=gv.Points, crs=crs("plate_carree"))
    xy = crs(proj).transform_points(crs("plate_carree"), table["lon"].to_numpy(float), table["lat"].to_numpy(float))
    t = table.assign(x=xy[:, 0], y=xy[:, 1])
    pts = gv.Points(t, kdims=["x", "y"], crs=crs(proj), group="Stations",
                    vdims=[hv.Dimension("label", label="network"), "station", "id", "n_insitu", "lon", "lat"])
    return pts.opts(color="label", cmap=NETWORK_COLORS, size=7, line_color="white", line_width=0.8,
                    tools=["hover"], show_legend=True, legend_position="top_left", apply_ranges=False)


def projected_box(box, name: str):
    """(x0, y0, x1, y1) in the projection's coordinates that holds the lon/lat ``box``
    (lon0, lat0, lon1, lat1): its boundary sampled densely and projected."""
    lon0, lat0, lon1, lat1 = box
    t = np.linspace(0, 1, 101)
    lons = np.concatenate([lon0 + (lon1 - lon0) * t, np.full_like(t, lon1), lon1 - (lon1 - lon0) * t,
                           np.full_like(t, lon0)])
    lats = np.concatenate([np.full_like(t, lat0), lat0 + (lat1 - lat0) * t, np.full_like(t, lat1),
                           lat1 - (lat1 - lat0) * t])
    xy = crs(name).transform_points(crs("plate_carree"), lons, lats)
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())
