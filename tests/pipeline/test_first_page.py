"""The demo serves its first page early (issue 16): PSCNet and the reference methods are made
first, the hook that starts the dashboard runs then, and the other models follow behind it,
then the validation of every product, each step recorded in ``progress.json``. Run for real on
the tiny world (the session's trained runs reused; about 2 minutes on 2 cores, so `slow`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.progress import progress_line, provisional, read_progress


@pytest.fixture
def fresh_home(tiny_pipeline, tmp_path, monkeypatch):
    """A home with the session's world and trained runs but no archive or validation yet."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "worlds").symlink_to(tiny_pipeline / "worlds")
    shutil.copytree(tiny_pipeline / "runs", home / "runs", symlinks=True)
    monkeypatch.setenv("SMDS_HOME", str(home))
    monkeypatch.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    return home


def test_waves_put_pscnet_and_the_references_first():
    from model.demo import waves

    names = ["rf", "pscnet", "unet", "smap_bilinear", "era5_cdf"]
    assert waves(names, serve_early=False) == [names]
    assert waves(names, serve_early=True) == [["pscnet", "smap_bilinear", "era5_cdf"], ["rf", "unet"]]
    assert waves(["rf"], serve_early=True) == [["rf"]]
    # a provisional first-page PSCNet: its full-budget run in a wave of its own, next
    assert waves(names, serve_early=True, provisional=True) == [
        ["pscnet", "smap_bilinear", "era5_cdf"], ["pscnet"], ["rf", "unet"]]
    assert waves(["rf"], serve_early=True, provisional=True) == [["rf"]]


@pytest.mark.slow  # trains PSCNet twice, archives three times and validates: about 3 min on 2 cores
def test_first_page_is_served_before_the_other_models_are_made(fresh_home):
    """The first page shows a provisional PSCNet (a run of a few seconds here, 2 minutes in the
    demo), its maps computed on demand; its full-budget run is archived behind the page, then
    the other models come."""
    from dashboard import store
    from model.demo import run_pipeline
    from model.inference.archive import NEXT, open_archive
    from model.inference.runner import Runner
    from model.runs.folders import PROVISIONAL_MARK

    shutil.rmtree(fresh_home / "runs" / "pscnet")      # PSCNet is made by this run, twice
    seen = {}

    def first_page(summary):
        inv = store.inventory(str(fresh_home))
        rec = read_progress(fresh_home)
        key = store.time_key(inv.times[-5])
        want = Runner("pscnet", inv.ard, "cpu").scenes([inv.times[-5]])[0]
        seen.update(models=list(inv.models), on_demand=list(inv.on_demand),
                    frame_ok=np.allclose(store.frame(str(fresh_home), "product", "pscnet", key), want,
                                         atol=1e-6, equal_nan=True),
                    line=progress_line(rec), provisional=provisional(rec),
                    short=store.provisional_runs(str(fresh_home)),
                    summary=json.loads(json.dumps(summary, default=str)),
                    validated=(fresh_home / "validation").exists())

    summary = run_pipeline("tiny", ["pscnet", "smap_bilinear", "rf"], device="cpu", quick=True,
                           on_first_page=first_page, provisional_minutes=0.01)
    # at the first page: the archive laid out, the maps of the provisional PSCNet and the
    # reference computed on demand; PSCNet's full run, the archive, rf and the validation
    # still to come
    assert seen, "the first-page hook was not called"
    assert seen["models"] == [], seen["models"]
    assert seen["on_demand"][0] == "pscnet" and "smap_bilinear" in seen["on_demand"], seen["on_demand"]
    assert seen["frame_ok"]
    assert seen["short"] == {"pscnet": 0.01}, seen["short"]
    assert not seen["validated"]
    assert seen["line"].startswith("Still being made: 2 of 7 steps done"), seen["line"]
    assert seen["provisional"] == ["pscnet", "smap_bilinear", "rf", "validation"], seen["provisional"]
    assert "train_full" not in seen["summary"] and "train_rest" not in seen["summary"]
    # at the end: PSCNet's full run archived in place of the provisional one, every model
    # archived and validated, nothing pending
    inv = store.inventory(str(fresh_home))
    assert set(inv.models) == {"pscnet", "smap_bilinear", "rf"} and inv.validation
    assert store.provisional_runs(str(fresh_home)) == {}
    ds = open_archive("maps", fresh_home / "archive")
    run = ds["pscnet"].attrs["provenance_run"]
    assert "pscnet" not in inv.on_demand
    assert not (fresh_home / "archive" / "maps.zarr" / f"pscnet{NEXT}").exists()
    assert not (Path(run) / PROVISIONAL_MARK).exists()
    assert len([d for d in (fresh_home / "runs" / "pscnet").iterdir() if d.is_dir()]) == 2
    assert summary["archive_full"]["status"] == "ok"
    assert "archive" not in summary and summary["lay_out"]["steps"] > 0
    for stage in ("train", "lay_out", "train_full", "archive_full", "train_rest", "archive_rest", "validate"):
        assert summary[stage]["status"] == "ok", (stage, summary[stage])
    rec = read_progress(fresh_home)
    assert rec["finished"] and progress_line(rec) == "" and provisional(rec) == []
    states = {s["name"]: s["state"] for s in rec["steps"]}
    assert states == {"train pscnet (provisional, 0.01 min)": "done", "train smap_bilinear": "skipped",
                      "train pscnet": "done", "archive pscnet, smap_bilinear": "done",
                      "train rf": "skipped", "archive rf": "done",
                      "validate": "done"}, states


