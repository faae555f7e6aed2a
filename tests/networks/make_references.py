#!/usr/bin/env python
"""Write tests/networks/reference_outputs.pt: each torch network's output for a seeded
model (``torch.manual_seed(0)`` before construction, eval mode) on a seeded input.

Run once, and again ONLY when a network is changed on purpose (then say so in the commit)::

    python tests/networks/make_references.py

``test_nets_torch.py::test_reference_output`` compares against this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from model.networks.inputs import InputDims, example_batch  # noqa: E402
from model.networks.registry import get_model, model_names  # noqa: E402

PATH = Path(__file__).with_name("reference_outputs.pt")
DIMS = InputDims(n_dynamic=4, n_static=3)
HEIGHT, WIDTH = 12, 12


def build(name: str):
    torch.manual_seed(0)
    return get_model(name, n_dynamic=DIMS.n_dynamic, n_static=DIMS.n_static).eval()


def reference_input() -> dict[str, torch.Tensor]:
    return example_batch(DIMS, batch=1, height=HEIGHT, width=WIDTH, seed=1)


def compute(name: str) -> torch.Tensor:
    with torch.no_grad():
        return build(name)(reference_input())


def main() -> int:
    outputs = {name: compute(name) for name in model_names("torch")}
    torch.save({"torch": str(torch.__version__), "outputs": outputs}, PATH)
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes): {', '.join(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
