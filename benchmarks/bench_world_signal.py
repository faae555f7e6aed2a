"""Science benchmark of a virtual TP world: how much fine-scale signal it holds (issue 12).

Usage::

    python benchmarks/bench_world_signal.py [--size tiny] [--seed 42] [--world DIR] [--keep]
                                            [--json FILE] [--no-true-rain]

Builds the world of ``--size`` in a temporary folder (or reads ``--world DIR``), then runs the
oracle of :mod:`model.world.signal`: the variance decomposition of the truth's 10 km detail and
the perfect-36-km ceiling's fine-scale R on the thawed test steps (target of issue 12: >= 0.5),
with the machine, the load average and the wall time of each part. One command, no network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    from model.machine import machine_info
    from model.world import build_world
    from model.world.signal import format_report, signal_report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--world", default=None, help="an already built world folder")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-true-rain", action="store_true")
    a = ap.parse_args(argv)
    info = machine_info()
    info["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    tmp = None
    t0 = time.perf_counter()
    if a.world:
        folder = Path(a.world)
        build_s = None
    else:
        tmp = Path(tempfile.mkdtemp(prefix="smds-signal-"))
        folder = tmp / a.size
        build_world(a.size, folder, a.seed, progress=False)
        build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rep = signal_report(folder, true_rain=not a.no_true_rain)
    oracle_s = time.perf_counter() - t1
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"machine: {info['cpus']} CPU(s), {info['cpu_model']}, python {info['python']}")
    print(f"load average before {info['load_average_before']}, after {info['load_average_after']}")
    print(f"world build {build_s:.0f} s" if build_s is not None else f"world {folder}")
    print(f"oracle {oracle_s:.0f} s")
    print(format_report(rep))
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "build_s": build_s, "oracle_s": oracle_s,
                                            "report": rep}, indent=1) + "\n")
    if tmp is not None and not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