def test_first_page_comes_before_the_archive_without_a_provisional_run(fresh_home):
    """Every method on the same budget (the demo): no provisional run, but the first page still
    comes as soon as the first wave is trained and the archive laid out (its maps computed on
    demand); the first wave is archived behind the page, in place."""
    from dashboard import store
    from model.demo import run_pipeline

    calls = []

    def first_page(summary):
        inv = store.inventory(str(fresh_home))
        calls.append(dict(models=list(inv.models), on_demand=list(inv.on_demand), stages=list(summary)))

    summary = run_pipeline("tiny", ["smap_bilinear", "era5_cdf"], device="cpu", quick=True,
                           on_first_page=first_page, skip=["validate"])
    assert len(calls) == 1, calls
    assert calls[0]["models"] == [] and {"smap_bilinear", "era5_cdf"} <= set(calls[0]["on_demand"]), calls
    assert calls[0]["stages"][-1] == "lay_out" and "archive" not in calls[0]["stages"]
    assert summary["archive"]["status"] == "ok" and summary["lay_out"]["steps"] > 0
    assert "train_full" not in summary and "archive_full" not in summary
    inv = store.inventory(str(fresh_home))
    assert set(inv.models) == {"smap_bilinear", "era5_cdf"}
    assert not {"smap_bilinear", "era5_cdf"} & set(inv.on_demand)
    states = {s["name"]: s["state"] for s in read_progress(fresh_home)["steps"]}
    assert states == {"train smap_bilinear": "skipped", "train era5_cdf": "skipped",
                      "archive smap_bilinear, era5_cdf": "done", "validate": "skipped"}, states


def test_work_behind_the_open_page_runs_at_lower_priority():
    """After serving, the demo lowers its own priority; what it starts later inherits it (the
    archive's Dask workers), while the server started before keeps the normal priority."""
    import subprocess
    import sys

    code = ("import os, subprocess, sys\n"
            "from model.demo import BACKGROUND_NICE, lower_priority\n"
            "before = os.nice(0)\n"
            "server = subprocess.Popen([sys.executable, '-c', 'import os, time; print(os.nice(0), flush=True); time.sleep(1)'], stdout=subprocess.PIPE, text=True)\n"
            "after = lower_priority()\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; print(os.nice(0))'], capture_output=True, text=True).stdout\n"
            "print(before, after, int(child), int(server.stdout.readline()), BACKGROUND_NICE)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    before, after, child, server, step = map(int, out.stdout.split())
    assert after == min(19, before + step) and child == after and server == before
