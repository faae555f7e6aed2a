"""Static fields of the virtual TP: terrain (REAL), climate normals, land cover, soil.

Everything here is a function of the real TP10 terrain (``model.data.static.static_layers``:
elevation, slope, aspect and the TP mask, from the packaged DEM) and of smooth random fields
drawn from the seed. The equations and the numbers are documented in ``docs/world.md``.

The *true* fields drive the simulation. What a user would have (SoilGrids/MODIS-like layers in
``inputs/static/static_tp10.nc``) is the true fields seen through a map's own errors
(:func:`user_static_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter

from ..data.static import static_layers
from ..grids import tp10
from .config import WorldConfig, rng_for

#: Land-cover legend (own classes; the nearest IGBP class in brackets).
LAND_COVER = {
    1: ("barren", "IGBP 16 barren"),
    2: ("alpine_steppe", "IGBP 10 grasslands (sparse)"),
    3: ("alpine_meadow", "IGBP 10 grasslands (dense)"),
    4: ("shrubland", "IGBP 7 open shrublands"),
    5: ("forest", "IGBP 1 evergreen needleleaf forest"),
    6: ("cropland", "IGBP 12 croplands"),
}
#: vegetation water content (kg m-2) per unit vegetation fraction, by class (SMAP's dense-
#: vegetation threshold is 5 kg m-2)
VWC_PER_FV = {1: 0.5, 2: 1.0, 3: 2.0, 4: 4.0, 5: 9.0, 6: 3.0}
ALBEDO = {1: 0.28, 2: 0.22, 3: 0.19, 4: 0.17, 5: 0.12, 6: 0.19}

# Approximate annual precipitation (mm) of well-known TP stations: rounded climate normals,
# used only to shape the smooth east-wet / west-dry gradient (not a data product).
#               lat    lon    mm
PRECIP_ANCHORS = np.array([
    (33.9, 102.1, 600), (31.5, 92.1, 430), (29.7, 91.1, 440), (29.6, 94.4, 660),
    (32.5, 80.1, 70), (36.4, 94.9, 45), (33.0, 97.0, 480), (34.9, 98.2, 320),
    (32.3, 84.1, 170), (28.6, 87.1, 280), (29.3, 88.9, 430), (31.2, 97.2, 480),
    (37.4, 97.4, 180), (38.8, 93.3, 20), (34.2, 92.4, 280), (31.4, 90.0, 310),
    (37.8, 75.2, 70), (29.7, 84.0, 290), (33.8, 99.7, 550), (32.7, 103.6, 720),
    (31.6, 100.0, 650), (30.0, 100.3, 720), (28.5, 98.9, 650), (35.3, 75.8, 150),
    (37.2, 100.5, 380), (38.2, 99.0, 300), (36.0, 80.5, 60), (35.7, 86.0, 120),
])


def smooth_noise(rng: np.random.Generator, shape, sigma_cells: float) -> np.ndarray:
    """A unit-variance Gaussian random field with correlation length ``sigma_cells`` (float32)."""
    pad = int(3 * sigma_cells) + 1
    w = rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad)).astype(np.float32)
    f = gaussian_filter(w, sigma_cells, mode="wrap")[pad:-pad, pad:-pad]
    return ((f - f.mean()) / f.std()).astype(np.float32)


def multiscale_noise(rng, shape, scales=(1.0, 2.5, 6.0), weights=(0.3, 0.4, 0.3)) -> np.ndarray:
    f = sum(w * smooth_noise(rng, shape, s) for s, w in zip(scales, weights))
    return (f / f.std()).astype(np.float32)


def gaussian_smooth_masked(field: np.ndarray, mask: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Gaussian smoothing that ignores cells outside ``mask`` (normalised convolution)."""
    m = mask.astype(np.float32)
    num = gaussian_filter(np.where(mask, field, 0).astype(np.float32), sigma_cells, mode="nearest")
    den = gaussian_filter(m, sigma_cells, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(mask, out, np.nan).astype(np.float32)


def annual_precip_surface(lat, lon) -> np.ndarray:
    """Smooth log-quadratic surface through :data:`PRECIP_ANCHORS` (mm yr-1)."""
    a = PRECIP_ANCHORS

    def design(la, lo):
        x, y = (np.asarray(lo) - 90.0) / 10.0, (np.asarray(la) - 32.0) / 5.0
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y, x ** 3], axis=-1)

    coef, *_ = np.linalg.lstsq(design(a[:, 0], a[:, 1]), np.log(a[:, 2]), rcond=None)
    return np.exp(design(lat, lon) @ coef)


