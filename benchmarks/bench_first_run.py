#!/usr/bin/env python
"""Stopwatch of README command 1 from a fresh clone: how long a new user waits for the first
page with PSCNet's map, and for the whole demo (issue 16).

Clones the repository's committed HEAD into a temporary folder (no ``.venv``, no ``var/``),
runs ``bash scripts/demo.sh`` there exactly as the README says (install included) with
``--port``, and times, from the command's start:

* each pipeline stage (the ``== stage`` lines the demo prints);
* ``serving_s``: the demo starting the dashboard (after PSCNet and the references are made);
* ``page_answer_s`` and ``page_loaded_s``: the page answering a plain request, and loaded in
  headless Debian chromium (playwright), on the way to
* ``first_page_s``: the first page's map drawn in chromium;
* ``total_s``: every model archived and validated ("every model is made").

Then stops the demo and its server. Prints the machine first and the figures as JSON. One
command::

    python benchmarks/bench_first_run.py                          # the real demo (about an hour)
    python benchmarks/bench_first_run.py -- --size tiny --quick   # a few minutes: checks the script
    python benchmarks/bench_first_run.py --first-page-only        # stop once the first page is drawn

Targets (issue 16, idle 2-core machine): first page <= 10 min, whole demo <= 30 min.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dashboard.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from model.machine import machine_info, machine_line  # noqa: E402

TARGETS = {"first_page_s": 600.0, "total_s": 1800.0}


def _watch(proc, t0: float, marks: dict, log_path: Path) -> None:
    """Read the demo's output: stage lines, the serving line and the end line, timed."""
    with open(log_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            now = round(time.perf_counter() - t0, 1)
            m = re.match(r"== (\w+)", line)
            if m:
                marks.setdefault("stages", {})[m.group(1)] = now
            elif line.startswith("serving the dashboard"):
                marks.setdefault("serving_s", now)
            elif line.startswith("every model is made"):
                marks.setdefault("total_s", now)


def _first_page(url: str, timeout_s: float, t0: float, marks: dict) -> None:
    """Wait for the page to answer, then for the map to be drawn in chromium. Records, from
    ``t0``, when the page first answered (``page_answer_s``), when chromium had loaded it
    (``page_loaded_s``) and when the map was drawn (``first_page_s``, set by the caller)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        try:   # a page is built per request (a session): wait for it as a browser would, once
            with urllib.request.urlopen(url, timeout=max(5.0, min(300.0, deadline - time.perf_counter()))) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)
    marks["page_answer_s"] = round(time.perf_counter() - t0, 1)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        marks["page_loaded_s"] = round(time.perf_counter() - t0, 1)
        page.wait_for_selector(".map-plot canvas", timeout=max(1.0, deadline - time.perf_counter()) * 1000)
        browser.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="repository to clone (default: this one)")
    ap.add_argument("--timeout-min", type=float, default=120.0, help="give up after this long")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--first-page-only", action="store_true",
                    help="stop the demo once the first page is drawn (no total_s)")
    ap.add_argument("demo_args", nargs="*", help="after --: extra arguments of scripts/demo.sh")
    args = ap.parse_args(argv)

    print(machine_line(machine_info()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-first-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMDS_", "VIRTUAL_ENV", "PYTHONPATH"))}
    cmd = ["bash", "scripts/demo.sh", "--port", str(port), *args.demo_args]
    marks: dict = {"commit": head, "command": " ".join(cmd), "clone": str(clone)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    watcher = threading.Thread(target=_watch, args=(proc, t0, marks, work / "demo.log"), daemon=True)
    watcher.start()
    limit = t0 + args.timeout_min * 60
    rc = 0
    try:
        while "serving_s" not in marks:
            if proc.poll() is not None or time.perf_counter() > limit:
                raise RuntimeError(f"the demo stopped (status {proc.returncode}) or timed out before "
                                   f"serving; see {work / 'demo.log'}")
            time.sleep(0.5)
        _first_page(f"http://127.0.0.1:{port}/app", limit - time.perf_counter(), t0, marks)
        marks["first_page_s"] = round(time.perf_counter() - t0, 1)
        print(f"first page after {marks['first_page_s']:.0f} s", flush=True)
        while "total_s" not in marks and not args.first_page_only:
            if proc.poll() is not None or time.perf_counter() > limit:
                raise RuntimeError(f"the demo stopped (status {proc.returncode}) or timed out before "
                                   f"finishing; see {work / 'demo.log'}")
            time.sleep(1.0)
    except (RuntimeError, TimeoutError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        rc = 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        watcher.join(timeout=10)
    marks["within_target"] = {k: marks.get(k) is not None and marks[k] <= v for k, v in TARGETS.items()}
    marks["targets"] = TARGETS
    text = json.dumps(marks, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    if not args.keep and rc == 0:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
