"""The static validation report: Markdown + PNG figures, made only from the results' data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..figures import metric_maps_figure, save


def md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if df.empty:
        return "_(no rows)_\n"
    cols = list(df.columns)
    out = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, (float, np.floating)):
                cells.append("" if not np.isfinite(v) else floatfmt.format(v))
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def make_report(folder) -> Path:
    # lazy: matplotlib costs 0.25 s at import, figures only; `sm-downscale --help` imports this module
    import matplotlib

    matplotlib.use("Agg")

    folder = Path(folder)
    rep = folder / "report"
    rep.mkdir(exist_ok=True)
    st = json.loads((folder / "settings.json").read_text())
    lines = ["# Validation report", "",
             f"Periods: training {st['periods']['train'][0]} .. {st['periods']['train'][1]}, "
             f"test {st['periods']['test'][0]} .. {st['periods']['test'][1]}. "
             "Bias = product - reference. Metrics need >= "
             f"{st['settings']['min_n']} matched pairs.", ""]
    summary = pd.read_parquet(folder / "summary.parquet") if (folder / "summary.parquet").exists() else pd.DataFrame()
    lines += ["## Main table (test period)", "",
              "Columns `truth_*` score the thawed steps only (frozen steps in `truth_frozen_*`); `pooled_R` is the "
              "overall R of every matched pair (the paper's scatter plot); `fine_R` the fine-scale R (10 km minus "
              "its 36 km parent, against the truth's); rows of kind `ceiling` are learners fitted to the truth, "
              "NOT products: the skill the inputs allow.", "", md_table(summary), ""]
    tr = st.get("truth") or {}
    if "truth_R" in summary:
        lines += _truth_section(summary, tr)
    if (folder / "intervals.parquet").exists():
        lines += _intervals_section(pd.read_parquet(folder / "intervals.parquet"), tr)
    order = list(summary.sort_values("truth_ubRMSE")["model"]) if "truth_ubRMSE" in summary else list(summary.get("model", []))
    show = [m for m in order if m in st["models"]][:3] + [r for r in ("smap_l4", "era5land") if r in order]
    lines += _map_sections(folder, rep, show)
    f = folder / "scatter_density.nc"
    if f.exists():
        lines += _scatter_section(xr.open_dataset(f), rep, show)
    if (folder / "temporal.parquet").exists():
        t = pd.read_parquet(folder / "temporal.parquet")
        cols = [c for c in ("model", "reference", "R_train", "R_test", "rel_change_R", "ubRMSE_train",
                            "ubRMSE_test", "rel_change_ubRMSE", "pooled_R_train", "pooled_R_test",
                            "rel_change_pooled_R") if c in t]
        lines += ["## Temporal generalisation (training vs test period)", "", md_table(t[cols]) if cols else "", ""]
    if (folder / "networks.parquet").exists():
        n = pd.read_parquet(folder / "networks.parquet")
        n = n[(n["period"] == "test")]
        cols = [c for c in ("network", "form", "model", "R", "bias", "ubRMSE", "N", "rank_R", "rank_ubRMSE") if c in n]
        lines += ["## Stations, per network (test period)", "", md_table(n[cols].sort_values(["network", "form", "rank_ubRMSE"])), ""]
    if (folder / "station_series.parquet").exists():
        lines += _station_series_section(pd.read_parquet(folder / "station_series.parquet"), rep, show)
    lines += ["## Status", "", "```", json.dumps(st.get("status"), indent=1), "```", ""]
    (rep / "index.md").write_text("\n".join(lines))
    return rep / "index.md"


def _truth_section(summary: pd.DataFrame, tr: dict) -> list[str]:
    """The table against the truth (with each model's share of the ceiling's fine-scale R)
    and the ceiling learners' notes."""
    lines = []
    cols = [c for c in ("model", "kind", "truth_R", "truth_ubRMSE", "truth_bias", "truth_pooled_R", "truth_fine_R",
                        "truth_fine_R_pooled", "truth_frozen_R", "truth_frozen_ubRMSE") if c in summary]
    t = summary[cols].dropna(subset=["truth_R"])
    c36 = t.loc[t["model"] == "ceiling_36km", "truth_fine_R_pooled"] if "truth_fine_R_pooled" in t else []
    if len(c36) and np.isfinite(c36.iloc[0]) and c36.iloc[0] > 0:
        t = t.assign(share_of_ceiling_fine_R=t["truth_fine_R_pooled"] / float(c36.iloc[0]))
    lines += ["## Against the truth (test period, thawed steps; frozen apart)", "",
              f"Thawed: {tr.get('thawed', 'truth soil temperature > 0 C')} (decided here by "
              f"{tr.get('thawed_source')}). Fine-scale R: {tr.get('fine_scale', '')}. "
              "`share_of_ceiling_fine_R` = pooled fine-scale R / the perfect-36-km ceiling's.", "",
              md_table(t), ""]
    for name, ci in (tr.get("ceilings") or {}).items():
        if not isinstance(ci, dict):
            lines += [f"- ceiling rows: {name}: {ci}"]
            continue
        lines += [f"- `{name}`: {ci.get('learner')} on {ci.get('samples')} cell-steps of the training period, "
                  f"inputs: {ci.get('inputs')}; {ci.get('fit_seconds')} s."]
    lines += [""]
    return lines


