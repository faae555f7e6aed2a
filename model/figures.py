"""Publication figures drawn with cartopy + matplotlib (no HoloViews, no Panel): PNG, SVG, PDF.

- :func:`map_figure`: one field (a product frame, a difference, one metric map) on a map
  projection, with the packaged Natural Earth coastlines, borders, lakes and rivers
  (``model/resources/naturalearth``, never downloaded), the TP outline, gridline labels in
  degrees and a colour bar with units.
- :func:`metric_maps_figure`: the layout of the paper's metric-map figure: per model a row of
  R, bias and ubRMSE maps with each map's histogram beneath; one colour bar per metric.

Data are in longitude/latitude (PlateCarree); the default projection is an equal-area one
centred on the plateau (:data:`PROJECTIONS`), so map areas compare honestly.
:func:`setup_cartopy` points cartopy at the packaged shapefiles and forbids downloads; every
function here calls it first.
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, box

from .config import RESOURCES
from .errors import InputError, unknown_name
from .grids import tp_polygon
from .io import atomic_path

NATURALEARTH_DIR = RESOURCES / "naturalearth"
TP_BOX = (73.0, 105.0, 25.0, 40.0)  # lon0, lon1, lat0, lat1 (cartopy's set_extent order)
FORMATS = ("png", "svg", "pdf")
SM_LABEL = "soil moisture (m³ m⁻³)"
#: metric -> (vmin, vmax, colour map, colour-bar label); fixed, never per figure
METRIC_STYLE = {
    "R": (-1.0, 1.0, "RdBu", "R (1)"),
    "bias": (-0.1, 0.1, "RdBu", "bias (m³ m⁻³)"),
    "ubRMSE": (0.0, 0.08, "YlOrRd", "ubRMSE (m³ m⁻³)"),
    "RMSE": (0.0, 0.1, "YlOrRd", "RMSE (m³ m⁻³)"),
}
#: projection name -> (label, cartopy CRS factory). The equal-area one is a spherical Lambert
#: azimuthal equal-area centred at 89 E, 33 N (the plateau's middle); the dashboard's hover
#: inverts it in JavaScript with the same constants.
LAEA_CENTRE = (89.0, 33.0)
SPHERE_RADIUS = 6370997.0  # cartopy/PROJ "sphere" ellipse
PROJECTION_LABELS = {"equal_area": "Lambert equal-area (TP)", "plate_carree": "PlateCarree (lon/lat)"}


def projection(name: str = "equal_area"):
    """The cartopy CRS of a projection name (``equal_area`` or ``plate_carree``)."""
    import cartopy.crs as ccrs  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    if name == "plate_carree":
        return ccrs.PlateCarree()
    if name == "equal_area":
        return ccrs.LambertAzimuthalEqualArea(central_longitude=LAEA_CENTRE[0], central_latitude=LAEA_CENTRE[1],
                                              globe=ccrs.Globe(ellipse="sphere"))

    raise unknown_name("projection", name, list(PROJECTION_LABELS))


def _offline_downloader():
    """cartopy's Natural Earth downloader with downloading turned into a clear error: a
    shapefile that is not packaged fails at once instead of reaching for the network."""
    # lazy: matplotlib + cartopy cost 0.26 s at import; figures only
    from cartopy.io.shapereader import NEShpDownloader

    class OfflineNEShpDownloader(NEShpDownloader):
        def acquire_resource(self, target_path, format_dict):
            raise InputError(f"Natural Earth file {Path(target_path).name} is not packaged in {NATURALEARTH_DIR}",
                             "use a packaged layer (50m/110m coastline, borders, lakes, rivers); maps never download")

    d = NEShpDownloader.default_downloader()
    return OfflineNEShpDownloader(d.url_template, d.target_path_template, d.pre_downloaded_path_template)


def setup_cartopy() -> None:
    """Point cartopy at the packaged Natural Earth files and turn its downloads off."""
    import cartopy  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    cartopy.config["pre_existing_data_dir"] = str(NATURALEARTH_DIR)
    cartopy.config["data_dir"] = str(NATURALEARTH_DIR)
    cartopy.config["downloaders"][("shapefiles", "natural_earth")] = _offline_downloader()


@lru_cache(maxsize=1)
def tp_outline():
    """The TP outline (shapely, lon/lat) for drawing: the exterior rings of the basin union's
    parts larger than 0.5 square degrees (slivers between basins and islands dropped),
    simplified to 0.02 degree, as in the dashboard's basemap."""
    poly = tp_polygon().simplify(0.02, preserve_topology=True)
    parts = [Polygon(p.exterior) for p in getattr(poly, "geoms", [poly]) if p.area > 0.5]
    return MultiPolygon(parts)


