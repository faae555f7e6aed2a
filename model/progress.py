"""What a long run is doing, for the people waiting on it: ``$SMDS_HOME/progress.json``.

A run that serves the dashboard before everything is made (issue 16: the demo serves as soon
as a first model and the references are archived, and goes on behind) records its plan here:
every step with its state (``queued``, ``running``, ``done``, ``failed``), the seconds each
finished step took and an estimate for the ones still to come. The dashboard reads it (a small
file, atomically replaced: a reader never sees half a record) to show a progress line and to
say which figures are provisional; the command line prints the same line.

>>> import tempfile
>>> home = tempfile.mkdtemp()
>>> p = Progress(home, [Step("train pscnet", 60), Step("archive pscnet", 120)])
>>> p.start("train pscnet")
>>> progress_line(read_progress(home))[:33]
'Still being made: 0 of 2 steps done'
>>> p.done("train pscnet"); p.done("archive pscnet"); p.finish()
>>> progress_line(read_progress(home))
''
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .io import read_json_marker, write_json_atomic

#: the file, in the home folder
PROGRESS_FILE = "progress.json"

STATES = ("queued", "running", "done", "failed", "skipped")


@dataclass(frozen=True)
class Step:
    """One step of the plan: its name (``"train unet"``, ``"archive unet"``, ``"validate"``), an
    estimate of its seconds (shown until it has run), and what it makes (a model's name: its
    figures are provisional until the step is done)."""

    name: str
    estimate_s: float = 0.0
    makes: str = ""


class Progress:
    """Writer of ``progress.json`` for one run (one process). Each change rewrites the file
    atomically (temporary file, fsync, rename); a crash leaves the last whole record."""

    def __init__(self, home: str | Path, steps: list[Step], *, title: str = "demo"):
        if len({s.name for s in steps}) != len(steps):
            raise ValueError("step names must be unique")
        self.path = Path(home) / PROGRESS_FILE
        self.record = {
            "title": title, "started": time.time(), "updated": time.time(), "finished": None,
            "steps": [{"name": s.name, "state": "queued", "estimate_s": float(s.estimate_s),
                       "seconds": None, "started": None, "makes": s.makes, "message": ""}
                      for s in steps],
        }
        self._write()

    @classmethod
    def resume(cls, home: str | Path) -> "Progress":
        """The record another process started (a background worker going on with the plan)."""
        rec = read_progress(home)
        if rec is None:
            raise FileNotFoundError(f"no progress record in {home} (or a damaged one): start a "
                                    "new plan with Progress(home, steps)")
        obj = cls.__new__(cls)
        obj.path, obj.record = Path(home) / PROGRESS_FILE, rec
        return obj

    def _step(self, name: str) -> dict:
        for s in self.record["steps"]:
            if s["name"] == name:
                return s
        raise KeyError(f"no step {name!r} in the plan ({', '.join(s['name'] for s in self.record['steps'])})")

    def _write(self) -> None:
        self.record["updated"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.record, indent=1)

    def start(self, name: str) -> None:
        s = self._step(name)
        s["state"], s["started"] = "running", time.time()
        self._write()

    def done(self, name: str, state: str = "done", message: str = "") -> None:
        """Mark a step ``done`` (or ``failed`` / ``skipped``, with a one-line message)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        s = self._step(name)
        if s["started"] is not None:
            s["seconds"] = round(time.time() - s["started"], 1)
        s["state"], s["message"] = state, message
        self._write()

    def finish(self) -> None:
        self.record["finished"] = time.time()
        self._write()


def read_progress(home: str | Path) -> dict | None:
    """The last whole record, or None where no run wrote one (or it is damaged)."""
    return read_json_marker(Path(home) / PROGRESS_FILE, "progress record")


def remaining_seconds(record: dict, now: float | None = None) -> float:
    """Estimated seconds until the plan is done: the estimates of queued steps plus what is
    left of the running ones (never below zero)."""
    now = time.time() if now is None else now
    left = 0.0
    for s in record.get("steps", []):
        if s["state"] == "queued":
            left += s["estimate_s"]
        elif s["state"] == "running":
            left += max(0.0, s["estimate_s"] - (now - (s["started"] or now)))
    return left


def provisional(record: dict | None) -> list[str]:
    """What is still to be made (the ``makes`` of steps not done): models whose maps are not
    archived yet, or ``validation`` while its tables are still to come."""
    if not record or record.get("finished"):
        return []
    out = []
    for s in record.get("steps", []):
        if s["state"] in ("queued", "running") and s["makes"]:
            out += [m for m in s["makes"].split(", ") if m not in out]   # an archive step makes several
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(record: dict | None, now: float | None = None) -> str:
    """One line for a page header or a terminal; empty when nothing is being made."""
    if not record or record.get("finished"):
        return ""
    now = time.time() if now is None else now
    steps = record.get("steps", [])
    done = [s for s in steps if s["state"] in ("done", "skipped")]
    running = [s for s in steps if s["state"] == "running"]
    failed = [s for s in steps if s["state"] == "failed"]
    parts = [f"Still being made: {len(done)} of {len(steps)} steps done"]
    if running:
        parts.append("now " + ", ".join(f"{s['name']} ({_duration(now - (s['started'] or now))})"
                                        for s in running))
    if failed:
        parts.append("failed: " + ", ".join(s["name"] for s in failed))
    left = remaining_seconds(record, now)
    if left > 0:
        parts.append(f"about {_duration(left)} left")
    if now - record.get("updated", now) > 3600:
        parts.append(f"no news for {_duration(now - record['updated'])}: the run may have stopped")
    return "; ".join(parts) + "."
