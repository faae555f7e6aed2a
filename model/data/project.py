"""A real-data project: one folder that holds the inputs catalog, the store, runs and archive.

``sm-downscale init --inputs DOWNLOADS [FOLDER]`` looks through a folder of downloads as
they arrive from the data centres, writes ``FOLDER/inputs.yaml`` (an Intake 2 catalog with
the standard entry names, pointing at the files it found) and ``FOLDER/smds-project.json``
(the marker), and prints what it found. Every later command run inside ``FOLDER`` (or with
``SMDS_PROJECT=FOLDER``) uses it as its home: ``ingest`` reads ``inputs.yaml`` and writes
``FOLDER/ard.zarr``; ``train``, ``downscale``, ``archive``, ``validate`` read that store and
write ``runs/``, ``archive/``, ``validation/`` and the products catalog ``catalog.yaml`` there.
No ``--ard``, ``--catalog`` or environment variable is needed. ``$SMDS_HOME`` (when set)
still wins, for scripts that want their own layout.

What ``init`` recognises (anywhere below DOWNLOADS, any folder depth, so NSIDC's
``SPL3SMP.009/2017.06.01/`` folders, a CDS download folder and an ISMN zip extracted in
place all work as they are):

=================  ==================================================================
SMAP L3 36 km      ``SMAP_L3_SM_P_<date>_*.h5``                  (NSIDC SPL3SMP)
SMAP L3 9 km       ``SMAP_L3_SM_P_E_<date>_*.h5``                (NSIDC SPL3SMP_E)
SMAP L4            ``SMAP_L4_SM_gph_*.h5``                       (NSIDC SPL4SMGP, optional)
ERA5-Land          ``*.nc``, ``*.grib``, ``*.grb``, ``*.grib2``, ``*.zip`` holding the
                   CDS variables (checked by opening them), in one folder (tree)
ISMN               the folder holding the ``NETWORK/STATION/*.stm`` files
static extras      ``static_tp10.nc`` (soil texture / land cover on TP10, optional)
=================  ==================================================================
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import os
from pathlib import Path

import yaml

from ..config import PROJECT_MARKER
from ..errors import InputError
from ..io import atomic_path
from .catalog import ENTRY_KINDS
from .era5 import read_era5
from .ingest import SOURCES

_SMAP = {
    "smap_l3_36km": ("SMAP_L3_SM_P_[0-9]*.h5", {"product": "SPL3SMP"}),
    "smap_l3_9km": ("SMAP_L3_SM_P_E_*.h5", {"product": "SPL3SMP_E"}),
    "smap_l4": ("SMAP_L4_SM_gph_*.h5", {}),
}
_ERA5_EXT = (".nc", ".grib", ".grb", ".grib2", ".zip")


def _glob_for(root: Path, files: list[Path], name_pattern: str) -> str:
    """A glob under ``{root}`` matching ``files``: their common folder, recursive when nested."""
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    rel = common.relative_to(root).as_posix()
    nested = any(f.parent != common for f in files)
    parts = ["{root}"] + ([rel] if rel != "." else []) + (["**"] if nested else []) + [name_pattern]
    return "/".join(parts)


def _is_era5(path: Path) -> bool:
    try:
        ds = read_era5([str(path)], chunks={"time": 24})
    except InputError:
        return False
    return bool(set(ds.data_vars) & {"swvl1", "stl1", "t2m", "skt", "tp"})


def discover(inputs: str | Path) -> dict:
    """Find the downloads below ``inputs``: ``{entry: {"pattern", "files", "kwargs"}}`` plus
    ``"ignored"`` (files that are none of the above)."""
    root = Path(inputs).expanduser().resolve()
    if not root.is_dir():
        raise InputError("the inputs folder does not exist or is not a folder",
                         "give the folder that holds your SMAP, ERA5-Land and ISMN downloads", root)

    found: dict = {}
    all_files = [p for p in sorted(root.rglob("*")) if p.is_file()
                 and not any(part.startswith(".") or part == "python_metadata"
                             for part in p.relative_to(root).parts)]
    used: set[Path] = set()
    for entry, (pat, kw) in _SMAP.items():
        fs = [p for p in all_files if fnmatch.fnmatch(p.name, pat)]
        if fs:
            found[entry] = {"pattern": _glob_for(root, fs, pat), "files": len(fs), "kwargs": kw}
            used.update(fs)
    stm = [p for p in all_files if p.suffix.lower() == ".stm"]
    if stm:
        # the ISMN root: the folder above NETWORK/STATION/ of the files
        tops = {p.parent.parent.parent for p in stm}
        ismn_root = Path(os.path.commonpath([str(t) for t in tops]))
        rel = ismn_root.relative_to(root).as_posix()
        found["ismn"] = {"pattern": "{root}" + ("" if rel == "." else "/" + rel), "files": len(stm), "kwargs": {}}
        used.update(stm)
    static = [p for p in all_files if p.name == "static_tp10.nc"]
    if static:
        rel = static[0].relative_to(root).as_posix()
        found["static_extra"] = {"pattern": "{root}/" + rel, "files": 1, "kwargs": {}}
        used.update(static)
    cands = [p for p in all_files if p.suffix.lower() in _ERA5_EXT and p not in used]
    era5 = [p for p in cands if _is_era5(p)]
    if era5:
        exts = sorted({p.suffix.lower() for p in era5})
        pat = f"*{exts[0]}" if len(exts) == 1 else "*"
        found["era5land"] = {"pattern": _glob_for(root, era5, pat), "files": len(era5), "kwargs": {}}
        used.update(era5)
    found["ignored"] = [str(p.relative_to(root)) for p in all_files
                        if p not in used and p.suffix.lower() in (".h5", ".nc", ".grib", ".stm", ".zip")]
    return found


def write_inputs_catalog(path: Path, inputs: Path, found: dict) -> Path:
    """An Intake 2 inputs catalog with a ``root`` parameter set to ``inputs``."""
    entries = {}
    for entry in ("smap_l3_36km", "smap_l3_9km", "smap_l4", "era5land", "ismn", "static_dem",
                  "static_extra"):
        cls, what = ENTRY_KINDS[entry]
        if entry != "static_dem" and entry not in found:
            continue
        kw = {} if entry == "static_dem" else {"urlpath": found[entry]["pattern"], **found[entry]["kwargs"]}
        entries[entry] = {"kwargs": kw, "metadata": {"description": what},
                          "output_instance": "builtins:list" if entry == "ismn" else "xarray:Dataset",
                          "reader": f"model.data.catalog:{cls}", "user_parameters": {}}
    doc = {
        "version": 2, "aliases": {}, "data": {},
        "metadata": {"description": f"real inputs found by `sm-downscale init` in {inputs}",
                     "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "user_parameters": {"root": {
            "cls": "intake.readers.user_parameters:SimpleUserParameter", "default": str(inputs),
            "description": "folder holding the downloads (or set SMDS_INPUTS_ROOT)", "dtype": "str"}},
        "entries": entries,
    }
    with atomic_path(path) as tmp:
        tmp.write_text("# written by `sm-downscale init`; edit the globs if you move the downloads\n"
                       + yaml.safe_dump(doc, sort_keys=False))
    return path


def init_project(inputs: str | Path, folder: str | Path = ".", force: bool = False) -> tuple[Path, dict]:
    """Make ``folder`` a project for the downloads in ``inputs`` (see the module docstring).

    Returns ``(folder, found)``. An existing project is refreshed only with ``force``.
    """
    inputs = Path(inputs).expanduser().resolve()
    folder = Path(folder).expanduser().resolve()
    marker = folder / PROJECT_MARKER
    if marker.exists() and not force:
        raise InputError("this folder is already a project", "use --force to look through the "
                         "inputs again and rewrite its inputs.yaml", folder)
    found = discover(inputs)
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs_catalog(folder / "inputs.yaml", inputs, found)

    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({
            "inputs": str(inputs), "catalog": "inputs.yaml", "ard": "ard.zarr",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "found": {k: v for k, v in found.items() if k != "ignored"}}, indent=1))
    return folder, found


def describe_found(found: dict) -> str:
    lines = []
    for entry, (label, required, absent) in SOURCES.items():
        if entry in found:
            f = found[entry]
            lines.append(f"  {label:<34} {f['files']:6d} files  {f['pattern']}")
        else:
            lines.append(f"  {label:<34} {'none':>6}        {'REQUIRED: ' if required else ''}{absent}")
    if found.get("ignored"):
        lines.append(f"  not recognised ({len(found['ignored'])}): {', '.join(found['ignored'][:5])}"
                     + (" ..." if len(found["ignored"]) > 5 else ""))
    return "\n".join(lines)


def register(sub):
    p = sub.add_parser("init", help="make a project folder for your own downloads (writes its inputs "
                                    "catalog; later commands run inside it need no --ard/--catalog)")
    p.add_argument("--inputs", required=True, help="folder holding the SMAP, ERA5-Land and ISMN downloads "
                                                   "(any layout: NSIDC date folders, CDS files, ISMN folder)")
    p.add_argument("folder", nargs="?", default=".", help="project folder to make (default: here)")
    p.add_argument("--force", action="store_true", help="rewrite the catalog of an existing project")
    p.set_defaults(func=_run)


def _run(args) -> int:
    folder, found = init_project(args.inputs, args.folder, args.force)
    print(f"project {folder}:")
    print(describe_found(found))
    print(f"wrote {folder / 'inputs.yaml'}; next: cd {folder} && sm-downscale ingest")
    return 0
