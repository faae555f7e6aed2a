"""Cartopy publication figures (model/figures.py): packaged Natural Earth only, projections,
what is drawn (data, features, gridline labels, colour bar units) and the three file formats."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr

from model import figures as F
from model.errors import InputError


def _field(seed=0):
    lat = np.round(np.arange(29.05, 34.0, 0.1), 2)
    lon = np.round(np.arange(88.05, 95.0, 0.1), 2)
    v = np.random.default_rng(seed).uniform(0.05, 0.45, (lat.size, lon.size)).astype("f4")
    v[:5, :5] = np.nan
    return xr.DataArray(v, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"), name="pscnet")


def test_natural_earth_is_packaged_and_never_downloaded():
    from cartopy.io import shapereader

    F.setup_cartopy()
    path = shapereader.natural_earth(resolution="50m", category="physical", name="coastline")
    assert str(path).startswith(str(F.NATURALEARTH_DIR))
    with pytest.raises(InputError, match="not packaged"):
        shapereader.natural_earth(resolution="10m", category="physical", name="coastline")
    feats = F.features()
    assert set(feats) == {"coastline", "borders", "lakes", "rivers", "tp_outline"}
    rivers = list(feats["rivers"][0].geometries())
    assert rivers and all(g.bounds[0] >= 68 - 1e-9 and g.bounds[2] <= 110 + 1e-9 for g in rivers)
    assert feats["tp_outline"][0].geometries()


def test_projections():
    laea = F.projection("equal_area")
    assert laea.proj4_params["proj"] == "laea" and laea.proj4_params["lon_0"] == 89.0
    assert F.projection("plate_carree").proj4_params["proj"] == "eqc"
    with pytest.raises(InputError, match="did you mean|equal_area"):
        F.projection("mercator")


@pytest.mark.parametrize("proj", ["equal_area", "plate_carree"])
def test_map_figure_draws_data_features_labels_and_units(proj):
    import pandas as pd
    from cartopy.mpl.geoaxes import GeoAxes
    from cartopy.mpl.feature_artist import FeatureArtist

    da = _field()
    st = pd.DataFrame({"lon": [91.5, 92.0], "lat": [31.5, 32.0], "network": ["CTP_SMTMN", "NAQU"]})
    fig = F.map_figure(da, title="pscnet 2017-07-06 03 UTC", proj=proj, stations=st)
    geo = [a for a in fig.axes if isinstance(a, GeoAxes)]
    assert len(geo) == 1
    ax = geo[0]
    assert ax.projection == F.projection(proj)
    mesh = next(c for c in ax.collections if hasattr(c, "get_array") and c.get_array() is not None
                and np.size(c.get_array()) == da.size)
    arr = np.ma.masked_invalid(mesh.get_array()).reshape(da.shape)
    np.testing.assert_allclose(arr.filled(np.nan), da.values, rtol=1e-6)
    assert mesh.get_clim() == (0.0, 0.5)
    feats = [a for a in ax.artists + ax.collections if isinstance(a, FeatureArtist)]
    assert len(feats) == 5
    cbar = [a for a in fig.axes if a is not ax]
    assert cbar and "m³ m⁻³" in cbar[0].get_xlabel()
    png = F.figure_bytes(fig, "png", dpi=80).getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png))
    # the data are drawn: many pixels of the colour map's greens/blues, not a blank frame
    rgb = img[..., :3]
    coloured = (rgb[..., 2] > rgb[..., 0] + 0.1).mean()
    assert coloured > 0.1, coloured
    from cartopy.mpl.gridliner import Gridliner

    gl = next(a for a in ax.artists if isinstance(a, Gridliner))
    labels = [t.get_text() for t in gl.label_artists if t.get_visible()]
    assert any("°N" in s for s in labels) and any("°E" in s for s in labels), labels
    svg = F.figure_bytes(fig, "svg").getvalue()
    pdf = F.figure_bytes(fig, "pdf").getvalue()
    assert svg.lstrip().startswith(b"<?xml") and b"<image" in svg  # the mesh is a bitmap inside
    assert len(svg) < 2_000_000
    assert pdf[:5] == b"%PDF-"
    with pytest.raises(InputError, match="format"):
        F.figure_bytes(fig, "jpg")


def test_metric_maps_figure_layout_and_histograms():
    from cartopy.mpl.geoaxes import GeoAxes

    models = ["pscnet", "unet"]
    ds = xr.Dataset({k: xr.concat([_field(i + 3 * j) * s for i in range(2)], dim="model")
                     for j, (k, s) in enumerate((("R", 2.0), ("bias", 0.1), ("ubRMSE", 0.1)))})
    ds = ds.assign_coords(model=models)
    fig = F.metric_maps_figure(ds, models, reference="SMAP L3 9 km")
    geo = [a for a in fig.axes if isinstance(a, GeoAxes)]
    assert [a.get_title() for a in geo] == [f"{m}: {k}" for m in models for k in ("R", "bias", "ubRMSE")]
    hists = [a for a in fig.axes if not isinstance(a, GeoAxes) and a.get_ylabel() == "cells"]
    assert len(hists) == 6
    n_finite = int(np.isfinite(ds["bias"].sel(model="unet").values).sum())
    h = hists[4]  # unet: bias
    assert sum(p.get_height() for p in h.patches) == n_finite
    assert h.get_xlim() == (-0.1, 0.1)
    cbars = [a for a in fig.axes if a not in geo and a not in hists]
    assert [c.get_xlabel() for c in cbars] == ["R (1)", "bias (m³ m⁻³)", "ubRMSE (m³ m⁻³)"]
    assert F.figure_bytes(fig, "png", dpi=60).getvalue()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="no model"):
        F.metric_maps_figure(ds, ["vit"])
    with pytest.raises(InputError, match="no variable"):
        F.metric_maps_figure(ds, models, metrics=("rho",))


def test_validate_report_writes_the_paper_figure(tiny, tmp_path):
    """``sm-downscale validate``'s report: the metric-map figure in PNG and PDF."""
    import shutil

    from model.validation.report import make_report

    folder = tmp_path / "validation"
    shutil.copytree(tiny / "validation", folder)
    shutil.rmtree(folder / "report", ignore_errors=True)
    index = make_report(folder)
    text = index.read_text()
    for ref in ("smap", "truth"):
        png = folder / "report" / f"maps_{ref}.png"
        pdf = png.with_suffix(".pdf")
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:5] == b"%PDF-"
        assert f"({png.name})" in text and f"({pdf.name})" in text
