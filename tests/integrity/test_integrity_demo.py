"""``sm-downscale demo``: loopback by default, honest exit status, no silent reuse of runs of
other inputs.

Checked against the code before issue 13: the address test failed (``--address 0.0.0.0``
hard-coded, no option), the failing-stage tests failed (exit 0 with "not available in this
version"), the reuse test failed (runs of another world were reused silently).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from model.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def _args(*argv):
    from model.cli import build_parser

    return build_parser().parse_args(["demo", *argv])


def test_demo_serves_on_loopback_by_default():
    from model.demo import serve_command

    args = _args()
    assert args.address == "127.0.0.1"
    cmd = serve_command(Path("app.py"), args.address, args.port, args.allow_origin)
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1"
    origins = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--allow-websocket-origin"]
    assert origins == ["localhost:5006", "127.0.0.1:5006"]
    assert "0.0.0.0" not in cmd


def test_address_exposes_on_purpose_with_derived_origins():
    from model.demo import allowed_origins, serve_command

    a = _args("--address", "10.1.2.3", "--port", "8080", "--allow-origin", "proxy.example.org",
              "--allow-origin", "other.example:443")
    cmd = serve_command(Path("app.py"), a.address, a.port, a.allow_origin)
    origins = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--allow-websocket-origin"]
    assert cmd[cmd.index("--address") + 1] == "10.1.2.3"
    assert origins == ["localhost:8080", "127.0.0.1:8080", "10.1.2.3:8080", "proxy.example.org:8080",
                       "other.example:443"]
    every = allowed_origins("0.0.0.0", 5006)
    assert f"{socket.gethostname()}:5006" in every and "0.0.0.0:5006" not in every


def _home_on_tiny(tiny, tmp_path):
    home = tmp_path / "home"
    (home / "worlds").mkdir(parents=True)
    os.symlink(tiny / "worlds" / "tiny", home / "worlds" / "tiny")
    return home


def _cli(home, code, timeout=600):
    env = dict(os.environ, SMDS_HOME=str(home), SMDS_CATALOG=str(home / "worlds" / "tiny" / "catalog.yaml"),
               PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_a_missing_package_in_a_stage_exits_nonzero_naming_the_stage(tiny, tmp_path):
    """scikit-learn made unimportable: the train stage of a forest fails; exit 2, one line."""
    home = _home_on_tiny(tiny, tmp_path)
    p = _cli(home, "import sys; sys.modules['sklearn'] = None\n"
                   "from model.cli import main\n"
                   "sys.exit(main(['demo', '--size', 'tiny', '--quick', '--no-serve', '--models', 'rf', "
                   "'--device', 'cpu']))")
    assert p.returncode == 2, p.stdout + p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, p.stderr
    assert "demo stage 'train' failed" in err[0] and "'sklearn' is missing" in err[0]
    assert "install" in err[0] and "not available" not in p.stdout


def test_a_failing_stage_exits_nonzero_and_later_stages_do_not_run(tiny, tmp_path):
    """A world whose inputs are gone: ingest fails, exit 2, nothing trained."""
    home = tmp_path / "home"
    world = home / "worlds" / "tiny"
    world.mkdir(parents=True)
    (world / "world.json").write_text((tiny / "worlds" / "tiny" / "world.json").read_text())
    (world / "catalog.yaml").write_text("this: is not a catalog\n")
    p = _cli(home, "import sys\nfrom model.cli import main\n"
                   "sys.exit(main(['demo', '--size', 'tiny', '--quick', '--no-serve', '--device', 'cpu']))")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "error: demo stage 'ingest' failed" in p.stderr and "rerun the same command" in p.stderr
    assert "== train" not in p.stdout and not (home / "runs").exists()


def test_runs_of_other_inputs_are_not_reused_silently(tiny, tmp_path, monkeypatch):
    import torch

    from model.demo import run_pipeline
    from model.inference.runner import resolve_run
    from model.networks.checkpoint import read_checkpoint

    home = _home_on_tiny(tiny, tmp_path)
    monkeypatch.setenv("SMDS_HOME", str(home))
    monkeypatch.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    first = run_pipeline("tiny", ["smap_bilinear"], device="cpu", quick=True, skip=["archive", "validate"])
    assert "retrained" not in first["train"]  # no earlier run: trained, nothing to say
    assert first["archive"]["status"].startswith("skipped") and first["validate"]["status"].startswith("skipped")
    run = resolve_run("smap_bilinear")
    assert read_checkpoint(run / "checkpoint.pt")["extra"]["ard_identity"]["world_size"] == "tiny"
    again = run_pipeline("tiny", ["smap_bilinear"], device="cpu", quick=True, skip=["archive", "validate"])
    assert again["train"]["models"] == {"smap_bilinear": "reused"}
    # the same run, as if trained on the demo-size world
    payload = read_checkpoint(run / "checkpoint.pt")
    payload["extra"]["ard_identity"]["world_size"] = "demo"
    torch.save(payload, run / "checkpoint.pt")
    third = run_pipeline("tiny", ["smap_bilinear"], device="cpu", quick=True, skip=["archive", "validate"])
    assert "world size 'demo'" in third["train"]["retrained"]["smap_bilinear"]
    retrained = read_checkpoint(resolve_run("smap_bilinear") / "checkpoint.pt")["extra"]["ard_identity"]
    assert retrained["world_size"] == "tiny"   # the retrained run records these inputs
    with pytest.raises(InputError, match="only archive, validate can be skipped"):
        run_pipeline("tiny", skip=["train"])


def test_archive_refuses_a_run_of_another_store(tiny, tmp_path, monkeypatch):
    import shutil

    import torch

    from model.inference.archive import build_archive
    from model.networks.checkpoint import read_checkpoint

    home = _home_on_tiny(tiny, tmp_path)
    monkeypatch.setenv("SMDS_HOME", str(home))
    src = tiny / "runs" / "smap_bilinear"
    name = (src / "LATEST").read_text().strip()
    shutil.copytree(src / name, home / "runs" / "smap_bilinear" / name)
    (home / "runs" / "smap_bilinear" / "LATEST").write_text(name + "\n")
    ck = home / "runs" / "smap_bilinear" / name / "checkpoint.pt"
    payload = read_checkpoint(ck)
    payload["extra"]["ard_identity"] = {"sha256": "0" * 64, "world_size": "tiny"}
    torch.save(payload, ck)
    with pytest.raises(InputError, match="does not belong to these inputs.*another analysis-ready store"):
        build_archive(["smap_bilinear"], "2017-07-06", "2017-07-06", out=tmp_path / "a",
                      ard=home / "worlds" / "tiny" / "ard.zarr", progress=False)
    assert not (tmp_path / "a" / "maps.zarr").exists()