@dataclass
class Terrain:
    elevation: np.ndarray  # m (ny, nx)
    slope: np.ndarray      # deg
    aspect: np.ndarray     # deg clockwise from north (downslope direction)
    mask: np.ndarray       # bool, the TP mask (real)


def load_terrain() -> Terrain:
    """The REAL terrain on TP10 (elevation, slope, aspect, TP mask) from model.data.static."""
    ds = static_layers()
    el = ds["elevation"].values.astype(np.float32)
    mask = ds["tp_mask"].values.astype(bool) & np.isfinite(el)
    return Terrain(el, ds["slope"].values.astype(np.float32), ds["aspect"].values.astype(np.float32), mask)


@dataclass
class StaticFields:
    """True static fields on TP10 (2-D, NaN outside the simulated cells) + the cell index.

    ``cells`` is the flat index (row-major on 150 x 320) of every simulated cell; per-cell
    1-D arrays used by the simulation are ``field.ravel()[cells]`` (see :meth:`c`).
    """

    lat2: np.ndarray
    lon2: np.ndarray
    elevation: np.ndarray
    slope: np.ndarray
    aspect: np.ndarray
    sim_mask: np.ndarray      # cells simulated (TP mask & bbox)
    tp_mask: np.ndarray
    precip_annual: np.ndarray  # mm yr-1 (true climatology)
    west_share: np.ndarray     # weight of the non-monsoon (westerly) precipitation regime
    t_annual: np.ndarray       # degC, mean 2 m air temperature
    t_season_amp: np.ndarray   # K, half the annual range
    veg_fraction: np.ndarray
    land_cover: np.ndarray     # int8 class of LAND_COVER
    vwc: np.ndarray            # kg m-2 vegetation water content (peak season)
    albedo: np.ndarray
    sand: np.ndarray
    clay: np.ndarray
    organic: np.ndarray        # organic-matter fraction of the top layer
    mountainous: np.ndarray    # bool, rugged terrain (SMAP flag)
    cells: np.ndarray          # flat indices of simulated cells
    twi_dem: np.ndarray | None = None   # topographic wetness index of the DEM (what a user computes)
    wetness: np.ndarray | None = None   # TRUE topographic wetness (standardised): DEM TWI + unmapped
    #                                     drainage features (springs, seepage lines, ice-rich layers)
    wetness_dem: np.ndarray | None = None  # the DEM's TWI standardised over the TP (clipped -2.5..3)

    def c(self, name_or_field) -> np.ndarray:
        """Per-cell 1-D float32 array of a field (by name or as an array)."""
        f = getattr(self, name_or_field) if isinstance(name_or_field, str) else name_or_field
        return np.ascontiguousarray(np.asarray(f).ravel()[self.cells]).astype(np.float32, copy=False)

    @property
    def shape(self):
        return self.elevation.shape

    @property
    def n(self) -> int:
        return int(self.cells.size)

    def to_grid(self, values: np.ndarray, fill=np.nan, dtype=np.float32) -> np.ndarray:
        """Scatter per-cell values (..., n) to full grids (..., ny, nx)."""
        values = np.asarray(values)
        lead = values.shape[:-1]
        out = np.full(lead + (self.shape[0] * self.shape[1],), fill, dtype=dtype)
        out[..., self.cells] = values
        return out.reshape(lead + self.shape)


