"""Tree-ensemble baselines: features, fit/predict, checkpoints, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.errors import InputError
from model.networks.checkpoint import load_checkpoint, save_checkpoint
from model.networks.inputs import InputDims, ShapeError, example_batch
from model.networks.registry import get_model

DIMS = InputDims(n_dynamic=3, n_static=2, t3=4, td=3, tw=2)
SMALL = {"rf": dict(n_estimators=10, max_depth=8, n_jobs=1), "gbm": dict(max_iter=30)}


def build(name):
    return get_model(name, n_dynamic=3, n_static=2, t3=4, td=3, tw=2, **SMALL[name])


def training_data(seed=0):
    batch = example_batch(DIMS, 4, 10, 10, seed=seed)
    y = (0.8 * batch["x3h"][:, -1, 0] - 0.5 * batch["static"][:, 1]).reshape(-1).numpy()
    return batch, y


def test_feature_order_matches_names():
    m = build("rf")
    batch = example_batch(DIMS, 2, 3, 5)
    X = m.features(batch)
    names = m.feature_names(dynamic=["swvl1", "t2m", "tp"], static=["elev", "lat"])
    assert X.shape == (2 * 3 * 5, DIMS.n_features) == (30, len(names))
    col = names.index("x3h[t-0h].swvl1")
    np.testing.assert_array_equal(X[:, col], batch["x3h"][:, -1, 0].reshape(-1).numpy())
    col = names.index("xweek[t-1w].tp")
    np.testing.assert_array_equal(X[:, col], batch["xweek"][:, 0, 2].reshape(-1).numpy())
    assert names[-1] == "static.lat"
    np.testing.assert_array_equal(X[:, -1], batch["static"][:, 1].reshape(-1).numpy())
    # rows run over batch, lat, lon (C order)
    assert X[1 * 15 + 2 * 5 + 4, -1] == batch["static"][1, 1, 2, 4]


@pytest.mark.parametrize("name", ["rf", "gbm"])
def test_fit_predict_and_checkpoint(name, tmp_path):
    m = build(name)
    batch, y = training_data()
    m.fit(m.features(batch), y)
    pred = m.predict_batch(batch)
    assert pred.shape == (4, 1, 10, 10) and pred.dtype == torch.float32
    r = np.corrcoef(pred.reshape(-1).numpy(), y)[0, 1]
    assert r > 0.8
    assert m.predict_batch(example_batch(DIMS, 1, 1, 1)).shape == (1, 1, 1, 1)
    assert m.n_parameters() > 0
    path = save_checkpoint(tmp_path / f"{name}.pt", m, {"channels": ["a", "b", "c"]})
    again, extra = load_checkpoint(path, name=name)
    assert extra == {"channels": ["a", "b", "c"]}
    assert again.config_dict() == m.config_dict()
    torch.testing.assert_close(again.predict_batch(batch), pred, rtol=0, atol=0)
    with pytest.raises(InputError, match=f"holds model '{name}'"):
        load_checkpoint(path, name="pscnet")


@pytest.mark.parametrize("name", ["rf", "gbm"])
def test_fixed_random_state_reproduces(name):
    batch, y = training_data(1)
    a, b = build(name), build(name)
    X = a.features(batch)
    np.testing.assert_array_equal(a.fit(X, y).predict(X), b.fit(X, y).predict(X))


def test_errors():
    m = build("gbm")
    batch, y = training_data()
    with pytest.raises(InputError, match="not fitted"):
        m.predict_batch(batch)
    with pytest.raises(InputError, match=r"expected X \(pixels, features\)"):
        m.fit(np.zeros((5, 3)), np.zeros(5))
    X = m.features(batch)
    X[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m.fit(X, y)
    with pytest.raises(ShapeError, match=r"expected xday \(batch, time, channel, lat, lon\) = "
                                         r"\(B, 3, 3, H, W\)"):
        m.features(dict(batch, xday=batch["xday"][:, :2]))


def test_unfitted_checkpoint_round_trip(tmp_path):
    m = build("rf")
    again, _ = load_checkpoint(save_checkpoint(tmp_path / "rf.pt", m))
    assert again.estimator is None and again.config_dict() == m.config_dict()


def _predict_in_daemon(m, X, q):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = m.predict(X)
    q.put((p, [str(w.message) for w in caught]))


def test_forest_in_a_daemon_process_predicts_without_warnings():
    """In a Dask worker (a daemonic process) the forest predicts with one job, silently, and
    gives the same answer as with all cores."""
    import multiprocessing as mp

    m = get_model("rf", n_dynamic=3, n_static=2, t3=4, td=3, tw=2, n_estimators=10, max_depth=8, n_jobs=2)
    batch, y = training_data()
    X = m.features(batch)
    m.fit(X, y)
    want = m.predict(X)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_predict_in_daemon, args=(m, X, q), daemon=True)
    p.start()
    got, messages = q.get(timeout=60)
    p.join(timeout=60)
    assert not [s for s in messages if "n_jobs" in s], messages
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert m.estimator.n_jobs == 2  # the parent's estimator is untouched
