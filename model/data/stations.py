"""The station table of the four TP in-situ networks, with stable ids, and their grid cells.

Source: ``model/resources/stations/tp_ismn_station_coords.csv`` (see its README): ISMN
metadata of CTP-SMTMN (57 stations) and Maqu (20 named stations) from the QA4SM repository,
plus the ISMN station locations of 2022 that carry no name (7 Maqu, 11 Naqu, 23 Ngari points),
assigned to a network by their location cluster.

* Network names are normalised to ``MAQU``, ``NGARI``, ``NAQU``, ``CTP_SMTMN`` (the
  metadata writes ``CTP-SMTMN``; case, blanks and ``-``/``_`` do not matter).
* Unnamed stations get ids ``<NETWORK>-01``, ``-02``, ... in the order latitude descending,
  then longitude ascending, within their network: the id depends only on the coordinates,
  so it is the same in every run and on every machine.
* ``depth_from``/``depth_to`` are the shallowest soil-moisture layer of the station (metres;
  CTP-SMTMN 0-0.05, Maqu 0.05-0.05); ``depths`` lists every layer; NaN / empty where the
  metadata gives none (the unnamed points).
* The file gives no elevation: ``elevation`` is that of the station's TP10 cell in
  :func:`model.data.static.static_layers` (the 0.1 degree mean of the 1/12 degree DEM), and
  ``elevation_source`` says so.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ..config import RESOURCES
from ..errors import InputError, UnreadableFileError, unknown_name
from ..grids import Grid, get_grid, tp_mask, tp_polygon
from .static import static_layers

__all__ = ["STATIONS_CSV", "NETWORKS", "EXPECTED_COUNTS", "normalise_network", "station_table",
           "station_cells", "stations_outside_mask"]

STATIONS_CSV = RESOURCES / "stations" / "tp_ismn_station_coords.csv"
NETWORKS = ("CTP_SMTMN", "MAQU", "NAQU", "NGARI")
#: Station counts of the four networks (ISMN network descriptions).
EXPECTED_COUNTS = {"CTP_SMTMN": 57, "MAQU": 27, "NAQU": 11, "NGARI": 23}

_ALIASES = {"CTPSMTMN": "CTP_SMTMN", "CTP": "CTP_SMTMN", "MAQU": "MAQU", "NAQU": "NAQU",
            "NAGQU": "NAQU", "NGARI": "NGARI", "ALI": "NGARI"}
_COLUMNS = ["network", "station", "lat", "lon", "elevation", "depth_from", "depth_to", "source"]


def normalise_network(name: str) -> str:
    """``"CTP-SMTMN"``, ``"ctp_smtmn"``, ``"Maqu"`` ... -> ``CTP_SMTMN``, ``MAQU`` ...

    >>> normalise_network("CTP-SMTMN"), normalise_network(" maqu ")
    ('CTP_SMTMN', 'MAQU')
    """
    key = re.sub(r"[\s_\-]", "", str(name)).upper()
    if key not in _ALIASES:
        raise unknown_name("TP station network", str(name), list(NETWORKS))
    return _ALIASES[key]


def _parse_depths(text) -> list[float]:
    """``"[0.  0.1 0.2 0.4]"`` (numpy print form, maybe wrapped) -> ``[0.0, 0.1, 0.2, 0.4]``."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    s = str(text).strip().strip("[]").replace(",", " ")
    return [float(v) for v in s.split()] if s.strip() else []


def _layers(froms: list[float], tos: list[float], where: str) -> list[tuple[float, float]]:
    if len(froms) != len(tos):
        raise UnreadableFileError(f"{where}: {len(froms)} depth_from values but {len(tos)} depth_to values",
                                  "the two depth columns must pair up", STATIONS_CSV)
    return sorted({(round(a, 4), round(b, 4)) for a, b in zip(froms, tos)}, key=lambda p: (p[1], p[0]))


