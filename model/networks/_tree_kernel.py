"""The compiled tree-ensemble traversal (numba); see :mod:`model.networks.tree_arrays`.

Imported on first prediction only (numba's import and the first compilation cost about a
second; the compiled code is cached next to this file where it is writable). The kernels are
serial and release the GIL; :meth:`TreeArrays.predict_numba` runs them on row ranges in
Python threads (no OpenMP: safe in forked processes and from several threads at once).

``fc`` is ``(n_nodes, 2)`` int32: the node's feature and its left child (the right child is
the left child + 1; a leaf is its own child with threshold +inf), one cache line per node.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def kernel(fc, thr, value, roots, depth, X, out, blk):  # pragma: no cover - compiled
    """``out[i] = sum over trees of value[leaf of row i]`` for NaN-free rows; rows in blocks
    of ``blk``, every tree walked level by level for the whole block without branches
    (independent loads the CPU overlaps)."""
    n = X.shape[0]
    t_n = roots.shape[0]
    nblk = (n + blk - 1) // blk
    for b in range(nblk):
        a = b * blk
        m = min(n, a + blk) - a
        acc = np.zeros(m)
        nodes = np.empty(m, np.int32)
        for t in range(t_n):
            r = roots[t]
            for j in range(m):
                nodes[j] = r
            for _ in range(depth[t]):
                for j in range(m):
                    nd = nodes[j]
                    nodes[j] = fc[nd, 1] + (X[a + j, fc[nd, 0]] > thr[nd])
            for j in range(m):
                acc[j] += value[nodes[j]]
        for j in range(m):
            out[a + j] = acc[j]


@numba.njit(nogil=True, cache=True)
def kernel_nan(fc, thr, mgl, value, roots, depth, X, out, blk):  # pragma: no cover - compiled
    """As :func:`kernel`, for rows that may hold NaN (missing goes left where ``mgl``)."""
    n = X.shape[0]
    t_n = roots.shape[0]
    nblk = (n + blk - 1) // blk
    for b in range(nblk):
        a = b * blk
        m = min(n, a + blk) - a
        acc = np.zeros(m)
        nodes = np.empty(m, np.int32)
        for t in range(t_n):
            r = roots[t]
            for j in range(m):
                nodes[j] = r
            for _ in range(depth[t]):
                for j in range(m):
                    nd = nodes[j]
                    x = X[a + j, fc[nd, 0]]
                    go_left = (x <= thr[nd]) | ((x != x) & mgl[nd])
                    nodes[j] = fc[nd, 1] + (not go_left)
            for j in range(m):
                acc[j] += value[nodes[j]]
        for j in range(m):
            out[a + j] = acc[j]
