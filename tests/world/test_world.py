"""The virtual Tibetan Plateau: build ``tiny``, read every file back with the project's readers,
check the physics and the observation operators against the hidden truth, determinism,
resume after an interruption, and bad input."""

from __future__ import annotations

import contextlib
import glob
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.errors import InputError, UnknownNameError
from model.grids import get_grid, tp_mask
from model.world import SIZES, build_world, get_config, load_manifest
from model.world import diagnostics as D

SEED = 42
BOX = SIZES["tiny"].bbox  # (lat_min, lat_max, lon_min, lon_max)


@pytest.fixture(scope="module")
def tiny(tiny_pipeline) -> Path:
    """The session's tiny world (seed 42), built once by the shared tiny pipeline
    (tests/conftest.py) and only read here; the build tests below write their own worlds."""
    return tiny_pipeline / "worlds" / "tiny"


@pytest.fixture(scope="module")
def ismn_series(tiny):
    from model.data.ismn import read_ismn

    with quiet():
        return read_ismn(tiny / "inputs/ISMN")


def mini_config():
    """A few days of the tiny box: for resume / interruption tests."""
    return replace(get_config("tiny"), sim_start="2017-06-28", start="2017-06-30", end="2017-07-01",
                   history=None, train=("2017-06-30", "2017-06-30"), test=("2017-07-01", "2017-07-01"))


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------- the build

def test_manifest_and_layout(tiny):
    man = json.loads((tiny / "world.json").read_text())
    assert man["complete"] is True and man["size"] == "tiny" and man["seed"] == SEED
    assert man["periods"]["train"] == ["2017-06-08", "2017-07-05"]
    assert man["periods"]["test"] == ["2017-07-06", "2017-07-15"]
    days = pd.date_range("2017-06-01", "2017-07-15")
    assert man["products"]["smap_l3_36km"]["files"] == len(days)
    assert man["products"]["smap_l3_9km"]["files"] == len(days)
    assert man["products"]["smap_l4"]["files"] == 8 * len(days)
    assert man["products"]["era5land"]["files"] == 2
    assert (tiny / "inputs/ERA5-Land/era5-land_tp_2017-06.nc").exists()
    assert (tiny / "inputs/static/static_tp10.nc").exists()
    assert (tiny / "truth/truth.zarr").is_dir()
    for rel, size in man["files"].items():
        assert (tiny / rel).exists() and size > 0
    assert not list(tiny.rglob("*.tmp-*")) and not list(tiny.rglob("*.partial"))
    assert load_manifest(tiny).complete


def test_smap_l3_files_read_back(tiny):
    from model.data.smap import read_smap_l3
    from model.data.smap_format import QualityPolicy

    for product, grid in (("SPL3SMP", "M36"), ("SPL3SMP_E", "M09")):
        files = sorted(glob.glob(str(tiny / "inputs" / product / "*.h5")))
        g = get_grid(grid)
        n_valid = 0
        for f in files[::4]:
            with quiet():
                d = read_smap_l3(f, policy=QualityPolicy.permissive())
            assert d.attrs["product"] == product
            assert d["soil_moisture"].shape == (2,) + g.shape
            sm = d["soil_moisture"].values
            ok = np.isfinite(sm)
            n_valid += ok.sum()
            # values only inside the simulated box (cell centres, with one cell of margin)
            lat2 = np.broadcast_to(g.lat[:, None], g.shape)
            lon2 = np.broadcast_to(g.lon[None, :], g.shape)
            inside = (lat2 > BOX[0] - 0.4) & (lat2 < BOX[1] + 0.4) & (lon2 > BOX[2] - 0.4) & (lon2 < BOX[3] + 0.4)
            assert not (ok & ~inside[None]).any()
            assert np.all((sm[ok] >= 0) & (sm[ok] <= 0.75))
            t = d["obs_time"].values[ok]
            day = np.datetime64(d.attrs["date"])
            assert np.all((t >= day) & (t < day + np.timedelta64(1, "D")))
            am = d["obs_time"].sel(overpass="AM").values
            hours = (am[~np.isnat(am)] - am[~np.isnat(am)].astype("datetime64[D]")) / np.timedelta64(1, "h")
            assert np.all((hours < 2) | (hours > 22))          # ~6 am local solar time over the TP
        assert n_valid > 0


