"""GPU check of the runner's model path: CPU/GPU agreement, mixed precision, scene timings.

Runs with torch + numpy only (the GPU machines lack zarr/dask/xarray), on inputs saved as
NumPy arrays by ``python benchmarks/gpu_check.py --prepare DIR`` (a real TP10 scene window
from the analysis-ready store and the trained checkpoints):

    python benchmarks/gpu_check.py --prepare .gpucheck          # here (CPU, project installed)
    python benchmarks/gpu_check.py --run .gpucheck              # on the GPU machine

Prints the machine, the max |GPU - CPU| and |bf16 - fp32| differences in m3 m-3 per model,
and warm per-scene times (batch 1) and throughput (batch 8, 32) on CPU and GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(out: Path, models=("pscnet", "unet", "resnet", "convlstm", "vit", "mlp", "lstm")):
    import shutil

    from model.inference.inputs import normalise_batch
    from model.inference.runner import Runner

    out.mkdir(parents=True, exist_ok=True)
    meta = {}
    for m in models:
        r = Runner(m, device="cpu")
        t = r.provider.times[-20]
        cube = r.provider.cube_for(t)
        w = cube.window(cube.step_index(t))
        batch = normalise_batch({k: v[None] for k, v in w.items()}, r.norm)
        if not (out / "batch.npz").exists():
            np.savez_compressed(out / "batch.npz", **batch)
            meta["_norm"] = r.norm.to_dict()
        elif r.norm.to_dict() != meta["_norm"]:  # models of one store share the normalisation
            np.savez_compressed(out / f"{m}_batch.npz", **batch)
        shutil.copy(r.checkpoint, out / f"{m}.pt")
        ref = r.scenes([t])[0]
        np.save(out / f"{m}_cpu_scene.npy", ref)
        meta[m] = {"time": str(t), "target_std": r.norm.target_std, "target_mean": r.norm.target_mean}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print("prepared", out, sorted(meta))


def _time(fn, n=20, sync=None):
    for _ in range(3):
        fn()
    if sync:
        sync()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def run(folder: Path):
    import torch

    from model.networks.checkpoint import load_checkpoint

    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("_norm", None)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    from model.machine import machine_info, machine_line

    print("machine:", machine_line(machine_info(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                                                device=torch.cuda.get_device_name(0) if dev == "cuda" else "cpu")))
    rows = []
    for m, info in meta.items():
        f = folder / f"{m}_batch.npz"
        b = {k: torch.from_numpy(v) for k, v in np.load(f if f.exists() else folder / "batch.npz").items()}
        std, mean = info["target_std"], info["target_mean"]
        cpu_model, _ = load_checkpoint(folder / f"{m}.pt", map_location="cpu")
        with torch.no_grad():
            y_cpu = cpu_model(b).float().numpy()[0, 0] * std + mean
        ref = np.load(folder / f"{m}_cpu_scene.npy")
        mask = np.isfinite(ref)
        runner_vs_here = float(np.nanmax(np.abs(np.clip(y_cpu, 0, 0.7)[mask] - ref[mask])))
        row = {"model": m, "runner_cpu_vs_here": runner_vs_here}
        with torch.no_grad():
            row["cpu_ms"] = round(1000 * _time(lambda: cpu_model(b), n=5), 1)
        if dev == "cuda":
            gm, _ = load_checkpoint(folder / f"{m}.pt", map_location="cuda")
            bg = {k: v.cuda() for k, v in b.items()}
            with torch.no_grad():
                y_gpu = gm(bg).float().cpu().numpy()[0, 0] * std + mean
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y_bf = gm(bg).float().cpu().numpy()[0, 0] * std + mean
            row["gpu_vs_cpu_max"] = float(np.max(np.abs(y_gpu - y_cpu)[mask]))
            row["bf16_vs_fp32_max"] = float(np.max(np.abs(y_bf - y_gpu)[mask]))
            sync = torch.cuda.synchronize
            with torch.no_grad():
                row["gpu_ms_b1"] = round(1000 * _time(lambda: gm(bg), sync=sync), 2)
                for nb in (8, 32):
                    bb = {k: v.repeat((nb,) + (1,) * (v.ndim - 1)) for k, v in bg.items()}
                    row[f"gpu_ms_per_scene_b{nb}"] = round(1000 * _time(lambda: gm(bb), n=10, sync=sync) / nb, 3)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    bb = {k: v.repeat((32,) + (1,) * (v.ndim - 1)) for k, v in bg.items()}
                    row["gpu_bf16_ms_per_scene_b32"] = round(1000 * _time(lambda: gm(bb), n=10, sync=sync) / 32, 3)
            # training step throughput (patches 32x32, batch 64)
            gm.train()
            opt = torch.optim.AdamW(gm.parameters(), lr=1e-3)
            pb = {k: (v[..., :32, :32] if v.ndim >= 4 else v).repeat((64,) + (1,) * (v.ndim - 1)).contiguous()
                  for k, v in bg.items()}
            tgt = torch.zeros(64, 1, 32, 32, device="cuda")

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = ((gm(pb).float() - tgt) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            row["gpu_train_patches_per_s"] = round(64 / _time(step, n=10, sync=sync), 1)
        rows.append(row)
        print(json.dumps(row))
    keys = sorted({k for r in rows for k in r})
    print("\n" + " | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k, "")) for k in keys))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepare", type=Path)
    ap.add_argument("--run", type=Path)
    a = ap.parse_args()
    if a.prepare:
        prepare(a.prepare)
    if a.run:
        run(a.run)
