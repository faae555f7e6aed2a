"""The compiled area-overlap product (numba); see :meth:`model.grids.regrid.Regridder.apply`.

For fields ``x[t]`` on the source grid and the two banded 1-D overlap matrices (CSR arrays:
a destination row overlaps a few source rows, a destination column a few source columns), it
writes ``num[t] = w_lat @ (m * x) @ w_lon.T`` and ``den[t] = w_lat @ m @ w_lon.T`` with ``m``
the finite-value mask, in one pass: a few multiply-adds per cell instead of two dense
products per field. Serial and GIL-free: the caller runs it on ranges of fields in Python
threads (no OpenMP: safe in forked processes and from several threads at once). Compiled on
first use and cached next to this file where it is writable.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def overlap_product(x, lp, li, ld, rp, ri, rd, num, den, t0, t1):  # pragma: no cover - compiled
    nx = x.shape[2]
    my = lp.size - 1
    mx = rp.size - 1
    tn = np.empty((my, nx), num.dtype)
    td = np.empty((my, nx), num.dtype)
    for t in range(t0, t1):
        tn[:] = 0
        td[:] = 0
        for i in range(my):
            for q in range(lp[i], lp[i + 1]):
                k = li[q]
                w = ld[q]
                for col in range(nx):
                    v = x[t, k, col]
                    if np.isfinite(v):
                        tn[i, col] += w * v
                        td[i, col] += w
        for i in range(my):
            for j in range(mx):
                sn = 0.0
                sd = 0.0
                for q in range(rp[j], rp[j + 1]):
                    col = ri[q]
                    w = rd[q]
                    sn += w * tn[i, col]
                    sd += w * td[i, col]
                num[t, i, j] = sn
                den[t, i, j] = sd
