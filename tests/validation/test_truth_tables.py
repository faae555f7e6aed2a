"""validate's truth tables on the tiny world (thawed headline, frozen apart, fine-scale R,
pooled, ceiling rows, intervals), the report and the dashboard's tables; the experiment runner
with 2 seeds and 2 methods at seconds-scale budgets."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from model.errors import InputError


def test_validate_truth_tables_report_and_dashboard(tiny):
    """The tiny pipeline's own validation (``run_pipeline(quick=True)``: QUICK_VALIDATION)."""
    import xarray as xr

    from model.demo import QUICK_VALIDATION
    from model.features.ard import open_group
    from model.validation.skill import cell_scores, thawed_mask, to_celsius

    home = tiny
    ard = tiny / "worlds" / "tiny" / "ard.zarr"
    out = home / "validation"
    st = json.loads((out / "settings.json").read_text())
    assert st["status"] and all(v == "ok" for v in st["status"].values()), st["status"]
    assert QUICK_VALIDATION["n_resamples"] == 200
    assert st["truth"]["thawed_source"] == "truth soil_temperature"
    summ = pd.read_parquet(out / "summary.parquet").set_index("model")
    assert set(summ.loc[["ceiling_36km", "ceiling_10km"], "kind"]) == {"ceiling"}
    assert summ.loc["pscnet", "kind"] == "product" and summ.loc["era5land", "kind"] == "reference"
    for c in ("truth_R", "truth_pooled_R", "truth_fine_R", "truth_fine_R_pooled", "truth_frozen_R",
              "smap_pooled_R", "stations_pooled_R"):
        assert c in summ, c
    assert np.isfinite(summ.loc["pscnet", ["truth_fine_R_pooled", "smap_pooled_R", "truth_pooled_R"]].astype(float)).all()
    # independent recomputation of ERA5-Land's thawed headline R against the truth
    truth = xr.open_zarr(tiny / "worlds" / "tiny" / "truth" / "truth.zarr")
    t0, t1 = st["periods"]["test"]
    steps = truth.time.sel(time=slice(t0, f"{t1}T23:59")).values
    steps = steps[np.isin(steps, open_group(ard, "era5").time.values)]
    temp = truth.soil_temperature.sel(time=steps)
    thawed, _ = thawed_mask(to_celsius(temp.values, temp.attrs["units"]))
    e5 = open_group(ard, "era5")["swvl1"].sel(time=steps).values
    ref = cell_scores(e5, truth.soil_moisture.sel(time=steps).values, thawed)
    assert summ.loc["era5land", "truth_R"] == pytest.approx(ref["R"], abs=1e-6)
    assert summ.loc["era5land", "truth_ubRMSE"] == pytest.approx(ref["ubRMSE"], abs=1e-7)
    # intervals: every other method minus PSCNet, paired, 200 resamples
    iv = pd.read_parquet(out / "intervals.parquet")
    assert set(iv["baseline"]) == {"pscnet"}
    assert {"ceiling_36km", "era5land", "rf"} <= set(iv["model"])
    assert (iv["d_R_low"] <= iv["d_R_high"]).all() and (iv["n_resamples"] == 200).all()
    nets = pd.read_parquet(out / "networks.parquet")
    pooled = nets[(nets["form"] == "pooled") & (nets["network"] == "all") & (nets["period"] == "test")]
    assert len(pooled) and np.isfinite(pooled["R"]).any()
    rep = (out / "report" / "index.md").read_text()
    assert "Against the truth (test period, thawed steps" in rep and "ceiling_36km" in rep
    assert "Differences from pscnet" in rep
    # the dashboard's metric maps page tables read the same data
    from dashboard.views import metrics as page

    state = SimpleNamespace(home=str(home))
    sci = page.science_table(state)
    assert {"fine-scale R (pooled)", "frozen R", "SMAP pooled R", "kind"} <= set(sci.columns)
    assert "ceiling" in set(sci["kind"])
    ivt = page.intervals_table(state)
    assert {"ΔR 5 %", "ΔR 95 %", "p (R)"} <= set(ivt.columns) and len(ivt) == len(iv)


