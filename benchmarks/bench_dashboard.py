"""Benchmark the dashboard in a real browser: first render, time step, station click, PNG export.

Starts ``python -m panel serve dashboard/app.py`` on a free loopback port against a home
folder (``--home``, default ``$SMDS_HOME``), drives headless Debian chromium through Python
playwright and prints the machine and the four timings (median and worst of the repeats):

* first render: from the server being up (its port open) to the first page's map raster in
  the browser (a cold server: the first session pays the imports and the datashader JIT);
  then each page in a new session (warm);
* time step: a click on "+3 h" to the new raster in the browser;
* station click: a click on a station in the map to its series and metrics table drawn;
* PNG export: a click on "Export PNG" to the finished download.

Usage::

    SMDS_HOME=/tmp/smds-tiny python benchmarks/bench_dashboard.py [--repeat 10] [--screenshots docs/figures]

Targets (the issue): first render <= 5 s, step <= 0.5 s, click <= 1 s, PNG export <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dashboard.browser import (CHANGED, CHROMIUM, CHROMIUM_ARGS, INSTALL_SNAP, STATION_XY, free_port,  # noqa: E402
                               stop_server)

TARGETS = {"first_render_s": 5.0, "time_step_s": 0.5, "station_click_s": 1.0, "png_export_s": 5.0}


def machine() -> dict:
    import bokeh
    import holoviews
    import panel

    from model.machine import machine_info

    return machine_info(panel=panel.__version__, bokeh=bokeh.__version__, holoviews=holoviews.__version__,
                        browser="Debian chromium (headless, --disable-3d-apis)")


def start_server(home: str, port: int, log: Path, warm: bool):
    env = {**os.environ, "SMDS_HOME": home, "BOKEH_ALLOW_WS_ORIGIN": f"127.0.0.1:{port}", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "panel", "serve", "dashboard/app.py", "--address", "127.0.0.1", "--port", str(port)]
    if warm:
        cmd.append("--warm")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"panel serve exited ({proc.returncode}); see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, time.perf_counter() - t0
        except OSError:
            if time.perf_counter() - t0 > 180:
                proc.terminate()
                raise SystemExit("the server did not open its port in 180 s") from None
            time.sleep(0.05)


def stats(xs) -> dict:
    return {"median": round(statistics.median(xs), 3), "max": round(max(xs), 3), "n": len(xs)}


def stations_with_data(home: str, network: str, n: int) -> list[str]:
    os.environ["SMDS_HOME"] = home
    from dashboard import store

    st = store.station_table(home)
    sub = st[st["has_data"] & (st["n_insitu"] > 0) & (st["network"] == network)]
    return list(sub["id"])[:n]


def new_page(ctx):
    """A new session's page, waiting up to 2 minutes for anything."""
    pg = ctx.new_page()
    pg.set_default_timeout(120_000)
    return pg


def open_drawn(ctx, url: str, selector: str, column: str):
    """A new session's page at ``url``, waited for until ``selector`` is drawn and a Bokeh source
    has ``column``; (page, seconds)."""
    pg = new_page(ctx)
    t0 = time.perf_counter()
    pg.goto(url)
    pg.wait_for_selector(selector)
    pg.evaluate(INSTALL_SNAP)
    pg.wait_for_function(f"() => window.__snap('{column}').length > 0")
    return pg, round(time.perf_counter() - t0, 3)


def first_render(ctx, url: str, screenshots: Path | None, out: dict):
    """1. first render after the server is up (cold), map page; returns the page."""
    pg, out["first_render_s"] = open_drawn(ctx, url + "?page=map", ".map-plot canvas", "image")
    if screenshots:
        pg.wait_for_timeout(800)
        pg.screenshot(path=str(screenshots / "dashboard_map.png"), full_page=True)
    return pg


def time_steps(pg, repeat: int, out: dict) -> None:
    """2. time steps: a click on "+3 h" to the new raster, ``repeat`` times."""
    steps = []
    for _ in range(repeat):
        pg.evaluate("() => { window.__before = window.__snap('image'); }")
        t0 = time.perf_counter()
        pg.locator(".time-next button").click()
        pg.wait_for_function(CHANGED, arg="image")
        steps.append(time.perf_counter() - t0)
        pg.wait_for_timeout(150)
    out["time_step_s"] = stats(steps)


