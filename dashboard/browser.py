"""Driving the dashboard in a headless browser (the browser tests and the dashboard benchmark).

Debian ``chromium`` through Python playwright (``executable_path=CHROMIUM``), with the flags
that keep it offline and quiet; JavaScript snippets that read what Bokeh drew.
Nothing here is imported by the served app.
"""

from __future__ import annotations

import socket
import subprocess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-3d-apis"]

#: (col) => the data objects of every renderer whose source has column ``col``
SNAP = """(col) => { const out = [];
  for (const v of Bokeh.index.all_views()) {
    if (!v.model || !v.model.renderers) continue;
    for (const r of v.model.renderers) {
      const s = r.data_source;
      if (s && s.data && (col in s.data)) out.push(s.data);
    } }
  return out; }"""

#: installs SNAP as ``window.__snap``
INSTALL_SNAP = f"() => {{ window.__snap = {SNAP}; }}"

#: (col) => true once some source with ``col`` differs from ``window.__before``
CHANGED = ("(col) => { const n = window.__snap(col); "
           "return n.length > 0 && n.some((d, i) => d !== window.__before[i]); }")

#: (station id) => [x, y] page position of the station in the station map, or null
STATION_XY = """(sid) => {
  for (const v of Bokeh.index.all_views()) {
    if (!v.frame || !v.model.renderers) continue;
    for (const r of v.model.renderers) {
      const s = r.data_source;
      if (!s || !s.data || !s.data.id) continue;
      const k = Array.from(s.data.id).indexOf(sid);
      if (k < 0) continue;
      const rect = v.canvas_view.el.getBoundingClientRect();
      return [rect.left + v.frame.x_scale.compute(s.data.lon[k]),
              rect.top + v.frame.y_scale.compute(s.data.lat[k])];
    } }
  return null; }"""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """Terminate a ``panel serve`` process; kill it if it has not stopped after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