@pytest.mark.slow  # trains 2 seeds x 2 methods and scores them: minutes on 2 cores (20 min under load)
def test_experiment_two_seeds_two_methods(tiny, tmp_path):
    from model.validation.campaign import run_experiment

    ard = tiny / "worlds" / "tiny" / "ard.zarr"
    res = run_experiment(["mlp", "smap_bilinear"], seeds=2, max_minutes=0.05, max_epochs=2, steps_per_epoch=4,
                         patience=2, ard=ard, out=tmp_path / "exp", device="cpu",
                         ceiling_kw={"max_samples": 2000, "max_iter": 20}, n_resamples=200, train_days=2,
                         train_kw={"tune_patches": 8, "max_pixel_samples": 5000})
    out = tmp_path / "exp"
    runs = pd.read_parquet(out / "runs.parquet")
    mlp = runs[runs["model"] == "mlp"]
    assert sorted(mlp["seed"].unique()) == [0, 1] and set(mlp["period"]) == {"train", "test"}
    assert len(runs[runs["model"] == "smap_bilinear"]) == 2        # no randomness: one run, two periods
    summ = res["summary"].set_index("model")
    assert summ.loc["mlp", "runs"] == 2 and np.isfinite(summ.loc["mlp", "truth_R_sd"])
    assert summ.loc["mlp", "truth_R"] == pytest.approx(mlp[mlp["period"] == "test"]["truth_R"].mean())
    assert {"ceiling_36km", "ceiling_10km", "era5land"} <= set(summ.index)
    assert "share_of_ceiling_fine_R" in summ and "smap_pooled_R" in summ and "stations_pooled_R" in summ
    iv = pd.read_parquet(out / "intervals.parquet").set_index("model")
    base = summ.loc[["mlp", "smap_bilinear"], "truth_R"].idxmax()     # no PSCNet: the best method
    other = {"mlp", "smap_bilinear"} - {base}
    assert set(iv["baseline"]) == {base} and other <= set(iv.index)
    runs_of = {"mlp": 2, "smap_bilinear": 1}
    (o,) = other
    assert iv.loc[o, "runs_a"] == runs_of[o] and iv.loc[o, "runs_b"] == runs_of[base]
    tg = pd.read_parquet(out / "temporal.parquet").set_index("model")
    assert "rel_change_truth_R" in tg and np.isfinite(tg.loc["mlp", "rel_change_truth_R"])
    st = json.loads((out / "settings.json").read_text())
    assert st["budget"]["max_minutes"] == 0.05 and st["seeds"] == 2
    rep = (out / "report.md").read_text()
    assert "±" in rep and "Ceiling rows are learners fitted to the TRUTH" in rep
    assert "p_R_seeds" in rep                                           # seed-paired test beside the bootstrap
    bm = pd.read_parquet(out / "by_month.parquet")
    assert set(bm["model"]) >= {"mlp", "smap_bilinear", "era5land"} and "## By test month" in rep
    assert (bm[bm["model"] == "mlp"]["runs"] == 2).all()
    assert np.isnan(iv.loc[o, "p_R_seeds"]) and iv.loc[o, "seeds_paired"] == 1   # a reference: one run
    assert (out / "runs" / "mlp" / "seed1" / "checkpoint.pt").exists()


