"""The process's malloc settings for whole-scene inference (model.machine.keep_freed_memory)."""

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "keep":
        from model.machine import keep_freed_memory
        assert keep_freed_memory()
    np.ones(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):          # a 16 MiB block, as one layer of a whole scene, freed each time
        a = np.ones(2 * 2**20)
        del a
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    # Dask's workers start with this setting: every freed page goes back to the system
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_scene_memory_is_reused_not_faulted_in_again():
    """With Dask's MALLOC_TRIM_THRESHOLD_=65536 every 16 MiB block is mapped afresh (page faults
    at each of the 40 blocks: 20,800 on the EPYC VM, huge pages included); after
    keep_freed_memory() the process reuses the first block's pages (518 faults in all)."""
    default, kept = _faults("default"), _faults("keep")
    assert default > 40 * 100, default   # the premise: fresh pages for every block
    assert kept < default / 10, (kept, default)
