"""Export of the current view: PNG, SVG and PDF made on the server, no browser, no driver
download -- maps as cartopy figures (``model.figures``: projection, packaged Natural Earth, TP
outline, gridline labels, colour bar with units), series and tables through HoloViews'
matplotlib backend -- and the view's data as NetCDF (maps) or CSV (series, tables).

File names say what, when and which model, e.g. ``pscnet_2017-07-06T00_sm.png``,
``pscnet-unet_CTP_SMTMN-L01_2017-06-01_2017-07-15_series.csv``. Images inside SVGs are
rasterized (a hook calls ``set_rasterized(True)``), so an SVG stays small.

Rendering runs in one worker thread shared by all sessions (matplotlib is not thread-safe),
awaited by an ``async`` download callback: an export never blocks other sessions' updates.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from model.figures import figure_bytes as mpl_bytes

log = logging.getLogger(__name__)

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
_MPL_LOCK = threading.Lock()
FIGURE_FORMATS = ("png", "svg", "pdf")


def ensure_matplotlib() -> None:
    """Load HoloViews' matplotlib backend (without making it the current one)."""
    if "matplotlib" not in hv.Store.renderers:
        import matplotlib  # lazy: the matplotlib renderer is loaded at the first figure export only

        matplotlib.use("Agg")
        current = hv.Store.current_backend
        import holoviews.plotting.mpl  # noqa: F401  # lazy: as above; registers the renderer and its options

        hv.Store.set_current_backend(current)


def rasterize_hook(plot, element) -> None:
    """Matplotlib hook: draw images/meshes as bitmaps inside vector files."""
    artist = plot.handles.get("artist")
    if artist is not None and hasattr(artist, "set_rasterized"):
        artist.set_rasterized(True)


def safe_name(text: str) -> str:
    """A file-name-safe form: letters, digits, ``-``, ``_``, ``.`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")


def figure_bytes(obj, fmt: str = "png", dpi: int = 110) -> io.BytesIO:
    """Render a HoloViews object (matplotlib backend) or a matplotlib Figure (cartopy maps)
    into PNG/SVG/PDF bytes."""
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {FIGURE_FORMATS}")
    if hasattr(obj, "savefig"):  # a matplotlib Figure (model.figures)
        with _MPL_LOCK:
            return mpl_bytes(obj, fmt, dpi=max(dpi, 130))
    ensure_matplotlib()
    buf = io.BytesIO()
    with _MPL_LOCK:
        renderer = hv.renderer("matplotlib").instance(dpi=dpi)
        renderer.save(obj, buf, fmt=fmt)
        import matplotlib.pyplot as plt  # lazy: loaded by ensure_matplotlib above, at the first export

        plt.close("all")
    buf.seek(0)
    return buf


def csv_bytes(df, index: bool = True) -> io.BytesIO:
    return io.BytesIO(df.to_csv(index=index, float_format="%.5g").encode("utf-8"))


def netcdf_bytes(obj) -> io.BytesIO:
    """A DataArray/Dataset as NetCDF4 bytes (float32, compressed)."""
    ds = obj.to_dataset() if isinstance(obj, xr.DataArray) else obj
    enc = {v: {"zlib": True, "complevel": 4, "dtype": "float32", "_FillValue": np.float32(np.nan)}
           for v in ds.data_vars if np.issubdtype(ds[v].dtype, np.floating)}
    fd, tmp = tempfile.mkstemp(suffix=".nc")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, encoding=enc, engine="netcdf4", format="NETCDF4")
        with open(tmp, "rb") as fh:
            return io.BytesIO(fh.read())
    finally:
        os.unlink(tmp)


async def _in_worker(fn, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, fn, *args)


def export_row(state, stem, figure=None, data=None, data_ext="csv", extra=(), watch=None,
               suffix: str = "") -> pn.Row:
    """Download buttons for the current view.

    Parameters
    ----------
    stem : callable(state) -> str, the file name without extension (what, when, which model).
    suffix : appended to ``stem`` for the figure and main data files.
    figure : callable(state) -> HoloViews object (matplotlib options), or None.
    data : callable(state) -> BytesIO of the view's data, or None.
    extra : (label, stem_suffix, ext, callable(state) -> BytesIO) tuples: more data files.
    watch : state parameters whose change renames the files (default: all).
    """
    buttons = []
    status = pn.pane.Str("", styles={"font-size": "11px", "color": "#a00"}, name="export-status")

    def guard(fn):
        async def cb():
            try:
                status.object = ""
                return await _in_worker(fn, state)
            except Exception as exc:  # noqa: BLE001 - shown to the user, not raised into the server
                log.exception("export failed")
                status.object = f"export failed: {exc}"
                return io.BytesIO(b"")
        return cb

    specs = []
    if figure is not None:
        for fmt in FIGURE_FORMATS:
            def render(s, fmt=fmt):
                ensure_matplotlib()
                return figure_bytes(figure(s), fmt)
            specs.append((fmt.upper(), suffix, fmt, render))
    if data is not None:
        specs.append(({"nc": "NetCDF", "csv": "CSV"}[data_ext], suffix, data_ext, data))
    specs.extend(extra)
    names = {}
    for label, sfx, ext, fn in specs:
        b = pn.widgets.FileDownload(callback=guard(fn), filename=f"{safe_name(stem(state) + sfx)}.{ext}",
                                    label=f"Export {label}", button_type="light", width=130, auto=True,
                                    css_classes=[f"export-{safe_name(label.lower())}"], name=f"export-{safe_name(label.lower())}")
        names[id(b)] = (sfx, ext)
        buttons.append(b)

    def rename(*_):
        try:
            base = stem(state)
        except Exception:  # noqa: BLE001
            base = "export"
        for b in buttons:
            sfx, ext = names[id(b)]
            b.filename = f"{safe_name(base + sfx)}.{ext}"
            b.data = None  # drop the cached file of the previous view

    state.param.watch(rename, watch or [p for p in state.param if p != "name"])
    return pn.Row(pn.pane.Markdown("**Export this view:**", margin=(12, 5, 0, 5)), *buttons, status)
