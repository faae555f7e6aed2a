#!/usr/bin/env python
"""Tree-ensemble prediction: scikit-learn's ``predict`` (the code before issue 13) against the
array traversal the models now use (:mod:`model.networks.tree_arrays`).

Fits the registry's random forest and gradient boosting (their demo constructor arguments:
100 trees of depth 20 / 300 boosting iterations of 31 leaves) on synthetic pixel rows with
the feature count of the registry's default inputs, then times predicting ``--rows`` rows
(about one 8-step batch of TP cells) with each method, best of ``--repeat``, and checks the
answers agree to 1e-6. Prints the machine first. One command::

    python benchmarks/bench_trees.py                 # rf and gbm, 2 threads
    python benchmarks/bench_trees.py --threads 1 --rows 200000 --models rf

``threads``: scikit-learn's forest ``n_jobs`` and the array traversal's threads (boosting's
OpenMP uses every core, as it does in the product).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model.machine import machine_info, machine_line  # noqa: E402


def best(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["rf", "gbm"], choices=["rf", "gbm"])
    ap.add_argument("--rows", type=int, default=60_000, help="rows predicted (default 60000)")
    ap.add_argument("--train-rows", type=int, default=10_000)
    ap.add_argument("--features", type=int, default=None, help="default: the registry's default inputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block", type=int, nargs="+", default=None, metavar="ROWS",
                    help="also time the array traversal with these rows per kernel block")
    args = ap.parse_args(argv)

    from model.networks.registry import get_model

    print(machine_line(machine_info()), flush=True)
    rng = np.random.default_rng(0)
    probe = get_model("rf", n_dynamic=12, n_static=10)
    f = args.features or probe.dims.n_features
    X = rng.normal(size=(args.rows, f)).astype(np.float32)
    Xt = X[:args.train_rows]
    y = Xt[:, 0] - 0.5 * Xt[:, 3] + 0.3 * np.sin(3 * Xt[:, 7]) + 0.1 * rng.normal(size=len(Xt))
    results = {}
    for name in args.models:
        kw = {"n_jobs": args.threads} if name == "rf" else {}
        est = get_model(name, n_dynamic=12, n_static=10, **kw)._make_estimator()  # demo arguments
        t0 = time.perf_counter()
        est.fit(Xt, y)
        fit_s = time.perf_counter() - t0
        from model.networks.tree_arrays import TreeArrays

        ta = TreeArrays.from_estimator(est)
        ta.predict(X[:100], threads=args.threads)   # compile once (numba), build the layout
        want, t_sk = best(lambda: est.predict(X), args.repeat)
        got, t_arr = best(lambda: ta.predict(X, threads=args.threads), args.repeat)
        _, t_np = best(lambda: ta.predict_numpy(X[: args.rows // 4]), 1)
        err = float(np.max(np.abs(got - want)))
        from model.networks import tree_arrays

        by_block = {}
        for rows in args.block or []:
            saved = tree_arrays.BLOCK_BYTES
            tree_arrays.BLOCK_BYTES = rows * 4 * f
            try:
                assert tree_arrays.block_rows(f) == rows, "--block: a multiple of 8, 64 to 8192"
                by_block[rows] = round(best(lambda: ta.predict(X, threads=args.threads), args.repeat)[1], 4)
            finally:
                tree_arrays.BLOCK_BYTES = saved
        results[name] = {"trees": ta.n_trees, "nodes": ta.n_nodes, "features": f, "rows": args.rows,
                         "fit_s": round(fit_s, 1), "sklearn_predict_s": round(t_sk, 3),
                         "arrays_predict_s": round(t_arr, 3), "speedup": round(t_sk / t_arr, 2),
                         "numpy_fallback_s_per_row": round(t_np / (args.rows // 4) * 1e6, 2),
                         "max_abs_difference": err, "block_rows": tree_arrays.block_rows(f),
                         **({"arrays_predict_s_by_block_rows": by_block} if by_block else {})}
        print(json.dumps({name: results[name]}), flush=True)
        if err > 1e-6:
            print(f"ERROR: {name} arrays differ from scikit-learn by {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
