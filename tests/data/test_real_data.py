"""Issue 17: a scientist's own downloads go through init -> ingest -> train -> archive -> validate.

Focused tests for each problem of the issue (each fails on the code before it), and one test
that runs the README's three real-data commands as written, as subprocesses of the real CLI,
on a downloads folder made by the project's writers from the tiny virtual TP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.config import REPO_ROOT

HERE = Path(__file__).resolve().parent


def _l3_overpass(seed=0):
    """One TP overpass (the whole TP subset observed) as write_smap_l3 takes it."""
    from model.data.smap import overpass_template

    rng = np.random.default_rng(seed)
    ds = overpass_template("SPL3SMP")
    sm = rng.uniform(0.05, 0.4, ds["soil_moisture"].shape).astype(np.float32)
    ds["soil_moisture"].values[:] = sm
    ds["obs_time"].values[:] = np.datetime64("2017-06-01T00:10", "ns")
    return ds.drop_vars(["retrieval_qual_flag", "surface_flag"])


# ---------------------------------------------------------------- problem 1: optional quality fields
def test_l3_without_surface_flag_is_read_as_no_information(tmp_path):
    """A file lacking surface_flag (deleted from a full granule) is read, not rejected."""
    import h5py

    from model.data.smap import read_smap_l3
    from model.data.smap_write import write_smap_l3

    am = _l3_overpass()
    full = write_smap_l3(tmp_path / "SMAP_L3_SM_P_20170601_R18290_001.h5", "SPL3SMP", "2017-06-01", am, None)
    sub = tmp_path / "sub" / full.name
    sub.parent.mkdir()
    sub.write_bytes(full.read_bytes())
    with h5py.File(sub, "r+") as f:   # as NSIDC's subsetter delivers a file without it
        for grp in ("Soil_Moisture_Retrieval_Data_AM", "Soil_Moisture_Retrieval_Data_PM"):
            del f[grp]["surface_flag" if grp.endswith("AM") else "surface_flag_pm"]
    a, b = read_smap_l3(full), read_smap_l3(sub)
    assert b.attrs["missing_quality_fields"] == "surface_flag"
    assert "missing_quality_fields" not in a.attrs
    np.testing.assert_array_equal(a["soil_moisture"].values, b["soil_moisture"].values)
    assert (b["surface_flag"].values == 65534).all()   # "no data" = no information


def test_l3_without_retrieval_qual_flag_rejects_nothing_by_that_rule(tmp_path):
    from model.data.smap import read_smap_l3
    from model.data.smap_write import write_smap_l3

    am = _l3_overpass(1)
    p = write_smap_l3(tmp_path / "SMAP_L3_SM_P_20170601_R18290_001.h5", "SPL3SMP", "2017-06-01", am, None,
                      omit=("retrieval_qual_flag", "surface_flag"))
    ds = read_smap_l3(p)
    assert set(ds.attrs["missing_quality_fields"].split(",")) == {"retrieval_qual_flag", "surface_flag"}
    rep = json.loads(ds.attrs["policy_report"])["total"]
    assert rep["rejected"]["quality_flag"] == 0 and rep["n_valid"] == np.isfinite(am["soil_moisture"].values).sum()


# ---------------------------------------------------------------- problem 2: SMAP L4 optional
def test_products_catalog_lists_no_l4_when_none_was_ingested(tmp_path):
    import xarray as xr

    from model.products import open_products, register_products

    ard = tmp_path / "ard.zarr"
    xr.Dataset({"swvl1": (("time",), np.zeros(2, np.float32))},
               coords={"time": pd.date_range("2017-06-01", periods=2, freq="3h")}
               ).to_zarr(ard, group="era5", zarr_format=2, consolidated=True)
    import zarr

    zarr.consolidate_metadata(str(ard), zarr_format=2)
    (ard / ".complete").write_text("{}")
    home = tmp_path / "home"
    home.mkdir()
    cat = open_products(register_products(home, ard))
    assert "era5land_ard" in cat.entries
    assert "smap_l4_ard" not in cat.entries


def _catalog(tmp_path, entries: dict) -> Path:
    from model.data.catalog import write_catalog

    return write_catalog(tmp_path / "inputs.yaml", {**entries, "static_dem": None},
                         {"smap_l3_9km": {"product": "SPL3SMP_E"}, "smap_l3_36km": {"product": "SPL3SMP"}})


def test_check_pass_says_optional_sources_are_optional(tmp_path):
    """No L4 files and no static file: found 0, optional, what it means; no 'build the world'."""
    from model.data.ingest import _fail_early, check_inputs, sources_table
    from model.data.catalog import open_catalog
    from model.data.smap_write import write_smap_l3

    d = tmp_path / "SPL3SMP_E"
    write_smap_l3(d / "SMAP_L3_SM_P_E_20170601_R18290_001.h5", "SPL3SMP_E", "2017-06-01", None, None)
    cat = open_catalog(_catalog(tmp_path, {"smap_l3_9km": "SPL3SMP_E/*.h5", "smap_l4": "SPL4SMGP/*.h5",
                                           "static_extra": "static/static_tp10.nc"}))
    rows = {r.entry: r for r in check_inputs(cat)}
    assert rows["smap_l4"].found == 0 and not rows["smap_l4"].required
    assert "left out of validation and of the products catalog" in rows["smap_l4"].consequence()
    assert rows["static_extra"].found == 0 and "packaged elevation" in rows["static_extra"].consequence()
    table = sources_table(list(rows.values()))
    assert "build the world" not in table and "unreadable" not in table
    with pytest.raises(Exception) as ei:   # ERA5-Land is required and absent: stop, say what
        _fail_early(list(rows.values()))
    assert "ERA5-Land: nothing usable" in str(ei.value) and "nothing was written" in str(ei.value)


# ---------------------------------------------------------------- problem 3: ISMN header first
def _station(root, network, station, keep):
    from model.data.ismn_write import write_ismn_station

    t = pd.date_range("2017-06-01", periods=48, freq="h")
    data = pd.DataFrame({"soil_moisture": np.linspace(0.1, 0.2, t.size)}, index=t)
    meta = dict(network=network, station=station, lat=31.9, lon=91.7, elevation=4800.0,
                depth_from=0.0, depth_to=0.05, sensor="5TM")
    folder = write_ismn_station(root, meta, data)
    if keep:   # ISMN's own downloads keep the network's "_" in file names
        for f in folder.glob("*.stm"):
            tok = network.replace("_", "-")
            f.rename(f.with_name(f.name.replace(f"{tok}_{tok}_", f"{network}_{network}_", 1)))
    return folder


def test_ismn_underscore_network_names_read_from_the_header(tmp_path):
    """ISMN's own names: CTP_SMTMN_CTP_SMTMN_L01_sm_... and FR_Aqui_FR_Aqui_..."""
    from model.data.ismn import read_ismn

    _station(tmp_path, "CTP_SMTMN", "L01", keep=True)
    _station(tmp_path, "FR_Aqui", "Fraye", keep=True)
    _station(tmp_path, "MAQU", "CST-01", keep=True)
    names = sorted(p.name for p in tmp_path.rglob("*.stm"))
    assert names[0].startswith("CTP_SMTMN_CTP_SMTMN_L01_sm_") and names[1].startswith("FR_Aqui_FR_Aqui_Fraye_sm_")
    got = {(s.network, s.station): s for s in read_ismn(tmp_path)}
    assert set(got) == {("CTP_SMTMN", "L01"), ("FR_Aqui", "Fraye"), ("MAQU", "CST-01")}
    for s in got.values():
        assert s.status == "ok" and s.n_kept == 48 and (s.depth_from, s.depth_to) == (0.0, 0.05)
        assert s.sensor == "5TM"
    from model.data.ismn_write import stm_filename   # the writer can name files as ISMN does

    assert stm_filename("CTP_SMTMN", "L01", "sm", 0, 0.05, "5TM", "2017-06-01", "2017-06-02",
                        keep_network_underscores=True).startswith("CTP_SMTMN_CTP_SMTMN_L01_sm_0.000000_0.050000_")


