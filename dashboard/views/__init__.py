"""One module per page; each has ``page(state) -> Viewable`` (pages are served as functions)."""

from __future__ import annotations

import importlib


def page_function(name: str):
    """The page function of ``name`` (imported on first use)."""
    modules = {"map": "map", "stations": "stations", "metrics": "metrics", "regenerate": "regenerate",
               "about": "about"}
    return importlib.import_module(f"{__name__}.{modules[name]}").page