def test_experiment_trains_a_named_ablation_under_its_own_label(tiny, tmp_path, monkeypatch, caplog):
    """``pscnet:no_mftf`` trains the registered PSCNet with the ablation's switch, in its own
    run folder; unknown ablations and methods named twice fail before any work."""
    import model.training.trainer as trainer
    from model.errors import InputError, UnknownNameError
    from model.validation.campaign import run_experiment

    ard = tiny / "worlds" / "tiny" / "ard.zarr"
    with pytest.raises(UnknownNameError, match="did you mean: no_mftf"):
        run_experiment(["pscnet", "pscnet:nomftf"], ard=ard, out=tmp_path / "x")
    with pytest.raises(InputError, match="named twice"):
        run_experiment(["pscnet", "pscnet"], ard=ard, out=tmp_path / "x")
    seen = []

    def record_and_stop(name, cfg, *, out, **k):
        seen.append((name, cfg.model, cfg.model_kwargs, out))
        raise KeyboardInterrupt("recorded")

    monkeypatch.setattr(trainer, "train", record_and_stop)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(["pscnet:no_mftf"], seeds=1, max_minutes=0.05, ard=ard, out=tmp_path / "exp", device="cpu",
                       ceiling=False, stations=False, test_stride=8, train_days=1,
                       train_kw={"model_kwargs": {"width": 8}})
    (name, model, kw, out), = seen
    assert name == model == "pscnet" and kw == {"width": 8, "use_mftf": False}
    assert out == tmp_path / ".exp.work" / "runs" / "pscnet--no_mftf" / "seed0"

    # a finished seed 0 (its result and cells in the work folder) is counted and not trained again
    out.mkdir(parents=True)
    (out / "result.json").write_text("[]")
    np.save(out / "test_cells.npy", np.zeros(3, "float32"))
    seen.clear()
    with caplog.at_level("WARNING", logger="model.validation.campaign"), pytest.raises(KeyboardInterrupt):
        run_experiment(["pscnet:no_mftf"], seeds=2, max_minutes=0.05, ard=ard, out=tmp_path / "exp", device="cpu",
                       ceiling=False, stations=False, test_stride=8, train_days=1,
                       train_kw={"model_kwargs": {"width": 8}})
    assert "resuming, 1 of 2 runs already done" in caplog.text
    assert [o.name for *_, o in seen] == ["seed1"]


