#!/usr/bin/env python
"""Inference speed of every registry network on one full TP10 scene (150 x 320).

Prints the machine (CPU model, cores, torch version, device) and, per network, its parameter
count and the median time per scene (after warm-up) on CPU and, when available, on CUDA in
float32 and under bf16 / fp16 autocast. Runs standalone with torch and numpy only::

    python benchmarks/bench_networks.py                  # CPU (+ CUDA when present)
    python benchmarks/bench_networks.py --device cuda --repeat 50
    python benchmarks/bench_networks.py --device cpu --threads 2 --models pscnet unet
    python benchmarks/bench_networks.py --device cpu --threads 1 --batch 8 --one-day --models lstm

Weights are random (seeded): speed does not depend on training. Batch size 1 = one scene.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from model.machine import machine_info, machine_line  # noqa: E402
from model.networks.inputs import InputDims, example_batch  # noqa: E402
from model.networks.registry import get_model, list_models  # noqa: E402


def machine(device: str) -> dict:
    info = machine_info(torch_threads=torch.get_num_threads(), torch=torch.__version__, cuda=None)
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0),
                        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                        "cuda_runtime": torch.version.cuda,
                        "cudnn": torch.backends.cudnn.version()}
    return info


def time_cpu(model, batch, warmup: int, repeat: int) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(batch)
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            model(batch)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def time_cuda(model, batch, warmup: int, repeat: int, dtype) -> float:
    ctx = (torch.autocast("cuda", dtype=dtype) if dtype is not None
           else torch.autocast("cuda", enabled=False))
    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            model(batch)
        torch.cuda.synchronize()
        ts = []
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(batch)
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end))
    return statistics.median(ts)


def time_cuda_graph(model, batch, warmup: int, repeat: int) -> float:
    """Capture one forward in a CUDA graph and time its replay (no per-op launch overhead)."""
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(batch)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(batch)
        for _ in range(warmup):
            graph.replay()
        torch.cuda.synchronize()
        ts = []
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(end))
    return statistics.median(ts)


def parse_args(argv=None):
    torch_names = [m.name for m in list_models("torch")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="cpu, cuda, or all available (default)")
    p.add_argument("--models", nargs="+", default=torch_names, choices=torch_names)
    p.add_argument("--height", type=int, default=150)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--batch", type=int, default=1, help="scenes per forward call")
    p.add_argument("--one-day", action="store_true",
                   help="the batch's scenes share their weekly, daily and static inputs, as the "
                        "8 scenes of one day in the archive (the LSTM runs that history once)")
    p.add_argument("--n-dynamic", type=int, default=10)
    p.add_argument("--n-static", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 5 CPU, 50 CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs (default 2 CPU, 10 CUDA)")
    p.add_argument("--no-amp", action="store_true", help="CUDA: skip bf16/fp16 autocast variants")
    p.add_argument("--no-graph", action="store_true", help="CUDA: skip the CUDA-graph variant")
    p.add_argument("--compile", action="store_true", help="CUDA: also time torch.compile (fp32)")
    p.add_argument("--nchw", action="store_true",
                   help="convert the models to NCHW (default: their own, NHWC for conv models)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def pick_devices(args) -> list[str]:
    devices = []
    if args.device in ("cpu", "all"):
        devices.append("cpu")
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    return devices


def print_header(args, info: dict) -> None:
    print("machine:", machine_line({k: v for k, v in info.items() if k != "cuda"}))
    if info["cuda"]:
        c = info["cuda"]
        print(f"cuda: {c['device']} (sm {c['capability']}), CUDA {c['cuda_runtime']}, "
              f"cuDNN {c['cudnn']}")
    print(f"scene: batch {args.batch}{' (one day)' if args.one_day else ''} x {args.height} x {args.width}, n_dynamic "
          f"{args.n_dynamic}, n_static {args.n_static}, t3/td/tw 8/7/4, "
          f"{'NCHW' if args.nchw else 'models own memory format'}; median ms per forward "
          "(cuda fp32 = eager, TF32 convolutions as torch's default; bf16/fp16 = autocast; "
          "graph = fp32 replayed from a CUDA graph)")


def columns(args, devices: list[str]) -> list[str]:
    cols = []
    if "cpu" in devices:
        cols.append("cpu fp32")
    if "cuda" in devices:
        cols.append("cuda fp32")
        if not args.no_amp:
            cols += ["cuda bf16", "cuda fp16"]
        if not args.no_graph:
            cols.append("cuda graph")
        if args.compile:
            cols.append("cuda compiled")
    return cols


def time_on_cuda(m, batch, args, row: dict) -> None:
    """The CUDA columns of one model into ``row`` (a variant that fails is reported, not raised)."""
    warm, rep = args.warmup or 10, args.repeat or 50
    row["cuda fp32"] = time_cuda(m, batch, warm, rep, None)
    if not args.no_amp:
        for label, dt in (("cuda bf16", torch.bfloat16), ("cuda fp16", torch.float16)):
            try:
                row[label] = time_cuda(m, batch, warm, rep, dt)
            except Exception as exc:  # noqa: BLE001 - report, keep going
                row[label] = f"failed: {type(exc).__name__}"
    if not args.no_graph:
        try:
            row["cuda graph"] = time_cuda_graph(m, batch, warm, rep)
        except Exception as exc:  # noqa: BLE001
            row["cuda graph"] = f"failed: {type(exc).__name__}"
    if args.compile:
        try:
            cm = torch.compile(m)
            row["cuda compiled"] = time_cuda(cm, batch, warm, rep, None)
        except Exception as exc:  # noqa: BLE001
            row["cuda compiled"] = f"failed: {type(exc).__name__}"


def time_model(name: str, args, dims: InputDims, devices: list[str]) -> dict:
    """One network (seeded random weights) timed on every device: its row of the table."""
    torch.manual_seed(0)
    model = get_model(name, n_dynamic=args.n_dynamic, n_static=args.n_static).eval()
    if args.nchw:
        model = model.to(memory_format=torch.contiguous_format)
    row = {"model": name, "params": sum(q.numel() for q in model.parameters())}
    for dev in devices:
        batch = example_batch(dims, args.batch, args.height, args.width, device=dev)
        if args.one_day:
            batch.update({k: batch[k][:1].expand_as(batch[k]).clone() for k in ("xweek", "xday", "static")})
        m = model.to(dev)
        if dev == "cpu":
            row["cpu fp32"] = time_cpu(m, batch, args.warmup or 2, args.repeat or 5)
            continue
        time_on_cuda(m, batch, args, row)
        m.to("cpu")
    return row


def main(argv=None) -> int:
    args = parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = pick_devices(args)
    if args.device == "cuda" and "cuda" not in devices:
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2

    info = machine(args.device)
    print_header(args, info)

    dims = InputDims(args.n_dynamic, args.n_static)
    results = []
    header = f"{'model':<10} {'params':>9}"
    cols = columns(args, devices)
    print(header + "".join(f" {c:>14}" for c in cols))
    for name in args.models:
        row = time_model(name, args, dims, devices)
        results.append(row)
        cells = "".join(f" {row[c]:>14.2f}" if isinstance(row.get(c), float)
                        else f" {str(row.get(c, '-'))[:14]:>14}" for c in cols)
        print(f"{name:<10} {row['params']:>9,}{cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in
                                         vars(args).items()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
