"""A page open while the products are still being made (issue 16): the progress line follows
the run and a model archived behind the page becomes a choice, without a restart. State level
here (the periodic refresh's body); the browser twin is in test_dashboard_browser.py."""

from __future__ import annotations

from _dash_helpers import finish_model, live_copy


def test_model_archived_while_open_appears_and_progress_line_follows(demo_home, tmp_path):
    from dashboard.state import DashboardState
    from dashboard.views import about
    from dashboard.views.common import linked_select

    home = live_copy(demo_home, tmp_path / "home", "unet")
    state = DashboardState(home=str(home))
    assert "unet" not in state.inv.models and "unet" in state.inv.partial
    assert state.progress_text.startswith("Still being made: 1 of 3 steps done; now archive unet")
    sel = linked_select(state, "compare_to", lambda: state.inv.models, "second model")
    fixed = linked_select(state, "model", state.inv.models, "model")
    assert "unet" not in sel.options
    changes = []  # the browser gets only what param reports as changed
    sel.param.watch(lambda e: changes.append(e.new), "options")
    page = about.page(state)
    assert "unet, validation" in page.objects[0].object  # provisional figures named
    assert state.refresh() is False  # nothing changed yet

    res = finish_model(home, "unet")
    assert res["complete"] == {"unet": True}
    assert state.refresh() is True
    assert "unet" in state.inv.models
    assert "unet" in sel.options            # options asked again on the new version
    assert changes and "unet" in changes[-1]  # ... and sent as a change (not edited in place)
    assert "unet" not in fixed.options      # a fixed list stays as given
    assert state.progress_text == ""
    assert "nothing: every figure is final" in about.page(state).objects[0].object
