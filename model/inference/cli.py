"""``sm-downscale archive`` and ``sm-downscale export``."""

from __future__ import annotations

import json

import numpy as np

from ..errors import InputError
from ..features.ard import ard_info, default_ard
from ..networks.registry import list_models
from ..runs.folders import has_run
from .archive import build_archive
from .export import select, to_geotiff, to_netcdf


def register(sub):
    p = sub.add_parser("archive", help="build (or resume) the Zarr archive of one or more models on Dask")
    p.add_argument("--model", action="append", required=True, help="registry name (repeatable, or 'all')")
    p.add_argument("--start", help="first day (default: 10 days before the test period, or the "
                                   "start of the training period if later; the whole training period "
                                   "for the full world). The periods are the store's: the world's for "
                                   "the virtual TP; for real data the ones ingest chose and printed "
                                   "(the last calendar year, or the last third of a shorter record, is "
                                   "the test period)")
    p.add_argument("--end", help="last day (default: the end of the test period = the last ingested day)")
    p.add_argument("--block-days", type=int, default=5, help="days per Dask task (default 5)")
    p.add_argument("--out", help="archive folder (default $SMDS_HOME/archive)")
    p.add_argument("--ard", help="analysis-ready store (default: the project's, when run inside a "
                                 "folder made by `sm-downscale init`; else the demo world's)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler (default: $SMDS_DASK_SCHEDULER, else a local cluster)")
    p.add_argument("--workers", type=int, default=2, help="local cluster workers (default 2)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.set_defaults(func=_archive)

    e = sub.add_parser("export", help="a period, box and model of the archive to CF NetCDF or GeoTIFF")
    e.add_argument("--model", action="append", required=True)
    e.add_argument("--start")
    e.add_argument("--end")
    e.add_argument("--bbox", nargs=4, type=float, metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"))
    e.add_argument("--format", choices=["netcdf", "geotiff"], default="netcdf")
    e.add_argument("--archive", help="archive folder (default $SMDS_HOME/archive)")
    e.add_argument("-o", "--output", required=True, help="file to write")
    e.set_defaults(func=_export)


def _models(names):
    if names == ["all"]:
        return [m.name for m in list_models() if has_run(m.name)]
    return names


#: days of the training period archived before the test period (demo-size worlds)
TRAIN_TAIL_DAYS = 10


def default_period(ard=None, full: bool | None = None):
    """The archive period: the test period plus the last TRAIN_TAIL_DAYS days of the training
    period (so experiment 3 has training-period values), or the whole training + test period
    for worlds of more than a year (``full``) or when ``full=True``."""
    info = ard_info(ard or default_ard())
    w = info.get("world") or {}
    per = w.get("periods") or {}
    tr, te = per.get("train"), per.get("test")
    if not (tr and te):
        return str(info["start"])[:10], str(info["end"])[:10]
    if full is None:
        full = w.get("size") == "full"
    if full:
        return tr[0], te[1]
    start = max(np.datetime64(tr[0], "D"), np.datetime64(te[0], "D") - np.timedelta64(TRAIN_TAIL_DAYS, "D"))
    return str(start), te[1]


def _archive(args) -> int:
    start, end = args.start, args.end
    if not (start and end):
        s, e = default_period(args.ard)
        start, end = start or s, end or e
    summary = build_archive(_models(args.model), start, end, out=args.out, ard=args.ard,
                            scheduler=args.scheduler, workers=args.workers, device=args.device,
                            force=args.force, block_days=args.block_days)
    print(json.dumps(summary, indent=1, default=str))
    return 0 if all(summary["complete"].values()) else 1


def _export(args) -> int:
    sub = select(args.model, args.start, args.end, args.bbox, args.archive)
    if args.format == "netcdf":
        path = to_netcdf(sub, args.output)
    else:
        if len(args.model) != 1:
            raise InputError("a GeoTIFF stack holds one model", "give one --model, or use --format netcdf")
        path = to_geotiff(sub, args.model[0], args.output)
    print(f"wrote {path} ({sub.sizes['time']} steps, {sub.sizes['lat']} x {sub.sizes['lon']} cells)")
    return 0