def test_ismn_file_name_only_cross_checked(tmp_path):
    """A renamed file: the header wins, the difference is a note."""
    from model.data.ismn import read_ismn

    folder = _station(tmp_path, "NAQU", "NAQU-01", keep=False)
    f = next(folder.glob("*.stm"))
    f.rename(f.with_name(f.name.replace("NAQU-01", "NAQU-99")))
    (s,) = read_ismn(tmp_path)
    assert (s.network, s.station, s.status) == ("NAQU", "NAQU-01", "ok")
    assert any("header is used" in n for n in s.notes)


# ---------------------------------------------------------------- problem 4: fail early
def test_ingest_fails_before_any_era5_work_when_smap_is_unusable(tmp_path, monkeypatch):
    """SMAP 9 km files that are all broken: the error comes from the check pass, before
    ERA5-Land is processed, and no store is left behind."""
    from model.data import ingest as ing
    from model.data.era5_write import write_era5_monthly
    from model.errors import InputError

    ds = _era5_hourly("2017-06-01", 48)
    write_era5_monthly(tmp_path / "ERA5-Land", ds)
    (tmp_path / "SPL3SMP_E").mkdir()
    (tmp_path / "SPL3SMP_E" / "SMAP_L3_SM_P_E_20170601_R18290_001.h5").write_bytes(b"<html>login page</html>")
    cat = _catalog(tmp_path, {"era5land": "ERA5-Land/*.nc", "smap_l3_9km": "SPL3SMP_E/*.h5"})
    calls = []
    real = ing.era5_cube_files
    monkeypatch.setattr(ing, "era5_cube_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(InputError) as ei:
        ing.ingest(cat, tmp_path / "ard.zarr", progress=False)
    assert "SMAP L3 9 km (SPL3SMP_E): nothing usable" in str(ei.value)
    assert calls == [] and not (tmp_path / "ard.zarr").exists()


# ---------------------------------------------------------------- problem 5: time budgets
@pytest.mark.parametrize("name,count", [("rf", "n_estimators"), ("gbm", "max_iter")])
def test_tree_methods_stop_at_the_time_budget(name, count):
    from model.networks.registry import get_model
    from model.training.trainer import fit_trees_within_budget

    big = {"n_estimators": 2000} if name == "rf" else {"max_iter": 5000}
    m = get_model(name, n_dynamic=2, n_static=1, **big)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, m.dims.n_features)).astype(np.float32)
    y = X[:, 0] + 0.1 * rng.normal(size=3000)
    rep = fit_trees_within_budget(m, X, y, time.perf_counter() + 1.0)
    assert rep["stopped"] == "time budget" and 0 < rep["grown"] < rep["requested"]
    assert m.estimator.get_params()[count] == rep["grown"]
    assert np.isfinite(m.predict(X[:5])).all()