def test_smap_l4_era5_ismn_static_truth_read_back(tiny, ismn_series):
    from model.data.era5 import read_era5
    from model.data.era5_time import to_3hourly
    from model.data.smap import read_smap_l4

    l4 = sorted(glob.glob(str(tiny / "inputs/SPL4SMGP/*.h5")))
    assert Path(l4[0]).name == "SMAP_L4_SM_gph_20170601T013000_Vv7032_001.h5"
    with quiet():
        d = read_smap_l4(l4[10])
    assert d["sm_surface"].shape == (1,) + get_grid("M09").shape
    v = d["sm_surface"].values
    assert np.isfinite(v).sum() > 100 and np.nanmin(v) > 0 and np.nanmax(v) < 0.7

    with quiet():
        era = read_era5(sorted(glob.glob(str(tiny / "inputs/ERA5-Land/*.nc"))))
    assert set(["swvl1", "stl1", "skt", "t2m", "d2m", "sd", "tp", "e", "ssrd"]) <= set(era.data_vars)
    assert era.sizes["time"] == 45 * 24 and era["swvl1"].shape[1:] == (150, 320)
    assert era["time"].values[0] == np.datetime64("2017-06-01T00:00")
    sim = ~np.isnan(era["t2m"].values[5])
    lat2 = np.broadcast_to(era.lat.values[:, None], sim.shape)
    lon2 = np.broadcast_to(era.lon.values[None, :], sim.shape)
    assert np.all((lat2[sim] >= BOX[0]) & (lat2[sim] <= BOX[1]) & (lon2[sim] >= BOX[2]) & (lon2[sim] <= BOX[3]))
    assert not (sim & ~tp_mask("TP10")).any()
    x = era.isel(time=slice(24, 48))
    assert float(x["tp"].min()) >= 0 and float(x["e"].max()) <= 1e-9 and float(x["e"].min()) < 0
    assert 230 < float(x["t2m"].min()) and float(x["t2m"].max()) < 310
    assert np.all(x["d2m"].values[:, sim] <= x["t2m"].values[:, sim] + 0.2)
    assert 0.02 < float(x["swvl1"].min()) and float(x["swvl1"].max()) < 0.9
    assert float(x["ssrd"].max()) > 2e6                    # J m-2 per hour near noon
    three = to_3hourly(era[["swvl1", "tp"]])
    assert pd.Timestamp(three["time"].values[1]).hour == 3

    series = ismn_series
    nets = {s.network for s in series}
    assert nets == {"CTP_SMTMN", "NAQU"}
    assert len(series) == 68
    s = series[0]
    assert s.status == "ok" and s.n_kept > 24 * 20 and "soil_temperature" in s.data
    assert s.data["soil_moisture"].between(0, 0.6).all()

    st = xr.open_dataset(tiny / "inputs/static/static_tp10.nc")
    for v in ("sand_fraction", "clay_fraction", "porosity", "land_cover", "vegetation_fraction"):
        assert v in st and st[v].shape == (150, 320)
    assert st["sand_fraction"].attrs["units"] == "1"
    st.close()

    tr = D.open_truth(tiny)
    assert tr["soil_moisture"].dims == ("time", "lat", "lon")
    assert tr["soil_moisture"].encoding["chunks"] == (8, 150, 320)
    assert tr.sizes["time"] == 45 * 8
    assert pd.Timestamp(tr["time"].values[-1]) == pd.Timestamp("2017-07-15T21:00")
    assert tr["soil_moisture"].attrs["units"] == "m3 m-3"


def test_catalog_entries(tiny):
    from model.data.catalog import open_catalog, read_entry

    cat = open_catalog(tiny / "catalog.yaml")
    assert {"smap_l3_36km", "smap_l3_9km", "smap_l4", "era5land", "ismn", "static_extra", "truth"} <= set(cat.entries)
    st = read_entry(cat, "static_extra")
    assert "sand_fraction" in st
    tr = read_entry(cat, "truth")
    assert "soil_moisture" in tr


# ----------------------------------------------------------------------------- physics

def test_truth_physical_bounds_and_mask(tiny):
    from model.world.static import build_static, soil_params

    st = build_static(get_config("tiny"), SEED)
    sp = soil_params(st.c("sand"), st.c("clay"), st.c("organic"))
    tr = D.open_truth(tiny)
    sm = tr["soil_moisture"].values
    flat = sm.reshape(sm.shape[0], -1)
    inside = flat[:, st.cells]
    assert np.isfinite(inside).all()
    assert np.all(inside >= sp.theta_r - 1e-3) and np.all(inside <= sp.theta_s + 1e-3)
    outside = np.delete(flat, st.cells, axis=1)
    assert np.isnan(outside).all()
    assert 0.03 < np.nanmean(inside) < 0.45
    t = tr["soil_temperature"].values.reshape(sm.shape[0], -1)[:, st.cells]
    assert 240 < t.min() and t.max() < 325
    fr = tr["frozen"].values.reshape(sm.shape[0], -1)
    assert set(np.unique(fr[:, st.cells])) <= {0, 1} and (fr[:, st.cells] == 1).any()
    assert (np.delete(fr, st.cells, axis=1) == -1).all()