def png_exports(pg, repeat: int, out: dict) -> None:
    """3. PNG export: a click on "Export PNG" to the finished download (at least 3 times)."""
    exports = []
    for _ in range(max(3, repeat // 3)):
        t0 = time.perf_counter()
        with pg.expect_download() as dl:
            pg.locator(".export-png button").click()
        path = dl.value.path()
        exports.append(time.perf_counter() - t0)
        assert open(path, "rb").read(4) == b"\x89PNG"
        pg.locator(".time-next button").click()  # a new view: the next export renders again
        pg.wait_for_timeout(500)
    out["png_export_s"] = stats(exports)
    out["png_name"] = dl.value.suggested_filename


def station_clicks(ctx, url: str, home: str, repeat: int, screenshots: Path | None, out: dict) -> dict:
    """4. station clicks, in a new session (warm server): page render, then clicks; returns the
    warm page renders so far."""
    ids = stations_with_data(home, "CTP_SMTMN", repeat + 1)
    pg2, seconds = open_drawn(ctx, url + "?page=stations&network=CTP_SMTMN", ".series-plot canvas", "soil_moisture")
    warm_pages = {"stations": seconds}
    clicks = []
    for sid in ids[1:]:
        xy = pg2.evaluate(STATION_XY, sid)
        pg2.evaluate("() => { window.__before = window.__snap('soil_moisture'); }")
        t0 = time.perf_counter()
        pg2.mouse.click(*xy)
        pg2.locator(".series-title h3", has_text=sid.split("/", 1)[1]).wait_for()
        pg2.wait_for_function(CHANGED, arg="soil_moisture")
        pg2.locator(".metrics-table .tabulator-row").first.wait_for()
        clicks.append(time.perf_counter() - t0)
        pg2.wait_for_timeout(150)
    out["station_click_s"] = stats(clicks) if clicks else None
    if screenshots:
        pg2.wait_for_timeout(800)
        pg2.screenshot(path=str(screenshots / "dashboard_stations.png"), full_page=True)
    return warm_pages


def regenerate(pgn, out: dict) -> None:
    """The regenerate page's button, to its panel drawn (or its failure shown)."""
    t0 = time.perf_counter()
    pgn.locator(".regenerate-button button").click()
    pgn.locator(".regen-status", has_text=re.compile("Done|Failed")).wait_for(timeout=600_000)
    if "Done" in pgn.locator(".regen-status").evaluate("(e) => e.shadowRoot ? e.shadowRoot.textContent : e.textContent"):
        pgn.wait_for_selector(".regen-panel canvas")
        out["regenerate_s"] = round(time.perf_counter() - t0, 2)
    else:
        out["regenerate_s"] = "failed (see the page)"


def other_pages(ctx, url: str, screenshots: Path | None, out: dict, warm_pages: dict) -> None:
    """5. the other pages, each in a new session"""
    for name, ready in (("metrics", ".metric-map canvas"), ("regenerate", ".regenerate-button button"),
                        ("about", ".page-nav")):
        pgn = new_page(ctx)
        t0 = time.perf_counter()
        pgn.goto(f"{url}?page={name}")
        pgn.wait_for_selector(ready)
        warm_pages[name] = round(time.perf_counter() - t0, 3)
        if name == "regenerate":
            regenerate(pgn, out)
        if screenshots:
            pgn.wait_for_timeout(1200)
            pgn.screenshot(path=str(screenshots / f"dashboard_{name}.png"), full_page=True)
        pgn.close()
    out["page_render_warm_s"] = warm_pages


def run(home: str, repeat: int, screenshots: Path | None, warm: bool) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/app"
    logdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    proc, up_s = start_server(home, port, logdir / "server.log", warm)
    out: dict = {"server_up_s": round(up_s, 2), "server_log": str(logdir / "server.log")}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = b.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            pg = first_render(ctx, url, screenshots, out)
            time_steps(pg, repeat, out)
            png_exports(pg, repeat, out)
            warm_pages = station_clicks(ctx, url, home, repeat, screenshots, out)
            other_pages(ctx, url, screenshots, out, warm_pages)
            b.close()
    finally:
        stop_server(proc)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=os.environ.get("SMDS_HOME"), help="product home (default $SMDS_HOME)")
    ap.add_argument("--repeat", type=int, default=10, help="time steps and station clicks to time")
    ap.add_argument("--screenshots", type=Path, help="write dashboard_<page>.png of each page here")
    ap.add_argument("--warm", action="store_true", help="serve with --warm (the app runs once at start-up)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    a = ap.parse_args(argv)
    if not a.home:
        ap.error("give --home or set SMDS_HOME (a folder built by `sm-downscale demo`)")
    if a.screenshots:
        a.screenshots.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(), "home": a.home, "warm_server": a.warm,
           **run(str(Path(a.home).resolve()), a.repeat, a.screenshots, a.warm)}
    res["targets"] = TARGETS
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    ok = (res["first_render_s"] <= TARGETS["first_render_s"] and res["time_step_s"]["max"] <= TARGETS["time_step_s"]
          and (res["station_click_s"] or {"max": 0})["max"] <= TARGETS["station_click_s"]
          and res["png_export_s"]["max"] <= TARGETS["png_export_s"])
    print("all four within target" if ok else "NOT all within target (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
