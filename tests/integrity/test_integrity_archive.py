"""The archive is keyed to the checkpoint that made it; the dashboard follows the archive's
version; torn markers are redone, not crashed on; writes are atomic and fsynced.

Checked against the code before issue 13: the retrain test failed (old blocks kept, values of
the first checkpoint under the second checkpoint's hash; the dashboard's cache kept the old
frame), the torn-marker test failed (a torn series marker crashed ``json.loads``, a torn block
marker counted as done) and the fsync test failed (no fsync anywhere).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np


def _scratch_home(tiny, tmp_path, monkeypatch):
    """A home of its own (runs, archive) on the tiny world's inputs (read only)."""
    home = tmp_path / "home"
    (home / "worlds").mkdir(parents=True)
    os.symlink(tiny / "worlds" / "tiny", home / "worlds" / "tiny")
    monkeypatch.setenv("SMDS_HOME", str(home))
    monkeypatch.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    return home, home / "worlds" / "tiny" / "ard.zarr"


def _train(model, ard, seed):
    from model.demo import QUICK_TRAIN
    from model.training.cli import train_config
    from model.training.trainer import train

    cfg = train_config(model, ard, config="demo", device="cpu", seed=seed, **QUICK_TRAIN)
    return train(model, cfg, ard=ard, progress=False)


def test_archive_after_a_retrain_equals_the_new_runner_and_the_dashboard_follows(tiny, tmp_path, monkeypatch):
    from dashboard import store
    from model.inference.archive import archive_version, build_archive, open_archive
    from model.inference.runner import Runner, sha256

    home, ard = _scratch_home(tiny, tmp_path, monkeypatch)
    s, e = "2017-07-06", "2017-07-07"
    run1 = _train("mlp", ard, seed=0)
    r1 = build_archive(["mlp"], s, e, ard=ard, workers=1, device="cpu", block_days=1, progress=False)
    assert r1["complete"] == {"mlp": True} and not r1["recomputed_after_retrain"]
    times = open_archive("maps")["time"].values
    key = store.time_key(times[3])
    before = store.frame(str(home), "product", "mlp", key).copy()   # cached by the server
    v1 = archive_version()

    run2 = _train("mlp", ard, seed=1)
    assert run2 != run1 and sha256(run2 / "checkpoint.pt") != sha256(run1 / "checkpoint.pt")
    r2 = build_archive(["mlp"], s, e, ard=ard, workers=1, device="cpu", block_days=1, progress=False)
    assert r2["complete"] == {"mlp": True}
    assert r2["recomputed_after_retrain"] == {"mlp": {"archived": sha256(run1 / "checkpoint.pt"),
                                                     "current": sha256(run2 / "checkpoint.pt")}}
    assert archive_version() != v1
    want = Runner("mlp", ard, "cpu").scenes(times, batch=8)
    for layout in ("maps", "series"):
        ds = open_archive(layout)
        np.testing.assert_allclose(ds["mlp"].values, want, rtol=0, atol=1e-5, equal_nan=True)
        assert ds["mlp"].attrs["provenance_checkpoint_sha256"] == sha256(run2 / "checkpoint.pt")
    for marker in (home / "archive" / "build" / "mlp").glob("*.done"):
        assert json.loads(marker.read_text())["checkpoint_sha256"] == sha256(run2 / "checkpoint.pt")
    assert np.nanmax(np.abs(want[3] - before)) > 1e-4  # the retrain changed the values
    # the same server process (same pn.cache) now shows the new values, no restart
    np.testing.assert_allclose(store.frame(str(home), "product", "mlp", key), want[3], atol=1e-5,
                               equal_nan=True)


