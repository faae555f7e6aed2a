"""A description of the machine a figure was measured on (standard library only, so the
GPU benchmark scripts can use it with nothing but torch and numpy installed)."""

from __future__ import annotations

import multiprocessing
import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(**extra) -> dict:
    """CPU model, usable cores, memory (GiB), load average, Python, platform, plus ``extra``.

    The load average matters: other processes on a 2-core machine slow every figure down.
    """
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        ncpu = os.cpu_count() or 1
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        mem = None
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"host": platform.node(), "cpu_model": cpu_model(), "cpus": ncpu, "memory_gib": mem,
            "load_avg": load, "python": platform.python_version(), "platform": platform.platform(),
            **extra}


def machine_line(info: dict | None = None) -> str:
    """One line for a benchmark's header."""
    i = info or machine_info()
    parts = [i["host"], i["cpu_model"], f"{i['cpus']} usable cores", f"{i['memory_gib']} GiB",
             f"load avg {', '.join(map(str, i['load_avg'] or ['?']))}", f"Python {i['python']}"]
    parts += [f"{k} {v}" for k, v in i.items() if k not in
              ("host", "cpu_model", "cpus", "memory_gib", "load_avg", "python", "platform")]
    return " | ".join(parts)


def kernel_threads() -> int:
    """Threads for the compiled CPU kernels (tree traversal, regridding): one inside a daemonic
    process (a Dask worker owns one core), else every usable core."""
    if multiprocessing.current_process().daemon:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