def build_static(config: WorldConfig, seed: int, terrain: Terrain | None = None) -> StaticFields:
    """Generate the true static fields (deterministic from the seed)."""
    g = tp10()
    terrain = terrain or load_terrain()
    lon2, lat2 = np.meshgrid(g.lon.astype(np.float32), g.lat.astype(np.float32))
    shape = lat2.shape
    mask = terrain.mask.copy()
    sim = mask.copy()
    if config.bbox is not None:
        la0, la1, lo0, lo1 = config.bbox
        sim &= (lat2 >= la0) & (lat2 <= la1) & (lon2 >= lo0) & (lon2 <= lo1)
    z = np.where(mask, terrain.elevation, np.nanmean(terrain.elevation[mask])).astype(np.float32)
    slope = np.nan_to_num(terrain.slope).astype(np.float32)
    aspect = np.nan_to_num(terrain.aspect).astype(np.float32)

    rng = rng_for(seed, "static")
    n_clim = multiscale_noise(rng, shape, (4.0, 10.0), (0.6, 0.4))
    n_veg = multiscale_noise(rng, shape, (1.0, 2.5, 6.0), (0.35, 0.4, 0.25))
    n_sand = multiscale_noise(rng, shape, (0.8, 2.0, 5.0), (0.35, 0.4, 0.25))
    n_clay = multiscale_noise(rng, shape, (0.8, 2.0, 5.0), (0.35, 0.4, 0.25))
    n_om = multiscale_noise(rng, shape, (1.0, 3.0), (0.5, 0.5))
    n_lc = smooth_noise(rng, shape, 1.2)
    n_wet = smooth_noise(rng_for(seed, "static", "wetness"), shape, 0.7)

    z_anom, p_ann, west, t_ann, aridity, t_amp = _climate_normals(z, lat2, lon2, n_clim)
    fv, lc, vwc, albedo = _land_cover(z, z_anom, slope, p_ann, t_ann, t_amp, n_veg, n_lc)
    twi_dem, wetness, wetness_dem, sand, clay, organic = _soil(terrain, mask, z, slope, lat2, aridity, p_ann, fv,
                                                               lc, n_sand, n_clay, n_om, n_wet)
    mountainous = _roughness(z) > 350.0

    nan = np.float32(np.nan)

    def out(a, fill=nan):
        return np.where(sim, a, fill)

    cells = np.flatnonzero(sim.ravel())
    return StaticFields(
        lat2=lat2, lon2=lon2, elevation=out(z), slope=out(slope), aspect=out(aspect),
        sim_mask=sim, tp_mask=mask, precip_annual=out(p_ann), west_share=out(west.astype(np.float32)),
        t_annual=out(t_ann), t_season_amp=out(t_amp), veg_fraction=out(fv),
        land_cover=np.where(sim, lc, 0).astype(np.int8), vwc=out(vwc.astype(np.float32)),
        albedo=out(albedo), sand=out(sand.astype(np.float32)), clay=out(clay.astype(np.float32)),
        organic=out(organic.astype(np.float32)), mountainous=sim & mountainous, cells=cells,
        twi_dem=out(twi_dem.astype(np.float32)), wetness=out(wetness), wetness_dem=out(wetness_dem))


def _climate_normals(z, lat2, lon2, n_clim):
    """Climate normals: (terrain anomaly, annual precipitation, westerly share, annual mean
    2 m temperature, aridity, seasonal amplitude)."""
    z_s = gaussian_filter(z, 5.0, mode="nearest")            # 50 km mean terrain
    z_anom = z - z_s
    # orographic: ridges wetter, valleys drier; windward (S/SE-facing) slopes wetter
    gy, gx = np.gradient(gaussian_filter(z, 2.0, mode="nearest"))  # m per cell (north, east)
    upslope = (0.45 * gx + 0.9 * gy) / 11.1e3 * 1e3           # m km-1 rise towards N/NE
    p_ann = annual_precip_surface(lat2, lon2)
    p_ann = p_ann * np.exp(0.25 * np.clip(z_anom, -1200, 1500) / 1000.0
                           + 0.012 * np.clip(upslope, -40, 60) + 0.12 * n_clim)
    p_ann = np.clip(p_ann, 15.0, 1500.0).astype(np.float32)
    west = np.clip((88.0 - lon2) / 14.0, 0.0, 1.0) * 0.35 + 0.05
    # annual mean 2 m temperature: lapse rate + a strong south-north gradient (sea-level
    # equivalents of TP stations: ~28 C at 29-31 N, ~24 C at 33-34 N, ~22 C at 36 N)
    t_ann = (1.5 - 6.0 * (z - 4000.0) / 1000.0 - 1.0 * (lat2 - 32.0)).astype(np.float32)
    aridity = np.clip(1.0 - p_ann / 700.0, 0.0, 1.0)
    t_amp = (10.5 + 0.25 * (lat2 - 32.0) + 2.0 * aridity).astype(np.float32)
    return z_anom, p_ann, west, t_ann, aridity, t_amp


