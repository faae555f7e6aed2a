#!/usr/bin/env python
"""GPU benchmark of the device-resident inputs, in one command on a bare machine.

Makes its own small whole-TP world with the project's world builder (size ``gpubench``:
45 written days, seed 42), ingests it (ERA5-Land, SMAP L3 9 km and the static layers only),
trains PSCNet for ``--train-minutes`` with device-resident batches, then measures and prints:

* training samples/s: resident batches vs today's host batches (same batch size);
* a warm PSCNet scene end to end (``Runner.scene``, median of ``--repeat`` >= 10), with its
  input assembly (windows cut on the device) and model time, and the same for today's path;
* scenes/s at batch 1, 8, 32 (``Runner.scenes`` over 64 steps);
* the archive (``build_archive(resident=True)``, ``--archive-days`` days = 8 steps a day):
  maps and series seconds, steps/s, the extrapolation to 8,768 steps (the paper's 3 years),
  and the mean GPU utilisation during the map phase (``nvidia-smi -lms 100`` in the
  background).

Results go to ``--out`` (default ``$OUT``, else ``./bench_gpu_out``) as ``bench_gpu.json``
(rewritten after every stage, so a run cut short keeps what it measured) and
``bench_gpu.txt``. Runs on the CPU too (``--device cpu``; ``--size tiny`` for a quick check).

    python benchmarks/bench_gpu.py --device cuda --out $OUT
    python benchmarks/bench_gpu.py --device cpu --size tiny --train-minutes 0.3 --out /tmp/b
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T_START = time.perf_counter()
STEPS_3Y = 8768


def say(*a):
    print(f"[{time.perf_counter() - T_START:6.1f} s]", *a, flush=True)


class Results:
    def __init__(self, out: Path):
        self.out = out
        self.d: dict = {}
        out.mkdir(parents=True, exist_ok=True)

    def put(self, key, value):
        self.d[key] = value
        self.d["elapsed_s"] = round(time.perf_counter() - T_START, 1)
        tmp = self.out / "bench_gpu.json.tmp"
        tmp.write_text(json.dumps(self.d, indent=1, default=str))
        os.replace(tmp, self.out / "bench_gpu.json")


class GpuSampler:
    """``nvidia-smi --query-gpu=utilization.gpu -lms 100`` in the background, time-stamped."""

    def __init__(self):
        self.samples: list = []
        self.proc = None
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return
        self.proc = subprocess.Popen([exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                      "-lms", "100", "-i", os.environ.get("BENCH_GPU_INDEX", "0")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                u, m = (float(x) for x in line.strip().split(","))
            except ValueError:
                continue
            self.samples.append((time.time(), u, m))

    def mean(self, t0, t1):
        v = [u for t, u, _ in self.samples if t0 <= t <= t1]
        return (round(statistics.fmean(v), 1), len(v)) if v else (None, 0)

    def peak_mem(self, t0, t1):
        v = [m for t, _, m in self.samples if t0 <= t <= t1]
        return max(v) if v else None

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()


def _sync(dev):
    import torch

    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()


def _med(fn, n, dev, warm=2):
    for _ in range(warm):
        fn(0)
    _sync(dev)
    ts = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        _sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def build_inputs(size: str, home: Path, res: Results):
    from model.data.catalog import write_catalog
    from model.data.ingest import ingest
    from model.world import build_world, get_config
    from model.world.build import CATALOG_LOCATIONS

    wdir = home / "worlds" / size
    ard = wdir / "ard.zarr"
    if (ard / ".complete").exists():
        say("inputs reused:", ard)
        return ard, get_config(size)
    cfg = get_config(size)
    t0 = time.perf_counter()
    say(f"world {size}: {cfg.description} ...")
    build_world(cfg, wdir, seed=42, progress=False)
    t1 = time.perf_counter()
    say(f"world built in {t1 - t0:.1f} s")
    # the inputs the runner and the trainer need (no ISMN, no SMAP L4: fewer packages and seconds)
    locs = {k: v for k, v in CATALOG_LOCATIONS.items() if k in ("era5land", "smap_l3_9km", "static_dem", "static_extra")}
    cat = write_catalog(wdir / "catalog_bench.yaml", locs, kwargs={"smap_l3_9km": {"product": "SPL3SMP_E"}})
    ingest(cat, ard, progress=False)
    t2 = time.perf_counter()
    say(f"ingested in {t2 - t1:.1f} s")
    res.put("inputs", {"size": size, "world_s": round(t1 - t0, 1), "ingest_s": round(t2 - t1, 1),
                       "world_gb": round(sum(f.stat().st_size for f in wdir.rglob("*") if f.is_file()) / 1e9, 2)})
    return ard, cfg


def train_pscnet(ard, cfg, dev, minutes, batch, compare_minutes, home, res: Results):
    from model.training.trainer import TrainConfig, train

    out = {}
    common = dict(model="pscnet", train_start=cfg.train[0], train_end=cfg.train[1], device=dev,
                  batch_size=batch, max_epochs=1000, steps_per_epoch=50, patience=1000)
    say(f"training PSCNet {minutes} min on {dev}, resident batches of {batch} patches ...")
    run = train("pscnet", TrainConfig(**common, max_minutes=minutes, resident=True), ard=ard,
                out=home / "runs" / "pscnet" / "bench", progress=False)
    s = json.loads((run / "summary.json").read_text())
    out["resident"] = {k: s.get(k) for k in ("samples_per_second", "train_seconds", "epochs", "tune_rmse",
                                             "resident_batches", "device")}
    (run.parent / "LATEST").write_text(run.name + "\n")
    say("  resident:", out["resident"])
    if compare_minutes > 0:
        say(f"training PSCNet {compare_minutes} min with today's host batches ...")
        r2 = train("pscnet", TrainConfig(**common, max_minutes=compare_minutes, resident=False), ard=ard,
                   out=home / "scratch" / "pscnet_host", progress=False)
        s2 = json.loads((r2 / "summary.json").read_text())
        out["host"] = {k: s2.get(k) for k in ("samples_per_second", "train_seconds", "epochs", "resident_batches")}
        say("  today's path:", out["host"])
        out["speedup"] = round(out["resident"]["samples_per_second"] / max(out["host"]["samples_per_second"], 1e-9), 2)
    res.put("training", out)
    return run


def scenes(run, ard, dev, repeat, res: Results, scene_steps: int = 64):
    import numpy as np

    from model.inference.inputs import normalise_batch
    from model.training.resident import resident_cube
    from model.inference.runner import Runner, data_region
    from model.grids import tp_mask

    out = {}
    r = Runner(run, ard, dev, resident=True)
    p = r.provider
    i0 = min(p.times.size - 100, 8 * 20)
    t_first = p.times[i0]
    cube = p.cube_for(t_first)
    k0 = cube.step_index(t_first)
    block = list(cube.times[k0:k0 + scene_steps])  # steps of one cached block (10 days = 80 steps)
    t0 = time.perf_counter()
    r.scene(block[0])
    out["first_scene_s"] = round(time.perf_counter() - t0, 3)
    ts = [block[1 + k % (len(block) - 1)] for k in range(repeat)]
    out["warm_scene_ms"] = round(1000 * _med(lambda k: r.scene(ts[k]), repeat, dev), 2)
    say(f"warm scene (resident, {dev}): {out['warm_scene_ms']} ms (median of {repeat}); first {out['first_scene_s']} s")
    mask = np.asarray(tp_mask("TP10"))
    valid, ys, xs = data_region(cube, mask)
    rc = resident_cube(cube, ys, xs, r.device)
    steps = [cube.step_index(t) for t in ts]
    out["input_assembly_ms"] = round(1000 * _med(lambda k: rc.windows([steps[k]], r.norm), repeat, dev), 3)
    fwd = r.resident_forward(valid[ys, xs])
    win = rc.windows([steps[0]], r.norm)
    import torch

    def model_only(k):
        with torch.no_grad(), torch.autocast(device_type=fwd.dev.type, dtype=torch.bfloat16, enabled=fwd.amp):
            r.model(win)

    out["model_ms"] = round(1000 * _med(model_only, repeat, dev), 3)
    out["mixed_precision"] = r.amp
    out["resident_mb"] = round(rc.nbytes / 2**20, 1)
    say(f"  input assembly {out['input_assembly_ms']} ms, model {out['model_ms']} ms (bf16 {r.amp}), "
        f"resident block {out['resident_mb']} MB")
    for b in (1, 8, 32):
        r.scenes(block[:b], batch=b, cube=cube)  # warm this batch shape
        _sync(dev)
        t0 = time.perf_counter()
        r.scenes(block, batch=b, cube=cube)
        out[f"scenes_per_s_b{b}"] = round(len(block) / (time.perf_counter() - t0), 1)
    say(f"  scenes/s at batch 1/8/32 ({len(block)} steps):", out["scenes_per_s_b1"], out["scenes_per_s_b8"], out["scenes_per_s_b32"])
    # today's path on the same device: host windows, one transfer per batch
    h = Runner(run, ard, dev, provider=p, resident=False)
    h.scene(ts[0])
    out["host_path_warm_scene_ms"] = round(1000 * _med(lambda k: h.scene(ts[k]), min(repeat, 10), dev), 2)
    out["host_path_input_assembly_ms"] = round(1000 * _med(
        lambda k: normalise_batch({kk: v[None] for kk, v in cube.window(steps[k], ys, xs).items()}, r.norm),
        min(repeat, 10), dev), 2)
    a = r.scenes(block[:8], batch=8, cube=cube)
    b = h.scenes(block[:8], batch=8, cube=cube)
    one = np.concatenate([r.scenes([x], batch=1, cube=cube) for x in block[:8]])
    out["batch8_vs_one_by_one_max_abs"] = float(np.nanmax(np.abs(a - one)))
    out["resident_vs_host_max_abs"] = float(np.nanmax(np.abs(a - b)))
    out["nan_pattern_equal"] = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    say(f"  today's path: warm scene {out['host_path_warm_scene_ms']} ms, input assembly "
        f"{out['host_path_input_assembly_ms']} ms; max |resident - today| {out['resident_vs_host_max_abs']:.2e} m3 m-3")
    res.put("scenes", out)


def archive(run_name, ard, cfg, dev, days, block_days, batch, home, res: Results, sampler: GpuSampler):
    import numpy as np

    from model.inference.archive import build_archive

    start = np.datetime64(cfg.end, "D") - np.timedelta64(days, "D")
    end = np.datetime64(cfg.end, "D") - np.timedelta64(1, "D")
    say(f"archive of {days} days ({8 * days} steps) {start} .. {end}, resident on {dev}, {block_days}-day blocks ...")
    s = build_archive([run_name], str(start), str(end), out=home / "archive", ard=ard, device=dev,
                      resident=True, batch=batch, block_days=block_days, force=True, progress=False)
    steps = s["steps"]
    t0, t1 = s["maps_window"]
    util, n = sampler.mean(t0, t1)
    out = {k: s.get(k) for k in ("steps", "maps_seconds", "series_seconds", "seconds", "size_mb", "load_s",
                                 "compute_s", "write_wait_s", "inputs_built_on_device", "complete")}
    out["steps_per_s"] = round(steps / max(s["maps_seconds"], 1e-9), 1)
    out["extrapolated_8768_steps_s"] = round(s["seconds"] * STEPS_3Y / steps, 1)
    out["extrapolated_8768_maps_only_s"] = round(s["maps_seconds"] * STEPS_3Y / steps, 1)
    fixed = s.get("runners_s") or 0.0  # loading the model and its bf16 check: once per model, not per step
    out["runners_s"] = fixed
    out["extrapolated_8768_steps_per_step_cost_s"] = round(fixed + (s["seconds"] - fixed) * STEPS_3Y / steps, 1)
    out["gpu_util_mean_maps_pct"] = util
    out["gpu_util_samples"] = n
    out["gpu_mem_peak_mib"] = sampler.peak_mem(t0, t1)
    say(f"  maps {s['maps_seconds']} s (load {s.get('load_s')} s, compute {s.get('compute_s')} s), series "
        f"{s['series_seconds']} s: {out['steps_per_s']} steps/s; 8,768 steps -> {out['extrapolated_8768_steps_s']} s; "
        f"GPU utilisation during maps {util} % ({n} samples)")
    res.put("archive", out)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    ap.add_argument("--size", default="gpubench", help="world size (default gpubench; tiny for a quick CPU check)")
    ap.add_argument("--home", type=Path, default=None, help="work folder (default a temporary one)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "bench_gpu_out"))
    ap.add_argument("--train-minutes", type=float, default=1.0)
    ap.add_argument("--compare-minutes", type=float, default=0.25, help="today's training path (0: skip)")
    ap.add_argument("--train-batch", type=int, default=None, help="patches per step (default 64 on a GPU, 16 on the CPU)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--scene-steps", type=int, default=64, help="steps per scenes/s figure (<= 80)")
    ap.add_argument("--archive-days", type=int, default=40)
    ap.add_argument("--block-days", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32, help="archive scenes per device batch")
    ap.add_argument("--budget-s", type=float, default=420,
                    help="seconds the whole run should take; training is shortened to fit (default 420)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["training", "scenes", "archive"])
    return ap.parse_args(argv)


def machine(a, res: Results):
    """The device to use and the machine's line (printed; the machine kept in the results)."""
    import torch

    from model.inference.runner import _pick
    from model.machine import machine_info, machine_line

    dev = _pick(a.device)
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "none"
    info = machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(), device=dev, gpu=gpu)
    line = machine_line(info)
    say("machine:", line)
    res.put("machine", info)
    res.put("args", {k: str(v) for k, v in vars(a).items()})
    return dev, line


