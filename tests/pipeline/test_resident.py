"""Device-resident inputs (model/training/resident.py) against today's NumPy path.

On the CPU (CI) the resident path runs with ``device="cpu"``: same scenes as the runner's
NumPy path, batching equal to one by one, the same training windows and targets, the same
archive. The ``gpu`` tests repeat the comparisons on CUDA where there is one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def _ard(home):
    return home / "worlds" / "tiny" / "ard.zarr"


def _pair(tiny, name, device="cpu"):
    from model.inference.runner import Runner

    ref = Runner(name, _ard(tiny), device="cpu")
    res = Runner(name, _ard(tiny), device=device, provider=ref.provider, resident=True)
    assert res.resident and not ref.resident
    return ref, res


@pytest.mark.parametrize("name", ["pscnet", "lstm"])
def test_resident_scenes_equal_the_numpy_path(tiny, name):
    ref, res = _pair(tiny, name)
    t = ref.provider.times[-7:]
    a = ref.scenes(t, batch=4)
    b = res.scenes(t, batch=4)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.isfinite(a).sum() > 800 * len(t)
    np.testing.assert_allclose(b, a, atol=1e-5, equal_nan=True)
    # the scene API (DataArray, provenance) is the same object either way
    s = res.scene(t[2])
    np.testing.assert_allclose(s.values, a[2], atol=1e-5, equal_nan=True)


def test_resident_batching_equals_one_by_one(tiny):
    _, res = _pair(tiny, "pscnet")
    t = res.provider.times[-6:]
    whole = res.scenes(t, batch=4)  # a batch of 4 then one of 2
    single = np.concatenate([res.scenes([x], batch=1) for x in t])
    np.testing.assert_allclose(whole, single, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(res.scenes(t, batch=32), single, atol=1e-6, equal_nan=True)


def test_resident_windows_equal_cube_windows(tiny):
    """Windows cut by indexing the resident tensors are the cube's windows, normalised,
    including the clamped history at the first steps and the last step."""
    from model.grids import tp_mask
    from model.inference.inputs import normalise_batch
    from model.training.resident import resident_cube
    from model.inference.runner import Runner, data_region

    r = Runner("unet", _ard(tiny), device="cpu")
    cube = r.provider.cube_for(r.provider.times[3])
    valid, ys, xs = data_region(cube, np.asarray(tp_mask("TP10")))
    rc = resident_cube(cube, ys, xs, "cpu")
    assert resident_cube(cube, ys, xs, "cpu") is rc  # made once per cube and region
    steps = [0, 1, 9, cube.times.size - 1]
    got = rc.windows(steps, r.norm)
    want = normalise_batch({k: np.stack([cube.window(i, ys, xs)[k] for i in steps])
                            for k in ("x3h", "xday", "xweek", "static")}, r.norm)
    for k in want:
        assert tuple(got[k].shape) == want[k].shape, k
        np.testing.assert_array_equal(got[k].numpy(), want[k], err_msg=k)
    raw = rc.windows(steps)
    np.testing.assert_array_equal(raw["x3h"].numpy()[2], cube.window(9, ys, xs)["x3h"])


def test_cube_built_on_the_device_equals_the_host_cube(tiny):
    """build_resident (transforms, mask, daily/weekly means, region on the device) gives the
    host PredictorCube's arrays and region, and the same scenes."""
    from model.grids import tp_mask
    from model.inference.inputs import HISTORY_DAYS
    from model.training.resident import build_resident, resident_cube
    from model.inference.runner import Runner, data_region
    from model.features.ard import load_inputs

    r = Runner("pscnet", _ard(tiny), device="cpu", resident=True)
    p = r.provider
    s, e = p.times[-40], p.times[-1]
    cube = p.cube_between(s, e)
    valid, ys, xs = data_region(cube, np.asarray(tp_mask("TP10")))
    ref = resident_cube(cube, ys, xs, "cpu")
    rc = build_resident(*load_inputs(_ard(tiny), s, e, history_days=HISTORY_DAYS), "cpu")
    assert (rc.ys, rc.xs) == (ys, xs)
    np.testing.assert_array_equal(rc.valid, valid[ys, xs])
    np.testing.assert_array_equal(rc.day_index.numpy(), ref.day_index.numpy())
    for k in ("x3", "daily", "weekly", "static"):
        np.testing.assert_allclose(getattr(rc, k).numpy(), getattr(ref, k).numpy(), rtol=1e-6, atol=1e-6,
                                   equal_nan=True, err_msg=k)
    t = p.times[-40:]
    np.testing.assert_allclose(r.scenes_resident(rc, t, batch=16), r.scenes(t, batch=16, cube=cube),
                               atol=1e-5, equal_nan=True)


