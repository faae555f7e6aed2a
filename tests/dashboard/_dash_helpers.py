"""Helpers shared by the dashboard tests and their fixtures (servers, chromium flags)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from dashboard.browser import free_port


REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SMDS_TEST_ARTIFACTS", REPO / "tests" / "dashboard" / "artifacts"))


def start_server(home: Path, port: int | None = None, extra_args=(), log_path: Path | None = None):
    """``python -m panel serve dashboard/app.py`` on a free loopback port; (process, url)."""
    port = port or free_port()
    env = {**os.environ, "SMDS_HOME": str(home), "BOKEH_ALLOW_WS_ORIGIN": f"127.0.0.1:{port}",
           "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "dashboard/app.py", "--address", "127.0.0.1",
                             "--port", str(port), *extra_args], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/app"
    import urllib.request

    deadline = time.time() + 120
    while True:  # the port opens when the server is up (no page request: each one is a session)
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with {proc.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.time() > deadline:
                proc.terminate()
                raise RuntimeError("panel serve did not open its port within 120 s") from None
            time.sleep(0.2)
    with urllib.request.urlopen(url, timeout=120) as r:  # one page: the app script runs without error
        assert r.status == 200
    return proc, url


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