def gpu_sampler(dev: str) -> GpuSampler:
    """A running sampler on a GPU; on the CPU an idle one with no samples."""
    sampler = GpuSampler() if dev.startswith("cuda") else GpuSampler.__new__(GpuSampler)
    if not dev.startswith("cuda"):
        sampler.samples, sampler.proc = [], None
    return sampler


def training_minutes(a) -> tuple[float, float]:
    """The resident and today's training minutes, shortened to fit what is left of ``--budget-s``."""
    left = a.budget_s - (time.perf_counter() - T_START)
    minutes, compare = a.train_minutes, a.compare_minutes
    if left < 60 * (minutes + compare) + 150:  # keep time for the scenes and the archive
        minutes = max(0.2, min(minutes, (left - 150) / 60 * 0.7))
        compare = min(compare, max(0.1, (left - 150) / 60 * 0.2))
        say(f"{left:.0f} s of the budget left: training {minutes:.2f} + {compare:.2f} min")
    return minutes, compare


def placeholder_run(ard, cfg, dev, home: Path):
    """A PSCNet run of two steps, for the scenes and the archive when training was skipped or failed."""
    from model.training.trainer import TrainConfig, train

    run = train("pscnet", TrainConfig(model="pscnet", train_start=cfg.train[0], train_end=cfg.train[1],
                                      device=dev, max_epochs=1, steps_per_epoch=2), ard=ard,
                out=home / "runs" / "pscnet" / "bench", progress=False)
    (run.parent / "LATEST").write_text(run.name + "\n")
    return run


