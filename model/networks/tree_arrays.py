"""Fitted tree ensembles as plain arrays, and fast prediction from them.

A fitted random forest or histogram gradient boosting model is stored as arrays only
(``children_left``, ``children_right``, ``feature``, ``threshold``, ``missing_go_to_left``,
``value`` for every node of every tree, ``tree_offsets`` where each tree starts, and the
``baseline`` and ``scale`` that turn the sum of leaf values into the prediction), so a
checkpoint is read with ``torch.load(weights_only=True)`` and never unpickles code.

Prediction equals scikit-learn's ``predict`` (to float rounding, tested to 1e-6):

    prediction = baseline + scale * sum over trees of value[leaf reached by the row]

where a row goes to the left child when ``x[feature] <= threshold``, and a missing ``x``
(NaN) goes left when ``missing_go_to_left``. Random forest: ``baseline = 0``,
``scale = 1 / n_trees``; gradient boosting (squared error): ``baseline`` is the model's
initial prediction, ``scale = 1`` (the learning rate is already in the leaf values).

Three traversals of the same arrays:

- :func:`predict_numba` (the CPU default): rows in blocks (a block's feature rows stay in
  cache), twelve rows walking each tree together for its full depth without branches
  (leaves loop to themselves), so the CPU overlaps twelve independent chains of node loads;
  blocks in parallel threads (``benchmarks/bench_trees.py`` gives the measured speed-up over
  scikit-learn's ``predict``; ``docs/benchmarks.md`` quotes it).
- :func:`predict_numpy`: the same level-by-level traversal vectorised with numpy gathers
  (the fallback where numba is absent).
- :func:`predict_torch`: the same with torch indexing, on the tensor's device (a GPU).

Thresholds: scikit-learn compares the float32 input, widened to float64, with a float64
threshold. For float32 ``x``, ``x <= t`` holds exactly when ``x <= t32`` with ``t32`` the
largest float32 not above ``t``; the compiled layout stores that ``t32``, so float32
comparisons decide every split as scikit-learn does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..machine import kernel_threads

#: the layout version of the stored arrays; a checkpoint with another one is refused
FORMAT = "tree-arrays-1"
FIELDS = ("children_left", "children_right", "feature", "threshold", "missing_go_to_left",
          "value", "tree_offsets")


def f32_floor(t: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 ``t`` (so ``x32 <= t`` iff ``x32 <= result``)."""
    t = np.asarray(t, np.float64)
    t32 = t.astype(np.float32)
    over = t32.astype(np.float64) > t
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


@dataclass
class Layout:
    """The compiled form: trees renumbered breadth-first so that a node's right child is its
    left child + 1; leaves point to themselves with threshold +inf and missing-goes-left, so a
    fixed number of steps (the tree's depth) lands every row on its leaf."""

    child: np.ndarray      # int32 (n_nodes,): global index of the left child (leaf: itself)
    feature: np.ndarray    # int32 (n_nodes,)
    threshold: np.ndarray  # float32 (n_nodes,), floored to float32 (module docstring)
    missing_left: np.ndarray  # bool (n_nodes,)
    value: np.ndarray      # float64 (n_nodes,)
    roots: np.ndarray      # int32 (n_trees,)
    depth: np.ndarray      # int32 (n_trees,): steps from the root to the deepest leaf
    fc: np.ndarray | None = field(default=None, repr=False)  # (feature, child) pairs, numba
    _torch: dict = field(default_factory=dict, repr=False)


