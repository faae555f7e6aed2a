"""Intake 2 catalogs: the ONLY module that opens a catalog.

Entry names are the same for real data and for the virtual Tibetan Plateau, so every step
runs unchanged on either:

==================  =====================================================================
``smap_l3_36km``    SPL3SMP daily files (glob)                -> Dataset (time, y, x) on M36
``smap_l3_9km``     SPL3SMP_E daily files (glob)              -> Dataset (time, y, x) on M09
``smap_l4``         SPL4SMGP 3-hourly files (glob)            -> Dataset (time, y, x) on M09
``era5land``        ERA5-Land hourly NetCDF/GRIB (glob)       -> Dataset (time, lat, lon), hourly
``ismn``            an ISMN download folder                   -> list of StationSeries
``static_dem``      elevation, slope, aspect, TP mask on TP10 -> Dataset (lat, lon)
``static_extra``    soil texture / land cover on TP10 (NetCDF) -> Dataset (lat, lon)
``truth``           hidden 10 km truth (virtual TP only)      -> Dataset (time, lat, lon)
==================  =====================================================================

The products catalog (``$SMDS_HOME/catalog.yaml``) is written by :mod:`model.products` with
Intake's own readers only, so it opens without this package.

A catalog for real downloads is ``catalogs/inputs.yaml``: set its ``root`` parameter (one
setting: ``open_catalog(path, root=...)`` or ``SMDS_INPUTS_ROOT``) to the folder holding
``SPL3SMP/``, ``SPL3SMP_E/``, ``SPL4SMGP/``, ``ERA5-Land/``, ``ISMN/`` and ``static/``.
"""

from __future__ import annotations

import glob as _glob
import os
from pathlib import Path
from typing import Any

import intake
import xarray as xr
from intake.readers.entry import Catalog
from intake.readers.readers import BaseReader

from ..config import find_project, worlds_dir
from ..errors import InputError, unknown_name
from ..io import atomic_path
from .cubes import smap_l3_cube, smap_l4_cube
from .era5 import read_era5
from .ismn import read_ismn
from .static import static_layers

#: entry name -> (reader class name, what it holds)
ENTRY_KINDS = {
    "smap_l3_36km": ("SmapL3Reader", "SMAP L3 SPL3SMP daily files, 36 km"),
    "smap_l3_9km": ("SmapL3Reader", "SMAP L3 SPL3SMP_E daily files, 9 km"),
    "smap_l4": ("SmapL4Reader", "SMAP L4 SPL4SMGP 3-hourly files, 9 km"),
    "era5land": ("Era5Reader", "ERA5-Land hourly NetCDF (CDS layout) or GRIB"),
    "ismn": ("IsmnReader", "ISMN download (header+values)"),
    "static_dem": ("StaticDemReader", "elevation, slope, aspect and TP mask on TP10"),
    "static_extra": ("NetcdfReader", "soil texture and land cover on TP10"),
    "truth": ("ZarrReader", "hidden 10 km truth (virtual TP only)"),
}


def _local(urlpath: str) -> str:
    """Intake substitutes ``{CATALOG_DIR}`` as a ``file://`` URL; readers want paths."""
    return urlpath[7:] if urlpath.startswith("file://") else urlpath


def expand(urlpath: str) -> list[Path]:
    """Sorted files matching a path or glob; an empty match is an error that says where."""
    p = _local(urlpath)
    files = (sorted(Path(f) for f in _glob.glob(p, recursive=True)) if any(c in p for c in "*?[")
             else [Path(p)])
    files = [f for f in files if f.exists()]
    if not files:
        raise InputError(f"no input matches {p!r}",
                         "check the catalog's paths (for your own downloads: `sm-downscale init "
                         "--inputs FOLDER` writes a catalog that finds them), or build the virtual "
                         "TP (sm-downscale world)")
    return files


class _Reader(BaseReader):
    output_instance = "xarray:Dataset"
    imports = {"xarray"}


class SmapL3Reader(_Reader):
    """SMAP L3 daily files -> observation cube at product steps (see ingest.smap_l3_cube)."""

    def _read(self, urlpath, product=None, **kw):
        cube, _report = smap_l3_cube(expand(urlpath), product=product)
        return cube


class SmapL4Reader(_Reader):
    def _read(self, urlpath, **kw):
        return smap_l4_cube(expand(urlpath))


class Era5Reader(_Reader):
    def _read(self, urlpath, **kw):
        return read_era5([str(f) for f in expand(urlpath)], **kw)


class IsmnReader(BaseReader):
    output_instance = "builtins:list"

    def _read(self, urlpath, **kw):
        return read_ismn(expand(urlpath)[0], **kw)


class StaticDemReader(_Reader):
    def _read(self, urlpath=None, **kw):
        return static_layers(_local(urlpath) if urlpath else None)


class NetcdfReader(_Reader):
    def _read(self, urlpath, **kw):
        return xr.open_dataset(expand(urlpath)[0], **kw)