@lru_cache(maxsize=2)
def _table(path_key: str, with_elevation: bool) -> pd.DataFrame:
    path = Path(path_key)
    try:
        raw = pd.read_csv(path, dtype={"station": "str"}, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise UnreadableFileError(f"cannot be read as CSV ({exc})", "restore the packaged file", path) from exc
    need = {"network", "station", "lat", "lon"}
    if not need <= set(raw.columns):
        raise UnreadableFileError(f"columns {sorted(need - set(raw.columns))} missing",
                                  "restore the packaged station table", path)
    df = pd.DataFrame({
        "network": [normalise_network(n) for n in raw["network"]],
        "station": raw["station"].fillna("").astype(str).str.strip(),
        "lat": raw["lat"].astype(float),
        "lon": raw["lon"].astype(float),
        "source": raw.get("source", pd.Series([""] * len(raw))).fillna("").astype(str),
    })
    df["named"] = df["station"] != ""
    froms = raw.get("sm_depth_from_m", pd.Series([None] * len(raw)))
    tos = raw.get("sm_depth_to_m", pd.Series([None] * len(raw)))
    depths = [_layers(_parse_depths(a), _parse_depths(b), f"row {i + 2}") for i, (a, b) in enumerate(zip(froms, tos))]
    df["depths"] = depths
    df["depth_from"] = [d[0][0] if d else np.nan for d in depths]
    df["depth_to"] = [d[0][1] if d else np.nan for d in depths]
    df["ismn_gpi"] = raw["ismn_grid_gpi"].astype("Int64") if "ismn_grid_gpi" in raw else pd.NA

    # stable ids for unnamed stations: lat descending, then lon ascending, per network
    for net in NETWORKS:
        sel = df.index[(df["network"] == net) & ~df["named"]]
        order = df.loc[sel].sort_values(["lat", "lon"], ascending=[False, True], kind="mergesort").index
        df.loc[order, "station"] = [f"{net}-{k:02d}" for k in range(1, len(order) + 1)]
    dup = df.duplicated(["network", "station"], keep=False)
    if dup.any():
        raise UnreadableFileError(f"repeated stations: {df.loc[dup, ['network', 'station']].values.tolist()[:5]}",
                                  "each (network, station) must appear once", path)

    # elevation: the file's own where it has one, else the station's TP10 cell
    elev = raw["elevation"].astype(float) if "elevation" in raw else pd.Series(np.nan, index=raw.index)
    df["elevation"] = elev.to_numpy()
    df["elevation_source"] = np.where(np.isfinite(df["elevation"]), "station metadata", "")
    missing = ~np.isfinite(df["elevation"].to_numpy())
    if with_elevation and missing.any():
        layers = static_layers()
        rows, cols = get_grid("TP10").locate(df["lat"].to_numpy(), df["lon"].to_numpy())
        inside = rows >= 0
        vals = np.full(len(df), np.nan)
        vals[inside] = np.round(layers["elevation"].values[rows[inside], cols[inside]].astype(float), 1)
        df.loc[missing, "elevation"] = vals[missing]
        df.loc[missing & inside, "elevation_source"] = "TP10 DEM (0.1 degree mean of the 1/12 degree pvlib DEM)"
    df = df.sort_values(["network", "station"], kind="mergesort").reset_index(drop=True)
    extra = [c for c in df.columns if c not in _COLUMNS]
    return df[_COLUMNS + extra]


def station_table(path: str | Path | None = None, elevation: bool = True) -> pd.DataFrame:
    """The stations of the four TP networks.

    Parameters
    ----------
    path : str or Path, optional
        The coordinate table (default the packaged ``tp_ismn_station_coords.csv``).
    elevation : bool
        Fill missing elevations from the TP10 DEM (default True; False skips the DEM).

    Returns
    -------
    pandas.DataFrame
        One row per station (118 for the packaged table), sorted by network and station, with
        columns ``network`` (``CTP_SMTMN``, ``MAQU``, ``NAQU``, ``NGARI``), ``station`` (name
        from the ISMN metadata, or the stable id ``NETWORK-NN``), ``lat`` (deg N), ``lon``
        (deg E), ``elevation`` (m), ``depth_from``, ``depth_to`` (m, shallowest soil-moisture
        layer, NaN if unknown), ``source`` (where the coordinates come from), then ``named``
        (bool), ``depths`` (list of (from, to) in m), ``ismn_gpi``, ``elevation_source``.
        A fresh copy each call.
    """
    p = STATIONS_CSV if path is None else Path(path)
    if not p.is_file():
        raise InputError("station table does not exist", "restore model/resources/stations", p)
    return _table(str(p.resolve()), bool(elevation)).copy()


def _mask_for(grid: Grid):
    try:
        named = get_grid(grid.name)
    except Exception:
        return None
    if named.shape == grid.shape and np.allclose(named.lat, grid.lat) and np.allclose(named.lon, grid.lon):
        return tp_mask(grid.name)
    return None


def station_cells(grid: Grid | str = "TP10", table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The cell of each station on a grid, and whether it is inside the TP mask.

    Parameters
    ----------
    grid : Grid or str
        ``"TP10"``, ``"M36"``, ``"M09"`` or any :class:`model.grids.Grid`.
    table : DataFrame, optional
        Stations (``network``, ``station``, ``lat``, ``lon``); default :func:`station_table`.

    Returns
    -------
    pandas.DataFrame
        ``network``, ``station``, ``lat``, ``lon``, ``row``, ``col`` (ARRAY indices on the
        grid from :meth:`Grid.locate`, -1 outside; add ``grid.row_offset``/``col_offset`` for
        global EASE-Grid indices), ``in_grid`` (bool), ``in_tp_mask`` (bool: the cell is in
        :func:`model.grids.tp_mask` for the named grids; for other grids the station point
        is in the TP polygon) and ``in_tp_polygon`` (bool: the point itself is inside the
        basin union).
    """
    g = get_grid(grid) if isinstance(grid, str) else grid
    t = station_table(elevation=False) if table is None else table
    rows, cols = g.locate(t["lat"].to_numpy(), t["lon"].to_numpy())
    in_grid = rows >= 0
    poly = tp_polygon()
    shapely.prepare(poly)
    in_poly = shapely.contains_xy(poly, t["lon"].to_numpy(), t["lat"].to_numpy())
    mask = _mask_for(g)
    if mask is not None:
        in_mask = np.zeros(len(t), bool)
        in_mask[in_grid] = mask[rows[in_grid], cols[in_grid]]
    else:
        in_mask = in_poly & in_grid
    return pd.DataFrame({"network": t["network"].to_numpy(), "station": t["station"].to_numpy(),
                         "lat": t["lat"].to_numpy(), "lon": t["lon"].to_numpy(), "row": rows, "col": cols,
                         "in_grid": in_grid, "in_tp_mask": in_mask, "in_tp_polygon": np.asarray(in_poly)})


def stations_outside_mask(grid: Grid | str = "TP10") -> pd.DataFrame:
    """The rows of :func:`station_cells` whose cell is NOT in the TP mask (empty if none)."""
    cells = station_cells(grid)
    return cells[~cells["in_tp_mask"]].reset_index(drop=True)