def test_summer_wetter_in_the_southeast_than_the_northwest():
    """Whole-TP truth after a few summer days: SE (monsoon) wetter than NW (Ngari/Qaidam)."""
    from model.world.simulate import Simulation
    from model.world.static import build_static

    st = build_static(get_config("demo"), SEED)
    assert np.nanmean(st.precip_annual[st.lat2 < 33][st.lon2[st.lat2 < 33] > 97]) > 400
    sim = Simulation(st, SEED, pd.Timestamp("2017-07-01"))
    acc = np.zeros(st.n)
    for _ in range(72):
        _, _, s = sim.step()
        acc += s["truth"].liq1
    g = st.to_grid(acc / 72)
    se = np.nanmean(g[(st.lat2 < 34) & (st.lon2 > 97)])
    nw = np.nanmean(g[(st.lat2 > 32) & (st.lon2 < 85)])
    assert se > nw + 0.08


def test_frozen_and_snow_cells_have_no_retrieval(tiny):
    from model.data.smap import read_smap_l3
    from model.data.smap_format import SURFACE_FLAG_BITS, QualityPolicy

    n_frozen = 0
    for f in sorted(glob.glob(str(tiny / "inputs/SPL3SMP*/*.h5"))):
        with quiet():
            d = read_smap_l3(f, policy=QualityPolicy.permissive())
        s = d["surface_flag"].values.astype(np.int64)
        q = d["retrieval_qual_flag"].values.astype(np.int64)
        sm = d["soil_moisture"].values
        seen = s != 65534
        frozen = seen & ((s >> SURFACE_FLAG_BITS["radiometer_frozen_ground"]) & 1).astype(bool)
        n_frozen += frozen.sum()
        assert not np.isfinite(sm[frozen]).any()
        assert np.all(q[frozen] & 0b111 == 0b111)           # not recommended, not attempted, failed
        snow = seen & ((s >> SURFACE_FLAG_BITS["snow_or_ice"]) & 1).astype(bool)
        assert np.all(q[snow] & 1)                            # snow: never "recommended"
        mount = seen & ((s >> SURFACE_FLAG_BITS["mountainous_terrain"]) & 1).astype(bool)
        assert np.all(q[mount] & 1)
    assert n_frozen > 0


def test_smap_error_statistics(tiny):
    s = D.smap_error_stats(tiny, "SPL3SMP")
    assert s["n"] > 500
    assert 0.03 <= s["ubrmse_per_cell_median"] <= 0.05
    assert 0.03 <= s["ubrmse"] <= 0.05
    assert -0.03 < s["bias"] < 0.0


def test_era5_wet_and_l4_closer_to_truth_than_era5(tiny):
    s = D.gridded_vs_truth(tiny, every=4)
    assert s["era5_tp10"]["bias"] > 0.04                      # ERA5-Land: too wet on the TP
    assert s["l4_m09"]["rmse"] < s["era5_m09"]["rmse"]
    assert abs(s["l4_m09"]["bias"]) < abs(s["era5_m09"]["bias"])


def test_stations_follow_the_truth(tiny, ismn_series):
    m = D.station_matchups(tiny, "CTP_SMTMN", series=ismn_series)
    r = [df.dropna().corr().iloc[0, 1] for df in m.values() if len(df.dropna()) > 50]
    assert len(r) > 40 and np.median(r) > 0.6


# ----------------------------------------------------------------------------- determinism

def test_same_seed_same_truth_other_seed_differs(tiny):
    from model.world.observe import TRUTH_KEEPBITS, bitround
    from model.world.simulate import Simulation
    from model.world.static import build_static

    cfg = get_config("tiny")
    tr = D.open_truth(tiny)["soil_moisture"].isel(time=0).values
    first = pd.Timestamp(cfg.start)

    def simulate(seed):
        st = build_static(cfg, seed)
        sim = Simulation(st, seed, cfg.sim_start_ts)
        while sim.t < first:
            _, _, s = sim.step()
        return st.to_grid(bitround(s["truth"].liq1, TRUTH_KEEPBITS))

    same = simulate(SEED)
    np.testing.assert_array_equal(same, tr)
    other = simulate(SEED + 1)
    ok = np.isfinite(tr)
    assert np.abs(other[ok] - tr[ok]).mean() > 0.005