@dataclass
class TreeArrays:
    """A fitted tree ensemble as arrays (see the module docstring for the meaning)."""

    children_left: np.ndarray   # int32 (n_nodes,): index within the tree, -1 at a leaf
    children_right: np.ndarray  # int32 (n_nodes,)
    feature: np.ndarray         # int32 (n_nodes,): -1 (or anything) at a leaf
    threshold: np.ndarray       # float64 (n_nodes,)
    missing_go_to_left: np.ndarray  # bool (n_nodes,)
    value: np.ndarray           # float64 (n_nodes,): the leaf values (internal nodes unused)
    tree_offsets: np.ndarray    # int64 (n_trees + 1,): tree k holds nodes offsets[k]:offsets[k+1]
    n_features: int
    baseline: float = 0.0
    scale: float = 1.0
    _layout: Layout | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_estimator(cls, est) -> "TreeArrays":
        """From a fitted ``RandomForestRegressor`` or ``HistGradientBoostingRegressor``."""
        if hasattr(est, "estimators_"):
            return cls._from_forest(est)
        if hasattr(est, "_predictors"):
            return cls._from_hist_gbm(est)
        raise InputError(f"cannot store a {type(est).__name__} as tree arrays",
                         "use a random forest or histogram gradient boosting regressor")

    @classmethod
    def _from_forest(cls, rf) -> "TreeArrays":
        parts = []
        for e in rf.estimators_:
            t = e.tree_
            if t.n_outputs != 1:
                raise InputError("only single-output forests can be stored as tree arrays",
                                 "fit one target")
            mgl = getattr(t, "missing_go_to_left", np.zeros(t.node_count, np.uint8))
            parts.append((t.children_left, t.children_right, t.feature, t.threshold, mgl,
                          t.value[:, 0, 0]))
        return cls._concat(parts, int(rf.n_features_in_), 0.0, 1.0 / len(parts))

    @classmethod
    def _from_hist_gbm(cls, gb) -> "TreeArrays":
        if getattr(gb, "loss", "squared_error") != "squared_error":
            raise InputError(f"gradient boosting with loss {gb.loss!r} cannot be stored as tree arrays",
                             "use loss='squared_error'")
        if getattr(gb, "is_categorical_", None) is not None and np.any(gb.is_categorical_):
            raise InputError("gradient boosting with categorical features cannot be stored as "
                             "tree arrays", "fit on numeric features")
        parts = []
        for it in gb._predictors:
            if len(it) != 1:
                raise InputError("only single-output gradient boosting can be stored as tree arrays",
                                 "fit one target")
            nd = it[0].nodes
            leaf = nd["is_leaf"].astype(bool)
            parts.append((np.where(leaf, -1, nd["left"].astype(np.int64)),
                          np.where(leaf, -1, nd["right"].astype(np.int64)),
                          nd["feature_idx"], nd["num_threshold"], nd["missing_go_to_left"],
                          nd["value"]))
        base = float(np.asarray(gb._baseline_prediction).reshape(-1)[0])
        return cls._concat(parts, int(gb.n_features_in_), base, 1.0)

    @classmethod
    def _concat(cls, parts, n_features, baseline, scale) -> "TreeArrays":
        sizes = [len(p[0]) for p in parts]
        return cls(children_left=np.concatenate([p[0] for p in parts]).astype(np.int32),
                   children_right=np.concatenate([p[1] for p in parts]).astype(np.int32),
                   feature=np.concatenate([p[2] for p in parts]).astype(np.int32),
                   threshold=np.concatenate([p[3] for p in parts]).astype(np.float64),
                   missing_go_to_left=np.concatenate([p[4] for p in parts]).astype(bool),
                   value=np.concatenate([p[5] for p in parts]).astype(np.float64),
                   tree_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                   n_features=n_features, baseline=float(baseline), scale=float(scale))

    # ------------------------------------------------------------------ storing
    def to_state(self) -> dict[str, Any]:
        """Plain arrays and numbers (a checkpoint stores the arrays as tensors)."""
        return {"format": FORMAT, **{k: getattr(self, k) for k in FIELDS},
                "n_features": self.n_features, "baseline": self.baseline, "scale": self.scale}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "TreeArrays":
        if state.get("format") != FORMAT:
            raise InputError(f"tree arrays of format {state.get('format')!r}, not {FORMAT!r}",
                             "retrain the model with this code version")
        arr = {}
        for k in FIELDS:
            v = state[k]
            arr[k] = v.cpu().numpy() if hasattr(v, "cpu") else np.asarray(v)
        ta = cls(children_left=arr["children_left"].astype(np.int32),
                 children_right=arr["children_right"].astype(np.int32),
                 feature=arr["feature"].astype(np.int32), threshold=arr["threshold"].astype(np.float64),
                 missing_go_to_left=arr["missing_go_to_left"].astype(bool),
                 value=arr["value"].astype(np.float64), tree_offsets=arr["tree_offsets"].astype(np.int64),
                 n_features=int(state["n_features"]), baseline=float(state["baseline"]),
                 scale=float(state["scale"]))
        ta.check()
        return ta

    def check(self) -> None:
        """Refuse arrays that do not describe trees (indices out of range, cycles)."""
        n = len(self.children_left)
        off = self.tree_offsets
        bad = (any(len(getattr(self, k)) != n for k in FIELDS[:-1]) or off[0] != 0 or off[-1] != n
               or np.any(np.diff(off) < 1))
        if not bad:
            size = np.repeat(np.diff(off), np.diff(off))
            local = np.arange(n) - np.repeat(off[:-1], np.diff(off))
            leaf = self.children_left < 0
            for ch in (self.children_left, self.children_right):
                bad |= bool(np.any(~leaf & ((ch <= local) | (ch >= size))))  # children after parents
            bad |= bool(np.any(leaf != (self.children_right < 0)))
            bad |= bool(np.any(~leaf & ((self.feature < 0) | (self.feature >= self.n_features))))
        if bad:
            raise InputError("the stored tree arrays are inconsistent (child or feature index out of "
                             "range)", "retrain the model; the checkpoint is damaged")

    @property
    def n_nodes(self) -> int:
        return int(len(self.children_left))

    @property
    def n_trees(self) -> int:
        return int(len(self.tree_offsets) - 1)

    # ------------------------------------------------------------------ compiled layout
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = _compile(self)
        return self._layout

    # ------------------------------------------------------------------ predicting
    def _check_x(self, X):
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"expected rows (N, {self.n_features}) features, got {tuple(X.shape)}",
                             "build the rows with the model's features(batch)")

    def predict(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """float64 predictions ``(N,)`` for float32 rows ``X`` ``(N, F)`` (compiled when numba
        is installed, else numpy)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        self._check_x(X)
        if _numba() is None:
            return self.predict_numpy(X)
        return self.predict_numba(X, threads)

    def predict_numba(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        nb = _numba()
        if nb is None:
            raise InputError("numba is not installed", "pip install numba, or use predict_numpy")
        X = np.ascontiguousarray(X, dtype=np.float32)
        self._check_x(X)
        L = self.layout()
        out = np.empty(len(X), np.float64)
        if len(X):
            n = max(1, min(threads or kernel_threads(), -(-len(X) // 1024)))
            if L.fc is None:
                L.fc = np.ascontiguousarray(np.stack([L.feature, L.child], 1), dtype=np.int32)
            has_nan = bool(np.isnan(X.min()))  # NaN propagates through min: half the time of isnan().any()

            mgl = L.missing_left if has_nan else None
            blk = block_rows(X.shape[1])

            def run(a, b):
                nb.kernel(L.fc, L.threshold, mgl, L.value, L.roots, L.depth, X[a:b], out[a:b], blk)

            cuts = np.linspace(0, len(X), n + 1).astype(int)
            if n == 1:
                run(0, len(X))
            else:
                with ThreadPoolExecutor(n, thread_name_prefix="trees") as ex:
                    list(ex.map(run, cuts[:-1], cuts[1:]))
        return self.baseline + self.scale * out

    def predict_numpy(self, X: np.ndarray, rows: int = 4096) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        self._check_x(X)
        L = self.layout()
        n, f = X.shape
        t = len(L.roots)
        out = np.empty(n, np.float64)
        depth = int(L.depth.max()) if t else 0
        for a in range(0, n, rows):
            flat = X[a:a + rows].ravel()
            r = min(rows, n - a)
            node = np.tile(L.roots, r)
            base = np.repeat(np.arange(r, dtype=np.int64) * f, t)
            for _ in range(depth):
                x = flat[base + L.feature[node]]
                go_left = (x <= L.threshold[node]) | (np.isnan(x) & L.missing_left[node])
                node = L.child[node] + (~go_left)
            out[a:a + r] = L.value[node].reshape(r, t).sum(1)
        return self.baseline + self.scale * out

    def predict_torch(self, X, rows: int | None = None):
        """float64 predictions for a float32 tensor ``X`` ``(N, F)``, on ``X``'s device."""
        # lazy: torch costs 0.9 s at import; CPU prediction (numba) needs none, and `--help` imports this module
        import torch

        X = torch.as_tensor(X).to(torch.float32).contiguous()
        self._check_x(X)
        dev = X.device
        L = self.layout()
        key = str(dev)
        if key not in L._torch:
            L._torch[key] = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in
                             (("child", L.child.astype(np.int64)), ("feature", L.feature.astype(np.int64)),
                              ("threshold", L.threshold), ("missing_left", L.missing_left),
                              ("value", L.value), ("roots", L.roots.astype(np.int64)))}
        tt = L._torch[key]
        n, f = X.shape
        t = len(L.roots)
        rows = rows or max(1, (1 << 22) // max(t, 1))
        out = torch.empty(n, dtype=torch.float64, device=dev)
        depth = int(L.depth.max()) if t else 0
        for a in range(0, n, rows):
            flat = X[a:a + rows].reshape(-1)
            r = min(rows, n - a)
            node = tt["roots"].repeat(r)
            base = torch.arange(r, device=dev, dtype=torch.int64).repeat_interleave(t) * f
            for _ in range(depth):
                x = flat[base + tt["feature"][node]]
                go_left = (x <= tt["threshold"][node]) | (torch.isnan(x) & tt["missing_left"][node])
                node = tt["child"][node] + (~go_left).long()
            out[a:a + r] = tt["value"][node].reshape(r, t).sum(1)
        return self.baseline + self.scale * out


def _compile(ta: TreeArrays) -> Layout:
    """Breadth-first renumbering of every tree (module docstring of :class:`Layout`)."""
    child, feat, thr, mgl, val, roots, depth = [], [], [], [], [], [], []
    thr32 = f32_floor(ta.threshold)
    start = 0
    for k in range(ta.n_trees):
        a, b = int(ta.tree_offsets[k]), int(ta.tree_offsets[k + 1])
        left = ta.children_left[a:b].astype(np.int64)
        right = ta.children_right[a:b].astype(np.int64)
        new_of = np.empty(b - a, np.int64)
        level = np.array([0])
        new_of[0] = 0
        order = [level]
        nxt, d = 1, 0
        while True:
            inner = level[left[level] >= 0]
            if inner.size == 0:
                break
            kids = np.empty(2 * inner.size, np.int64)
            kids[0::2], kids[1::2] = left[inner], right[inner]
            new_of[kids] = nxt + np.arange(kids.size)
            nxt += kids.size
            order.append(kids)
            level = kids
            d += 1
        old = np.concatenate(order)
        if old.size != b - a:
            raise InputError("a stored tree has unreachable nodes", "retrain the model; the "
                             "checkpoint is damaged")
        leaf = left[old] < 0
        g = start + np.arange(old.size)
        child.append(np.where(leaf, g, start + new_of[np.where(leaf, 0, left[old])]))
        feat.append(np.where(leaf, 0, ta.feature[a:b][old]))
        thr.append(np.where(leaf, np.float32(np.inf), thr32[a:b][old]))
        mgl.append(np.where(leaf, True, ta.missing_go_to_left[a:b][old]))
        val.append(ta.value[a:b][old])
        roots.append(start)
        depth.append(d)
        start += old.size
    cat = np.concatenate
    return Layout(child=cat(child).astype(np.int32), feature=cat(feat).astype(np.int32),
                  threshold=cat(thr).astype(np.float32), missing_left=cat(mgl).astype(bool),
                  value=cat(val).astype(np.float64), roots=np.array(roots, np.int32),
                  depth=np.array(depth, np.int32))


#: bytes of feature rows per kernel block: a block's rows stay in a core's L2 cache while every
#: tree walks them, and each tree's nodes are reused by as many rows as fit. Measured on the
#: 2-core Xeon VM (2 MiB L2 per core; forest of 100 depth-20 trees, 238 features, 60,000 rows,
#: 2 threads, eight-row kernel): 128 rows 0.101-0.104 s, 640-1,024 rows 0.091-0.093 s,
#: 1,536 rows 0.101 s, 4,096 rows 0.158 s (``benchmarks/bench_trees.py --block``)
BLOCK_BYTES = 768 * 1024


def block_rows(n_features: int) -> int:
    """Rows per kernel block for rows of ``n_features`` float32 (a multiple of 8, 64 to 8,192)."""
    rows = BLOCK_BYTES // (4 * max(1, n_features))
    return int(min(8192, max(64, rows - rows % 8)))


_NUMBA: list = []


def _numba():
    """The compiled kernel module (:mod:`model.networks._tree_kernel`), or None where numba
    is not installed."""
    if not _NUMBA:
        try:
            # lazy: model.networks._tree_kernel imports numba (0.19 s plus its compiles), which is optional
            from . import _tree_kernel
        except ImportError:  # pragma: no cover - numba comes with datashader
            _tree_kernel = None
        _NUMBA.append(_tree_kernel)
    return _NUMBA[0]
