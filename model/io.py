"""Atomic file writing: write to a temporary sibling, then rename.

An interrupted run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Works for files and folders (e.g. a Zarr store). On error the temporary is removed and
    an existing ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
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


def check_writable(folder: str | Path, need_bytes: int = 0) -> Path:
    """Fail early, with a clear message, if ``folder`` is not writable or lacks space."""
    from .errors import InputError

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