class ZarrReader(_Reader):
    """A Zarr store (lazy, Dask chunks = the store's chunks); ``variables`` keeps only those
    data variables (with the coordinates)."""

    def _read(self, urlpath, group=None, variables=None, **kw):
        path = expand(urlpath)[0]
        ds = xr.open_zarr(path, group=group, consolidated=True, **kw)
        return ds[list(variables)] if variables else ds


def entry_kind(name: str) -> tuple[str, str]:
    """(reader class name, description) of a standard inputs entry name."""
    if name in ENTRY_KINDS:
        return ENTRY_KINDS[name]

    raise unknown_name("catalog entry", name, list(ENTRY_KINDS))


def reader_for(name: str, urlpath: str | None, description: str | None = None, **kwargs) -> BaseReader:
    cls_name, what = entry_kind(name)
    cls = globals()[cls_name]
    kw = dict(kwargs)
    if urlpath is not None:
        kw["urlpath"] = urlpath
    return cls(metadata={"description": description or what}, **kw)


def write_catalog(path: str | Path, locations: dict[str, str | None],
                  kwargs: dict[str, dict] | None = None, metadata: dict | None = None) -> Path:
    """Write an Intake 2 catalog with the standard entry names.

    Parameters
    ----------
    path : path of the YAML file to write (atomically).
    locations : entry name -> path or glob, relative paths taken from the catalog's folder
        (written as ``{CATALOG_DIR}/...``); ``None`` for entries without a path (static_dem).
    kwargs : entry name -> extra reader arguments (e.g. ``{"smap_l3_36km": {"product": "SPL3SMP"}}``).
    """
    cat = Catalog(metadata=metadata or {})
    for name, loc in locations.items():
        entry_kind(name)  # a clear error for an unknown name
        url = None
        if loc is not None:
            url = loc if os.path.isabs(loc) else "{CATALOG_DIR}/" + loc
        kw = dict((kwargs or {}).get(name, {}))
        cat[name] = reader_for(name, url, kw.pop("description", None), **kw)
    path = Path(path)
    with atomic_path(path) as tmp:
        cat.to_yaml_file(str(tmp))
    return path


def default_catalog_path() -> Path:
    """``$SMDS_CATALOG``, else the project's ``inputs.yaml`` (a folder made by ``sm-downscale
    init``, found from the current folder up), else the default (demo) world's catalog."""
    env = os.environ.get("SMDS_CATALOG")
    if env:
        return Path(env)
    proj = find_project()
    if proj is not None:
        return proj / "inputs.yaml"
    return worlds_dir() / "demo" / "catalog.yaml"


def default_ard_path(catalog: str | Path | None = None) -> Path:
    """Where ingest writes, and train/downscale/archive/validate read, the analysis-ready store.

    A project (``sm-downscale init``) keeps it in its folder; otherwise it sits beside the
    inputs catalog (``$SMDS_CATALOG`` or the demo world's), so a store made from
    ``SMDS_CATALOG=...`` is found by every later command with the same setting.
    """
    proj = find_project()
    if proj is not None and (catalog is None or Path(catalog).resolve().parent == proj):
        return proj / "ard.zarr"
    return Path(catalog or default_catalog_path()).parent / "ard.zarr"


def entry_pattern(cat, name: str) -> str | None:
    """The path or glob of an entry, parameters resolved (None for entries without one)."""
    if name not in cat.entries:
        return None
    url = cat[name].kwargs.get("urlpath")
    return _local(str(url)) if url is not None else None


def open_catalog(path: str | Path | None = None, root: str | None = None):
    """Open an inputs catalog (the one call of ``intake.open_catalog`` in the project).

    ``root`` (or ``$SMDS_INPUTS_ROOT``) sets the catalog's ``root`` user parameter, for the
    real-data template ``catalogs/inputs.yaml``.
    """
    path = Path(path) if path else default_catalog_path()
    if not path.exists():
        raise InputError("catalog not found",
                         "build the virtual TP first (sm-downscale world) or point SMDS_CATALOG "
                         "at your catalog", path)
    cat = intake.open_catalog(str(path))
    root = root or os.environ.get("SMDS_INPUTS_ROOT")
    if root and "root" in cat.user_parameters:
        cat.user_parameters["root"].default = str(root)
    return cat


def read_entry(cat, name: str, **kwargs) -> Any:
    """Read one entry by name with a clear error for a missing one."""
    if name not in cat.entries:
        raise unknown_name("catalog entry", name, list(cat.entries))
    reader = cat[name]
    if kwargs:
        reader = reader(**kwargs)
    return reader.read()


def entry_files(cat, name: str) -> list[Path]:
    """The files behind a path/glob entry (with ``{CATALOG_DIR}`` and parameters resolved)."""
    if name not in cat.entries:
        raise unknown_name("catalog entry", name, list(cat.entries))
    reader = cat[name]
    url = reader.kwargs.get("urlpath")
    if url is None:
        return []
    return expand(str(url))


def has_entry(cat, name: str) -> bool:
    return name in cat.entries
