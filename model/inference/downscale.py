"""``sm-downscale downscale``: a trained model applied at every 3-hourly step of a period,
into one CF NetCDF file (the archive, :mod:`model.inference.archive`, is the product for the
dashboard; this is the one-file export of a model's run over a period)."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
from tqdm.auto import tqdm

from ..config import home
from ..errors import InputError
from ..grids import tp10
from ..io import atomic_path
from ..schema import sm_attrs
from .runner import get_runner, resolve_run


def register(sub):
    d = sub.add_parser("downscale", help="apply a trained model at every 3-hourly step of a period")
    d.add_argument("--model", help="registry name (its latest run in $SMDS_HOME/runs)")
    d.add_argument("--run", help="a run folder outside the run registry, accepted on purpose "
                                 "(trusted by you; its checkpoint is still read without unpickling)")
    d.add_argument("--start", required=True)
    d.add_argument("--end", required=True)
    d.add_argument("--ard")
    d.add_argument("--device", default="auto")
    d.add_argument("-o", "--output", help="CF NetCDF to write (default $SMDS_HOME/downscaled/<model>_<start>_<end>.nc)")
    d.add_argument("--batch", type=int, default=8, help="steps per batch (memory bound)")
    d.set_defaults(func=_downscale)


def downscale_period(model, start, end, output=None, ard=None, device="auto", batch=8, progress=True) -> Path:
    """Apply a model at every 3-hourly step of [start, end] (whole days), in memory-bounded
    batches, into a CF NetCDF file (written atomically)."""
    runner = get_runner(model, ard, device)
    times = runner.provider.steps(np.datetime64(start, "D"),
                                  np.datetime64(end, "D") + np.timedelta64(21, "h"))
    output = Path(output) if output else home() / "downscaled" / f"{runner.name}_{str(start)[:10]}_{str(end)[:10]}.nc"
    g = tp10()

    with atomic_path(output) as tmp:
        with netCDF4.Dataset(tmp, "w") as nc:
            nc.Conventions = "CF-1.8"
            nc.title = f"10 km 3-hourly surface soil moisture, {runner.name}"
            for k, v in runner.provenance.items():
                setattr(nc, f"provenance_{k}", json.dumps(v) if not isinstance(v, str) else v)
            nc.createDimension("time", None)
            nc.createDimension("lat", g.shape[0])
            nc.createDimension("lon", g.shape[1])
            tv = nc.createVariable("time", "f8", ("time",))
            tv.units = "hours since 1970-01-01 00:00:00"
            tv.standard_name = "time"
            tv.calendar = "standard"
            la = nc.createVariable("lat", "f8", ("lat",))
            la[:] = g.lat
            la.units, la.standard_name = "degrees_north", "latitude"
            lo = nc.createVariable("lon", "f8", ("lon",))
            lo[:] = g.lon
            lo.units, lo.standard_name = "degrees_east", "longitude"
            sm = nc.createVariable("soil_moisture", "f4", ("time", "lat", "lon"), zlib=True, complevel=4,
                                   fill_value=np.float32(np.nan), chunksizes=(1, g.shape[0], g.shape[1]))
            sm.setncatts(sm_attrs(f"surface (0-5 cm) soil moisture, {runner.name}"))
            for k in tqdm(range(0, times.size, batch), desc=f"downscale {runner.name}", disable=not progress):
                tt = times[k:k + batch]
                vals = runner.scenes(tt)
                n0 = len(nc.dimensions["time"])
                tv[n0:n0 + tt.size] = (tt - np.datetime64("1970-01-01", "ns")) / np.timedelta64(1, "h")
                sm[n0:n0 + tt.size] = vals
    return output


def _downscale(args) -> int:
    if bool(args.model) == bool(args.run):
        raise InputError("give exactly one of --model NAME and --run FOLDER",
                         "--model picks a trained model by name; --run a run folder elsewhere")
    model = args.model or resolve_run(args.run, allow_path=True)
    out = downscale_period(model, args.start, args.end, args.output, args.ard, args.device, args.batch)
    print(f"wrote {out}")
    return 0
