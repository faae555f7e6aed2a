"""Tree-ensemble baselines (scikit-learn): random forest and gradient boosting.

They share the networks' conceptual interface on the same batches:

- :meth:`TreeModel.features` flattens a batch to one row per pixel, ``(B*H*W, F)``, with the
  columns of :func:`model.networks.inputs.flatten_pixels`: every ``x3h`` step (oldest first)
  with its ``n_dynamic`` channels, then every ``xday`` step, then every ``xweek`` step, then
  the ``n_static`` static layers (:meth:`TreeModel.feature_names`); rows run over batch,
  then lat, then lon (C order of ``(B, H, W)``).
- :meth:`TreeModel.fit` ``(X, y)`` on such rows (``y`` in normalised units, NaN-free).
- :meth:`TreeModel.predict_batch` returns ``(B, 1, H, W)`` float32 on the batch's device.
- :meth:`TreeModel.state_dict` / :meth:`TreeModel.load_state_dict` carry the fitted
  ensemble as plain arrays (:class:`model.networks.tree_arrays.TreeArrays`: children,
  feature, threshold, value per node of every tree), so
  :func:`model.networks.checkpoint.save_checkpoint` stores them in the same structure as the
  networks (name, version, config, state, extra) and loading never unpickles anything. A
  checkpoint that holds a pickled estimator (the layout of earlier versions) is refused
  with :class:`PickledModelError`.
- Prediction runs on the arrays (:meth:`TreeArrays.predict`: compiled on the CPU, torch on a
  GPU batch), equal to scikit-learn's ``predict`` to 1e-6 and several times faster.

scikit-learn is imported only when an estimator is built (fitting), so this module imports with torch
and numpy alone. ``random_state`` is fixed (a constructor argument, default 0).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..errors import InputError
from .inputs import InputDims, check_batch, feature_names, flatten_pixels
from .recording import ConfigMixin
from .tree_arrays import TreeArrays


class NotFittedError(InputError):
    """A tree model asked to predict before it was fitted."""


class PickledModelError(InputError):
    """A checkpoint that stores a tree model as pickled bytes, which could run code on load."""


class TreeModel(ConfigMixin):
    kind = "sklearn"
    per_pixel = True

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4):
        self.dims = InputDims(n_dynamic, n_static, t3, td, tw)
        #: the scikit-learn estimator after :meth:`fit` in this process (None after loading)
        self.estimator = None
        #: the fitted ensemble as arrays (what predicts and what a checkpoint stores)
        self.arrays: TreeArrays | None = None

    # -- to be provided by subclasses
    def _make_estimator(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- features
    def feature_names(self, dynamic: list[str] | None = None,
                      static: list[str] | None = None) -> list[str]:
        return feature_names(self.dims, dynamic, static)

    def features(self, batch: Mapping[str, Any]) -> np.ndarray:
        """One row per pixel, ``(B*H*W, F)`` float32 (see the module docstring for the order)."""
        batch = {k: torch.as_tensor(v) for k, v in batch.items()}
        check_batch(batch, self.dims, self.name)
        x = flatten_pixels(batch)                                  # (B, F, H, W)
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).detach().cpu().float().numpy()

    # -- fit / predict
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        """Fit on rows ``X`` ``(N, F)`` and targets ``y`` ``(N,)`` (normalised units)."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or X.shape[1] != self.dims.n_features or len(y) != len(X):
            raise InputError(f"{self.name}: expected X (pixels, features) = (N, "
                             f"{self.dims.n_features}) and y (N,), got {X.shape} and {y.shape}",
                             "build X with features(batch)")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InputError(f"{self.name}: X or y holds NaN/inf",
                             "drop pixels without a target before fitting")
        est = self._make_estimator()
        est.fit(X, y, sample_weight=sample_weight)
        self.estimator = est
        self.arrays = TreeArrays.from_estimator(est)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """float32 predictions ``(N,)`` for rows ``X`` ``(N, F)``, from the tree arrays (a torch
        tensor on a GPU is predicted there and comes back as a numpy array)."""
        if self.arrays is None:
            raise NotFittedError(f"{self.name} is not fitted",
                                 "call fit(X, y) or load a checkpoint")
        if isinstance(X, torch.Tensor) and X.device.type != "cpu":
            return self.arrays.predict_torch(X).float().cpu().numpy()
        return self.arrays.predict(np.asarray(X, dtype=np.float32), self._threads()).astype(np.float32)

    def _threads(self) -> int | None:
        n = getattr(self, "params", {}).get("n_jobs")
        return n if isinstance(n, int) and n > 0 else None

    def predict_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Predict a batch: ``(B, 1, H, W)`` float32 tensor on the batch's device (a GPU batch
        is predicted on the GPU)."""
        ref = torch.as_tensor(batch["x3h"])
        b, h, w = check_batch({k: torch.as_tensor(v) for k, v in batch.items()}, self.dims,
                              self.name)
        if self.arrays is None:
            raise NotFittedError(f"{self.name} is not fitted",
                                 "call fit(X, y) or load a checkpoint")
        if ref.device.type != "cpu":
            x = flatten_pixels({k: torch.as_tensor(v) for k, v in batch.items()})
            rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
            return self.arrays.predict_torch(rows).float().reshape(b, 1, h, w)
        y = self.predict(self.features(batch)).reshape(b, 1, h, w)
        return torch.from_numpy(y).to(ref.device)

    __call__ = predict_batch

    # -- state (for checkpoints)
    def state_dict(self) -> dict[str, Any]:
        """``{"fitted": bool, "arrays": {...}}``: numbers and numpy arrays only (stored as
        tensors by the checkpoint), never pickled objects."""
        if self.arrays is None:
            return {"fitted": False}
        return {"fitted": True, "arrays": self.arrays.to_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "estimator" in state and (state.get("fitted") or len(state["estimator"])):
            raise PickledModelError(
                f"this {self.name} checkpoint stores the fitted model as pickled bytes (joblib), "
                "which can run arbitrary code when loaded; it is refused",
                f"retrain it with this version (sm-downscale train --model {self.name}): tree "
                "models are now stored as plain arrays")
        self.estimator = None
        self.arrays = TreeArrays.from_state(state["arrays"]) if state.get("fitted") else None

    def n_parameters(self) -> int:
        """Number of tree nodes of the fitted ensemble (0 before fitting)."""
        return 0 if self.arrays is None else self.arrays.n_nodes


class RandomForest(TreeModel):
    """Random forest regression (Breiman 2001) on per-pixel features."""

    name = "rf"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 n_estimators: int = 100, max_depth: int | None = 20, min_samples_leaf: int = 5,
                 max_features: float = 0.33, max_samples: float | None = 0.5,
                 n_jobs: int | None = -1, random_state: int = 0):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.params = dict(n_estimators=n_estimators, max_depth=max_depth,
                           min_samples_leaf=min_samples_leaf, max_features=max_features,
                           max_samples=max_samples, n_jobs=n_jobs, random_state=random_state)

    def _make_estimator(self):
        # lazy: sklearn costs 0.87 s at import; only fitting needs it (prediction uses plain arrays)
        from sklearn.ensemble import RandomForestRegressor
        return RandomForestRegressor(**self.params)


class GradientBoosting(TreeModel):
    """Histogram gradient boosting (scikit-learn ``HistGradientBoostingRegressor``)."""

    name = "gbm"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 20, l2_regularization: float = 0.0,
                 early_stopping: bool = False, random_state: int = 0):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate,
                           max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf,
                           l2_regularization=l2_regularization, early_stopping=early_stopping,
                           random_state=random_state)

    def _make_estimator(self):
        # lazy: sklearn costs 0.87 s at import; only fitting needs it (prediction uses plain arrays)
        from sklearn.ensemble import HistGradientBoostingRegressor
        return HistGradientBoostingRegressor(**self.params)
