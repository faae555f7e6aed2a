"""Atomic file writing: write to a temporary sibling, fsync it, rename it, fsync the folder.

An interrupted run (a kill, a crash, a power cut) never leaves a half-written file that looks
complete: a reader sees the old file or the new one. Markers and manifests are read back with
:func:`read_json_marker`, which treats a torn or unreadable one as absent (with a warning), so
the step it marks is redone instead of a ``json.loads`` crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError

log = logging.getLogger(__name__)


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk; a no-op where the platform
    cannot open folders."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - Windows folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Works for files and folders (e.g. a Zarr store). A file is fsynced before the rename and
    the parent folder after it (a folder's own files are left to the writer). A folder
    replaces an existing one by two renames (old aside, new in place) and the parent is
    fsynced after the swap. On error the temporary is removed and an existing ``target`` is
    left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_file():
            fsync_path(tmp)
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(tmp, target)
            fsync_path(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
            fsync_path(target.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_text_atomic(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json_atomic(target: str | Path, obj: Any, **dump_kw) -> Path:
    """``json.dumps(obj)`` to ``target`` atomically (temporary file, fsync, rename, fsync)."""
    return write_text_atomic(target, json.dumps(obj, **dump_kw))


def read_json_marker(path: str | Path, what: str = "marker") -> dict | None:
    """A JSON marker/manifest as a dict, or None when it is absent, torn (a write cut short by
    a crash on a file system without atomic renames, or a hand edit) or not a JSON object; a
    damaged one is logged as a warning and treated as absent, so its step is redone."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the %s %s (%s): treating it as absent", what, path, exc.strerror)
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        log.warning("the %s %s is damaged (not JSON: %r...): treating it as absent and redoing "
                    "its step", what, path, text[:40])
        return None
    if not isinstance(obj, dict):
        log.warning("the %s %s is not a JSON object: treating it as absent", what, path)
        return None
    return obj


def check_writable(folder: str | Path, need_bytes: int = 0) -> Path:
    """Fail early, with a clear message, if ``folder`` is not writable or lacks space."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"folder is not writable ({exc.strerror})",
                         "choose another folder or fix its permissions", folder) from exc
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise InputError(
                f"only {free / 1e9:.2f} GB free, {need_bytes / 1e9:.2f} GB needed",
                "free some space or choose another folder", folder)
    return folder