@lru_cache(maxsize=4)
def _clipped(category: str, name: str, scale: str) -> tuple:
    """Natural Earth geometries (packaged files, found by cartopy's own lookup) clipped to the
    TP box plus 5 degrees, read once per process."""
    from cartopy.io import shapereader  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    setup_cartopy()
    clip = box(TP_BOX[0] - 5, TP_BOX[2] - 5, TP_BOX[1] + 5, TP_BOX[3] + 5)
    path = shapereader.natural_earth(resolution=scale, category=category, name=name)
    out = []
    for g in shapereader.Reader(path).geometries():
        if g.intersects(clip):
            g = g.intersection(clip)
            if not g.is_empty:
                out.append(g)
    return tuple(out)


def features(scale: str = "50m") -> dict:
    """cartopy features: coastline, borders, lakes, rivers (packaged Natural Earth) and the TP
    outline, as ``{name: (feature, style)}``."""
    import cartopy.crs as ccrs  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only
    import cartopy.feature as cf  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    pc = ccrs.PlateCarree()
    layers = {"coastline": ("physical", "coastline", dict(edgecolor="#555555", linewidth=0.6)),
              "borders": ("cultural", "admin_0_boundary_lines_land",
                          dict(edgecolor="#666666", linewidth=0.6, linestyle=(0, (4, 2)))),
              "lakes": ("physical", "lakes", dict(edgecolor="#3b7bbf", linewidth=0.5)),
              "rivers": ("physical", "rivers_lake_centerlines", dict(edgecolor="#7fb2e0", linewidth=0.45))}
    out = {name: (cf.ShapelyFeature(_clipped(cat, ne, scale), pc), dict(style, facecolor="none"))
           for name, (cat, ne, style) in layers.items()}
    out["tp_outline"] = (cf.ShapelyFeature([tp_outline()], pc), dict(edgecolor="black", facecolor="none", linewidth=0.9))
    return out


def data_extent(lon, lat, values, margin: float = 1.0):
    """(lon0, lon1, lat0, lat1) of the finite values plus a margin, inside the TP box."""
    v = np.asarray(values)
    ok = np.isfinite(v)
    if not ok.any():
        return TP_BOX
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    cols = np.flatnonzero(ok.any(axis=0))
    rows = np.flatnonzero(ok.any(axis=1))
    la = np.sort(lat[[rows[0], rows[-1]]])
    lo = np.sort(lon[[cols[0], cols[-1]]])
    return (max(TP_BOX[0], lo[0] - margin), min(TP_BOX[1], lo[1] + margin),
            max(TP_BOX[2], la[0] - margin), min(TP_BOX[3], la[1] + margin))


def map_axes(fig, spec, proj: str = "equal_area", extent=TP_BOX, labels: bool = True, fontsize: float = 7):
    """A GeoAxes on ``spec`` (a subplot spec or rect) with the basemap, extent and gridlines."""
    import cartopy.crs as ccrs  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    setup_cartopy()
    ax = fig.add_subplot(spec, projection=projection(proj))
    ax.set_extent(extent, crs=ccrs.PlateCarree())
    for name, (feat, style) in features().items():
        ax.add_feature(feat, zorder=3 if name == "tp_outline" else 2, **style)
    style = dict(crs=ccrs.PlateCarree(), draw_labels=labels, linewidth=0.3, color="#999999",
                 alpha=0.7, linestyle=":", x_inline=False, y_inline=False)
    # the gridlines and their labels are computed once per panel instead of on every draw:
    # constrained layout draws each panel ~8 times per save, and the gridliner's projection of
    # its lines was half of a metric-map figure's time (45 panels: PNG 30.0 -> 16.7 s, PDF
    # 41.6 -> 18.4 s, the PNG identical pixel for pixel; docs/benchmarks.md). cartopy 0.23
    # deprecated ``auto_update``; where it is gone, the default (redraw each time) is used.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            gl = ax.gridlines(auto_update=False, **style)
    except TypeError:
        gl = ax.gridlines(**style)
    if labels:
        gl.top_labels = False
        gl.right_labels = False
        gl.xlabel_style = gl.ylabel_style = {"size": fontsize}
        gl.rotate_labels = False
    return ax