def _intervals_section(iv: pd.DataFrame, tr: dict) -> list[str]:
    """The paired-bootstrap differences from the baseline (nothing when there are none)."""
    lines = []
    if not iv.empty:
        bs = tr.get("bootstrap", {})
        cols = [c for c in ("model", "kind", "baseline", "d_R", "d_R_low", "d_R_high", "p_R", "d_ubRMSE",
                            "d_ubRMSE_low", "d_ubRMSE_high", "p_ubRMSE", "n_blocks") if c in iv]
        lines += [f"## Differences from {iv['baseline'].iloc[0]} against the truth (thawed, test period)", "",
                  f"Paired block bootstrap, {bs.get('block_days', 3)}-day blocks, {bs.get('n_resamples')} "
                  f"resamples, {int(100 * bs.get('level', 0.9))} % percentile intervals; p: two-sided paired "
                  "test (twice the smaller share of resampled differences on either side of 0).", "",
                  md_table(iv[cols], "{:.4f}"), ""]
    return lines


def _map_sections(folder: Path, rep: Path, show: list) -> list[str]:
    """The metric maps and their histograms against SMAP and against the truth (PNG, PDF)."""
    # lazy: matplotlib costs 0.25 s at import, figures only
    import matplotlib.pyplot as plt

    lines = []
    for ref, title in (("smap", "against SMAP L3 9 km (test period)"), ("truth", "against the 10 km truth (test period)")):
        f = folder / f"vs_{ref}_maps.nc"
        if f.exists():
            ds = xr.open_dataset(f)
            models = [m for m in show if m in ds.model.values] or list(ds.model.values[:3])
            png = rep / f"maps_{ref}.png"
            # the paper's layout (R, bias, ubRMSE maps, histograms beneath), cartopy, PNG + PDF
            ref_label = {"smap": "SMAP L3 9 km", "truth": "the 10 km truth"}[ref] + " (test period)"
            fig = metric_maps_figure(ds, models, ("R", "bias", "ubRMSE"), reference=ref_label)
            save(fig, png, dpi=110)
            save(fig, png.with_suffix(".pdf"))
            lines += [f"## Metric maps {title}", "", f"![maps]({png.name}) ([PDF]({png.with_suffix('.pdf').name}))", ""]
            fig, ax = plt.subplots(1, 2, figsize=(10, 3), constrained_layout=True)
            for m in ds.model.values:
                for a, k in zip(ax, ("R", "ubRMSE")):
                    v = ds[k].sel(model=m).values.ravel()
                    v = v[np.isfinite(v)]
                    if v.size:
                        a.hist(v, bins=40, histtype="step", label=str(m))
                        a.set_title(f"{k} {title}", fontsize=8)
            ax[0].legend(fontsize=6)
            fig.savefig(rep / f"hist_{ref}.png", dpi=90)
            plt.close(fig)
            lines += [f"![histograms](hist_{ref}.png)", ""]
    return lines


def _scatter_section(sc, rep: Path, show: list) -> list[str]:
    """The scatter density of the products against SMAP (up to four models)."""
    # lazy: matplotlib costs 0.25 s at import, figures only
    import matplotlib.pyplot as plt

    models = [m for m in show if m in sc.model.values][:4]
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3), squeeze=False, constrained_layout=True)
    for a, m in zip(axes[0], models):
        c = sc["count"].sel(model=m).values
        a.pcolormesh(sc.reference_bin, sc.product_bin, np.log10(c + 1), cmap="Blues", shading="nearest")
        a.plot([0, 0.6], [0, 0.6], "k--", lw=0.7)
        a.set_xlabel("SMAP 9 km (m3 m-3)", fontsize=7)
        a.set_ylabel(f"{m} (m3 m-3)", fontsize=7)
        a.set_title(m, fontsize=8)
    fig.savefig(rep / "scatter_smap.png", dpi=90)
    plt.close(fig)
    return ["## Scatter density against SMAP (test period, log10 counts)", "", "![scatter](scatter_smap.png)", ""]


def _station_series_section(s: pd.DataFrame, rep: Path, show: list) -> list[str]:
    """The series at the first station of up to four networks: in situ, SMAP and the products."""
    # lazy: matplotlib costs 0.25 s at import, figures only
    import matplotlib.pyplot as plt

    nets = s["network"].unique()[:4]
    fig, axes = plt.subplots(len(nets), 1, figsize=(10, 2.4 * len(nets)), squeeze=False, constrained_layout=True)
    for a, net in zip(axes[:, 0], nets):
        sub = s[s["network"] == net]
        sta = sub["station"].iloc[0]
        sub = sub[sub["station"] == sta]
        for src in ["insitu", "smap_l3_9km"] + [m for m in show if m not in ("insitu",)]:
            v = sub[sub["source"] == src]
            if len(v):
                a.plot(v["time"], v["value"], "." if src == "smap_l3_9km" else "-", ms=2, lw=0.8, label=src)
        a.set_title(f"{net} {sta}", fontsize=8)
        a.set_ylabel("m3 m-3", fontsize=7)
        a.legend(fontsize=6, ncol=6)
    fig.savefig(rep / "station_series.png", dpi=90)
    plt.close(fig)
    return ["## Temporal dynamics at stations", "", "![series](station_series.png)", ""]
