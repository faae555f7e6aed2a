"""One session's page: a header, the page navigation and the current page.

:func:`build` makes a new :class:`~dashboard.state.DashboardState` for the session, syncs its
shareable part with the URL and renders pages on demand (each page function runs the first
time its page is shown, then the page is kept for the session).
"""

from __future__ import annotations

import logging

import holoviews as hv
import panel as pn
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE
from panel.io import document as pdoc

from . import export
from .state import PAGES, URL_PARAMS, DashboardState
from .views import page_function

log = logging.getLogger(__name__)

_EXTENSIONS_LOADED = False
CSS = """
.smds-header h2 { margin: 4px 0 0 0; }
.smds-sub { color: #555; font-size: 12px; }
"""


def log_callback_error(exc: BaseException) -> None:
    """Panel's ``exception_handler``: a callback that fails is logged with its traceback and
    the session goes on. Without it Panel re-raises, and an event queued behind the failing
    change (a click sent while the browser's own property changes were still pending) is
    dropped with it: the user clicks and nothing happens."""
    log.error("a page callback failed (the session goes on): %s: %s", type(exc).__name__, exc,
              exc_info=(type(exc), exc, exc.__traceback__))


def keep_pending_writes() -> None:
    """Mend a race in Panel 1.9's websocket writes (``panel.io.document._dispatch_msgs``) that
    left a session's page unchanged after a click until the next interaction.

    A writer that finds the socket busy puts its messages back in the queue and tries again
    10 ms later; a writer that finishes in between clears the document's write block, and the
    retry then returns at once because no block is set: the messages (a whole time step: map,
    label, title, file names) stay queued until another event writes. Seen on 2 cores with 3
    browser sessions (the step arrived only with the next click, 30 s later). The mend sets
    the block again when messages are queued without one, so the retry writes them."""
    if getattr(pdoc._dispatch_msgs, "keeps_pending_writes", False):
        return
    original = pdoc._dispatch_msgs

    async def dispatch_msgs(doc):
        if doc not in pdoc._WRITE_BLOCK and pdoc._WRITE_MSGS.get(doc):
            log.warning("Panel left %d page message(s) queued without a write block: writing them",
                        sum(len(m) for m in pdoc._WRITE_MSGS[doc].values()))
            pdoc._WRITE_BLOCK[doc] = True
        await original(doc)

    dispatch_msgs.keeps_pending_writes = True
    dispatch_msgs.original = original
    pdoc._dispatch_msgs = dispatch_msgs


def load_extensions() -> None:
    """HoloViews (bokeh for the browser, matplotlib for exports) and Panel (Tabulator)."""
    global _EXTENSIONS_LOADED
    pn.config.exception_handler = log_callback_error
    keep_pending_writes()
    if not _EXTENSIONS_LOADED:
        # HoloViews sizes map frames with frame_width/frame_height, which Bokeh's validator
        # reports as "fixed sizing mode without width/height" on every render: not a problem.
        silence(FIXED_SIZING_MODE, True)
        hv.extension("bokeh", "matplotlib", logo=False)
        export.ensure_matplotlib()
        _EXTENSIONS_LOADED = True
    pn.extension("tabulator", raw_css=[CSS], notifications=False)


def _apply_one_by_one(state):
    def on_error(values: dict):
        for k, v in values.items():
            try:
                state.param.update(**{k: v})
            except Exception as exc:  # noqa: BLE001 - a bad URL value is skipped, not fatal
                log.warning("URL value %s=%r ignored: %s", k, v, exc)
    return on_error


#: how often a served page re-reads the home's data version and progress record
REFRESH_MS = 3000


def _subtitle(state) -> str:
    inv = state.inv
    return (f"{len(inv.models)} models, {inv.period_text()}, home `{inv.home}`" if inv.has_archive
            else " ".join(inv.problems) or "no archive")


def build(home: str | None = None, state: DashboardState | None = None) -> pn.viewable.Viewable:
    """The page of one session."""
    load_extensions()
    state = state or DashboardState(home=home)
    if pn.state.location is not None:
        pn.state.location.sync(state, URL_PARAMS, on_error=_apply_one_by_one(state))
    nav = pn.widgets.RadioButtonGroup.from_param(state.param.page, options={v: k for k, v in PAGES.items()},
                                                 button_type="primary", button_style="outline",
                                                 css_classes=["page-nav"], name="page")
    sub = pn.pane.Markdown(_subtitle(state), css_classes=["smds-sub"], margin=(14, 10, 0, 10))
    progress = pn.pane.Alert(state.progress_text, alert_type="info", css_classes=["smds-progress"],
                             visible=bool(state.progress_text), margin=(0, 10))

    def on_progress(e):
        progress.object, progress.visible = e.new, bool(e.new)

    state.param.watch(on_progress, "progress_text")
    state.param.watch(lambda e: setattr(sub, "object", _subtitle(state)), "version")
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        # a served page follows the home folder: models archived behind it appear, the
        # progress line moves (one small-file read and a stat per call)
        pn.state.add_periodic_callback(state.refresh, period=REFRESH_MS)
        # the regenerate page's first scene: its input block and runner are read in the
        # background once per server (not at import: torch stays out of the start-up)
        from .views.regenerate import start_warm  # lazy: the regenerate page's module (its runner, ~1.4 s) loads only in a served session

        start_warm(state.home, state.model, state.time)
    header = pn.Column(pn.Row(pn.pane.Markdown("## Soil moisture over the Tibetan Plateau: 10 km, 3-hourly",
                                               css_classes=["smds-header"], margin=(0, 10)), sub),
                       progress)
    main = pn.Column(name="main")
    pages: dict = {}

    def show(*_):
        name = state.page
        if name not in pages:
            try:
                pages[name] = page_function(name)(state)
            except Exception as exc:  # noqa: BLE001 - the page says why instead of a blank screen
                log.exception("page %s failed", name)
                pages[name] = pn.pane.Alert(f"The {PAGES[name]} page could not be drawn: {exc}",
                                            alert_type="danger")
        main.objects = [pages[name]]

    show()
    state.param.watch(show, "page")
    return pn.Column(header, nav, main, name="dashboard")