def _land_cover(z, z_anom, slope, p_ann, t_ann, t_amp, n_veg, n_lc):
    """Vegetation and land cover: (vegetation fraction, class, vegetation water content, albedo)."""
    t_july = t_ann + t_amp
    f_wet = 1.0 / (1.0 + np.exp(-(p_ann - 330.0) / 90.0))
    f_warm = np.clip((t_july - 1.0) / 9.0, 0.0, 1.0)
    fv = np.clip(0.03 + 0.8 * f_wet * f_warm + 0.1 * n_veg - 0.002 * np.clip(slope - 25, 0, None) * 5,
                 0.02, 0.92).astype(np.float32)
    lc = np.full(z.shape, 2, np.int8)
    lc[fv < 0.12] = 1
    lc[fv >= 0.45] = 3
    shrub = (fv >= 0.35) & (p_ann > 420) & (z < 4300) & (slope > 8) & (n_lc > 0.0)
    forest = (fv >= 0.5) & (p_ann > 450) & (z < 4300) & (t_ann > 0.0) & (slope > 5) & (n_lc > -0.6)
    crop = (z < 4100) & (slope < 4) & (p_ann > 300) & (z_anom < -150) & (n_lc > 0.6) & (t_ann > 3.0)
    lc[shrub] = 4
    lc[forest] = 5
    lc[crop] = 6
    vwc = np.vectorize(VWC_PER_FV.get, otypes=[np.float32])(lc) * fv
    albedo = np.vectorize(ALBEDO.get, otypes=[np.float32])(lc)
    return fv, lc, vwc, albedo


def _soil(terrain, mask, z, slope, lat2, aridity, p_ann, fv, lc, n_sand, n_clay, n_om, n_wet):
    """Soil texture (fractions) and organic matter, with the topographic wetness that shapes
    them: (DEM TWI, wetness, DEM-only wetness, sand, clay, organic)."""
    # topographic wetness: the DEM's TWI (a user can compute it) + unmapped drainage features
    twi_dem = topographic_wetness_index(np.where(mask, terrain.elevation, np.nan), slope, lat2)
    t_ok = mask & np.isfinite(twi_dem)
    t_med, t_sd = float(np.median(twi_dem[t_ok])), float(np.std(twi_dem[t_ok]))
    wetness = np.clip((np.nan_to_num(twi_dem, nan=t_med) - t_med) / t_sd, -2.5, 3.0)
    wetness_dem = wetness.astype(np.float32)
    wetness = (0.8 * wetness + 0.6 * n_wet).astype(np.float32)
    # texture: 10 km contrasts (alluvial fans, moraines, aeolian sands) larger than at 36 km;
    # valley floors (wet) finer, steep slopes coarser
    sand = np.clip(0.30 + 0.35 * aridity + 0.25 * np.clip(slope / 30.0, 0, 1)
                   + 0.10 * np.clip((z - 5000.0) / 800.0, 0, 1) + 0.16 * n_sand
                   - 0.04 * np.clip(wetness, -1.5, 2.0), 0.05, 0.92)
    clay = np.clip(0.17 - 0.10 * aridity - 0.06 * np.clip(slope / 30.0, 0, 1) + 0.06 * n_clay
                   + 0.015 * np.clip(wetness, -1.5, 2.0), 0.02, 0.45)
    clay = np.minimum(clay, 0.97 - sand)
    wet_meadow = np.clip(p_ann / 600.0, 0.3, 1.2)
    # organic meadow topsoils concentrate where water collects (valley bottoms, seepage zones)
    organic = np.clip(0.35 * np.clip((fv - 0.3) / 0.6, 0, 1) ** 1.3 * wet_meadow
                      * np.exp(0.45 * n_om + 0.25 * np.clip(wetness, -2.0, 2.0))
                      + 0.02 * (lc == 5), 0.0, 0.5)
    return twi_dem, wetness, wetness_dem, sand, clay, organic


