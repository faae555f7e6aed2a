"""The About page: what the server found in its home folder, and what to do when something is missing."""

from __future__ import annotations

from pathlib import Path

import panel as pn

from model.errors import InputError
from model.products import product_table

from .. import store


def products(home) -> pn.viewable.Viewable:
    """The products catalog's entries with their metadata (variable, units, grid, period, model,
    checkpoint), as written by ``model.products.register_products``."""
    path = Path(home) / "catalog.yaml"
    try:
        table = product_table(path)
    except (InputError, OSError, ValueError) as exc:
        return pn.pane.Markdown(f"No products catalog at `{path}` ({exc}).", css_classes=["products-catalog"])
    return pn.Column(
        pn.pane.Markdown(f"### Products catalog\n`{path}` opens with plain Intake 2 "
                         "(`intake.from_yaml_file(path)`, no `sm-downscale` needed); each entry's metadata:"),
        pn.widgets.Tabulator(table, show_index=False, disabled=True, name="products-table", height=320,
                             css_classes=["products-catalog"], layout="fit_data_table", pagination=None),
    )



def page(state) -> pn.viewable.Viewable:
    inv = state.inv
    prov = store.provisional(inv.home)
    rows = [
        ("home folder (`$SMDS_HOME`)", f"`{inv.home}`"),
        ("archive period", inv.period_text()),
        ("models in the archive", ", ".join(inv.models) or "none"),
        ("partly archived", ", ".join(inv.partial) or "none"),
        ("analysis-ready store", f"`{inv.ard}`" if inv.ard else "none"),
        ("hidden truth (virtual TP)", f"`{inv.truth}`" if inv.truth else "none (real data)"),
        ("validation results", "yes" if inv.validation else "none"),
        ("validation periods", ", ".join(f"{k}: {v[0]} .. {v[1]}" for k, v in inv.periods.items()) or "none"),
        ("still being made (provisional)", ", ".join(prov) or "nothing: every figure is final"),
    ]
    short = store.provisional_runs(inv.home)
    if short:
        rows.append(("maps from a provisional run", "; ".join(
            f"{m}: a {v}-minute run, shown until its full-budget run replaces it" for m, v in short.items())))
    md = "\n".join(["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])
    probs = "\n".join(f"* {p}" for p in inv.problems) or "* nothing missing"
    return pn.Column(
        pn.pane.Markdown("### What this server reads\n" + md),
        pn.pane.Markdown("### Missing pieces\n" + probs),
        products(inv.home),
        pn.pane.Markdown(
            "### Sharing a view\nThe address bar holds the page, model, time, station and the other choices: "
            "copy it to reopen the same view.\n\n"
            "### Units and colours\nSoil moisture in m³ m⁻³ (0-0.5), differences -0.15..0.15, R 0..1, "
            "bias -0.1..0.1, ubRMSE 0..0.08: fixed per variable, never per frame. Times are UTC."),
        name="about-page")
