"""Network tests run torch on one CPU thread.

Their tensors are tiny (a few 12x12 patches, one 150x320 forward), where intra-op threads only
add synchronisation, and on a busy or shared 2-core runner OpenMP threads that spin-wait for a
core can slow small operations down tenfold. One thread keeps the run short and steady.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
