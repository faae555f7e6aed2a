#!/usr/bin/env python
"""Runner and archive speed: scenes on demand, archive reads, archive builds.

Prints the machine, then:

* one 10 km TP scene end to end (inputs from the analysis-ready store to the field): the first
  call (loads the checkpoint and the input block) and warm calls (another step of the cached
  block), per model;
* scenes per second in a batch (``--batch`` steps at once);
* a station series (series layout) and a map frame (map layout) read from the archive, median
  of ``--repeat`` reads at different places/times, opened through the Intake catalog;
* with ``--build-days N``: the archive build of the first N days of the default period for
  ``--models`` on the CPU with 1 and 2 local Dask workers, into a temporary folder.

Usage (after ``sm-downscale demo --no-serve``)::

    python benchmarks/bench_runner.py [--models pscnet unet] [--device auto]
        [--build-days 5 --build-models all] [--json out.json]

Targets (the issue): a warm scene <= 2 s on 2 CPU cores (<= 50 ms on one H100); a station
series and a map frame <= 50 ms each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _median(fn, n):
    ts = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), max(ts)


def scenes(models, ard, device, batch):
    import numpy as np

    from model.inference.runner import get_runner

    rows = {}
    for m in models:
        t0 = time.perf_counter()
        r = get_runner(m, ard, device)
        p = r.provider
        # a step well inside the inputs (the multi-frequency window needs 28 days of history)
        i0 = min(p.times.size - 1, 8 * 30)
        first_t = p.times[i0]
        r.scenes([first_t])
        first = time.perf_counter() - t0
        warm, worst = _median(lambda k: r.scenes([p.times[i0 + 1 + k % 6]]), 5)
        # the part of a warm scene that is not the model: window assembly + normalisation
        # (the same host work on a GPU server; add the model's GPU time to estimate a GPU scene)
        from model.inference.inputs import normalise_batch

        c = p.cube_for(p.times[i0 + 1])
        assembly, _ = _median(lambda k: normalise_batch(
            {kk: v[None] for kk, v in c.window(c.step_index(p.times[i0 + 1 + k % 6])).items()}, r.norm), 5)
        # a day of steps, as the archive runs them: in calls of ``batch`` scenes and in the
        # method's own calls (None: runner.cpu_batch on a CPU, 1 for all but the LSTM)
        ts = [p.times[i0 + k] for k in range(batch)]
        per_s = {}
        for b in (batch, None):
            t0 = time.perf_counter()
            r.scenes(ts, batch=b)
            per_s[b] = batch / (time.perf_counter() - t0)
        own = r.cpu_batch if r.device == "cpu" else "device"
        rows[m] = {"device": r.device, "first_s": round(first, 3), "warm_s": round(warm, 3),
                   "warm_worst_s": round(worst, 3), "input_assembly_s": round(assembly, 4),
                   f"batch{batch}_scenes_per_s": round(per_s[batch], 2),
                   "own_batch": own, "own_batch_scenes_per_s": round(per_s[None], 2),
                   "time": str(np.datetime64(first_t, "h"))}
        print(f"  {m:14s} {r.device:5s} first {first:7.2f} s   warm {warm:7.3f} s (worst {worst:.3f})   "
              f"inputs {assembly * 1000:6.1f} ms   {batch} scenes per call: {per_s[batch]:6.2f} scenes/s   "
              f"its own batch ({own}): {per_s[None]:6.2f} scenes/s", flush=True)
    return rows


def archive_reads(repeat):
    from model.products import open_products

    cat = open_products()
    names = list(cat.entries)
    series_name = next(n for n in names if n.startswith("archive_series_"))
    maps_name = next(n for n in names if n.startswith("archive_maps_"))
    t0 = time.perf_counter()
    s = cat[series_name].read()
    m = cat[maps_name].read()
    opened = time.perf_counter() - t0
    model = next(v for v in m.data_vars if v not in ("tp_mask", "crs"))
    lat, lon = s.sizes["lat"], s.sizes["lon"]
    sr, sw = _median(lambda k: s[model].isel(lat=(37 + 13 * k) % lat, lon=(91 + 29 * k) % lon).values, repeat)
    mr, mw = _median(lambda k: m[model].isel(time=(11 * k) % m.sizes["time"]).values, repeat)
    print(f"  catalog entries {series_name}, {maps_name}: opened in {opened:.2f} s", flush=True)
    print(f"  station series ({s.sizes['time']} steps, {model}): median {sr * 1000:.1f} ms (worst {sw * 1000:.1f})")
    print(f"  map frame (150 x 320, {model}):            median {mr * 1000:.1f} ms (worst {mw * 1000:.1f})")
    return {"entries": [series_name, maps_name], "open_s": round(opened, 3),
            "series_ms": round(sr * 1000, 1), "series_worst_ms": round(sw * 1000, 1),
            "frame_ms": round(mr * 1000, 1), "frame_worst_ms": round(mw * 1000, 1)}


def builds(models, ard, days, workers_list):
    import numpy as np

    from model.inference.archive import build_archive
    from model.inference.cli import default_period
    from model.networks.registry import model_names

    if models == ["all"]:
        from model.config import runs_dir

        models = [m for m in model_names() if (runs_dir() / m / "LATEST").exists()]
    s, _ = default_period(ard)
    e = str(np.datetime64(s, "D") + np.timedelta64(days - 1, "D"))
    out = {}
    for w in workers_list:
        with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
            t0 = time.perf_counter()
            res = build_archive(models, s, e, out=Path(tmp) / "archive", ard=ard, workers=w, device="cpu",
                                progress=False)
            wall = time.perf_counter() - t0
            # each model's seconds in its blocks (the markers record them: load + compute + write)
            per_model = {m: round(sum(json.loads(f.read_text()).get("seconds", 0.0)
                                      for f in (Path(tmp) / "archive" / "build" / m).glob("*.done")), 1)
                         for m in models}
        steps = res["steps"] * len(models)
        out[f"{w}_workers"] = {"seconds": round(wall, 1), "maps_seconds": res["maps_seconds"],
                               "series_seconds": res["series_seconds"], "model_steps": steps,
                               "model_steps_per_s": round(steps / wall, 2), "model_seconds": per_model}
        print(f"  {w} worker(s): {days} days ({s} .. {e}) x {len(models)} models = {steps} model-steps "
              f"in {wall:.1f} s ({steps / wall:.2f}/s; maps {res['maps_seconds']} s, series {res['series_seconds']} s)",
              flush=True)
        print("    per model (s, its blocks):", ", ".join(f"{m} {v}" for m, v in per_model.items()), flush=True)
    return {"period": [s, e], "models": models, **out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ard", type=Path, default=None)
    ap.add_argument("--models", nargs="*", default=["pscnet", "unet"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--build-days", type=int, default=0, help="also time archive builds of this many days")
    ap.add_argument("--build-models", nargs="*", default=["all"])
    ap.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    import torch

    from model.machine import machine_info, machine_line
    from model.features.ard import default_ard

    ard = a.ard or default_ard()
    mach = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    print("machine:", machine_line(mach), flush=True)
    res = {"machine": mach, "ard": str(ard)}
    print("scenes (end to end, inputs -> 10 km field):")
    res["scenes"] = scenes(a.models, ard, a.device, a.batch)
    print("archive reads:")
    try:
        res["reads"] = archive_reads(a.repeat)
    except StopIteration:
        print("  no archive entries in the catalog: build the archive first (sm-downscale demo)")
    if a.build_days:
        print("archive builds (CPU):")
        res["builds"] = builds(a.build_models, ard, a.build_days, a.workers)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
