"""Fixtures of the dashboard tests: the session's real tiny pipeline home.

The data are built by the real pipeline (``tests/conftest.py::tiny_pipeline``: virtual world ->
ingest -> train every model briefly -> archive of the test period and the last training days
-> validate) into a temporary ``SMDS_HOME``; no mocks. Every dashboard test shares it;
``SMDS_TEST_HOME=/path`` reuses a home across pytest runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_home(tiny_pipeline) -> Path:
    """The session's tiny pipeline home (see ``tests/conftest.py``); ``$SMDS_HOME`` and
    ``$SMDS_CATALOG`` point at it for the whole session, as ``panel serve`` would see them."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SMDS_HOME", str(tiny_pipeline))
    mp.setenv("SMDS_CATALOG", str(tiny_pipeline / "worlds" / "tiny" / "catalog.yaml"))
    yield tiny_pipeline
    mp.undo()


@pytest.fixture(scope="session")
def state_factory(demo_home):
    """Make a fresh :class:`DashboardState` on the demo home."""
    from dashboard.state import DashboardState

    def make(**params):
        return DashboardState(home=str(demo_home), **params)
    return make