@pytest.mark.slow  # trains and scores three short runs on the tiny world: minutes on 2 cores
def test_experiment_resumes_after_an_interruption(tiny, tmp_path, monkeypatch):
    """An experiment stopped in its second run keeps the first: the rerun trains only what is
    missing, and its tables count every run once."""
    import model.training.trainer as trainer
    from model.validation.campaign import run_experiment

    ard = tiny / "worlds" / "tiny" / "ard.zarr"
    kw = dict(seeds=2, max_minutes=0.05, max_epochs=1, steps_per_epoch=2, patience=1, ard=ard,
              out=tmp_path / "exp", device="cpu", ceiling=False, n_resamples=50, train_days=1,
              test_stride=4, stations=False, train_kw={"tune_patches": 8, "max_pixel_samples": 2000})
    real_train, trained = trainer.train, []

    def stop_in_second_run(name, cfg, **k):
        trained.append((name, cfg.seed))
        if len(trained) == 2:
            raise KeyboardInterrupt("stopped by the user")
        return real_train(name, cfg, **k)

    monkeypatch.setattr(trainer, "train", stop_in_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(["mlp"], **kw)
    work = tmp_path / ".exp.work"
    assert (work / "runs" / "mlp" / "seed0" / "result.json").exists() and not (tmp_path / "exp").exists()
    first = (work / "runs" / "mlp" / "seed0" / "checkpoint.pt").stat().st_mtime_ns

    trained.clear()
    res = run_experiment(["mlp"], **kw)
    assert trained == [("mlp", 1)]                       # seed 0 was not trained again
    out = tmp_path / "exp"
    assert (out / "runs" / "mlp" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == first
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs.loc[(runs["period"] == "test") & (runs["model"] == "mlp"), "seed"]) == [0, 1]
    assert res["summary"].set_index("model").loc["mlp", "runs"] == 2
    assert not work.exists()

    # other settings do not reuse unfinished runs
    (work / "runs" / "mlp" / "seed0").mkdir(parents=True)
    (work / "key.json").write_text("{}")
    (work / "runs" / "mlp" / "seed0" / "result.json").write_text("[]")
    trained.clear()
    run_experiment(["mlp"], **{**kw, "seeds": 1, "out": tmp_path / "exp"})
    assert trained == [("mlp", 0)]


def test_experiment_bad_arguments(tiny, tmp_path):
    from model.validation.campaign import run_experiment

    with pytest.raises(InputError, match="pscnett|model"):
        run_experiment(["pscnett"], seeds=2, out=tmp_path / "x")
    with pytest.raises(InputError, match="seeds"):
        run_experiment(["mlp"], seeds=0, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_ceiling_parent_features_match_a_direct_regrid(tiny):
    """ceiling_36km's inputs: the truth's 36 km parent and its 1-day change, step by step."""
    import xarray as xr

    from model.validation.ceiling import _truth_parent
    from model.validation.skill import coarse_parent

    tr = xr.open_zarr(tiny / "worlds" / "tiny" / "truth" / "truth.zarr").soil_moisture
    t = tr.time.values[100:110]
    p = coarse_parent(tr.isel(time=slice(92, 110)).values.astype(float))
    r, c = np.nonzero(np.isfinite(p[0]))
    rows, cols = r[[0, 50, 300]], c[[0, 50, 300]]
    tru, par = _truth_parent(tr, t, rows, cols)
    np.testing.assert_allclose(tru, tr.sel(time=t).values[:, rows, cols])
    np.testing.assert_allclose(par[:, :, 0], p[8:, rows, cols], atol=1e-6)
    np.testing.assert_allclose(par[:, :, 1], p[8:, rows, cols] - p[:-8, rows, cols], atol=1e-6)
    assert par.shape == (10, 3, 4)


def test_standing_against_ceiling_references_and_the_next_method():
    """Hand-computed: shares, relative ubRMSE changes and the lead in seed sd."""
    from model.validation.campaign import standing

    summary = pd.DataFrame([
        {"model": "a", "kind": "product", "truth_R": 0.70, "truth_R_sd": 0.02, "truth_ubRMSE": 0.030,
         "share_of_ceiling_fine_R": 0.8},
        {"model": "b", "kind": "product", "truth_R": 0.64, "truth_R_sd": 0.03, "truth_ubRMSE": 0.036,
         "share_of_ceiling_fine_R": 0.5},
        {"model": "smap_l4", "kind": "reference", "truth_R": 0.6, "truth_ubRMSE": 0.040},
        {"model": "era5land", "kind": "reference", "truth_R": 0.5, "truth_ubRMSE": 0.050},
        {"model": "ceiling_36km", "kind": "ceiling", "truth_R": 0.9, "truth_ubRMSE": 0.010}])
    runs = pd.DataFrame([{"model": "a", "period": "test", "stopped": "time budget"},
                         {"model": "a", "period": "test", "stopped": "early stop"},
                         {"model": "a", "period": "train", "stopped": "time budget"},
                         {"model": "b", "period": "test", "stopped": "time budget"}])
    t = standing(summary, runs).set_index("model")
    assert list(t.index) == ["a", "b"]
    assert t.loc["a", "ubRMSE vs L4-like"] == pytest.approx(0.030 / 0.040 - 1)        # -25 %
    assert t.loc["a", "ubRMSE vs ERA5-Land"] == pytest.approx(-0.4)
    assert t.loc["a", "lead over next (sd)"] == pytest.approx(0.06 / 0.03) and t.loc["a", "next"] == "b"
    assert np.isnan(t.loc["b", "lead over next (sd)"])
    assert t.loc["a", "runs ended by"] in ("time budget x1, early stop x1", "early stop x1, time budget x1")
    assert t.loc["b", "share of ceiling fine R"] == 0.5


def test_by_month_scores_each_month_against_a_hand_computation():
    """Per month: cell-mean thawed R by np.corrcoef, mean and sd over seeds, ranks among the
    products, the seed-paired difference from the baseline and the thawed share."""
    from model.validation.campaign import by_month, by_month_markdown

    rng = np.random.default_rng(3)
    times = np.concatenate([np.arange("2017-04-01", "2017-04-21", dtype="datetime64[D]"),
                            np.arange("2017-05-01", "2017-05-25", dtype="datetime64[D]")]).astype("datetime64[ns]")
    truth = rng.normal(size=(times.size, 4))
    thawed = np.ones_like(truth, bool)
    thawed[20:26, 1] = False                                    # May, cell 1: six frozen steps
    fields = {"a": [truth + 0.3 * rng.normal(size=truth.shape) for _ in range(2)],
              "c": [truth + 1.5 * rng.normal(size=truth.shape) for _ in range(2)],
              "ref": [truth + 0.6 * rng.normal(size=truth.shape)]}
    kinds = {"a": "product", "c": "product", "ref": "reference"}
    t = by_month(fields, kinds, truth, thawed, times, "a", min_n=10).set_index(["month", "model"])

    def hand_r(f, sel):
        rs = []
        for j in range(truth.shape[1]):
            m = sel & thawed[:, j]
            rs.append(np.corrcoef(f[m, j], truth[m, j])[0, 1])
        return float(np.mean(rs))

    months = times.astype("datetime64[M]")
    for mo in ("2017-04", "2017-05"):
        sel = months == np.datetime64(mo)
        ra = [hand_r(f, sel) for f in fields["a"]]
        rc = [hand_r(f, sel) for f in fields["c"]]
        assert t.loc[(mo, "a"), "R"] == pytest.approx(np.mean(ra))
        assert t.loc[(mo, "a"), "R_sd"] == pytest.approx(np.std(ra, ddof=1))
        assert t.loc[(mo, "ref"), "R"] == pytest.approx(hand_r(fields["ref"][0], sel))
        assert t.loc[(mo, "c"), "d_R_seeds"] == pytest.approx(np.mean(np.subtract(rc, ra)))
        assert t.loc[(mo, "c"), "wins_R_seeds"] == 0 and t.loc[(mo, "c"), "seeds_paired"] == 2
        assert t.loc[(mo, "a"), "rank"] == 1 and t.loc[(mo, "c"), "rank"] == 2
        assert np.isnan(t.loc[(mo, "ref"), "rank"])             # ranked among the products only
    assert t.loc[("2017-04", "a"), "thawed_share"] == 1.0
    assert t.loc[("2017-05", "a"), "thawed_share"] == pytest.approx(1 - 6 / (24 * 4))
    text = "\n".join(by_month_markdown(t.reset_index(), "a"))
    assert "## By test month" in text and "2017-05 94%" in text and "Minus a, paired by seed" in text
    assert "(1)" in text and "0/2)" in text


def test_experiment_periods_can_be_replaced_and_are_checked(tiny, tmp_path):
    """--train-period / --test-period: inside the world's span, start before end, apart."""
    from model.validation.campaign import override_periods, run_experiment

    per = {"train": ["2016-04-01", "2016-10-31"], "test": ["2017-04-01", "2017-10-31"], "history": ["a", "b"]}
    assert override_periods(per) is per
    got = override_periods(per, ("2016-06-01", "2016-08-31"), ("2017-09-01", "2017-09-30"))
    assert got["train"] == ["2016-06-01", "2016-08-31"] and got["test"] == ["2017-09-01", "2017-09-30"]
    assert got["world_train_test"] == {"train": per["train"], "test": per["test"]} and got["history"] == ["a", "b"]
    assert override_periods(per, test=("2016-11-01", "2016-11-30"))["train"] == per["train"]   # winter between
    with pytest.raises(InputError, match="outside this world's 2016-04-01 .. 2017-10-31"):
        override_periods(per, train=("2016-03-01", "2016-08-31"))
    with pytest.raises(InputError, match="ends .* before it starts"):
        override_periods(per, test=("2017-09-30", "2017-09-01"))
    with pytest.raises(InputError, match="overlap"):
        override_periods(per, test=("2016-10-31", "2016-11-30"))
    with pytest.raises(InputError, match="not two ISO days"):
        override_periods(per, train=("June", "2016-08-31"))
    with pytest.raises(InputError, match="overlap"):                # through the experiment, before any work
        run_experiment(["mlp"], seeds=1, out=tmp_path / "x", test_period=("2017-06-10", "2017-06-20"))
    assert not (tmp_path / "x").exists()