# ---------------------------------------------------------------- problem 6: periods explicit
def _era5_hourly(start, hours, box=(90.0, 31.0, 91.0, 32.0)):
    """A small hourly ERA5-Land-like Dataset on TP10 cells (state and accumulated fields)."""
    import xarray as xr

    lon = np.round(np.arange(box[0] + 0.05, box[2], 0.1), 2)
    lat = np.round(np.arange(box[1] + 0.05, box[3], 0.1), 2)
    t = pd.date_range(start, periods=hours, freq="h")
    shape = (t.size, lat.size, lon.size)
    rng = np.random.default_rng(3)
    ds = xr.Dataset({"swvl1": (("time", "lat", "lon"), rng.uniform(0.1, 0.3, shape).astype(np.float32),
                               {"units": "m3 m-3"}),
                     "t2m": (("time", "lat", "lon"), rng.uniform(270, 290, shape).astype(np.float32), {"units": "K"}),
                     "tp": (("time", "lat", "lon"), rng.uniform(0, 1e-4, shape).astype(np.float32),
                            {"units": "m", "cell_methods": "time: sum"})},
                    coords={"time": t, "lat": lat, "lon": lon})
    return ds


def test_dropped_era5_steps_are_counted_and_months_join(tmp_path):
    """Two monthly CDS files from 00 UTC: only the record's first step and the step after
    the last sample are not made (and counted); the month boundary is seamless."""
    from model.data.era5_write import write_era5_monthly
    from model.data.ingest import IngestReport, era5_cube_files

    ds = _era5_hourly("2017-06-28", 24 * 6)          # 28 June 00 UTC .. 3 July 23 UTC
    files = write_era5_monthly(tmp_path, ds)
    dropped = {"n": 0, "times": []}
    parts = list(era5_cube_files(files, IngestReport(), dropped=dropped))
    t = np.concatenate([p["time"].values for p in parts])
    assert t[0] == np.datetime64("2017-06-28T03:00") and t[-1] == np.datetime64("2017-07-03T21:00")
    assert (np.diff(t) == np.timedelta64(3, "h")).all()
    assert dropped["n"] == 2
    assert "2017-06-28 00:00 (first step" in dropped["times"][0]
    assert "2017-07-04 00:00 (after the last sample)" in dropped["times"][1]