def stages(a, home: Path, dev, res: Results, sampler: GpuSampler, errors: dict) -> None:
    """Inputs, training, scenes and archive; a failed training, scenes or archive stage is kept in
    ``errors`` and the next stage runs."""
    ard, cfg = build_inputs(a.size, home, res)
    batch = a.train_batch or (64 if dev.startswith("cuda") else 16)
    run = None
    minutes, compare = training_minutes(a)
    if "training" not in a.skip:
        try:
            run = train_pscnet(ard, cfg, dev, minutes, batch, compare, home, res)
        except Exception as exc:  # noqa: BLE001 - report and go on with what can be measured
            errors["training"] = repr(exc)
            say("training FAILED:", repr(exc))
    if run is None:
        run = placeholder_run(ard, cfg, dev, home)
    for stage, fn in (("scenes", lambda: scenes(run, ard, dev, max(a.repeat, 10), res, a.scene_steps)),
                      ("archive", lambda: archive("pscnet", ard, cfg, dev, a.archive_days, a.block_days,
                                                  a.batch, home, res, sampler))):
        if stage in a.skip:
            continue
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            errors[stage] = repr(exc)
            say(f"{stage} FAILED:", repr(exc))


def summary(a, res: Results, line: str, errors: dict) -> None:
    """The errors and the total into the results, ``bench_gpu.txt`` written and printed."""
    res.put("errors", errors)
    res.put("total_s", round(time.perf_counter() - T_START, 1))
    lines = [f"bench_gpu ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}), total {res.d['total_s']} s",
             "machine: " + line]
    for k in ("inputs", "training", "scenes", "archive", "errors"):
        if k in res.d:
            lines.append(f"{k}: {json.dumps(res.d[k], default=str)}")
    (a.out / "bench_gpu.txt").write_text("\n".join(lines) + "\n")
    say("results in", a.out)
    print("\n".join(lines), flush=True)


def main(argv=None):
    a = parse_args(argv)
    home = a.home or Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SMDS_HOME"] = str(home)
    res = Results(a.out)
    dev, line = machine(a, res)
    sampler = gpu_sampler(dev)
    errors = {}
    try:
        stages(a, home, dev, res, sampler, errors)
    finally:
        sampler.stop()
        summary(a, res, line, errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