def test_resident_patches_equal_host_batches(tiny):
    """Training batches cut on the device: the same windows and targets as the trainer's
    host path for the same patches, and exactly the patches its rejection sampling accepts."""
    from model.training.resident import ResidentPatches
    from model.training.trainer import TrainConfig, _batch_targets, _sample_patches, prepare

    cfg = TrainConfig(model="pscnet", train_start="2017-06-08", train_end="2017-07-05", device="cpu")
    data = prepare(_ard(tiny), cfg)
    rp = ResidentPatches(data, 32, "cpu")
    idx = _sample_patches(np.random.default_rng(0), data, 6, 32, data.train_mask)
    b, y, m = rp.batch(idx, data.train_mask)
    want = data.cube.patch_batch(idx[:, 0], idx[:, 1], idx[:, 2], 32)
    for k in want:
        np.testing.assert_array_equal(b[k].numpy(), want[k], err_msg=k)
    yr, mr = _batch_targets(data, idx, 32, data.train_mask, "cpu")
    np.testing.assert_array_equal(y.numpy(), yr.numpy())
    np.testing.assert_array_equal(m.numpy(), mr.numpy())
    # candidates: every valid (step, row, col) of two steps, found by brute force
    cand = rp.candidates(data.train_mask).numpy()
    h, w = data.cube.shape
    for i in data.train_steps[:2]:
        brute = {(int(i), r, c) for r in range(0, h - 31, 3) for c in range(0, w - 31, 3)
                 if np.isfinite(data.target[i, r:r + 32, c:c + 32][data.train_mask[r:r + 32, c:c + 32]]).sum() >= 4}
        mine = {tuple(map(int, x)) for x in cand[cand[:, 0] == i] if x[1] % 3 == 0 and x[2] % 3 == 0}
        assert brute and mine == brute
    s = rp.sample(500, data.train_mask).numpy()
    assert {tuple(map(int, x)) for x in s} <= {tuple(map(int, x)) for x in cand}


def test_training_with_resident_batches(tiny, tmp_path):
    from model.networks.checkpoint import load_checkpoint
    from model.training.trainer import TrainConfig, train

    cfg = TrainConfig(model="pscnet", train_start="2017-06-08", train_end="2017-07-05", device="cpu",
                      max_epochs=2, steps_per_epoch=3, resident=True)
    run = train("pscnet", cfg, ard=_ard(tiny), out=tmp_path / "run", progress=False)
    s = json.loads((run / "summary.json").read_text())
    assert s["resident_batches"] is True and s["epochs"] == 2
    assert np.isfinite(s["tune_rmse"]) and 0 < s["tune_rmse"] < 0.3
    assert s["samples_per_second"] > 0
    model, extra = load_checkpoint(run / "checkpoint.pt")
    assert extra["train_config"]["resident"] is True


def test_resident_archive_equals_the_dask_archive(tiny, tmp_path):
    """One process, resident inputs, maps and series from the same pass: the same values as
    the tiny home's archive (built on Dask with the NumPy path); a resume reads back the
    blocks written before and gives the same series."""
    from model.inference.archive import build_archive, open_archive

    ref = open_archive("maps")
    out = tmp_path / "archive"
    kw = dict(out=out, ard=_ard(tiny), device="cpu", resident=True, progress=False, block_days=1, batch=5)
    res = build_archive(["pscnet", "smap_bilinear"], "2017-07-06", "2017-07-07", **kw)
    assert res["resident"] and res["complete"] == {"pscnet": True, "smap_bilinear": True}
    assert res["compute_s"] > 0 and res["load_s"] >= 0
    maps, series = open_archive("maps", out), open_archive("series", out)
    sel = slice("2017-07-06", "2017-07-07T21:00")
    for m in ("pscnet", "smap_bilinear"):
        want = ref[m].sel(time=sel).values
        assert np.isfinite(want).sum() > 1000
        np.testing.assert_allclose(maps[m].values, want, atol=1e-5, equal_nan=True)
        np.testing.assert_array_equal(series[m].values, maps[m].values)
    assert series["pscnet"].encoding["chunks"] == (16, 10, 10)
    # resume: the second day's marker and series marker gone -> that block recomputed, the
    # first day read back from the maps for the series layout
    (out / "build" / "pscnet" / f"{8:06d}.done").unlink()
    (out / "build" / "series" / "pscnet.done").unlink()
    res2 = build_archive(["pscnet", "smap_bilinear"], "2017-07-06", "2017-07-07", **kw)
    assert res2["blocks_todo"] == 1 and res2["complete"]["pscnet"]
    s2 = open_archive("series", out)
    np.testing.assert_array_equal(s2["pscnet"].values, maps["pscnet"].values)


# ---------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["pscnet", "lstm"])
def test_cuda_resident_agrees_with_the_cpu(tiny, name):
    ref, res = _pair(tiny, name, device="cuda")
    assert res.device.startswith("cuda")
    t = ref.provider.times[-9:]
    a = ref.scenes(t, batch=4)
    b = res.scenes(t, batch=4)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(b, a, atol=1e-3 if res.amp else 1e-4, equal_nan=True)
    single = np.concatenate([res.scenes([x], batch=1) for x in t])
    np.testing.assert_allclose(res.scenes(t, batch=32), single, atol=1e-3 if res.amp else 1e-5, equal_nan=True)


@pytest.mark.gpu
def test_cuda_resident_patches_equal_the_cpu(tiny):
    from model.training.resident import ResidentPatches
    from model.training.trainer import TrainConfig, _sample_patches, prepare

    cfg = TrainConfig(model="pscnet", train_start="2017-06-08", train_end="2017-07-05", device="cpu")
    data = prepare(_ard(tiny), cfg)
    idx = _sample_patches(np.random.default_rng(0), data, 8, 32, data.train_mask)
    a = ResidentPatches(data, 32, "cpu").batch(idx, data.train_mask)
    b = ResidentPatches(data, 32, "cuda").batch(idx, data.train_mask)
    for k in a[0]:
        np.testing.assert_array_equal(b[0][k].cpu().numpy(), a[0][k].numpy())
    np.testing.assert_array_equal(b[1].cpu().numpy(), a[1].numpy())