def test_default_periods_for_real_data():
    from model.data.ingest import default_periods

    p = default_periods("2016-01-01T00:00", "2018-12-31T21:00")
    assert p["test"] == ["2018-01-01", "2018-12-31"] and p["train"] == ["2016-01-29", "2017-12-31"]
    q = default_periods("2017-06-16T03:00", "2017-07-15T21:00")
    assert q["test"] == ["2017-07-06", "2017-07-15"] and q["train"] == ["2017-06-16", "2017-07-05"]
    assert "padded" in q["how"]


def test_archive_help_states_the_real_default_period():
    out = subprocess.run([sys.executable, "-m", "model.cli", "archive", "--help"], capture_output=True,
                         text=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout
    flat = " ".join(out.split())
    assert "for real data the ones ingest chose and printed" in flat
    assert "the last ingested day" in flat


# ---------------------------------------------------------------- the README's three commands
def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    sec = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", sec, re.S).group(1)
    cmds = [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    return cmds


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_pipeline):
    """The README's commands, run as written (HOME = a temporary folder holding
    ``tp-downloads``), each timed, with the peak memory of each step (GNU time)."""
    sys.path.insert(0, str(HERE))
    from real_downloads import make_downloads

    home = tmp_path_factory.mktemp("user")
    make_downloads(tiny_pipeline / "worlds" / "tiny" / "inputs", home / "tp-downloads",
                   period=("2017-06-16", "2017-07-15"), era5_box=(89.0, 29.0, 94.0, 34.0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMDS_")}
    bindir = home / "bin"
    bindir.mkdir()
    exe = bindir / "sm-downscale"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m model.cli \"$@\"\n")
    exe.chmod(0o755)
    env.update(HOME=str(home), PATH=f"{bindir}:{env.get('PATH', '')}", PYTHONPATH=str(REPO_ROOT))
    timer = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
    steps = []
    cwd = home
    for cmd in _readme_commands():
        for part in cmd.split("&&"):
            part = part.strip()
            if part.startswith("cd "):
                cwd = Path(os.path.expanduser(part[3:].strip().replace("~", str(home))))
                continue
            argv = ["bash", "-c", part]
            if timer:
                argv = [timer, "-f", "PEAK_KB %M"] + argv
            t0 = time.perf_counter()
            r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
            secs = time.perf_counter() - t0
            peak = re.findall(r"PEAK_KB (\d+)", r.stderr)
            steps.append({"command": part, "rc": r.returncode, "seconds": round(secs, 1),
                          "peak_mb": round(int(peak[-1]) / 1024) if peak else None,
                          "stdout": r.stdout, "stderr": r.stderr[-3000:]})
            assert r.returncode == 0, f"{part!r} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    (home / "steps.json").write_text(json.dumps([{k: v for k, v in s.items() if k not in ("stdout", "stderr")}
                                                 for s in steps], indent=1))
    print(json.dumps([{k: v for k, v in s.items() if k not in ("stdout", "stderr")} for s in steps], indent=1))
    return home, steps


def test_readme_has_three_real_data_commands():
    cmds = _readme_commands()
    assert len(cmds) == 3 and cmds[0].startswith("sm-downscale init --inputs")
    assert not any("--ard" in c or "--catalog" in c or "SMDS_" in c for c in cmds)


@pytest.mark.slow
def test_readme_real_data_commands_run_as_written(real_run):
    home, steps = real_run
    project = home / "tp-project"
    assert (project / "smds-project.json").exists() and (project / "ard.zarr" / ".complete").exists()
    ingest_out = next(s["stdout"] for s in steps if s["command"].startswith("sm-downscale ingest"))
    # the check table comes before the heavy work, and again in the summary
    assert ingest_out.index("inputs (fast check before the heavy work)") < ingest_out.index("ingest summary")
    assert re.search(r"SMAP L4 \(SPL4SMGP\)\s+optional\s+0\s+0\s+0", ingest_out)
    assert "files have no surface_flag: read as 'no information'" in ingest_out
    # ISMN: underscore networks read; the broken file skipped and not counted as read
    m = re.search(r"ISMN stations\s+optional\s+(\d+)\s+(\d+)\s+(\d+)", ingest_out.split("ingest summary")[1])
    found, read, skipped = map(int, m.groups())
    assert skipped == 1 and read == found - 1
    meta = pd.read_parquet(project / "ard.zarr" / "stations_meta.parquet")
    assert "CTP_SMTMN" in set(meta["network"])
    assert "not made, their bin (t-3h, t] lacking hourly samples" in ingest_out
    # runs, archive, validation and the products catalog in the project, none elsewhere
    assert (project / "runs").is_dir() and (project / "archive" / "maps.zarr").is_dir()
    assert (project / "validation" / "settings.json").exists()
    from model.data.catalog import open_catalog

    cat = open_catalog(project / "catalog.yaml")
    assert "smap_l4_ard" not in cat.entries and "era5land_ard" in cat.entries
    run = json.loads(next((project / "runs").glob("*/*/summary.json")).read_text())
    assert run["history"]["padded_windows"] >= 0 and "training_steps" in run["history"]


