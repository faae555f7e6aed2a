"""ISMN reader (through the ismn package), flag policy, writer and inspect, on the real files."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.data.ismn import (STATUS_EMPTIED, STATUS_NO_DATA, STATUS_NO_DEPTH, STATUS_OK, STATUS_UNREADABLE,
                             FlagPolicy, describe, read_ismn)
from model.data.ismn_write import stm_filename, write_ismn_station
from model.errors import InputError, UnreadableFileError, WrongProductError

MAQU_NAME = "MAQU_MAQU_CST-01_sm_0.050000_0.050000_ECH20-EC-TM_20070101_20131231.stm"
#: what the real Maqu CST-01 file carries (counted independently with awk in the brief's review)
MAQU_FLAGS = {"U": 9407, "D01,D03": 3258, "C03": 1338, "D03": 1235, "D01": 566, "D05": 56,
              "C03,D03": 23, "C03,D05": 20, "D03,D05": 16, "C03,D03,D05": 4, "D01,D03,D05": 4}
KEEP_ALL = FlagPolicy(keep=("G", "U", "C*", "D*", "M"), drop=())


@pytest.fixture
def maqu_file(shared) -> Path:
    return shared / "ismn" / "header_values_tp" / "MAQU" / "CST-01" / MAQU_NAME


def _count_flags_by_hand(path: Path) -> dict:
    lines = path.read_bytes().splitlines()[1:]
    out: dict = {}
    for ln in lines:
        if ln.strip():
            f = ln.split()[3].decode()
            out[f] = out.get(f, 0) + 1
    return out


# --------------------------------------------------------------------------------------------
# flag policy (no data needed)
# --------------------------------------------------------------------------------------------


def test_flag_policy_defaults_and_combinations():
    p = FlagPolicy()
    assert p.keeps("G") and p.keeps("U")
    for f in ("C01", "C02", "C03", "D01", "D10", "M", "D01,D03", "G,D05", "C03,D03,D05"):
        assert not p.keeps(f), f
    assert not p.keeps("") and not p.keeps(None)
    # an exact code in keep beats a wildcard in drop
    assert FlagPolicy(keep=("G", "U", "C03")).keeps("C03")
    assert not FlagPolicy(keep=("G", "U", "C03")).keeps("C03,D03")
    # a code nobody names is dropped and reported
    assert p.code_status("X99") == "unlisted" and not p.keeps("X99")
    assert p.unlisted(["U", "X99,G", "D01"]) == ["X99"]
    assert str(p) == "keep G,U; drop C*,D*,M; valid 0-0.6 m3 m-3"
    assert json.loads(json.dumps(p.to_dict()))["keep"] == ["G", "U"]


def test_flag_policy_rejects_contradictions():
    with pytest.raises(InputError, match="both keep and drop"):
        FlagPolicy(keep=("G", "D*"))
    with pytest.raises(InputError, match="valid_range"):
        FlagPolicy(valid_range=(0.5, 0.1))
    with pytest.raises(InputError, match="comma"):
        FlagPolicy(keep=("G,U",))


# --------------------------------------------------------------------------------------------
# the real files
# --------------------------------------------------------------------------------------------


def test_read_real_maqu_file(maqu_file, smds_home):
    series = read_ismn(maqu_file)
    assert len(series) == 1
    s = series[0]
    assert (s.network, s.station, s.sensor) == ("MAQU", "CST-01", "ECH20-EC-TM")
    assert (s.lat, s.lon, s.elevation) == (33.8833, 102.1333, 3431.0)
    assert (s.depth_from, s.depth_to) == (0.05, 0.05)
    # every record of the file, counted per flag exactly as written
    assert s.n_by_flag == MAQU_FLAGS == _count_flags_by_hand(maqu_file)
    assert s.n_raw == sum(MAQU_FLAGS.values()) == 15927
    # default policy: U kept (the file has no G at all), every C/D dropped
    assert s.n_kept == 9407 and s.status == STATUS_OK
    assert s.n_dropped == {"flag": 15927 - 9407, "nan": 0, "range": 0, "duplicate": 0}
    d = s.data
    assert list(d.columns) == ["soil_moisture", "flag", "soil_temperature"]
    assert str(d.index.dtype) == "datetime64[ns, UTC]" and d.index.name == "time"
    assert d.index.is_unique and d.index.is_monotonic_increasing
    assert set(d["flag"]) == {"U"}
    assert d["soil_moisture"].between(0.2, 0.46).all()
    assert d["soil_temperature"].isna().all()          # Maqu sample has no ts file
    assert any("no soil_temperature" in n for n in s.notes)
    assert d.index[-1] == pd.Timestamp("2010-07-31 23:00", tz="UTC")
    # a bare-CR file: the hourly records are really hourly
    assert (d.index.to_series().diff().dropna() >= pd.Timedelta("1h")).all()
    # nothing written next to the data; the ismn index lives in the cache
    assert not (maqu_file.parent / "python_metadata").exists()
    assert not (maqu_file.parents[2] / "python_metadata").exists()


def test_policy_variants_on_maqu(maqu_file, smds_home):
    c03 = read_ismn(maqu_file, policy=FlagPolicy(keep=("G", "U", "C03")))[0]
    assert c03.n_kept == 9407 + 1338          # C03 alone; C03,D03 etc. stay dropped
    assert c03.data["soil_moisture"].max() == pytest.approx(0.56)
    emptied = read_ismn(maqu_file, policy=FlagPolicy(keep=("G",)))[0]
    assert emptied.status == STATUS_EMPTIED and emptied.n_kept == 0 and len(emptied.data) == 0
    assert emptied.n_by_flag == MAQU_FLAGS    # the counts still say what was there
    narrow = read_ismn(maqu_file, policy=FlagPolicy(valid_range=(0.0, 0.3)))[0]
    assert narrow.n_dropped["range"] > 0
    assert narrow.n_kept + narrow.n_dropped["range"] == 9407


def test_folder_zip_and_file_agree(maqu_file, smds_home, tmp_path):
    by_file = read_ismn(maqu_file)[0]
    by_folder = read_ismn(maqu_file.parents[2])[0]
    zpath = tmp_path / "maqu.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(maqu_file, f"MAQU/CST-01/{MAQU_NAME}")
    by_zip = read_ismn(zpath)[0]
    for s in (by_folder, by_zip):
        pd.testing.assert_frame_equal(s.data, by_file.data)
        assert s.n_by_flag == by_file.n_by_flag and s.station == "CST-01"
    assert by_zip.source.endswith(f"maqu.zip::MAQU/CST-01/{MAQU_NAME}")
    # the second read of the folder uses the cached ismn index
    assert list((smds_home / "cache" / "ismn_metadata").glob("header_values_tp-*/header_values_tp.csv"))


def test_complete_download_with_metadata_xml(shared, smds_home):
    root = shared / "ismn" / "Data_seperate_files_header_20170810_20180809"
    default = read_ismn(root)
    assert [(s.station, s.status) for s in default] == [("ARM-1", STATUS_NO_DEPTH),
                                                        ("Barrow-ARM", STATUS_NO_DEPTH)]
    assert "0-0.19 m" in default[0].notes[0]
    deep = read_ismn(root, depth=(0.0, 0.3))
    arm = deep[0]
    assert (arm.network, arm.depth_from, arm.depth_to, arm.sensor) == ("COSMOS", 0.0, 0.19, "Cosmic-ray-Probe")
    assert arm.n_by_flag == {"G": 6514, "D05": 196, "D03": 137, "D03,D05": 17, "D08,D05": 1}
    assert arm.n_kept == 6514 and set(arm.data["flag"]) == {"G"}
    assert (arm.lat, arm.lon, arm.elevation) == (36.6054, -97.4878, 322.0)


def test_smosmania_loose_layout(shared, smds_home):
    # the shared sample sits in NETWORK/ without a station folder: read through a link tree
    s = read_ismn(shared / "ismn" / "format_header_values")[0]
    assert (s.network, s.station, s.sensor) == ("SMOSMANIA", "Narbonne", "ThetaProbe-ML2X")
    assert s.n_by_flag == {"U": 736, "D05": 5} and s.n_kept == 736


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------


def test_writer_reproduces_the_real_file_byte_for_byte(maqu_file, smds_home, tmp_path):
    s = read_ismn(maqu_file, policy=KEEP_ALL, variables=("soil_moisture",))[0]
    assert s.n_kept == 15927
    meta = dict(network="MAQU", station="CST_01", lat=s.lat, lon=s.lon, elevation=s.elevation,
                depth_from=s.depth_from, depth_to=s.depth_to, sensor=s.sensor)
    folder = write_ismn_station(tmp_path, meta, s.data, newline="\r")
    assert folder == tmp_path / "MAQU" / "CST-01"
    (out,) = folder.glob("*.stm")
    assert out.name == "MAQU_MAQU_CST-01_sm_0.050000_0.050000_ECH20-EC-TM_20080701_20100731.stm"
    assert out.read_bytes() == maqu_file.read_bytes()


def _synthetic(rng, start="2016-06-01", hours=24 * 40):
    t = pd.date_range(start, periods=hours, freq="h", tz="UTC", unit="ns")
    sm = np.round(0.25 + 0.1 * np.sin(np.arange(hours) / 50) + rng.normal(0, 0.01, hours), 4)
    ts = np.round(8 + 10 * np.sin(np.arange(hours) * 2 * np.pi / 24), 2)
    flag = np.where(rng.random(hours) < 0.1, "D01,D03", "G")
    flag[:5] = "C03"
    df = pd.DataFrame({"soil_moisture": sm, "flag": flag, "soil_temperature": ts}, index=t.rename("time"))
    return df.drop(df.index[200:260]).drop(df.index[500:503])   # two outages


def test_writer_round_trip_through_ismn(rng, tmp_path, smds_home):
    data = _synthetic(rng)
    meta = dict(network="CTP_SMTMN", station="L04-M02", lat=31.806, lon=91.75, elevation=4865.3,
                depth_from=0.0, depth_to=0.05, sensor="EC-TM")
    folder = write_ismn_station(tmp_path / "dl", meta, data)
    assert folder == tmp_path / "dl" / "CTP_SMTMN" / "L04-M02"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["CTP-SMTMN_CTP-SMTMN_L04-M02_sm_0.000000_0.050000_EC-TM_20160601_20160710.stm",
                     "CTP-SMTMN_CTP-SMTMN_L04-M02_ts_0.000000_0.050000_EC-TM_20160601_20160710.stm"]
    lines = (folder / names[0]).read_text().splitlines()
    # the header line has the real files' columns: lat ends at 53, lon at 65, ..., sensor at 90
    assert lines[0] == ("CTP_SMTMN  CTP_SMTMN       L04-M02           31.80600    91.75000 4865.30"
                        "    0.00    0.05 EC-TM ")
    assert re.fullmatch(r"2016/06/01 00:00   0\.\d{4} C03 M ", lines[1])

    everything = read_ismn(tmp_path / "dl", policy=KEEP_ALL)
    assert len(everything) == 1
    s = everything[0]
    assert (s.network, s.station, s.sensor, s.depth_from, s.depth_to) == ("CTP_SMTMN", "L04-M02", "EC-TM", 0.0, 0.05)
    assert (s.lat, s.lon, s.elevation) == (31.806, 91.75, 4865.3)
    pd.testing.assert_frame_equal(s.data, data)                  # times, values, flags, ts, gaps
    assert s.n_raw == len(data) and s.status == STATUS_OK

    default = read_ismn(tmp_path / "dl")[0]
    good = data[data["flag"] == "G"]
    pd.testing.assert_frame_equal(default.data, good)
    assert default.n_by_flag["C03"] == 5

    # rewriting with another period replaces the old files (no duplicate sensors)
    write_ismn_station(tmp_path / "dl", meta, data.iloc[:48])
    assert len(list(folder.glob("*_sm_*.stm"))) == 1 and len(list(folder.glob("*_ts_*.stm"))) == 1
    assert read_ismn(tmp_path / "dl", policy=KEEP_ALL)[0].n_raw == 48
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]   # atomic: no temp left
    assert not (tmp_path / "dl" / "python_metadata").exists()


def test_soil_temperature_policy_and_matching_depth(rng, tmp_path, smds_home):
    data = _synthetic(rng, hours=48).assign(flag="G")
    data["soil_temperature_flag"] = "G"
    data.iloc[3, data.columns.get_loc("soil_temperature_flag")] = "D06"
    data.iloc[4, data.columns.get_loc("soil_temperature")] = np.nan   # ts gap only
    meta = dict(network="NAQU", station="NAQU-03", lat=31.36638, lon=91.89969, elevation=4509.0,
                depth_from=0.05, depth_to=0.05, sensor="5TM")
    write_ismn_station(tmp_path / "dl", meta, data)
    s = read_ismn(tmp_path / "dl")[0]
    assert s.n_kept == len(data)
    ts = s.data["soil_temperature"]
    assert np.isnan(ts.iloc[3]) and np.isnan(ts.iloc[4])
    np.testing.assert_allclose(ts.drop(ts.index[[3, 4]]), data["soil_temperature"].drop(data.index[[3, 4]]))


def test_writer_rejects_bad_input(tmp_path):
    t = pd.date_range("2016-01-01", periods=3, freq="h", tz="UTC")
    ok = dict(network="MAQU", station="CST-01", lat=33.9, lon=102.1, elevation=3431.0, sensor="X")
    df = pd.DataFrame({"soil_moisture": [0.2, 0.3, 0.4]}, index=t)
    with pytest.raises(InputError, match="white space"):
        write_ismn_station(tmp_path, {**ok, "station": "CST 01"}, df)
    with pytest.raises(InputError, match="repeated times"):
        write_ismn_station(tmp_path, ok, pd.DataFrame({"soil_moisture": [0.2, 0.3]}, index=[t[0], t[0]]))
    with pytest.raises(InputError, match="no soil moisture value"):
        write_ismn_station(tmp_path, ok, df * np.nan)
    with pytest.raises(InputError, match="elevation"):
        write_ismn_station(tmp_path, {**ok, "elevation": np.nan}, df)
    with pytest.raises(InputError, match="blanks"):
        write_ismn_station(tmp_path, ok, df.assign(flag=["G", "", "G"]))
    assert not any(tmp_path.rglob("*.stm"))


def test_stm_filename():
    assert stm_filename("CTP_SMTMN", "L01", "ts", 0.0, 0.05, "EC-TM", "2016-01-01", "2018-12-31") == \
        "CTP-SMTMN_CTP-SMTMN_L01_ts_0.000000_0.050000_EC-TM_20160101_20181231.stm"


# --------------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------------


def test_describe_real_file_and_download(maqu_file, shared, smds_home):
    d = describe(maqu_file)
    json.dumps(d)
    assert d["product"] == "ISMN header+values"
    assert d["variables"] == {"soil_moisture": "m3 m-3"}
    assert (d["time_start"], d["time_end"]) == ("2008-07-01T00:00:00", "2010-07-31T23:00:00")
    assert d["stations"] == [{"network": "MAQU", "station": "CST-01", "lat": 33.8833, "lon": 102.1333,
                              "depth_from": 0.05, "depth_to": 0.05, "sensor": "ECH20-EC-TM",
                              "status": "ok", "n_raw": 15927, "n_kept": 9407}]
    sm = d["soil_moisture"]
    assert sm["valid_count"] == 9407 and sm["min"] == pytest.approx(0.2) and sm["max"] == pytest.approx(0.46)
    assert 0.3 < sm["mean"] < 0.42
    assert d["flags"] == MAQU_FLAGS and d["policy"]["keep"] == ["G", "U"]
    dl = describe(shared / "ismn" / "Data_seperate_files_header_20170810_20180809")
    json.dumps(dl)
    assert dl["product"] == "ISMN download" and dl["soil_moisture"] is None
    assert {s["station"] for s in dl["stations"]} == {"ARM-1", "Barrow-ARM"}
    assert dl["time_start"] == "2017-08-10T00:00:00"


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def _corrupt_copy(maqu_file: Path, root: Path) -> Path:
    folder = root / "MAQU" / "CST-01"
    folder.mkdir(parents=True)
    lines = maqu_file.read_bytes().split(b"\r")
    lines[10] = b"2008/07/01 10:00   abc U M "          # line 11: not a number
    lines[20] = b"2008/07/01 20:0"                      # line 21: truncated
    lines[30] = b"2008/02/30 06:00   0.3000 U M "        # line 31: no such day
    out = folder / MAQU_NAME
    out.write_bytes(b"\r".join(lines))
    return out


def test_malformed_lines_raise_with_file_and_line(maqu_file, tmp_path, smds_home):
    bad = _corrupt_copy(maqu_file, tmp_path / "dl")
    for target in (bad, tmp_path / "dl"):
        with pytest.raises(UnreadableFileError) as err:
            read_ismn(target)
        msg = str(err.value)
        assert MAQU_NAME in msg and "3 malformed line(s)" in msg
        assert "line 11: '2008/07/01 10:00   abc U M '" in msg and "line 21" in msg
        assert "line 31" in msg and "not a valid date/time" in msg
    with pytest.raises(UnreadableFileError):
        describe(bad)


def test_malformed_lines_skipped_and_reported(maqu_file, tmp_path, smds_home):
    _corrupt_copy(maqu_file, tmp_path / "dl")
    s = read_ismn(tmp_path / "dl", errors="skip")[0]
    assert s.n_malformed == 3 and s.n_raw == 15927 - 3
    assert "3 malformed line(s) skipped (first: line 11" in s.notes[0]
    assert s.source.endswith(MAQU_NAME) and str(tmp_path) in s.source
    # the three corrupted lines were C03 records: the kept U values are untouched
    assert s.n_kept == 9407


def test_empty_folder_missing_path_and_non_ismn_files(shared, tmp_path, smds_home):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no ISMN .stm files"):
        read_ismn(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        read_ismn(tmp_path / "nowhere")
    for other in (shared / "stations" / "tp_ismn_station_coords.csv",
                  shared / "dem" / "pvlib_altitude_1_12deg_TP_25-40N_73-105E.nc"):
        with pytest.raises(WrongProductError, match="not an ISMN header"):
            read_ismn(other)
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(WrongProductError, match="no ISMN .stm"):
        read_ismn(tmp_path / "x.zip")


def test_garbage_header_and_header_only_file(tmp_path, smds_home):
    folder = tmp_path / "dl" / "NET" / "ST"
    folder.mkdir(parents=True)
    garbage = folder / "NET_NET_ST_sm_0.000000_0.050000_S_20200101_20200102.stm"
    garbage.write_text("this is not an ISMN file\n2020/01/01 00:00 0.1 G M\n")
    with pytest.raises(UnreadableFileError, match="line 1: 'this is not an ISMN file' is not an ISMN header"):
        read_ismn(tmp_path / "dl")
    (s,) = read_ismn(tmp_path / "dl", errors="skip")
    assert s.status == STATUS_UNREADABLE and "line 1" in s.notes[0] and s.n_kept == 0
    garbage.write_text("NET NET ST 31.0 91.0 4500.00 0.00 0.05 S\n")
    (s,) = read_ismn(tmp_path / "dl")
    assert s.status == STATUS_NO_DATA and (s.lat, s.depth_to) == (31.0, 0.05)


def test_bad_arguments(maqu_file, smds_home):
    with pytest.raises(InputError, match="errors mode"):
        read_ismn(maqu_file, errors="ignore")
    with pytest.raises(InputError, match="soil_moisture"):
        read_ismn(maqu_file, variables=("soil_temperature",))
    with pytest.raises(InputError, match="ISMN variable"):
        read_ismn(maqu_file, variables=("soil_moisture", "soil_temp"))
