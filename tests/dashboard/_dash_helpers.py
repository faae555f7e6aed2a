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


def live_copy(home: Path, dest: Path, model: str = "unet") -> Path:
    """A home that is still being made, for the "appears while the page is open" tests: the
    archive and validation copied from ``home`` (worlds and runs linked, read only), ``model``
    marked incomplete as the archive marks a model whose build has started and its trained run
    not there yet (a trained model is shown on demand), and a running ``progress.json`` whose
    plan ends with archiving it. Finish it with :func:`finish_model`."""
    import shutil

    from model.inference.archive import _mark_incomplete, _write_version
    from model.progress import Progress, Step

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "worlds").symlink_to(home / "worlds")
    (dest / "runs").mkdir()
    for run in (home / "runs").iterdir():   # a registry of its own: the runner resolves runs in it
        if run.name != model:
            _link_tree(run, dest / "runs" / run.name)
    for name in ("archive", "validation"):
        shutil.copytree(home / name, dest / name)
    if (home / "catalog.yaml").exists():
        shutil.copy2(home / "catalog.yaml", dest / "catalog.yaml")
    _mark_incomplete(dest / "archive" / "maps.zarr", dest / "archive" / "series.zarr", [model])
    _write_version(dest / "archive", {}, building=True)
    p = Progress(dest, [Step("train pscnet", 60, "pscnet"), Step(f"archive {model}", 30, model),
                        Step("validate", 30, "validation")])
    p.start("train pscnet")
    p.done("train pscnet")
    p.start(f"archive {model}")
    return dest


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of a run folder tree made of hard links (instant; a plain copy across disks)."""
    import os
    import shutil

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def finish_model(dest: Path, model: str = "unet") -> dict:
    """Its trained run linked in, then the real archive build of ``model`` over the copied
    archive's period (its blocks are there with the same checkpoint, so it finishes them and
    marks the model complete), then the progress record is closed."""
    import numpy as np

    from dashboard import store
    from model.inference.archive import build_archive
    from model.progress import Progress

    _link_tree((dest / "worlds").resolve().parent / "runs" / model, dest / "runs" / model)  # trained
    inv = store.inventory(str(dest))
    day = lambda t: str(np.datetime64(t, "D"))  # noqa: E731
    res = build_archive([model], day(inv.times[0]), day(inv.times[-1]), out=dest / "archive",
                        ard=inv.ard, workers=1, device="cpu", progress=False)
    p = Progress.resume(dest)
    p.done(f"archive {model}")
    p.start("validate")
    p.done("validate")
    p.finish()
    return res
