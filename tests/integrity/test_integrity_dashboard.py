"""The regenerate page never loads a model from a path in its URL (fails on the code before
issue 13: a run folder given as the URL's model was loaded and run)."""

from __future__ import annotations

import pytest


def test_regenerate_refuses_a_path_from_the_url(tiny):
    from dashboard.store import EmptyState, inventory, time_key
    from dashboard.views.regenerate import regenerate

    inv = inventory(str(tiny))
    t = time_key(inv.times[0])
    run = tiny / "runs" / "mlp" / (tiny / "runs" / "mlp" / "LATEST").read_text().strip()
    for bad in (str(run), str(run / "checkpoint.pt"), "../runs/mlp", "runs/mlp"):
        with pytest.raises(EmptyState, match="not in the archive"):
            regenerate(str(tiny), bad, t)