def test_a_complete_model_stays_whole_on_show_while_its_retrain_is_archived(tiny, tmp_path, monkeypatch):
    """Issue 16 (a provisional PSCNet replaced by its full-budget run behind an open page): the
    re-archive of a complete model goes to a shadow variable, so the page keeps the old values,
    whole and complete, until the new ones replace them in one swap; a build stopped before the
    swap is finished by the next one."""
    from dashboard import store
    from model.inference import archive as A
    from model.inference.runner import Runner, sha256
    from model.products import refresh_products

    home, ard = _scratch_home(tiny, tmp_path, monkeypatch)
    s, e = "2017-07-06", "2017-07-07"
    kw = dict(ard=ard, device="cpu", block_days=1, progress=False)
    _train("mlp", ard, seed=0)
    A.build_archive(["mlp"], s, e, workers=1, **kw)
    old = A.open_archive("maps")["mlp"].values
    times = A.open_archive("maps")["time"].values
    run2 = _train("mlp", ard, seed=1)

    def stopped(maps, model):   # the build is killed after its last block, before the swap
        raise KeyboardInterrupt

    monkeypatch.setattr(A, "_swap_in", stopped)
    try:
        A.build_archive(["mlp"], s, e, resident=True, **kw)
    except KeyboardInterrupt:
        pass
    maps = home / "archive" / "maps.zarr"
    assert (maps / f"mlp{A.NEXT}").is_dir()
    ds = A.open_archive("maps")
    assert ds.attrs["complete_models"] == {"mlp": True} and A.product_variables(ds) == ["mlp"]
    np.testing.assert_array_equal(ds["mlp"].values, old)           # the old run, whole
    inv = store.inventory(str(home))
    assert inv.models == ("mlp",) and inv.partial == ()
    np.testing.assert_array_equal(store.frame(str(home), "product", "mlp", store.time_key(times[3])), old[3])
    refresh_products(home / "archive", ard)
    assert A.NEXT not in (home / "catalog.yaml").read_text()

    monkeypatch.undo()
    monkeypatch.setenv("SMDS_HOME", str(home))
    monkeypatch.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    res = A.build_archive(["mlp"], s, e, workers=1, **kw)
    assert res["blocks_todo"] == 0 and res["shadowed"] == ["mlp"] and res["complete"] == {"mlp": True}
    assert not (maps / f"mlp{A.NEXT}").exists() and not list(maps.glob(".mlp*"))
    want = Runner("mlp", ard, "cpu").scenes(times, batch=8)
    for layout in ("maps", "series"):
        ds = A.open_archive(layout)
        assert A.product_variables(ds) == ["mlp"]
        np.testing.assert_allclose(ds["mlp"].values, want, rtol=0, atol=1e-5, equal_nan=True)
        assert ds["mlp"].attrs["provenance_checkpoint_sha256"] == sha256(run2 / "checkpoint.pt")
    np.testing.assert_allclose(store.frame(str(home), "product", "mlp", store.time_key(times[3])), want[3],
                               atol=1e-5, equal_nan=True)


def test_torn_markers_are_redone_with_a_warning(tiny, tmp_path, caplog, monkeypatch):
    from model.inference.archive import build_archive, open_archive

    monkeypatch.setenv("SMDS_HOME", str(tiny))
    out = tmp_path / "arch"
    kw = dict(out=out, ard=tiny / "worlds" / "tiny" / "ard.zarr", workers=1, device="cpu", block_days=1,
              progress=False)
    build_archive(["smap_bilinear"], "2017-07-06", "2017-07-07", **kw)
    want = open_archive("maps", out)["smap_bilinear"].values
    block = out / "build" / "smap_bilinear" / "000008.done"
    series = out / "build" / "series" / "smap_bilinear.done"
    block.write_text('{"steps": 8, "ti')      # a write cut short
    series.write_text('{"checkpoint_sha')
    with caplog.at_level(logging.WARNING):
        res = build_archive(["smap_bilinear"], "2017-07-06", "2017-07-07", **kw)
    assert res["complete"] == {"smap_bilinear": True} and res["blocks_todo"] == 1
    assert "damaged" in caplog.text and "000008.done" in caplog.text
    assert json.loads(block.read_text())["steps"] == 8           # redone, whole again
    assert "checkpoint_sha256" in json.loads(series.read_text())
    np.testing.assert_array_equal(open_archive("maps", out)["smap_bilinear"].values, want)


def test_atomic_writes_fsync_file_and_folder(tmp_path, monkeypatch):
    from model import io

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(io.os, "fsync", spy)
    io.write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert any(p.startswith(str(tmp_path / ".m.json.tmp-")) for p in synced)  # the data, before the rename
    assert str(tmp_path) in synced                                          # the rename itself
    synced.clear()
    (tmp_path / "d").mkdir()
    with io.atomic_path(tmp_path / "d") as tmp:   # a folder swap (e.g. a Zarr store)
        tmp.mkdir()
        (tmp / "x").write_text("new")
    assert (tmp_path / "d" / "x").read_text() == "new" and str(tmp_path) in synced
    assert not list(tmp_path.glob(".d.*"))


def test_read_json_marker_torn_empty_and_wrong_type(tmp_path, caplog):
    from model.io import read_json_marker

    p = tmp_path / "x.done"
    assert read_json_marker(p) is None
    for text in ("", '{"a": ', "[1, 2]", "\x00\x00"):
        p.write_text(text)
        with caplog.at_level(logging.WARNING):
            assert read_json_marker(p, "test marker") is None
    assert "treating it as absent" in caplog.text
    p.write_text('{"a": 1}')
    assert read_json_marker(p) == {"a": 1}