def topographic_wetness_index(elevation: np.ndarray, slope_deg: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """TWI = ln(a / tan(beta)) on TP10 from D8 flow accumulation of the DEM (NaN outside it).

    ``a``: upslope area per unit contour width (m), the cell's own area included; ``beta``: the
    slope, floored at 0.5 degrees (flat valley floors). Cells are visited from the highest down;
    each passes its accumulated area to its steepest lower neighbour (none for pits and edges).
    """
    z = np.asarray(elevation, np.float64)
    ny, nx = z.shape
    dy = 11.1e3
    dx = 11.1e3 * np.cos(np.deg2rad(lat2))
    area = dx * dy
    ok = np.isfinite(z)
    zz = np.where(ok, z, np.inf)
    best = np.zeros(z.shape)
    target = np.full(z.size, -1, np.int64)
    flat = np.arange(z.size).reshape(z.shape)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nb = np.full(z.shape, np.inf)
            src = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
            dst = (slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
            nb[dst] = zz[src]
            idx = np.full(z.shape, -1, np.int64)
            idx[dst] = flat[src]
            dist = np.hypot(di * dy, dj * dx)
            with np.errstate(invalid="ignore"):
                drop = (zz - nb) / dist
            better = ok & np.isfinite(nb) & (drop > best)
            best = np.where(better, drop, best)
            target = np.where(better.ravel(), idx.ravel(), target)
    acc = np.where(ok, area, 0.0).ravel()
    order = np.argsort(-np.where(ok, z, -np.inf).ravel(), kind="stable")
    order = order[ok.ravel()[order]]
    tgt = target
    for i in order:           # ~50k cells: a plain loop is ~0.1 s
        t = tgt[i]
        if t >= 0:
            acc[t] += acc[i]
    a = acc.reshape(z.shape) / np.sqrt(area)
    tan_b = np.tan(np.deg2rad(np.maximum(np.nan_to_num(slope_deg), 0.5)))
    with np.errstate(divide="ignore"):
        return np.where(ok, np.log(a / tan_b), np.nan).astype(np.float32)


def _roughness(z: np.ndarray) -> np.ndarray:
    """Standard deviation of elevation over about 36 km (3 x 3 + neighbours, Gaussian)."""
    m = gaussian_filter(z, 1.5, mode="nearest")
    m2 = gaussian_filter(z * z, 1.5, mode="nearest")
    return np.sqrt(np.clip(m2 - m * m, 0, None))


# --- soil hydraulics (Cosby et al. 1984 / Clapp-Hornberger, with organic mixing as in CLM) ---

@dataclass
class SoilParams:
    """Per-cell soil hydraulic parameters of one layer (float32 1-D arrays)."""

    theta_s: np.ndarray   # porosity (saturation), m3 m-3
    theta_fc: np.ndarray  # field capacity (psi = -3.4 m)
    theta_wp: np.ndarray  # wilting point (psi = -150 m)
    theta_r: np.ndarray   # residual (air-dry) water content
    b: np.ndarray         # Clapp-Hornberger exponent
    psi_s: np.ndarray     # saturated matric potential magnitude, mm
    ks: np.ndarray        # saturated hydraulic conductivity, mm h-1


def soil_params(sand, clay, organic) -> SoilParams:
    sand = np.asarray(sand, np.float64)
    clay = np.asarray(clay, np.float64)
    om = np.asarray(organic, np.float64)
    ts_min = 0.489 - 0.126 * sand
    b_min = 2.91 + 15.9 * clay
    psi_min = 10.0 * 10 ** (1.88 - 1.31 * sand)
    ks_min = 3600 * 0.0070556 * 10 ** (-0.884 + 1.53 * sand)
    # organic end member: humic (hemic-sapric) meadow topsoil, between Letts et al. (2000)'s
    # hemic (b 6.1) and sapric (b 12) peat: it holds water (field capacity ~0.4)
    theta_s = (1 - om) * ts_min + om * 0.85
    b = (1 - om) * b_min + om * 8.0
    psi_s = (1 - om) * psi_min + om * 10.2
    ks = ks_min ** (1 - om) * 40.0 ** om
    fc = theta_s * (3400.0 / psi_s) ** (-1 / b)
    wp = theta_s * (150000.0 / psi_s) ** (-1 / b)
    tr = np.clip(0.35 * wp, 0.01, 0.06)
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return SoilParams(f(theta_s), f(fc), f(wp), f(tr), f(b), f(psi_s), f(ks))


def user_static_dataset(st: StaticFields, seed: int):
    """What a user would have: SoilGrids/MODIS-like layers with their own map errors (CF)."""
    rng = rng_for(seed, "static", "user-maps")
    shape = st.shape
    e_sand = multiscale_noise(rng, shape, (1.0, 3.0), (0.5, 0.5))
    e_clay = multiscale_noise(rng, shape, (1.0, 3.0), (0.5, 0.5))
    e_fv = smooth_noise(rng, shape, 1.0)
    flip = rng.random(shape) < 0.08
    sand = np.clip(st.sand + 0.06 * e_sand, 0.02, 0.95)
    clay = np.clip(st.clay + 0.03 * e_clay, 0.01, 0.6)
    clay = np.minimum(clay, 0.98 - sand)
    om = np.clip(st.organic + 0.03 * e_fv, 0, 0.5)
    sp = soil_params(np.nan_to_num(sand), np.nan_to_num(clay), np.nan_to_num(om))
    fv = np.clip(st.veg_fraction + 0.05 * e_fv, 0.0, 1.0)
    lc = st.land_cover.copy()
    # class confusion near thresholds: steppe <-> meadow, barren <-> steppe
    lc = np.where(flip & (lc == 2), np.where(fv > 0.3, 3, 1), lc)
    lc = np.where(flip & (lc == 3), 2, lc).astype(np.int8)
    sim = st.sim_mask

    def fl(a):
        return np.where(sim, a, np.nan).astype(np.float32)

    g = tp10()
    coords = g.coords()
    legend = " ".join(v[0] for v in LAND_COVER.values())
    ds = xr.Dataset(
        {
            "sand_fraction": (("lat", "lon"), fl(sand), {
                "units": "1", "long_name": "sand mass fraction of the fine earth, 0-5 cm",
                "comment": "SoilGrids-like map with its own errors"}),
            "clay_fraction": (("lat", "lon"), fl(clay), {
                "units": "1", "long_name": "clay mass fraction of the fine earth, 0-5 cm"}),
            "organic_fraction": (("lat", "lon"), fl(om), {
                "units": "1", "long_name": "organic matter volume fraction, 0-5 cm"}),
            "porosity": (("lat", "lon"), fl(sp.theta_s), {
                "units": "m3 m-3", "long_name": "porosity (pedotransfer of the map's texture)"}),
            "field_capacity": (("lat", "lon"), fl(sp.theta_fc), {
                "units": "m3 m-3", "long_name": "field capacity (-33 kPa), pedotransfer"}),
            "wilting_point": (("lat", "lon"), fl(sp.theta_wp), {
                "units": "m3 m-3", "long_name": "wilting point (-1500 kPa), pedotransfer"}),
            "topographic_wetness_index": (("lat", "lon"), fl(st.twi_dem), {
                "units": "1", "long_name": "topographic wetness index ln(a / tan(slope)) of the DEM (D8)",
                "comment": "computed from the DEM alone: unmapped seepage and drainage features are not in it"}),
            "land_cover": (("lat", "lon"), np.where(sim, lc, 0).astype(np.int8), {
                "long_name": "land cover class (MODIS-like)", "flag_values": np.arange(0, 7, dtype=np.int8),
                "flag_meanings": "none " + legend,
                "comment": "; ".join(f"{k}={v[0]} ({v[1]})" for k, v in LAND_COVER.items())}),
            "vegetation_fraction": (("lat", "lon"), fl(fv), {
                "units": "1", "long_name": "fractional vegetation cover (peak season)"}),
            "tp_mask": (("lat", "lon"), st.tp_mask.astype(np.int8), {
                "long_name": "Tibetan Plateau mask", "flag_values": np.array([0, 1], np.int8),
                "flag_meanings": "outside inside"}),
            "simulated": (("lat", "lon"), sim.astype(np.int8), {
                "long_name": "cells simulated by this world (TP mask and the size's box)",
                "flag_values": np.array([0, 1], np.int8), "flag_meanings": "no yes"}),
        },
        coords=coords,
        attrs={"title": "Static layers of the virtual Tibetan Plateau (what a user would have)",
               "Conventions": "CF-1.8", "source": "model.world (synthetic; seed-deterministic)",
               "seed": int(seed)},
    )
    return ds
