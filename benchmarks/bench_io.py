"""Reading and regridding speed: ``python benchmarks/bench_io.py [--world DIR]``.

Prints the machine, then seconds and MB/s for: the real sample files (SMAP L2, ERA5 NetCDF and
GRIB, the Maqu ISMN series, the DEM), a virtual-TP month of ERA5-Land and a day of SMAP L3/L4
when a world folder is given, and the area-overlap regridding TP10 -> M09 / M36 -> TP10.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from model.machine import machine_info, machine_line


def timed(label, fn, nbytes=None, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    t = float(np.median(ts))
    rate = f"{nbytes / 2**20 / t:8.1f} MB/s" if nbytes else ""
    print(f"{label:55s} {t:8.3f} s  {rate}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=Path, help="a virtual TP folder (sm-downscale world)")
    a = ap.parse_args()
    print("machine:", machine_line(machine_info(numpy=np.__version__)))
    from model.config import shared_data
    from model.data import era5, era5_time, ismn, smap, static
    from model.grids import Regridder

    sh = shared_data()
    if sh:
        f = sh / "smap/SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5"
        timed("SMAP L2 half orbit (real)", lambda: smap.read_smap_l2(f), f.stat().st_size)
        f = sh / "era5/era5_example_downloaded_raw.nc"
        timed("ERA5 NetCDF, CDS old layout (real)", lambda: era5.read_era5(f), f.stat().st_size)
        f = sh / "era5/era5-2mt-2019-03-uk.grib"
        timed("ERA5 GRIB, 744 hourly steps (real)", lambda: era5.read_era5(f), f.stat().st_size, repeat=1)
        ds = era5.read_era5(f)
        timed("  to_3hourly of it", lambda: era5_time.to_3hourly(ds), ds.nbytes)
        f = sh / "ismn/header_values_tp/MAQU/CST-01"
        timed("ISMN Maqu CST-01, 16k hourly records (real)", lambda: ismn.read_ismn(f), None, repeat=1)
        f = sh / "dem/pvlib_Altitude_global_1_12deg.h5"
        def dem_layers():
            static._layers.cache_clear()  # the layers are cached per process: time the real work
            static.static_layers(f)

        timed("DEM global 1/12 deg -> TP10 static layers", dem_layers, f.stat().st_size)
    if a.world:
        w = a.world / "inputs"
        f = sorted((w / "ERA5-Land").glob("*.nc"))[0]
        timed(f"ERA5-Land month, virtual TP ({f.name})", lambda: era5.read_era5(f), f.stat().st_size, repeat=1)
        f = sorted((w / "SPL3SMP_E").glob("*.h5"))[0]
        timed("SMAP L3 9 km daily file, TP subset", lambda: smap.read_smap_l3(f), f.stat().st_size)
        f = sorted((w / "SPL3SMP").glob("*.h5"))[0]
        timed("SMAP L3 36 km daily file, TP subset", lambda: smap.read_smap_l3(f), f.stat().st_size)
        f = sorted((w / "SPL4SMGP").glob("*.h5"))[0]
        timed("SMAP L4 3-hourly file, TP subset", lambda: smap.read_smap_l4(f), f.stat().st_size)
    x = np.random.default_rng(0).random((240, 150, 320)).astype("float32")
    x[:, :, :40] = np.nan
    for src, dst, arr in (("TP10", "M09", x), ("TP10", "M36", x)):
        rg = Regridder(src, dst)
        timed(f"regrid {src} -> {dst}, 240 frames (one month 3-hourly)", lambda: rg(arr), arr.nbytes)
    y = Regridder("TP10", "M36")(x)
    rg = Regridder("M36", "TP10")
    timed("regrid M36 -> TP10, 240 frames", lambda: rg(y), y.nbytes)
    t0 = time.perf_counter()
    Regridder("TP10", "M09")
    print(f"{'build the TP10 -> M09 weights (separable 1-D overlaps)':55s} {time.perf_counter() - t0:8.3f} s")


if __name__ == "__main__":
    main()
