"""GeoViews maps and cartopy exports of the dashboard, without a browser: the map page's
elements, its projections and the numbers in the rendered Bokeh glyphs; the metric maps;
the PNG/SVG/PDF exports."""

from __future__ import annotations

import geoviews as gv
import holoviews as hv
import numpy as np
import pytest

from dashboard import export, store
from dashboard.views import common, map as map_view, metrics as metrics_view

hv.extension("bokeh")


def _image_source(plot):
    return next(r.data_source.data for r in plot.state.renderers if "image" in r.data_source.data)


@pytest.mark.parametrize("proj", ["plate_carree", "equal_area"])
def test_map_is_geoviews_in_the_picked_projection(state_factory, proj):
    s = state_factory(projection=proj)
    obj = map_view.map_plot(s, "sm")
    plot = hv.renderer("bokeh").get_plot(obj)
    assert plot.projection == common.crs(proj)
    # the layers are GeoViews elements in PlateCarree
    el = obj[()] if isinstance(obj, hv.DynamicMap) else obj
    kinds = {type(e).__name__ for e in el}
    assert {"Image", "Feature", "Points"} <= kinds, kinds
    assert all(isinstance(e, gv.element.geo._Element) for e in el if type(e).__name__ in ("Feature", "Points"))
    data = _image_source(plot)
    img = np.asarray(data["image"][0], float)
    ref = s.map_data().values
    assert np.isfinite(img).sum() > 100
    assert np.nanmin(img) >= np.nanmin(ref) - 1e-6 and np.nanmax(img) <= np.nanmax(ref) + 1e-6
    box = common.extent(s.home)
    x0, y0, x1, y1 = common.projected_box(box, proj)
    assert data["x"][0] == pytest.approx(x0, rel=0.05, abs=2e4 if proj == "equal_area" else 0.2)
    if proj == "plate_carree":
        # in lon/lat the raster's mean is the frame's mean over the shown box
        lat, lon = store.tp10_coords()
        sel = ref[np.ix_((lat > box[1]) & (lat < box[3]), (lon > box[0]) & (lon < box[2]))]
        assert np.nanmean(img) == pytest.approx(np.nanmean(sel), rel=0.02)
    else:
        assert abs(x1 - x0) > 1e5  # metres, not degrees
        # each projected pixel holds the value of the 10 km cell under it (inverse projection
        # by cartopy): the cached warp moves values, it does not blend them
        import cartopy.crs as ccrs

        xs, ys, _ = map_view._warp(s.home, proj)
        frame = map_view._projected(s, proj)
        v = frame.dimension_values(2, flat=False)
        X, Y = np.meshgrid(frame.dimension_values(0, expanded=False), frame.dimension_values(1, expanded=False))
        ok = np.isfinite(v)
        ll = ccrs.PlateCarree().transform_points(common.crs(proj), X[ok], Y[ok])
        row = np.floor((ll[:, 1] - 25.0) / 0.1).astype(int)
        col = np.floor((ll[:, 0] - 73.0) / 0.1).astype(int)
        same = np.isclose(v[ok], ref[row, col])
        assert ok.sum() > 500 and same.mean() > 0.95, same.mean()
    # a time step replaces the raster
    before = img.copy()
    s.step(1)
    after = np.asarray(_image_source(plot)["image"][0], float)
    assert not np.allclose(np.nan_to_num(before), np.nan_to_num(after))


def test_projected_box_and_basemap_features():
    box = (88.0, 29.0, 95.0, 34.0)
    x0, y0, x1, y1 = common.projected_box(box, "plate_carree")
    assert (x0, y0, x1, y1) == pytest.approx((88.0, 29.0, 95.0, 34.0))
    x0, y0, x1, y1 = common.projected_box(box, "equal_area")
    assert x0 < 0 < x1 and 400e3 < y1 - y0 < 700e3  # 5 degrees of latitude ~ 556 km
    layers = {e.label: e for e in common.geo_basemap()}
    assert set(layers) == {"coastline", "borders", "lakes", "rivers", "tp_outline"}
    assert all(isinstance(e, gv.Feature) for e in layers.values())
    outline = list(layers["tp_outline"].data.geometries())[0]
    assert 80 < outline.area < 400  # the plateau: ~2.5 million km2 ~ 250 square degrees


