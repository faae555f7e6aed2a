"""Tree models stored as plain arrays: equal to scikit-learn, never unpickled, pickles refused.

Each test here fails on the code before issue 13 (trees were joblib pickles inside the
checkpoint, loaded with ``joblib.load``; any folder with a checkpoint.pt was accepted).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from model.errors import InputError, UnreadableFileError
from model.networks.checkpoint import FORMAT, VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from model.networks.registry import get_model
from model.networks.tree_arrays import TreeArrays, f32_floor
from model.networks.trees import PickledModelError

F = 30


def _data(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, F)).astype(np.float32)
    X[:, 3] = np.round(X[:, 3], 1)  # ties at thresholds: float32 rounding must not flip a split
    y = X[:, 0] - 0.5 * X[:, 3] + 0.3 * np.sin(3 * X[:, 7]) + 0.1 * rng.normal(size=n)
    return X, y


def _fitted(kind):
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    X, y = _data()
    if kind == "rf":  # the registry's forest settings, fewer trees
        est = RandomForestRegressor(n_estimators=25, max_depth=20, min_samples_leaf=5, max_features=0.33,
                                    max_samples=0.5, n_jobs=1, random_state=0)
    else:
        est = HistGradientBoostingRegressor(max_iter=60, learning_rate=0.05, max_leaf_nodes=31,
                                            min_samples_leaf=20, early_stopping=False, random_state=0)
    Xn = X.copy()
    if kind == "gbm":
        Xn[::13, 5] = np.nan  # boosting learns where missing values go
    return est.fit(Xn, y), X


@pytest.mark.parametrize("kind", ["rf", "gbm"])
def test_array_traversals_equal_sklearn_predict(kind, monkeypatch):
    """numba, numpy and torch traversals of the arrays equal scikit-learn's predict to 1e-6,
    on new rows, rows holding NaN, and rows exactly at thresholds."""
    est, X = _fitted(kind)
    ta = TreeArrays.from_estimator(est)
    Xq, _ = _data(3000, seed=1)
    Xq[::7, 5] = np.nan
    Xq[::11, 0] = np.nan
    # rows exactly at split thresholds (float32 of the float64 threshold and its neighbours)
    inner = ta.children_left >= 0
    thr = f32_floor(ta.threshold[inner])[:200]
    feat = ta.feature[inner][:200]
    edge = np.repeat(Xq[:1], len(thr) * 2, 0)
    edge[np.arange(len(thr)), feat] = thr
    edge[len(thr) + np.arange(len(thr)), feat] = np.nextafter(thr, np.float32(np.inf))
    Xq = np.concatenate([Xq, X[:500], edge]).astype(np.float32)
    want = est.predict(Xq)
    np.testing.assert_allclose(ta.predict(Xq), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ta.predict(Xq, threads=2), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ta.predict_numpy(Xq), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ta.predict_torch(torch.from_numpy(Xq)).numpy(), want, rtol=0, atol=1e-6)
    clean = np.nan_to_num(Xq)
    np.testing.assert_allclose(ta.predict(clean), est.predict(clean), rtol=0, atol=1e-6)
    # row counts that leave a partial group of twelve rows and a partial block, with the
    # cache-sized block and with blocks of 64 rows (several blocks, the last one partial)
    from model.networks import tree_arrays

    assert tree_arrays.block_rows(238) % 8 == 0 and 64 <= tree_arrays.block_rows(5) <= 8192
    for block_bytes in (tree_arrays.BLOCK_BYTES, 64 * 4 * Xq.shape[1]):
        monkeypatch.setattr(tree_arrays, "BLOCK_BYTES", block_bytes)
        for n in (1, 7, 13, 130, 1031):
            np.testing.assert_allclose(ta.predict(Xq[:n], threads=1), want[:n], rtol=0, atol=1e-6)
            np.testing.assert_allclose(ta.predict(clean[-n:], threads=1), est.predict(clean[-n:]),
                                       rtol=0, atol=1e-6)
    assert tree_arrays.block_rows(Xq.shape[1]) == 64


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["rf", "gbm"])
def test_array_traversal_on_gpu_equals_sklearn(kind):
    est, _ = _fitted(kind)
    ta = TreeArrays.from_estimator(est)
    Xq, _ = _data(3000, seed=2)
    got = ta.predict_torch(torch.from_numpy(Xq).cuda())
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), est.predict(Xq), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["rf", "gbm"])
def test_tree_checkpoint_is_arrays_and_round_trips(name, tmp_path):
    small = {"rf": dict(n_estimators=10, max_depth=8, n_jobs=1), "gbm": dict(max_iter=30)}[name]
    m = get_model(name, n_dynamic=1, n_static=1, t3=2, td=1, tw=1, **small)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, m.dims.n_features)).astype(np.float32)
    y = X[:, 0] * 2 + X[:, -1]
    m.fit(X, y)
    np.testing.assert_allclose(m.predict(X), m.estimator.predict(X).astype(np.float32), rtol=0, atol=1e-6)
    path = save_checkpoint(tmp_path / "c.pt", m)
    state = read_checkpoint(path)["state_dict"]
    assert "estimator" not in state
    assert all(isinstance(v, torch.Tensor) for k, v in state["arrays"].items()
               if k in ("children_left", "children_right", "feature", "threshold", "value"))
    again, _ = load_checkpoint(path, name=name)
    assert again.estimator is None  # nothing of scikit-learn came back
    np.testing.assert_array_equal(again.predict(X), m.predict(X))
    # damaged arrays (a child index pointing back up: a cycle) are refused, not looped on
    bad = dict(state)
    arrays = dict(state["arrays"])
    cl = arrays["children_left"].clone()
    cl[int(torch.nonzero(cl >= 0)[0])] = 0
    arrays["children_left"] = cl
    bad["arrays"] = arrays
    payload = read_checkpoint(path)
    payload["state_dict"] = bad
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="inconsistent"):
        load_checkpoint(tmp_path / "bad.pt")


class _Planted:
    """Unpickling this runs code: it creates the file named in ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_old_pickled_tree_checkpoint_is_refused_without_unpickling(tmp_path):
    """A tree checkpoint of the old layout (joblib bytes of the estimator in a uint8 tensor)
    whose bytes would run code: refused with a clear error, and the code never ran."""
    import joblib

    sentinel = tmp_path / "code-ran"
    buf = io.BytesIO()
    joblib.dump(_Planted(sentinel), buf)
    m = get_model("rf", n_dynamic=1, n_static=1, t3=2, td=1, tw=1)
    payload = {"format": FORMAT, "version": VERSION, "name": "rf", "kind": "sklearn", "model_version": 1,
               "config": m.config_dict(),
               "state_dict": {"fitted": True, "estimator": torch.frombuffer(bytearray(buf.getvalue()),
                                                                             dtype=torch.uint8)},
               "extra": {}}
    torch.save(payload, tmp_path / "checkpoint.pt")
    with pytest.raises(PickledModelError, match="pickled bytes.*refused.*retrain"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not sentinel.exists()


def test_planted_pickle_as_checkpoint_is_refused(tmp_path):
    """A plain pickle named checkpoint.pt is not unpickled (torch.load weights_only=True)."""
    sentinel = tmp_path / "code-ran"
    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps(_Planted(sentinel)))
    with pytest.raises(UnreadableFileError, match="not a readable model checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "evil": _Planted(sentinel)}, buf)
    (tmp_path / "checkpoint.pt").write_bytes(buf.getvalue())
    with pytest.raises(UnreadableFileError):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not sentinel.exists()


def _registry_run(home: Path, name="rf") -> Path:
    """A real run folder in a run registry: an (unfitted) tree model's checkpoint."""
    run = home / "runs" / name / "20260101T000000-abcdef01"
    run.mkdir(parents=True)
    m = get_model(name, n_dynamic=1, n_static=1, t3=2, td=1, tw=1)
    save_checkpoint(run / "checkpoint.pt", m, {"normalisation": {}})
    (run.parent / "LATEST").write_text(run.name + "\n")
    return run


def test_runs_resolve_through_the_registry_by_name_only(smds_home, tmp_path):
    from model.inference.runner import resolve_run

    run = _registry_run(smds_home, "rf")
    assert resolve_run("rf") == run
    assert resolve_run(run) == run  # a run folder of the registry itself
    elsewhere = tmp_path / "elsewhere" / "run"
    elsewhere.mkdir(parents=True)
    (elsewhere / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    for given in (str(elsewhere), elsewhere, str(elsewhere / "checkpoint.pt"),
                  str(smds_home / "runs" / "rf" / ".." / ".." / ".." / "elsewhere" / "run")):
        with pytest.raises(InputError, match="not a model of the run registry.*--run"):
            resolve_run(given)
    assert resolve_run(str(elsewhere), allow_path=True) == elsewhere  # the explicit option
    with pytest.raises(InputError, match="did you mean"):
        resolve_run("rff")


@pytest.mark.parametrize("planted", ["model.joblib", "estimator.pkl"])
def test_run_folder_with_a_planted_pickle_is_refused(smds_home, planted):
    from model.inference.runner import resolve_run

    run = _registry_run(smds_home, "rf")
    (run / planted).write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(InputError, match=f"holds {planted}.*never loads them"):
        resolve_run("rf")
