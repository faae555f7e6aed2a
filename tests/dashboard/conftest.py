"""Fixtures of the dashboard tests: ONE real tiny demo home per test session.

The data are built by the real command, ``sm-downscale demo --size tiny --no-serve``
(virtual world -> ingest -> train every model briefly -> archive -> validate), into a temporary
``SMDS_HOME``; no mocks. Every dashboard test shares it.

``SMDS_DASHBOARD_TEST_HOME=/path`` reuses a home that the same command built before (the
fixture checks it is complete and otherwise builds it there), which saves the build when the
tests are run repeatedly during development.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _dash_helpers import build_demo_home, home_is_complete


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A complete tiny demo home; ``$SMDS_HOME`` points at it for the whole session."""
    reuse = os.environ.get("SMDS_DASHBOARD_TEST_HOME")
    home = Path(reuse) if reuse else tmp_path_factory.mktemp("smds-demo-home")
    if not home_is_complete(home):
        build_demo_home(home)
    mp = pytest.MonkeyPatch()
    mp.setenv("SMDS_HOME", str(home))
    yield home
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """Every dashboard test needs the full tiny demo home (``sm-downscale demo --size tiny``:
    demo training budgets and the whole default archive period, tens of minutes on 2 cores);
    the project-wide quick ``tiny_pipeline`` archives only two days, which these tests do not
    yet accept. Until they do, they run with ``--run-slow`` (see the session's closing note)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def state_factory(demo_home):
    """Make a fresh :class:`DashboardState` on the demo home."""
    from dashboard.state import DashboardState

    def make(**params):
        return DashboardState(home=str(demo_home), **params)
    return make