def _mesh(ax, lon, lat, values, vmin, vmax, cmap):
    import cartopy.crs as ccrs  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    v = np.ma.masked_invalid(np.asarray(values, float))
    m = ax.pcolormesh(np.asarray(lon, float), np.asarray(lat, float), v, vmin=vmin, vmax=vmax, cmap=cmap,
                      shading="nearest", transform=ccrs.PlateCarree(), zorder=1)
    m.set_rasterized(True)  # vector files stay small; lines and text stay vector
    return m


def _lonlat(da):
    if "lat" not in da.coords or "lon" not in da.coords:
        raise InputError(f"{da.name!r} has no lat/lon coordinates", "pass a map with 1-D lat and lon coordinates")
    lat = np.asarray(da["lat"].values, float)
    lon = np.asarray(da["lon"].values, float)
    if lat.ndim != 1 or lon.ndim != 1 or da.ndim != 2:
        raise InputError(f"{da.name!r} is not a 2-D map on 1-D lat/lon (dims {da.dims})",
                         "select one time step / one model first")
    v = np.asarray(da.transpose(*[d for d in da.dims if d in da["lat"].dims] +
                                 [d for d in da.dims if d in da["lon"].dims]).values, float)
    return lon, lat, v


def map_figure(da, title: str = "", cmap: str = "YlGnBu", clim=(0.0, 0.5), label: str = SM_LABEL,
               proj: str = "equal_area", extent=None, stations=None, station_colors=None, width: float = 7.5):
    """One map (DataArray on 1-D lat/lon, values in the units of ``label``) as a matplotlib Figure.

    ``extent``: (lon0, lon1, lat0, lat1), default the finite values plus 1 degree.
    ``stations``: optional DataFrame with lon, lat and network, drawn as points coloured by
    ``station_colors`` (network -> colour)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only
    from matplotlib.figure import Figure  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    lon, lat, v = _lonlat(da)
    extent = extent or data_extent(lon, lat, v)
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-6)
    fig = Figure(figsize=(width, max(2.8, (width - 0.6) * aspect + 1.1)), layout="constrained")
    ax = map_axes(fig, 111, proj, extent)
    m = _mesh(ax, lon, lat, v, clim[0], clim[1], cmap)
    if stations is not None and len(stations):
        import cartopy.crs as ccrs  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

        colors = station_colors or {"CTP_SMTMN": "#d62728", "MAQU": "#9467bd", "NAQU": "#ff7f0e", "NGARI": "#17becf"}
        for net, sub in stations.groupby("network"):
            ax.scatter(sub["lon"], sub["lat"], s=10, c=colors.get(str(net), "#444444"), edgecolors="white",
                       linewidths=0.4, transform=ccrs.PlateCarree(), zorder=4, label=str(net))
        ax.legend(loc="upper left", fontsize=6, framealpha=0.8, markerscale=1.2)
    cb = fig.colorbar(m, ax=ax, orientation="horizontal", shrink=0.6, pad=0.02, aspect=40, extend="both")
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    plt.close("all")
    return fig


def metric_maps_figure(ds, models, metrics=("R", "bias", "ubRMSE"), reference: str = "SMAP L3 9 km",
                       proj: str = "equal_area", extent=None, map_width: float = 2.9):
    """The paper's metric-map figure: per model a row of metric maps, each with its histogram
    beneath; columns are the metrics, with one colour bar (units) per metric at the bottom.

    ``ds``: Dataset with ``metrics`` as variables, dims (model, lat, lon) or (model, y, x) with
    1-D ``lat``/``lon`` coordinates (``vs_smap_maps.nc`` / ``vs_truth_maps.nc``)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only
    from matplotlib.figure import Figure  # lazy: matplotlib + cartopy cost 0.26 s at import; figures only

    models = [str(m) for m in models]
    missing = [m for m in models if m not in [str(x) for x in ds["model"].values]]
    if missing or not models:
        raise InputError(f"metric maps have no model {missing or '(none given)'}",
                         f"choose among {[str(x) for x in ds['model'].values]}")
    miss = [k for k in metrics if k not in ds]
    if miss:
        raise InputError(f"metric maps have no variable {miss}", f"choose among {list(ds.data_vars)}")
    if extent is None:
        lon, lat, v = _lonlat(ds[metrics[0]].sel(model=models[0]))
        finite = np.any([np.isfinite(_lonlat(ds[metrics[0]].sel(model=m))[2]) for m in models], axis=0)
        extent = data_extent(lon, lat, np.where(finite, 1.0, np.nan))
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-6)
    map_h = map_width * aspect * 1.1
    hist_h = 0.75
    nrow, ncol = len(models), len(metrics)
    fig = Figure(figsize=(map_width * ncol + 0.9, nrow * (map_h + hist_h + 0.45) + 1.1), layout="constrained")
    gs = fig.add_gridspec(2 * nrow + 1, ncol, height_ratios=[map_h, hist_h] * nrow + [0.12])
    meshes = {}
    for i, model in enumerate(models):
        for j, k in enumerate(metrics):
            vmin, vmax, cmap, label = METRIC_STYLE.get(k, (None, None, "viridis", k))
            lon, lat, v = _lonlat(ds[k].sel(model=model))
            ax = map_axes(fig, gs[2 * i, j], proj, extent, labels=True, fontsize=5.5)
            meshes[k] = _mesh(ax, lon, lat, v, vmin, vmax, cmap)
            ax.set_title(f"{model}: {k}", fontsize=8)
            h = fig.add_subplot(gs[2 * i + 1, j])
            x = v[np.isfinite(v)]
            lo, hi = (vmin, vmax) if vmin is not None else (np.nanmin(x) if x.size else 0, np.nanmax(x) if x.size else 1)
            edges = np.linspace(lo, hi, 41)
            counts, _ = np.histogram(np.clip(x, lo, hi), bins=edges)
            centres = 0.5 * (edges[1:] + edges[:-1])
            colors = plt.get_cmap(cmap)((centres - lo) / (hi - lo)) if hi > lo else None
            h.bar(centres, counts, width=np.diff(edges), color=colors, edgecolor="#444444", linewidth=0.2)
            h.set_xlim(lo, hi)
            h.tick_params(labelsize=5.5)
            h.set_ylabel("cells", fontsize=6)
            if x.size:
                med = float(np.median(x))
                h.axvline(med, color="black", linewidth=0.7)
                h.text(0.02, 0.92, f"median {med:.3f}\nmean {x.mean():.3f}\nn {x.size}", transform=h.transAxes,
                       fontsize=5.5, va="top")
            else:
                h.text(0.5, 0.5, "insufficient data", transform=h.transAxes, fontsize=6, ha="center")
    for j, k in enumerate(metrics):
        label = METRIC_STYLE.get(k, (None, None, None, k))[3]
        cax = fig.add_subplot(gs[-1, j])
        cb = fig.colorbar(meshes[k], cax=cax, orientation="horizontal", extend="both")
        cb.set_label(label, fontsize=7)
        cb.ax.tick_params(labelsize=6)
    fig.suptitle(f"Metric maps against {reference}", fontsize=10)
    plt.close("all")
    return fig


def save(fig, target, fmt: str | None = None, dpi: int = 150):
    """Write a Figure as PNG/SVG/PDF to a path (atomically) or a binary buffer; returns ``target``."""
    fmt = (fmt or Path(str(target)).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"figure format {fmt!r} is not supported", f"use one of {FORMATS}")
    if isinstance(target, (str, Path)):
        with atomic_path(Path(target)) as tmp:
            with open(tmp, "wb") as fh:
                fig.savefig(fh, format=fmt, dpi=dpi)
        return target
    fig.savefig(target, format=fmt, dpi=dpi)
    return target


def figure_bytes(fig, fmt: str = "png", dpi: int = 150) -> io.BytesIO:
    buf = io.BytesIO()
    save(fig, buf, fmt, dpi)
    buf.seek(0)
    return buf
