"""A description of the machine a figure was measured on (standard library only, so the
GPU benchmark scripts can use it with nothing but torch and numpy installed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
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


def physical_memory() -> int | None:
    """The machine's memory in bytes (None where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None


def machine_info(**extra) -> dict:
    """CPU model, usable cores, memory (GiB), load average, Python, platform, plus ``extra``.

    The load average matters: other processes on a 2-core machine slow every figure down.
    """
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        ncpu = os.cpu_count() or 1
    mem = physical_memory()
    mem = round(mem / 2**30, 1) if mem else None
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


#: glibc's malloc settings for whole-scene inference (mallopt parameters M_TRIM_THRESHOLD and
#: M_MMAP_THRESHOLD): freed memory up to 1 GiB stays with the process, and blocks up to 32 MiB
#: (glibc's largest mmap threshold) come from its heap. A 10 km scene's activations are a few
#: to tens of MiB per layer; allocated from fresh pages at every layer (Dask's workers start
#: with MALLOC_TRIM_THRESHOLD_=65536, which gives every freed page back) a one-thread
#: ConvLSTM scene took 2.18 s instead of 1.36 s and a PSCNet scene 0.95 s instead of 0.32 s
#: (one EPYC core, docs/benchmarks.md "Scenes per call on the CPU").
MALLOC_TRIM_BYTES = 2**30
MALLOC_MMAP_BYTES = 32 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Set :data:`MALLOC_TRIM_BYTES` / :data:`MALLOC_MMAP_BYTES` for this process through
    glibc's ``mallopt`` (takes effect at once, also after start-up; done once per process,
    later calls return the first answer). True when set; False where the C library is not
    glibc (macOS, musl): nothing changes there."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES))
