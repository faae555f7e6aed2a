"""The station table of the four TP networks: names, stable ids, depths, elevation, cells."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from model.data.stations import (EXPECTED_COUNTS, STATIONS_CSV, normalise_network, station_cells,
                                 station_table, stations_outside_mask)
from model.data.static import dem_grid, read_dem
from model.errors import UnknownNameError
from model.grids import get_grid, tp10


def test_counts_columns_and_names():
    t = station_table()
    assert len(t) == 118
    assert list(t.columns[:8]) == ["network", "station", "lat", "lon", "elevation", "depth_from",
                                   "depth_to", "source"]
    assert t.groupby("network").size().to_dict() == EXPECTED_COUNTS == \
        {"CTP_SMTMN": 57, "MAQU": 27, "NAQU": 11, "NGARI": 23}
    assert not t.duplicated(["network", "station"]).any()
    assert {"CST-01", "NST-01", "L01", "L04-M02", "M19"} <= set(t["station"])
    assert t["named"].sum() == 57 + 20
    assert t["lat"].between(25, 40).all() and t["lon"].between(73, 105).all()


def test_unnamed_ids_are_stable_and_ordered():
    t = station_table()
    for net, n in (("NAQU", 11), ("NGARI", 23), ("MAQU", 7)):
        u = t[(t["network"] == net) & ~t["named"]]
        assert len(u) == n
        assert all(re.fullmatch(rf"{net}-\d\d", s) for s in u["station"])
        ordered = u.sort_values("station")
        # NETWORK-01 is the northernmost; ties in latitude go west to east
        keys = list(zip(-ordered["lat"], ordered["lon"]))
        assert keys == sorted(keys)
    assert t.loc[t["station"] == "NAQU-01", ["lat", "lon"]].values.tolist() == [[31.37878, 91.86848]]
    # NGARI-19/20: two points at 32.45 N, the western one first
    ng = t[t["network"] == "NGARI"].set_index("station")
    assert ng.loc["NGARI-19", "lat"] == ng.loc["NGARI-20", "lat"] == 32.45
    assert ng.loc["NGARI-19", "lon"] < ng.loc["NGARI-20", "lon"]
    # same ids in every call, and from a shuffled copy of the file
    pd.testing.assert_frame_equal(station_table(), t)


def test_ids_do_not_depend_on_row_order(tmp_path):
    raw = pd.read_csv(STATIONS_CSV)
    shuffled = tmp_path / "shuffled.csv"
    raw.sample(frac=1, random_state=3).to_csv(shuffled, index=False)
    a = station_table(elevation=False)
    b = station_table(shuffled, elevation=False)
    pd.testing.assert_frame_equal(a.drop(columns="source"), b.drop(columns="source"))


def test_depths_parsed():
    t = station_table().set_index("station")
    assert (t.loc["L01", "depth_from"], t.loc["L01", "depth_to"]) == (0.0, 0.05)
    assert t.loc["L01", "depths"] == [(0.0, 0.05), (0.1, 0.1), (0.2, 0.2), (0.4, 0.4)]
    assert (t.loc["CST-01", "depth_from"], t.loc["CST-01", "depth_to"]) == (0.05, 0.05)
    assert (0.35, 0.35) in t.loc["M19", "depths"]
    assert np.isnan(t.loc["NAQU-01", "depth_from"]) and t.loc["NAQU-01", "depths"] == []
    ctp = t[t["network"] == "CTP_SMTMN"]
    assert (ctp["depth_from"] == 0).all() and (ctp["depth_to"] == 0.05).all()


def test_elevation_from_the_tp10_dem():
    t = station_table().set_index("station")
    assert np.isfinite(t["elevation"]).all()
    assert (t["elevation_source"].str.startswith("TP10 DEM")).all()
    assert abs(t.loc["CST-01", "elevation"] - 3431) < 30      # station metadata: 3431 m
    assert abs(t.loc["NAQU-03", "elevation"] - 4509) < 100    # Naqu BJ: 4509 m
    assert t["elevation"].between(3000, 5500).all()
    assert station_table(elevation=False)["elevation"].isna().all()


def test_network_names_normalised():
    assert [normalise_network(n) for n in ("CTP-SMTMN", "ctp_smtmn", "Maqu", " NGARI", "naqu")] == \
        ["CTP_SMTMN", "CTP_SMTMN", "MAQU", "NGARI", "NAQU"]
    with pytest.raises(UnknownNameError, match="did you mean"):
        normalise_network("SMOSMANIA")


def test_named_coordinates_match_the_ismn_metadata(shared):
    t = station_table(elevation=False).set_index(["network", "station"])
    for fname, net in (("MAQU.json", "MAQU"), ("CTP-SMTMN.json", "CTP_SMTMN")):
        feats = json.loads((shared / "stations" / fname).read_text())["features"]
        for f in feats:
            lon, lat = f["geometry"]["coordinates"]
            row = t.loc[(net, f["properties"]["station_name"])]
            assert (row["lat"], row["lon"]) == (lat, lon)


@pytest.mark.parametrize("grid", ["TP10", "M36", "M09"])
def test_all_stations_inside_the_tp_mask(grid):
    cells = station_cells(grid)
    assert len(cells) == 118 and cells["in_grid"].all()
    assert cells["in_tp_mask"].all() and cells["in_tp_polygon"].all()
    assert stations_outside_mask(grid).empty
    g = get_grid(grid)
    r, c = cells["row"].to_numpy(), cells["col"].to_numpy()
    lo = np.minimum(g.lat_bounds[r], g.lat_bounds[r + 1])
    hi = np.maximum(g.lat_bounds[r], g.lat_bounds[r + 1])
    assert ((cells["lat"] >= lo) & (cells["lat"] < hi)).all()
    west = np.minimum(g.lon_bounds[c], g.lon_bounds[c + 1])
    east = np.maximum(g.lon_bounds[c], g.lon_bounds[c + 1])
    assert ((cells["lon"] >= west) & (cells["lon"] < east)).all()


def test_tp10_cells_by_hand():
    cells = station_cells(tp10()).set_index("station")
    # CST-01 at 33.8833 N, 102.1333 E: row (33.8833 - 25) / 0.1 = 88, col (102.1333 - 73) / 0.1 = 291
    assert (cells.loc["CST-01", "row"], cells.loc["CST-01", "col"]) == (88, 291)


def test_stations_outside_are_reported():
    fake = pd.DataFrame({"network": ["MAQU", "NGARI"], "station": ["X1", "X2"],
                         "lat": [33.8833, 25.5], "lon": [102.1333, 74.0]})
    cells = station_cells("TP10", table=fake)
    assert cells["in_tp_mask"].tolist() == [True, False]
    # any Grid, e.g. the DEM's own 1/12 degree grid: the point-in-polygon test decides
    cells = station_cells(dem_grid(read_dem()), table=fake)
    assert cells["in_grid"].all() and cells["in_tp_mask"].tolist() == [True, False]