# ---------------------------------------------------------------- problem 7: the ERA5-Land reference
def test_era5_cdf_keeps_per_cell_mapping_only_with_a_long_record():
    """Cells with >= PER_CELL_MIN_PAIRS pairs keep their own CDF (offsets recovered); cells
    with a short record get their climate class's pooled CDF."""
    from model.networks.reference import ERA5CDFMatching
    from model.training.references import PER_CELL_MIN_PAIRS, fit_cdf_by_climate

    rng = np.random.default_rng(0)
    t = PER_CELL_MIN_PAIRS + 40
    truth = rng.uniform(0.05, 0.35, (t, 2, 3))
    x = truth + 0.02 * rng.normal(size=truth.shape)
    offsets = np.array([[0.0, 0.05, -0.03], [0.02, 0.0, 0.04]])
    y = truth + offsets + 0.01 * rng.normal(size=truth.shape)
    y[40:, 1, 2] = np.nan      # one cell with a short record
    m = ERA5CDFMatching()
    fit_cdf_by_climate(m, x, y, np.datetime64("2016-01-01T00") + np.arange(t) * np.timedelta64(3, "h"))
    meth = m.methods
    assert meth[1, 2] == 2 and (np.delete(meth.ravel(), 5) == 0).all()
    p = m.apply(x)
    got = np.nanmean(p - x, axis=0)
    np.testing.assert_allclose(np.delete(got.ravel(), 5), np.delete(offsets.ravel(), 5), atol=0.01)


def test_era5_cdf_at_least_as_good_as_one_pooled_mapping_on_the_virtual_tp(tiny_pipeline):
    """At SMAP's scale (M09) on the tiny virtual TP: fitted on the training period's SMAP
    overpasses, scored against the hidden truth (aggregated to M09) in the test period."""
    import xarray as xr

    from model.grids import regridder
    from model.networks.reference import ERA5CDFMatching
    from model.training import references as R

    world = tiny_pipeline / "worlds" / "tiny"
    per = json.loads((world / "world.json").read_text())["periods"]
    ard = world / "ard.zarr"
    smap = xr.open_zarr(ard, group="smap_m09")["soil_moisture"]
    era5 = xr.open_zarr(ard, group="era5")["swvl1"]
    truth = xr.open_zarr(world / "truth" / "truth.zarr")
    rg = regridder("TP10", "M09")

    def at_m09(da, times):
        return rg.apply(da.sel(time=times).values)

    def period(name):
        s, e = (np.datetime64(v, "ns") for v in per[name])
        t = smap["time"].values
        return t[(t >= s) & (t < e + np.timedelta64(1, "D")) & np.isin(t, era5["time"].values)]

    tr, te = period("train"), period("test")
    x_tr, y_tr = at_m09(era5, tr), smap.sel(time=tr).values
    x_te = at_m09(era5, te)
    frozen = at_m09(truth["frozen"].astype("float32"), te) > 0
    y_true = np.where(frozen, np.nan, at_m09(truth["soil_moisture"], te))
    scores = {}
    for name, choices in (("pooled", (1,)), ("product", R.CLASS_CHOICES)):
        m = ERA5CDFMatching()
        old = R.CLASS_CHOICES
        R.CLASS_CHOICES = choices
        try:
            R.fit_cdf_by_climate(m, x_tr, y_tr, tr)
        finally:
            R.CLASS_CHOICES = old
        p = m.apply(x_te)
        ok = np.isfinite(p) & np.isfinite(y_true)
        d = p[ok] - y_true[ok]
        scores[name] = {"R": np.corrcoef(p[ok], y_true[ok])[0, 1], "ubrmse": np.sqrt(np.mean(d**2) - np.mean(d)**2),
                        "rmse": np.sqrt(np.mean(d**2)), "n": int(ok.sum())}
    assert scores["product"]["n"] > 1000
    assert scores["product"]["rmse"] <= scores["pooled"]["rmse"] + 1e-6, scores
    assert scores["product"]["R"] >= scores["pooled"]["R"] - 1e-6, scores
