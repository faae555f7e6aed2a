"""The products catalog, ``$SMDS_HOME/catalog.yaml``: what the workbench made, readable by anyone.

Its entries use only Intake 2's own readers (``intake.readers.readers.XArrayDatasetReader`` for
Zarr and NetCDF, ``PandasParquet`` for Parquet), so a colleague with intake, xarray, zarr and
pandas -- but without ``sm-downscale`` -- opens it in a notebook::

    import intake, hvplot.xarray  # noqa: F401
    cat = intake.from_yaml_file("catalog.yaml")
    ds = cat["archive_maps_pscnet"].read()
    ds.pscnet.isel(time=0).hvplot.quadmesh(x="lon", y="lat", geo=True, rasterize=True)

The raw-input catalogs (``model.data.catalog``) keep the project's own reader classes: they
decode SMAP HDF5, ERA5-Land CDS files and ISMN downloads, which no generic reader does.

===========================  ============================================================
``archive_maps``             every model, map-shaped chunks (8 steps x 150 x 320)
``archive_series``           every model, series-shaped chunks (all steps x 10 x 10)
``archive_maps_<model>``     one model (and ``tp_mask``), map layout
``archive_series_<model>``   one model (and ``tp_mask``), series layout
``smap_l4_ard``              the SMAP L4 comparison (3-hourly, M09) from the analysis-ready store
``era5land_ard``             ERA5-Land 3-hourly on TP10 (swvl1 = the ERA5-Land comparison)
``validation_<name>``        each validation result (NetCDF -> xarray, Parquet -> pandas)
===========================  ============================================================

Every entry carries metadata: ``description``, ``variable``, ``units``, ``grid``, ``period``
(start, end), ``model`` and ``checkpoint_sha256`` (archive entries), ``layout``; the dashboard's
About page shows them (:func:`product_table`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import intake
import pandas as pd
from intake.readers import datatypes, readers
from intake.readers.entry import Catalog

from .config import home
from .errors import InputError
from .inference.archive import NEXT
from .io import atomic_path

#: products catalog entries: name prefix -> what it holds
PRODUCT_KINDS = {
    "archive_maps": "product archive, map-shaped chunks",
    "archive_series": "product archive, series-shaped chunks",
    "smap_l4_ard": "SMAP L4 surface soil moisture, 3-hourly, M09 (analysis-ready store)",
    "era5land_ard": "ERA5-Land 3-hourly on TP10 (analysis-ready store)",
    "validation": "validation result",
}
TP10_GRID = "TP10"
TP10_GRID_TEXT = "regular 0.1 degree lat/lon (EPSG:4326), 150 x 320, cell centres 25.05..39.95 N, 73.05..104.95 E"
M09_GRID = "M09"
GRID_TEXT = {TP10_GRID: TP10_GRID_TEXT, "M09": "EASE-Grid 2.0 global 9 km (EPSG:6933), TP subset"}
_COORDS = ("tp_mask", "crs", "time", "lat", "lon")


def products_catalog_path() -> Path:
    """``$SMDS_HOME/catalog.yaml``: the archive, the comparison products and the validation."""
    return home() / "catalog.yaml"


def open_products(path: str | Path | None = None):
    """Open a products catalog with plain Intake 2 (``intake.from_yaml_file``)."""
    path = Path(path) if path else products_catalog_path()
    if not path.exists():
        raise InputError("products catalog not found",
                         "build the archive first (sm-downscale archive, or sm-downscale demo)", path)
    return intake.from_yaml_file(str(path))


def _iso(value) -> str | None:
    return str(value)[:19] if value else None


def _zarr_reader(url: str, meta: dict, drop: list[str] | None = None, group: str | None = None):
    kw = {"chunks": {}, "consolidated": True}
    if drop:
        kw["drop_variables"] = sorted(drop)
    data = datatypes.Zarr(url, root=group or "")
    return readers.XArrayDatasetReader(data, metadata=meta, **kw)


def _archive_entries(root: Path, layout: str) -> tuple[dict, str | None]:
    store = root / "archive" / f"{layout}.zarr"
    meta_file = store / ".zmetadata"
    if not meta_file.exists():
        return {}, None
    url = "{CATALOG_DIR}/" + f"archive/{layout}.zarr"
    zmeta = json.loads(meta_file.read_text())["metadata"]
    attrs = zmeta.get(".zattrs", {})
    complete = attrs.get("complete_models", {})
    period = [_iso(attrs.get("time_coverage_start")), _iso(attrs.get("time_coverage_end"))]
    chunks = {"maps": "(8, 150, 320): one map frame = one chunk",
              "series": "(all steps, 10, 10): one cell's series = one chunk"}[layout]
    variables = sorted(k[:-len("/.zarray")] for k in zmeta if k.endswith("/.zarray")
                       and k[:-len("/.zarray")] not in _COORDS and not k[:-len("/.zarray")].endswith(NEXT))
    entries = {}
    ard = None
    entries[f"archive_{layout}"] = _zarr_reader(url, {
        "description": f"{PRODUCT_KINDS['archive_' + layout]}, every model",
        "variable": variables, "units": "m3 m-3", "grid": TP10_GRID, "period": period,
        "model": variables, "layout": layout, "chunks": chunks})
    for var in variables:
        va = zmeta.get(f"{var}/.zattrs", {})
        state = "complete" if complete.get(var) else "incomplete"
        entries[f"archive_{layout}_{var}"] = _zarr_reader(url, {
            "description": f"model {var}, {layout}-shaped chunks ({state})",
            "variable": var, "units": va.get("units", "m3 m-3"),
            "standard_name": va.get("standard_name"), "grid": TP10_GRID, "period": period,
            "model": va.get("provenance_model", var), "checkpoint_sha256": va.get("provenance_checkpoint_sha256"),
            "train_period": json.loads(va["provenance_train_period"]) if va.get("provenance_train_period") else None,
            "code_version": va.get("provenance_code_version"), "layout": layout, "chunks": chunks,
            "complete": bool(complete.get(var))}, drop=[v for v in variables if v != var])
        ard = ard or va.get("provenance_inputs")
    return entries, ard


def _ard_entries(root: Path, ard: Path) -> dict:
    meta_file = ard / ".zmetadata"
    if not meta_file.exists():
        return {}
    zmeta = json.loads(meta_file.read_text())["metadata"]
    try:
        rel = os.path.relpath(ard.resolve(), root.resolve())
        url = "{CATALOG_DIR}/" + rel
    except ValueError:  # another drive (Windows)
        url = str(ard.resolve())
    try:
        info = json.loads((ard / ".complete").read_text())
        period = [_iso(info.get("start")), _iso(info.get("end"))]
    except (OSError, ValueError):
        period = [None, None]
    out = {}
    for name, group, var, grid in (("smap_l4_ard", "smap_l4", "sm_surface", M09_GRID),
                                   ("era5land_ard", "era5", "swvl1", TP10_GRID)):
        va = zmeta.get(f"{group}/{var}/.zattrs")
        if va is None:
            continue
        out[name] = _zarr_reader(url, {"description": PRODUCT_KINDS[name], "variable": var,
                                       "units": va.get("units"), "grid": grid, "period": period,
                                       "model": None, "layout": "analysis-ready store group " + group},
                                 group=group)
    return out


def _validation_entries(root: Path, archive_period) -> dict:
    vdir = root / "validation"
    if not (vdir / "settings.json").exists():
        return {}
    try:
        settings = json.loads((vdir / "settings.json").read_text())
    except ValueError:
        settings = {}
    test = (settings.get("periods") or {}).get("test")
    out = {}
    for f in sorted(vdir.glob("*.nc")) + sorted(vdir.glob("*.parquet")):
        url = "{CATALOG_DIR}/" + f"validation/{f.name}"
        meta = {"description": f"validation result {f.name}", "variable": None, "units": None,
                "grid": (TP10_GRID if "truth" in f.stem else M09_GRID) if f.suffix == ".nc" else None,
                "period": list(test) if test else archive_period, "model": settings.get("models"),
                "layout": "table" if f.suffix == ".parquet" else "maps"}
        if f.suffix == ".parquet":
            out[f"validation_{f.stem}"] = readers.PandasParquet(datatypes.Parquet(url), metadata=meta)
        else:
            # validation NetCDF files are netCDF-4, i.e. HDF5: read with h5netcdf
            out[f"validation_{f.stem}"] = readers.XArrayDatasetReader(datatypes.HDF5(url), metadata=meta)
    return out


def refresh_products(written: str | Path | None = None, ard: str | Path | None = None) -> str | None:
    """Refresh the products catalog after an archive or validation was written to ``written``
    (a ``<home>/archive`` or ``<home>/validation`` folder; default the home's own). Called by
    the layers above the writers (the command line, the demo), so the writers never import
    the catalog (issue 14: one-way layers). A folder outside a home is not catalogued; a
    failure is logged, never raised: what was written is complete either way."""
    log = logging.getLogger(__name__)
    folder = Path(written) if written else home() / "archive"
    if folder.name not in ("archive", "validation"):
        log.info("%s is not <home>/archive or <home>/validation: the products catalog is not updated",
                 folder)
        return None
    try:
        return str(register_products(folder.parent, ard))
    except Exception as exc:  # noqa: BLE001 - the products are written; say so and go on
        log.warning("could not update the products catalog in %s: %s", folder.parent, exc)
        return None


def register_products(home_dir: str | Path | None = None, ard: str | Path | None = None) -> Path:
    """(Re)write the products catalog of a home folder from what is on disk there.

    Entries for the archive (both layouts, all models and each model), the SMAP L4 and
    ERA5-Land comparisons of the analysis-ready store the archive was built from, and every
    validation output. Paths are relative to the home folder (``{CATALOG_DIR}``), so the folder
    can be moved; only Intake's own readers are used, so the file opens without this package.
    """
    root = Path(home_dir) if home_dir else home()
    entries: dict = {}
    period = None
    for layout in ("maps", "series"):
        got, prov = _archive_entries(root, layout)
        entries.update(got)
        if got and period is None:
            period = got[f"archive_{layout}"].metadata["period"]
        ard = ard if ard is not None else prov
    if ard is not None:
        entries.update(_ard_entries(root, Path(ard)))
    entries.update(_validation_entries(root, period))
    cat = Catalog(metadata={"description": "sm-downscale products: archive, comparisons, validation",
                            "opens_with": "intake.from_yaml_file(path) -- Intake's own readers only"})
    for name, reader in entries.items():
        grid = reader.metadata.get("grid")
        if grid in GRID_TEXT:
            reader.metadata["grid_description"] = GRID_TEXT[grid]
        cat[name] = reader
    path = root / "catalog.yaml"
    with atomic_path(path) as tmp:
        cat.to_yaml_file(str(tmp))
    return path


def product_table(path: str | Path | None = None):
    """The catalog's entries and their metadata as a DataFrame (entry, description, variable,
    units, grid, period, model, checkpoint), for the About page and ``sm-downscale`` users."""
    cat = open_products(path)
    rows = []
    for name, entry in cat.entries.items():
        md = entry.metadata or {}

        def text(v):
            return ", ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else ("" if v is None else str(v))

        period = md.get("period") or []
        rows.append({"entry": name, "description": text(md.get("description")),
                     "variable": text(md.get("variable")), "units": text(md.get("units")),
                     "grid": text(md.get("grid")),
                     "period": " .. ".join(str(p)[:10] for p in period if p),
                     "model": text(md.get("model")) if isinstance(md.get("model"), str) else "",
                     "checkpoint": text(md.get("checkpoint_sha256"))[:12]})
    return pd.DataFrame(rows)
