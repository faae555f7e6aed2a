"""EASE-Grid 2.0 global (EPSG:6933): Lambert cylindrical equal-area on WGS84, true at 30 deg.

Formulas from Brodzik et al. (2012), "EASE-Grid 2.0: Incremental but Significant Improvements
for Earth-Gridded Data Sets", ISPRS Int. J. Geo-Inf. 1, 32-45, and Snyder (1987) "Map
Projections - A Working Manual", eqs. 3-12 (q), 3-18 (authalic latitude series).

Rows are parallels and columns are meridians, so an EASE-Grid 2.0 grid is rectilinear in
(latitude, longitude): cell edges are a 1-D list of latitudes and a 1-D list of longitudes.
Cell areas are equal in *authalic* latitude: ``sin(beta)`` is linear in ``y``.
"""

from __future__ import annotations

import numpy as np

A = 6378137.0  # WGS84 semi-major axis, m
F = 1 / 298.257223563
E2 = F * (2 - F)
E = np.sqrt(E2)
PHI1 = np.deg2rad(30.0)
K0 = np.cos(PHI1) / np.sqrt(1 - E2 * np.sin(PHI1) ** 2)

#: name -> (cell size m, n rows, n cols), from the NSIDC EASE-Grid 2.0 definitions
GRIDS = {
    "M36": (36032.220840584, 406, 964),
    "M09": (9008.055210146, 1624, 3856),
    "M03": (3002.6850700487, 4872, 11568),
}


def q_of_lat(lat_deg):
    """Snyder's q(phi) on the WGS84 ellipsoid (dimensionless)."""
    s = np.sin(np.deg2rad(np.asarray(lat_deg, dtype=np.float64)))
    return (1 - E2) * (s / (1 - E2 * s * s) - (1 / (2 * E)) * np.log((1 - E * s) / (1 + E * s)))


QP = float(q_of_lat(90.0))


def sin_authalic(lat_deg):
    """sin(beta), the sine of the authalic latitude: area on the ellipsoid is linear in it."""
    return q_of_lat(lat_deg) / QP


def lat_from_sin_authalic(sinb):
    beta = np.arcsin(np.clip(np.asarray(sinb, dtype=np.float64), -1, 1))
    e4, e6 = E2 * E2, E2 * E2 * E2
    phi = (beta
           + (E2 / 3 + 31 * e4 / 180 + 517 * e6 / 5040) * np.sin(2 * beta)
           + (23 * e4 / 360 + 251 * e6 / 3780) * np.sin(4 * beta)
           + (761 * e6 / 45360) * np.sin(6 * beta))
    return np.rad2deg(phi)


def forward(lat_deg, lon_deg):
    """(lat, lon) in degrees -> EPSG:6933 (x, y) in metres."""
    x = A * K0 * np.deg2rad(np.asarray(lon_deg, dtype=np.float64))
    y = A * q_of_lat(lat_deg) / (2 * K0)
    return x, y


def inverse(x, y):
    """EPSG:6933 (x, y) in metres -> (lat, lon) in degrees."""
    lon = np.rad2deg(np.asarray(x, dtype=np.float64) / (A * K0))
    sinb = 2 * K0 * np.asarray(y, dtype=np.float64) / (A * QP)
    return lat_from_sin_authalic(sinb), lon


def extent(name: str) -> tuple[float, float, float, int, int]:
    """(cell size, x_min, y_max, n rows, n cols) of a global EASE-Grid 2.0 grid."""
    size, nrows, ncols = GRIDS[name]
    return size, -ncols * size / 2, nrows * size / 2, nrows, ncols


def row_col_edges(name: str):
    """Global row-edge latitudes (nrows+1, north to south) and column-edge longitudes."""
    size, x_min, y_max, nrows, ncols = extent(name)
    y_edges = y_max - np.arange(nrows + 1) * size
    x_edges = x_min + np.arange(ncols + 1) * size
    lat_edges, _ = inverse(np.zeros_like(y_edges), y_edges)
    _, lon_edges = inverse(x_edges, np.zeros_like(x_edges))
    return lat_edges, lon_edges


def row_col_centres(name: str):
    size, x_min, y_max, nrows, ncols = extent(name)
    y = y_max - (np.arange(nrows) + 0.5) * size
    x = x_min + (np.arange(ncols) + 0.5) * size
    lat, _ = inverse(np.zeros_like(y), y)
    _, lon = inverse(x, np.zeros_like(x))
    return lat, lon
