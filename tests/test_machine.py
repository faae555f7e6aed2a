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


def test_training_slots_follow_cores_memory_and_device():
    """Two trainings at once only on a CPU with two cores and memory for two workers."""
    from model.training.parallel import WORKER_BYTES, threads_per_training, training_slots

    assert training_slots("cpu", cores=2, memory=3 * WORKER_BYTES) == 2
    assert training_slots("cpu", cores=16, memory=64 * WORKER_BYTES) == 2
    assert training_slots("cpu", cores=1, memory=64 * WORKER_BYTES) == 1
    assert training_slots("cpu", cores=8, memory=WORKER_BYTES + 1) == 1
    assert threads_per_training(2, cores=2) == 1 and threads_per_training(2, cores=16) == 8
    assert threads_per_training(1, cores=2) == 2 and threads_per_training(2, cores=1) == 1


def test_torch_threads_restored():
    torch = pytest.importorskip("torch")
    from model.training.parallel import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
