"""``sm-downscale inspect PATH [--json]``: what the readers see in a file or folder.

Like ``ncdump -h`` or ``gdalinfo``: the first thing to run on a new input. The kind of input is
recognised from its content (HDF5 groups, NetCDF variables, GRIB header, ISMN header line),
not only its name; a file no reader accepts exits non-zero with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import xarray as xr

from ..errors import InputError, UnreadableFileError
from .era5 import describe as describe_era5
from .ismn import describe as describe_ismn
from .smap import describe as describe_smap
from .static import describe as describe_static

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff(path: Path) -> str:
    """Which reader module handles ``path``: ``smap``, ``era5``, ``ismn`` or ``static``."""
    if path.is_dir():
        if any(path.rglob("*.stm")):
            return "ismn"
        raise UnreadableFileError("folder holds no ISMN .stm files",
                                  "inspect a file, or an ISMN download folder", path)
    if not path.exists():
        raise InputError("no such file or folder", "check the path", path)
    name = path.name.lower()
    with open(path, "rb") as fh:
        head = fh.read(512)
    if name.endswith(".stm"):
        return "ismn"
    if head[:4] == b"GRIB":
        return "era5"
    if head.startswith(HDF5_MAGIC) or head[:3] == b"CDF":
        if head.startswith(HDF5_MAGIC):
            try:
                with h5py.File(path, "r") as f:
                    keys = set(f.keys())
            except OSError as exc:
                raise UnreadableFileError(f"HDF5 file cannot be opened ({exc})",
                                          "the file is truncated or corrupt: download it again", path) from exc
            if keys & {"Soil_Moisture_Retrieval_Data", "Soil_Moisture_Retrieval_Data_AM",
                       "Soil_Moisture_Retrieval_Data_PM", "Geophysical_Data"}:
                return "smap"
            if "Altitude" in keys:
                return "static"

        try:
            with xr.open_dataset(path) as ds:
                names = set(ds.variables)
        except Exception as exc:  # noqa: BLE001 - report any decoder failure as unreadable
            raise UnreadableFileError(f"NetCDF/HDF5 file cannot be decoded ({exc})",
                                      "the file is truncated or corrupt: download it again", path) from exc
        if "elevation" in names or "Altitude" in names:
            return "static"
        return "era5"
    try:
        first = head.decode("ascii", errors="strict").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        first = ""
    if len(first.split()) >= 8 and name.endswith((".stm", ".txt")):
        return "ismn"
    raise UnreadableFileError("not a supported input (SMAP HDF5, ERA5/ERA5-Land NetCDF or GRIB, "
                              "ISMN .stm or download folder, DEM)",
                              "check the file type", path)


def describe(path: str | Path) -> dict:
    """The description dict of ``path`` (keys: product, variables, time_start, time_end,
    soil_moisture, and grid or stations)."""
    path = Path(path)
    kind = sniff(path)
    if kind == "smap":
        d = describe_smap
    elif kind == "era5":
        d = describe_era5
    elif kind == "ismn":
        d = describe_ismn
    else:
        d = describe_static
    out = d(path)
    out.setdefault("path", str(path))
    out.setdefault("reader", kind)
    return out


def format_text(info: dict) -> str:
    lines = [f"{info.get('path')}", f"  product:    {info.get('product')}"]
    if info.get("time_start") or info.get("time_end"):
        lines.append(f"  time:       {info.get('time_start')} .. {info.get('time_end')}")
    grid = info.get("grid")
    if grid:
        lines.append(f"  grid:       {json.dumps(grid, default=str)}")
    st = info.get("stations")
    if st:
        lines.append(f"  stations:   {len(st)}")
        for s in st[:10]:
            lines.append(f"    {s.get('network')} {s.get('station')} ({s.get('lat')}, {s.get('lon')}) "
                         f"{s.get('depth_from')}-{s.get('depth_to')} m")
        if len(st) > 10:
            lines.append(f"    ... {len(st) - 10} more")
    lines.append("  variables:")
    for k, u in (info.get("variables") or {}).items():
        lines.append(f"    {k:28s} {u}")
    sm = info.get("soil_moisture")
    if sm:
        lines.append("  soil moisture (after fill values and the quality policy), m3 m-3:")
        lines.append(f"    valid {sm.get('valid_count')}  mean {_f(sm.get('mean'))}  "
                     f"min {_f(sm.get('min'))}  max {_f(sm.get('max'))}")
    else:
        lines.append("  soil moisture: none in this input")
    for k, v in info.items():
        if k not in {"path", "product", "time_start", "time_end", "grid", "stations", "variables",
                     "soil_moisture", "reader"}:
            lines.append(f"  {k}: {json.dumps(v, default=str)}")
    return "\n".join(lines)


def _f(v):
    return "n/a" if v is None else f"{v:.4f}"


def register(sub):
    p = sub.add_parser("inspect", help="show what the readers see in a SMAP/ERA5/ISMN/DEM input",
                       description=__doc__)
    p.add_argument("path", help="a file or an ISMN download folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, default=str, indent=1))
    else:
        print(format_text(info))
    return 0