# ----------------------------------------------------------------------------- resume

def test_interrupted_build_then_resume(tmp_path, monkeypatch):
    import model.world.observe as obs

    cfg = mini_config()
    out = tmp_path / "w"
    calls = {"n": 0}
    real = obs.write_smap_l4_task

    def flaky(*a):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(obs, "write_smap_l4_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_world(cfg, out, SEED, progress=False, workers=1)
    man = json.loads((out / "world.json").read_text())
    assert man["complete"] is False
    assert not list(out.rglob("*.tmp-*"))
    assert not (out / "truth/truth.zarr").exists() and not (out / "catalog.yaml").exists()
    monkeypatch.setattr(obs, "write_smap_l4_task", real)

    man = build_world(cfg, out, SEED, progress=False, workers=1)
    assert man.complete and man.skipped_existing > 0
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")}
    assert len(files) == 2 * 2 + 16

    # delete one file, mark the manifest incomplete: a rerun rewrites only that file
    victim = sorted((out / "inputs/SPL3SMP").glob("*.h5"))[0]
    victim.unlink()
    d = json.loads((out / "world.json").read_text())
    d["complete"] = False
    (out / "world.json").write_text(json.dumps(d))
    man = build_world(cfg, out, SEED, progress=False, workers=1)
    assert man.complete and victim.exists() and man.written_this_run == 1
    for p, mt in files.items():
        if p != victim:
            assert p.stat().st_mtime_ns == mt
    # complete: a rerun does nothing
    assert build_world(cfg, out, SEED, progress=False).complete


# ----------------------------------------------------------------------------- bad input

def test_bad_input_fails_before_work(tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="tinyy"):
        build_world("tinyy", tmp_path / "a", SEED)
    for bad in ("abc", 4.5, None, True):
        with pytest.raises(InputError, match="seed"):
            build_world("tiny", tmp_path / "a", bad)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="not a folder|not writable"):
        build_world("tiny", blocker, SEED)
    with pytest.raises(InputError, match="not writable"):
        build_world("tiny", blocker / "sub", SEED)
    import shutil
    from collections import namedtuple

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    with pytest.raises(InputError, match="GB free"):
        build_world("tiny", tmp_path / "b", SEED)
    assert not (tmp_path / "b" / "world.json").exists()


def test_other_world_in_folder(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    (out / "world.json").write_text(json.dumps({"size": "tiny", "seed": 7, "complete": True,
                                                "code_version": "x"}))
    with pytest.raises(InputError, match="seed 7"):
        build_world("tiny", out, SEED)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        build_world("tiny", tmp_path / "x", SEED)


def test_cli_errors(capsys):
    from model.cli import main

    assert main(["world", "--size", "huge"]) == 2
    assert "unknown world size" in capsys.readouterr().err
    assert main(["world", "--size", "tiny", "--seed", "x1"]) == 2
    assert "seed must be an integer" in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue 12

def test_truth_detail_follows_what_users_know_at_10km(tiny):
    """The truth's persistent 10 km detail (thawed mean minus its 36 km parent) is partly
    predictable from the user's static layers (a linear fit on their own 10 km detail: DEM
    wetness index, organic matter, porosity, sand), but not exactly (map errors, unmapped
    seepage, weather)."""
    from model.world.signal import _parent_index, fine

    truth = D.open_truth(tiny)
    sm = truth["soil_moisture"].values
    thawed = truth["soil_temperature"].values > 273.15
    user = xr.open_dataset(tiny / "inputs/static/static_tp10.nc").load()
    sim = user["simulated"].values.astype(bool)
    pidx = _parent_index(sim.shape)
    with quiet():
        mean_detail = np.nanmean(np.where(thawed, fine(sm, pidx), np.nan), 0)
    X = [fine(np.where(sim, user[v].values, np.nan), pidx) for v in
         ("topographic_wetness_index", "organic_fraction", "porosity", "sand_fraction", "field_capacity")]
    ok = sim & np.isfinite(mean_detail) & np.all([np.isfinite(x) for x in X], axis=0)
    A = np.column_stack([np.ones(ok.sum())] + [x[ok] for x in X])
    y = mean_detail[ok]
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = np.corrcoef(A @ coef, y)[0, 1]
    assert 0.5 < r < 0.98, r
    assert "frozen" in truth and "soil_temperature" in truth     # thawed/frozen for the scorer
