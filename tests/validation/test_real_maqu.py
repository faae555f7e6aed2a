"""The real-data path: the real Maqu CST-01 series against a product series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.validation.matching import match_station


def test_maqu_cst01_against_a_product_series(shared):
    from model.data.ismn import read_ismn

    series = read_ismn(shared / "ismn/header_values_tp/MAQU/CST-01")
    assert len(series) == 1
    s = series[0]
    assert s.n_kept > 5000 and s.status == "ok"
    insitu = s.data
    # a product series: 3-hourly means of the in-situ record, 0.03 m3 m-3 too wet, with noise
    idx = insitu.index.tz_convert("UTC").tz_localize(None) if insitu.index.tz is not None else insitu.index
    ins = pd.Series(insitu["soil_moisture"].to_numpy(), index=idx)
    steps = pd.date_range(idx.min().ceil("3h"), idx.max().floor("3h"), freq="3h")
    prod = ins.reindex(steps, method="nearest", tolerance=pd.Timedelta("1h")) + 0.03
    rng = np.random.default_rng(0)
    prod = prod + rng.normal(0, 0.01, prod.size)
    r = match_station(prod, insitu, name="MAQU/CST-01")
    assert r.status == "ok"
    m = r.metrics
    assert m["N"] > 1000
    assert m["bias"] == __import__("pytest").approx(0.03, abs=0.003)  # product minus in-situ
    assert m["R"] > 0.9
    assert m["ubRMSE"] == __import__("pytest").approx(0.01, abs=0.003)
