#!/usr/bin/env python
"""Ingest of real-format downloads: seconds and peak memory (one command).

Makes a downloads folder from a virtual TP's inputs (laid out as NSIDC / CDS / ISMN
downloads, see ``tests/data/real_downloads.py``), or uses ``--downloads``, then runs
``sm-downscale init`` and ``sm-downscale ingest`` as subprocesses and prints, per step, the
wall seconds and the peak resident memory (``ru_maxrss`` of the child), and the machine.

    python benchmarks/bench_ingest.py --world var/worlds/demo [--box 89 29 94 34] [--days 30]
    python benchmarks/bench_ingest.py --downloads ~/tp-downloads

ERA5-Land is streamed in pieces of ``model.data.ingest.ERA5_PIECE_DAYS`` days, so the peak
grows with the grid and the piece, not with the number or length of the files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.machine import machine_info, machine_line  # noqa: E402


def _child(cmd, cwd, env) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "model.cli", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: exact for the largest step
    return secs, max(peak, before) / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", help="a virtual TP folder (with inputs/) to make downloads from")
    ap.add_argument("--downloads", help="an existing downloads folder")
    ap.add_argument("--box", nargs=4, type=float, help="ERA5-Land area of the made downloads (lon0 lat0 lon1 lat1)")
    ap.add_argument("--days", type=int, default=30, help="days of the made downloads (from the world's end)")
    args = ap.parse_args(argv)
    print("machine:", machine_line(machine_info()))
    with tempfile.TemporaryDirectory(prefix="smds-bench-ingest-") as tmp:
        tmp = Path(tmp)
        if args.downloads:
            dl = Path(args.downloads)
        else:
            import numpy as np

            sys.path.insert(0, str(ROOT / "tests" / "data"))
            from real_downloads import make_downloads

            world = Path(args.world)
            w = json.loads((world / "world.json").read_text())["periods"]["written"]
            end = np.datetime64(w[1], "D")
            start = max(np.datetime64(w[0], "D"), end - np.timedelta64(args.days - 1, "D"))
            dl = make_downloads(world / "inputs", tmp / "downloads", period=(str(start), str(end)),
                                era5_box=tuple(args.box) if args.box else None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMDS_")}
        env["PYTHONPATH"] = str(ROOT)
        rows = []
        s, m = _child(["init", "--inputs", str(dl), str(tmp / "project")], tmp, env)
        rows.append(("init", s, m))
        s, m = _child(["ingest"], tmp / "project", env)
        rows.append(("ingest", s, m))
        info = json.loads((tmp / "project" / "ard.zarr" / ".complete").read_text())
        print(f"downloads: {dl}  ERA5-Land {info['start'][:16]} .. {info['end'][:16]}")
        print("| step | seconds | peak MB (largest child so far) |\n| --- | ---: | ---: |")
        for name, s, m in rows:
            print(f"| {name} | {s:.1f} | {m:.0f} |")
        print("ingest parts (s):", {k: round(v, 1) for k, v in info["report"]["seconds"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
