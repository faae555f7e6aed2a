"""A folder of "real downloads" made from a virtual TP's inputs by the project's writers.

Laid out as a user's downloads arrive: NSIDC date folders (``SPL3SMP.009/2017.06.01/``),
CDS monthly NetCDF files with their own names, an extracted ISMN "header + values" download
with ISMN's underscore network names in the file names (``CTP_SMTMN_CTP_SMTMN_L01_sm_...``),
no SMAP L4, no static extras; every other SMAP L3 day rewritten by ``write_smap_l3`` without
``surface_flag`` (and one 9 km day also without ``retrieval_qual_flag``), as files subset by
variable arrive; one ISMN file with a broken header (to be skipped and counted as skipped).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def make_downloads(world_inputs: str | Path, dest: str | Path, period=None, era5_box=None) -> Path:
    """Write the downloads folder ``dest`` from a world's ``inputs/`` folder.

    ``period`` (first day, last day): keep these days only (ERA5-Land rewritten by
    ``write_era5_monthly`` as CDS monthly files, SMAP days filtered); ``era5_box`` (lon_min,
    lat_min, lon_max, lat_max): ERA5-Land downloaded for this area only (a CDS ``area``).
    """
    import numpy as np

    from model.data.era5 import read_era5
    from model.data.era5_write import write_era5_monthly
    from model.data.smap import read_smap_l3
    from model.data.smap_format import QualityPolicy, parse_smap_filename
    from model.data.smap_write import write_smap_l3

    src = Path(world_inputs)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lo, hi = (np.datetime64(period[0], "D"), np.datetime64(period[1], "D")) if period else (None, None)
    # SMAP L3, NSIDC layout
    n_omitted = 0
    for folder, product, version in (("SPL3SMP", "SPL3SMP", "009"), ("SPL3SMP_E", "SPL3SMP_E", "006")):
        files = sorted((src / folder).glob("*.h5"))
        if period:
            files = [f for f in files if lo <= np.datetime64(parse_smap_filename(f.name)["time"], "D") <= hi]
        for i, f in enumerate(files):
            day = str(parse_smap_filename(f.name)["time"])[:10].replace("-", ".")
            out = dest / "n5eil01u.ecs.nsidc.org" / "SMAP" / f"{product}.{version}" / day / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            if i % 2 == 0:
                shutil.copyfile(f, out)
                continue
            ds = read_smap_l3(f, policy=QualityPolicy.permissive())
            omit = ("surface_flag",) + (("retrieval_qual_flag",) if (i == 1 and product == "SPL3SMP_E") else ())
            write_smap_l3(out, product, ds.attrs["date"], ds.sel(overpass="AM", drop=True),
                          ds.sel(overpass="PM", drop=True), omit=omit, creation_date="2026-01-01")
            n_omitted += 1
    # ERA5-Land, as the CDS delivered it (one request per month, the user's own names)
    era5_files = sorted((src / "ERA5-Land").glob("*.nc"))
    if period or era5_box:
        ds = read_era5([str(f) for f in era5_files], bbox=era5_box)
        if period:
            ds = ds.sel(time=slice(lo, hi + np.timedelta64(23, "h")))
        write_era5_monthly(dest / "cds", ds, prefix="reanalysis-era5-land")
    else:
        for f in era5_files:
            month = f.stem.rsplit("_", 1)[-1]
            out = dest / "cds" / f"reanalysis-era5-land_{month}.nc"
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)
    # ISMN: an extracted download, network names with underscores in the file names
    ismn = dest / "ismn" / "Data_separate_files_header_20170601_20170715_9562_aBcD_20261204"
    for f in sorted((src / "ISMN").rglob("*.stm")):
        rel = f.relative_to(src / "ISMN")
        name = f.name
        net = rel.parts[0]
        if "_" in net:
            name = name.replace(f"{net.replace('_', '-')}_" * 2, f"{net}_" * 2, 1)
        out = ismn / rel.parent / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, out)
    broken = sorted(ismn.rglob("*_sm_*.stm"))[-1]
    lines = broken.read_bytes().splitlines(keepends=True)
    broken.write_bytes(b"this header was cut off by a broken transfer\n" + b"".join(lines[1:]))
    return dest