def test_metric_maps_are_geoviews(state_factory):
    s = state_factory()
    maps, hists, scats = metrics_view.plots(s)
    el = maps[0]
    kinds = {type(e).__name__ for e in (el[()] if isinstance(el, hv.DynamicMap) else el)}
    assert "Feature" in kinds
    plot = hv.renderer("bokeh").get_plot(maps[0])
    img = np.asarray(_image_source(plot)["image"][0], float)
    ref = s.metric_map(s.model).values
    assert np.isfinite(img).sum() > 50
    assert np.nanmin(img) >= np.nanmin(ref) - 1e-6 and np.nanmax(img) <= np.nanmax(ref) + 1e-6


def test_station_map_is_geoviews_and_a_click_picks_the_nearest_station(state_factory):
    from dashboard.views import stations as stations_view

    s = state_factory(network="NAQU")
    obj, tap = stations_view.station_map(s)
    plot = hv.renderer("bokeh").get_plot(obj)
    assert plot.projection == common.crs("plate_carree")
    el = obj[()] if isinstance(obj, hv.DynamicMap) else obj
    assert {"Feature", "Points"} <= {type(e).__name__ for e in el}
    pts = [e for e in el if isinstance(e, gv.Points) and e.group == "Stations"]
    assert len(pts) == 1 and len(pts[0]) == (store.station_table(s.home)["network"] == "NAQU").sum()
    # a click 0.05 degrees beside a station (plot coordinates are lon/lat) picks it
    row = s.stations().iloc[-1]
    tap.event(x=float(row["lon"]) + 0.05, y=float(row["lat"]) - 0.03)
    assert s.station == row["id"]


@pytest.mark.parametrize("proj", ["plate_carree", "equal_area"])
def test_regenerate_panels_are_geoviews_maps_of_the_scene(state_factory, proj):
    from dashboard.views import regenerate as regen_view

    s = state_factory(projection=proj)
    scene = s.map_data()
    res = {"model": s.model, "time": s.time, "scene": scene, "archived": scene, "device": "cpu",
           "seconds": 1.0}
    row = regen_view.result_plot(s, res)
    assert len(row) == 3
    x0, y0, x1, y1 = common.projected_box(common.extent(s.home), proj)
    for pane, want in zip(row, ("scene", "scene", "zero")):
        plot = hv.renderer("bokeh").get_plot(pane.object)
        assert plot.projection == common.crs(proj)
        assert plot.state.x_range.start == pytest.approx(x0, rel=0.01, abs=1.0)
        img = np.asarray(_image_source(plot)["image"][0], float)
        assert np.isfinite(img).sum() > 100
        if want == "zero":
            assert np.nanmax(np.abs(img)) == 0.0
        else:
            ref = scene.values
            assert np.nanmin(img) >= np.nanmin(ref) - 1e-6 and np.nanmax(img) <= np.nanmax(ref) + 1e-6


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF-")])
def test_exports_are_cartopy_figures(state_factory, fmt, magic):
    from cartopy.mpl.geoaxes import GeoAxes

    s = state_factory(projection="equal_area")
    fig = map_view.figure(s)
    geo = [a for a in fig.axes if isinstance(a, GeoAxes)]
    assert len(geo) == 1 and geo[0].projection == common.crs("equal_area")
    assert s.map_title in geo[0].get_title()
    out = export.figure_bytes(fig, fmt).getvalue()
    assert out.lstrip()[:len(magic)] == magic and len(out) > 10_000
    if fmt != "pdf":
        return
    mfig = metrics_view.figure(s)  # the paper's layout for models A and B
    titles = [a.get_title() for a in mfig.axes if isinstance(a, GeoAxes)]
    assert titles[:3] == [f"{s.model}: {k}" for k in ("R", "bias", "ubRMSE")]
    assert export.figure_bytes(mfig, fmt).getvalue().lstrip()[:len(magic)] == magic
