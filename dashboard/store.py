"""Data access for the dashboard: small, lazy reads, cached across sessions.

Every loader takes the product home folder (``$SMDS_HOME``, :func:`model.config.home`) as its
first argument, so that the cache (``pn.cache``, shared by all sessions of a server) keys on
it. Loaders read:

* one map frame (one chunk of ``archive/maps.zarr``, one step of an ARD group or of the
  truth) at a time (:func:`frame`), kept in a bounded LRU cache;
* one station's series at a time (:func:`station_series`, a filtered Parquet read, plus one
  chunk of ``archive/series.zarr`` for a model the validation did not cover);
* the small validation results whole (:func:`metric_maps`, :func:`table`, ...).

Every cache is keyed to the data's version as well (:func:`data_version`: the archive's
``VERSION`` stamp, rewritten by every ``sm-downscale archive``, and the validation results'
``settings.json``), so a running server shows rebuilt values at the next read, without a
restart; the version is one small file read per call.

Nothing here loads the archive as a whole; ``tests/dashboard/test_state.py`` counts the chunk
reads to prove it. Empty states (no archive, a model not in it, a time outside it, a station
without data, no SMAP overpass at a step) raise :class:`EmptyState` with a message that says
what is missing and what to do.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import shapefile
import xarray as xr
from shapely.geometry import box, shape

from model.config import RESOURCES, home
from model.data.stations import station_cells
from model.data.stations import station_table as read_station_table
from model.errors import InputError, nearest_names
from model.features.ard import open_group
from model.grids import regridder, tp10, tp_mask, tp_polygon
from model.inference.archive import open_archive, product_variables
from model.progress import progress_line, read_progress
from model.progress import provisional as provisional_models
from model.networks.registry import model_names
from model.runs.folders import LATEST, provisional_minutes
from model.schema import SM_UNITS, sm_attrs
from model.validation import results

log = logging.getLogger(__name__)

#: Map sources: key -> (label, short tag used in file names).
SOURCES = {
    "product": ("downscaled product (10 km)", "sm"),
    "compare": ("second model's product (10 km)", "sm"),
    "smap_36km": ("SMAP L3 36 km (area-overlap onto the 10 km grid)", "smap36"),
    "smap_9km": ("SMAP L3 9 km (area-overlap onto the 10 km grid)", "smap9"),
    "era5land": ("ERA5-Land surface soil water swvl1 (0-7 cm)", "era5"),
    "truth": ("virtual TP hidden truth (10 km)", "truth"),
}
#: Map variables offered on the map page (``difference`` = A - B of two sources).
VARIABLES = ["product", "smap_36km", "smap_9km", "era5land", "truth", "difference"]

#: Colour limits, fixed per variable (never per frame), and colour maps.
CLIM = {"sm": (0.0, 0.5), "difference": (-0.15, 0.15), "R": (-1.0, 1.0), "bias": (-0.1, 0.1),
        "ubRMSE": (0.0, 0.08), "RMSE": (0.0, 0.1)}
CMAP = {"sm": "YlGnBu", "difference": "RdBu", "R": "RdBu", "bias": "RdBu", "ubRMSE": "YlOrRd",
        "RMSE": "YlOrRd"}
METRIC_UNITS = {"R": "1", "bias": SM_UNITS, "ubRMSE": SM_UNITS, "RMSE": SM_UNITS}

#: The model a page shows first, in this order of preference (the paper's method first).
PREFERRED = ("pscnet", "unet", "resnet", "convlstm", "lstm", "vit", "mlp", "gbm", "rf")

#: Sources in station_series.parquet that are not models.
SERIES_REFERENCES = ("insitu", "smap_l3_9km", "smap_l4", "era5land")
PRECIP = "precipitation_mm"
NETWORKS = ("CTP_SMTMN", "MAQU", "NAQU", "NGARI")
NETWORK_LABELS = {"CTP_SMTMN": "CTP-SMTMN", "MAQU": "Maqu", "NAQU": "Naqu", "NGARI": "Ngari"}


def data_version(home: str) -> str:
    """The version of a home folder's archive and validation results: the archive's
    ``VERSION`` stamp (a new one after every archive build) and the validation settings'
    modification time and size. Any rebuild changes it."""
    hp = Path(home)
    try:
        av = json.loads((hp / "archive" / "VERSION").read_text()).get("version", "")
    except (OSError, ValueError, AttributeError):
        try:  # an archive from before the VERSION stamp: its consolidated metadata's identity
            st = (hp / "archive" / "maps.zarr" / ".zmetadata").stat()
            av = f"zmeta-{st.st_mtime_ns}-{st.st_size}"
        except OSError:
            av = "none"
    try:
        st = (hp / "validation" / "settings.json").stat()
        vv = f"{st.st_mtime_ns}-{st.st_size}"
    except OSError:
        vv = "none"
    return f"{av}/{vv}"


def versioned_cache(func=None, **cache_kw):
    """``pn.cache`` keyed on ``(home, data_version(home), *args)``: shared by every session
    of a server, and never stale after a rebuild of the archive or the validation results.
    Used as ``@versioned_cache`` or ``@versioned_cache(max_items=..., policy=...)``."""
    def deco(f):
        def inner(home, _version, *args, **kwargs):
            return f(home, *args, **kwargs)

        inner.__name__ = inner.__qualname__ = f"{f.__name__}__versioned"
        inner.__module__ = f.__module__
        cached = pn.cache(inner, **cache_kw)

        @functools.wraps(f)
        def wrapper(home, *args, **kwargs):
            return cached(home, data_version(home), *args, **kwargs)

        wrapper.clear = cached.clear
        return wrapper

    return deco(func) if func is not None else deco


class EmptyState(Exception):
    """Nothing to show for this choice; the message says what is missing and what to do."""


# ------------------------------------------------------------------ home and inventory
def current_home() -> str:
    """The product home folder as a cache key (``$SMDS_HOME`` or ``<repo>/var``)."""
    return str(home())


def progress_text(home: str) -> str:
    """The progress line of a run still making this home's products ('' when none): read on
    every call (one small, atomically replaced file), never cached."""
    return progress_line(read_progress(home))


def provisional(home: str) -> list[str]:
    """What a running job is still making (models, ``validation``): their figures are provisional."""
    return provisional_models(read_progress(home))


def provisional_runs(home: str) -> dict[str, float | str]:
    """Models whose maps on show come from a provisional run (the first page's short PSCNet
    run, replaced by its full-budget run behind the page): model -> that run's minutes. The
    run is the one the archive names (archived models) or the latest (computed on demand)."""
    inv = inventory(home)
    try:
        ds = maps_ds(home)
    except InputError:
        return {}
    runs = {m: ds[m].attrs.get("provenance_run") for m in inv.models}
    runs.update({m: str(Path(home) / "runs" / m / latest_run_id(home, m)) for m in inv.on_demand})
    minutes = {m: provisional_minutes(run) if run else None for m, run in runs.items()}
    return {m: v for m, v in minutes.items() if v is not None}


def validate_hint(home: str) -> str:
    """What to do about missing validation results: wait (a running job is still making them,
    per ``progress.json``) or run ``sm-downscale validate``."""
    if "validation" in provisional(home):
        return ("the validation is still being made (see the line at the top of the page); its "
                "results appear here when it is done")
    return "run `sm-downscale validate`"


@dataclass(frozen=True)
class Inventory:
    """What a home folder holds, read once (cheap: metadata only)."""
    home: str
    models: tuple = ()            # complete models in the archive, registry names
    partial: tuple = ()           # in the archive but not (yet) complete
    on_demand: tuple = ()         # trained (run registry) but not archived yet: maps computed on demand
    times: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[ns]"))
    ard: str | None = None
    truth: str | None = None
    validation: bool = False
    periods: dict = field(default_factory=dict)
    problems: tuple = ()          # messages: what is missing and what to do

    @property
    def all_models(self) -> tuple:
        return self.models + self.partial + self.on_demand

    @property
    def shown(self) -> tuple:
        """The models the map page offers: archived ones, then those computed on demand."""
        return self.models + self.on_demand

    @property
    def has_archive(self) -> bool:
        return self.times.size > 0

    def period_text(self) -> str:
        if not self.has_archive:
            return "no archive"
        return f"{fmt_time(self.times[0])} .. {fmt_time(self.times[-1])} UTC (3-hourly, {self.times.size} steps)"


def fmt_time(t) -> str:
    """``2017-06-03 12:00`` for a datetime64."""
    return str(np.datetime_as_string(np.datetime64(t, "m"), unit="m")).replace("T", " ")


def time_key(t) -> str:
    """``2017-06-03T12`` (the URL and file-name form of a product step)."""
    return str(np.datetime_as_string(np.datetime64(t, "h"), unit="h"))


def parse_time(text) -> np.datetime64 | None:
    """``2017-06-03T12``, ``2017-06-03 12:00``, ``2017-06-03`` ... -> datetime64[ns]; None if bad."""
    if text is None or text == "":
        return None
    try:
        return np.datetime64(pd.Timestamp(str(text).replace("_", ":")).tz_localize(None), "ns")
    except (ValueError, TypeError):
        return None


@versioned_cache
def inventory(home: str) -> Inventory:
    """Models, time axis, ARD and truth locations, validation results of a home folder."""
    problems = []
    models, partial, times = (), (), np.array([], "datetime64[ns]")
    hp = Path(home)
    try:
        ds = open_archive("maps", hp / "archive")
        names = product_variables(ds)
        comp = ds.attrs.get("complete_models", {}) or {}
        models = tuple(m for m in names if comp.get(m, False)) if comp else tuple(names)
        partial = tuple(m for m in names if m not in models)
        times = ds["time"].values.astype("datetime64[ns]")
    except InputError as exc:
        problems.append(f"No product archive in {hp / 'archive'}: build it with "
                        f"`sm-downscale demo` (or `sm-downscale archive`). ({exc.what})")
    settings = {}
    vdir = hp / "validation"
    if (vdir / "settings.json").exists():
        settings = json.loads((vdir / "settings.json").read_text())
    else:
        problems.append(f"No validation results in {vdir}: {validate_hint(home)}.")
    ard = settings.get("ard")
    if not ard or not (Path(ard) / ".complete").exists():
        found = sorted(hp.glob("worlds/*/ard.zarr/.complete"))
        ard = str(found[0].parent) if found else None
    truth = None
    periods = dict(settings.get("periods") or {})
    if ard:
        try:
            info = json.loads((Path(ard) / ".complete").read_text())
        except (OSError, ValueError):
            info = {}
        cat = info.get("catalog")
        cands = ([Path(cat).parent / "truth" / "truth.zarr"] if cat else []) + [
            Path(ard).parent / "truth" / "truth.zarr"]
        truth = next((str(p) for p in cands if p.exists()), None)
        if not periods:
            periods = {k: v for k, v in ((info.get("world") or {}).get("periods") or {}).items()
                       if k in ("train", "test")}
    else:
        problems.append(f"No analysis-ready store under {hp / 'worlds'}: run `sm-downscale ingest`.")
    on_demand = _on_demand_models(hp, models) if ard and times.size else ()
    return Inventory(home=home, models=models, partial=partial, on_demand=on_demand, times=times, ard=ard,
                     truth=truth, validation=bool(settings), periods=periods, problems=tuple(problems))


def _on_demand_models(hp: Path, archived) -> tuple:
    """Registry models with a trained run in the home (``runs/<model>/LATEST``) that are not
    complete in the archive: the map page computes their maps on demand (issue 16: the first
    page shows PSCNet while its archive is still being made)."""
    names = set(model_names())
    have = {p.parent.name for p in (hp / "runs").glob(f"*/{LATEST}")}
    return tuple(m for m in sorted(have & names, key=_preferred_order) if m not in archived)


def _preferred_order(m: str) -> tuple:
    return (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED), m)


def latest_run_id(home: str, model: str) -> str:
    """The run folder name ``runs/<model>/LATEST`` names ('' when none): a new training
    changes it."""
    try:
        return (Path(home) / "runs" / model / LATEST).read_text().strip()
    except OSError:
        return ""


def on_demand_frame(home: str, model: str, time: str) -> np.ndarray:
    """``model``'s frame at archive step ``time`` computed by the runner from its latest run
    (for a model not archived yet); cached per run, so a retrain is never served stale."""
    return _on_demand_frame(home, model, latest_run_id(home, model), time)


@pn.cache(max_items=48)
def _on_demand_frame(home: str, model: str, run_id: str, time: str) -> np.ndarray:
    # lazy: the runner imports torch (0.9 s) and the input assembly (1.4 s); the dashboard must start without them
    from model.inference.runner import get_runner

    inv = inventory(home)
    t, _ = check_time(inv, time)
    try:
        return get_runner(model, inv.ard, "auto").scenes([t])[0]
    except InputError as exc:
        raise EmptyState(f"{model!r} is not archived yet and its run cannot compute the map "
                         f"({exc.what}); wait for the archive (see the progress line).") from exc


def check_model(inv: Inventory, model: str) -> None:
    """Raise :class:`EmptyState` for a model that is not (completely) in the archive."""
    if model in inv.models:
        return
    if not inv.has_archive:
        raise EmptyState(inv.problems[0] if inv.problems else "No product archive.")
    if model in inv.partial:
        raise EmptyState(f"Model {model!r} is only partly archived: finish it with "
                         f"`sm-downscale archive --model {model}`.")

    near = ", ".join(nearest_names(model or "?", list(inv.models))) if inv.models else "none"
    raise EmptyState(f"Model {model!r} is not in the archive. Did you mean: {near}? "
                     f"(the archive holds: {', '.join(inv.models) or 'no complete model'})")


def check_time(inv: Inventory, time) -> tuple[np.datetime64, int]:
    """The archive step and its index for ``time``; :class:`EmptyState` outside the archive."""
    if not inv.has_archive:
        raise EmptyState(inv.problems[0] if inv.problems else "No product archive.")
    t = parse_time(time)
    if t is None:
        raise EmptyState(f"{time!r} is not a time: give YYYY-MM-DDTHH (UTC), inside "
                         f"{inv.period_text()}.")
    i = int(np.searchsorted(inv.times, t))
    if i < inv.times.size and inv.times[i] == t:
        return inv.times[i], i
    if t < inv.times[0] or t > inv.times[-1]:
        raise EmptyState(f"{fmt_time(t)} UTC is outside the archive, which covers "
                         f"{inv.period_text()}.")
    raise EmptyState(f"{fmt_time(t)} UTC is not a product step (steps are 00, 03, ..., 21 UTC).")


def snap_time(inv: Inventory, time) -> str | None:
    """The archive step nearest to ``time`` (key form), or None without an archive."""
    if not inv.has_archive:
        return None
    t = parse_time(time)
    if t is None:
        return None
    i = int(np.clip(np.searchsorted(inv.times, t), 0, inv.times.size - 1))
    if i > 0 and abs(inv.times[i - 1] - t) <= abs(inv.times[i] - t):
        i -= 1
    return time_key(inv.times[i])


# ------------------------------------------------------------------ lazy datasets
@versioned_cache
def maps_ds(home: str):
    return open_archive("maps", Path(home) / "archive")


@versioned_cache
def series_ds(home: str):
    return open_archive("series", Path(home) / "archive")


@versioned_cache
def ard_group(home: str, group: str):
    inv = inventory(home)
    if not inv.ard:
        raise EmptyState("No analysis-ready store (SMAP, ERA5-Land inputs): run `sm-downscale ingest`.")
    try:
        return open_group(inv.ard, group)
    except InputError as exc:
        raise EmptyState(f"The analysis-ready store has no {group!r} group ({exc.what}).") from exc


@versioned_cache
def truth_ds(home: str):
    inv = inventory(home)
    if not inv.truth:
        raise EmptyState("No hidden truth: it exists only for the virtual TP (`sm-downscale demo`).")
    return xr.open_zarr(inv.truth)


@lru_cache(maxsize=1)
def tp10_mask() -> np.ndarray:
    return np.asarray(tp_mask("TP10"))


@lru_cache(maxsize=1)
def tp10_coords() -> tuple[np.ndarray, np.ndarray]:
    g = tp10()
    return g.lat.copy(), g.lon.copy()


def _nearest_steps(times: np.ndarray, t: np.datetime64, n: int = 2) -> str:
    if times.size == 0:
        return "none"
    i = int(np.searchsorted(times, t))
    near = sorted({int(k) for k in (i - 1, i) if 0 <= k < times.size}, key=lambda k: abs(times[k] - t))[:n]
    return " and ".join(f"{fmt_time(times[k])} UTC" for k in near)


# ------------------------------------------------------------------ one map frame
@versioned_cache(max_items=512, policy="LRU")
def frame(home: str, source: str, model: str, time: str) -> np.ndarray:
    """One (150, 320) float32 frame on the TP10 grid, m3 m-3 (NaN outside the data).

    ``source`` is a key of :data:`SOURCES` (``product`` reads ``model``'s archived frame: one
    chunk of ``maps.zarr``). Raises :class:`EmptyState` with what is missing.
    """
    inv = inventory(home)
    t, i = check_time(inv, time)
    if source in ("product", "compare"):
        if model in inv.on_demand:
            return on_demand_frame(home, model, time_key(t))
        check_model(inv, model)
        vals = np.asarray(maps_ds(home)[model].isel(time=i).values, dtype=np.float32)
        if not np.isfinite(vals).any():
            raise EmptyState(f"The archive holds no value of {model!r} at {fmt_time(t)} UTC.")
        return vals
    if source in ("smap_36km", "smap_9km"):

        group, grid = ("smap_m36", "M36") if source == "smap_36km" else ("smap_m09", "M09")
        res = "36 km" if source == "smap_36km" else "9 km"
        da = ard_group(home, group)["soil_moisture"]
        st = da["time"].values
        k = int(np.searchsorted(st, t))
        if k >= st.size or st[k] != t:
            raise EmptyState(f"No SMAP {res} overpass at {fmt_time(t)} UTC (SMAP passes near "
                             f"00 and 12 UTC over the TP); nearest: {_nearest_steps(st, t)}.")
        v = np.asarray(da.isel(time=k).values, dtype=np.float64)
        if not np.isfinite(v).any():
            raise EmptyState(f"SMAP {res} has no valid retrieval at {fmt_time(t)} UTC "
                             "(swath gap, frozen soil or quality flags).")
        out = np.asarray(regridder(grid, "TP10")(v), dtype=np.float32)
        out[~tp10_mask()] = np.nan
        return out
    if source == "era5land":
        era = ard_group(home, "era5")
        et = era["time"].values
        k = int(np.searchsorted(et, t))
        if k >= et.size or et[k] != t:
            raise EmptyState(f"ERA5-Land has no step at {fmt_time(t)} UTC.")
        out = np.asarray(era["swvl1"].isel(time=k).values, dtype=np.float32)
        out[~tp10_mask()] = np.nan
        return out
    if source == "truth":
        tr = truth_ds(home)["soil_moisture"]
        tt = tr["time"].values
        k = int(np.searchsorted(tt, t))
        if k >= tt.size or tt[k] != t:
            raise EmptyState(f"The hidden truth has no step at {fmt_time(t)} UTC.")
        return np.asarray(tr.isel(time=k).values, dtype=np.float32)
    raise EmptyState(f"Unknown map source {source!r}: choose one of {', '.join(SOURCES)}.")


def frame_da(home: str, source: str, model: str, time: str, compare_to: str = ""):
    """:func:`frame` as a CF DataArray (lat, lon) with name, units, label and time."""
    lat, lon = tp10_coords()
    m = compare_to if source == "compare" else model
    vals = frame(home, "product" if source == "compare" else source, m, time)
    name = m if source in ("product", "compare") else source
    label = f"{m} {SOURCES['product'][0]}" if source in ("product", "compare") else SOURCES[source][0]
    return xr.DataArray(vals, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name,
                        attrs=sm_attrs(label, time=fmt_time(parse_time(time)) + " UTC"))


@versioned_cache
def data_extent(home: str):
    """(lon0, lat0, lon1, lat1) of the cells with product values (one frame read), or None when
    they cover most of the TP box (then the whole box is shown)."""
    inv = inventory(home)
    if not inv.models:
        return None
    i = min(inv.times.size - 1, 4)
    try:
        v = frame(home, "product", inv.models[0], time_key(inv.times[i]))
    except EmptyState:
        return None
    ok = np.isfinite(v)
    if ok.sum() > 0.5 * tp10_mask().sum():
        return None
    lat, lon = tp10_coords()
    rows, cols = np.nonzero(ok)
    return (float(lon[cols.min()] - 0.05), float(lat[rows.min()] - 0.05),
            float(lon[cols.max()] + 0.05), float(lat[rows.max()] + 0.05))


# ------------------------------------------------------------------ stations
@versioned_cache
def station_table(home: str) -> pd.DataFrame:
    """The stations of the four networks, their TP10 cell and whether the validation has data.

    Columns: ``id`` (NETWORK/STATION), ``network``, ``label`` (network display name),
    ``station``, ``lat``, ``lon``, ``elevation``, ``row``, ``col``, ``in_tp_mask``,
    ``has_data`` (series in the validation results), ``n_insitu`` (in-situ values).
    """
    t = read_station_table()
    cells = station_cells("TP10", t)
    t["row"], t["col"], t["in_tp_mask"] = cells["row"].to_numpy(), cells["col"].to_numpy(), cells["in_tp_mask"].to_numpy()
    t["id"] = t["network"] + "/" + t["station"]
    t["label"] = t["network"].map(NETWORK_LABELS)
    counts = pd.Series(dtype=float)
    f = Path(home) / "validation" / "station_series.parquet"
    if f.exists():
        cols = pd.read_parquet(f, columns=["network", "station", "source"], filters=[("source", "==", "insitu")])
        counts = cols.groupby(["network", "station"]).size()
        counts.index = [f"{a}/{b}" for a, b in counts.index]
        present = pd.read_parquet(f, columns=["network", "station"]).drop_duplicates()
        have = set(present["network"] + "/" + present["station"])
    else:
        have = set()
    t["has_data"] = t["id"].isin(have)
    t["n_insitu"] = t["id"].map(counts).fillna(0).astype(int)
    keep = ["id", "network", "label", "station", "lat", "lon", "elevation", "row", "col", "in_tp_mask",
            "has_data", "n_insitu"]
    return t[keep].reset_index(drop=True)


@versioned_cache
def station_index(home: str) -> dict:
    """``{NETWORK/STATION: row dict}`` for fast lookups (a click must not filter a DataFrame)."""
    return {r["id"]: r for r in station_table(home).to_dict("records")}


def _series_file(home: str) -> Path:
    f = Path(home) / "validation" / "station_series.parquet"
    if not f.exists():
        raise EmptyState(f"No station series in {f.parent}: {validate_hint(home)}.")
    return f


def _wide(long: pd.DataFrame) -> pd.DataFrame:
    w = long.pivot_table(index="time", columns="source", values="value", aggfunc="mean")
    w.columns.name = None
    w.index = pd.DatetimeIndex(w.index, name="time")
    return w.sort_index()


@versioned_cache(max_items=256, policy="LRU")
def station_series(home: str, station_id: str, models: tuple = ()) -> pd.DataFrame:
    """One station's series at product steps, wide: columns ``insitu``, ``smap_l3_9km``,
    ``smap_l4``, ``era5land``, each model, ``precipitation_mm`` (mm per 3 h); index time (UTC).

    Models asked for that the validation did not cover are read from ``series.zarr`` (one
    chunk: the station's 10 x 10 cell tile). Raises :class:`EmptyState` when the station has
    no data in the period.
    """
    net, sta = station_id.split("/", 1) if "/" in station_id else ("", station_id)
    r = station_index(home).get(station_id)
    if r is None:
        raise EmptyState(f"Unknown station {station_id!r}: pick one on the map.")
    long = pd.read_parquet(_series_file(home), filters=[("network", "==", net), ("station", "==", sta)],
                           columns=["time", "source", "value"])
    inv = inventory(home)
    if long.empty:
        raise EmptyState(f"Station {sta} ({NETWORK_LABELS.get(net, net)}) has no data in the period "
                         f"{inv.period_text()}: the product does not cover it (outside the simulated "
                         "area or the TP mask) or the station has no valid record.")
    w = _wide(long)
    for m in models:
        if m not in w and m in inv.models and r["row"] >= 0:
            s = series_ds(home)[m].isel(lat=int(r["row"]), lon=int(r["col"]))
            w[m] = pd.Series(np.asarray(s.values, np.float32), index=pd.DatetimeIndex(s["time"].values)).reindex(w.index)
    return w


@versioned_cache(max_items=16, policy="LRU")
def network_series(home: str, network: str) -> pd.DataFrame:
    """The network mean series (mean over the network's stations at each step), wide."""
    long = pd.read_parquet(_series_file(home), filters=[("network", "==", network)],
                           columns=["station", "time", "source", "value"])
    if long.empty:
        raise EmptyState(f"No station of {NETWORK_LABELS.get(network, network)} has data in the period.")
    return _wide(long)


@versioned_cache
def table(home: str, name: str) -> pd.DataFrame:
    """A validation table (stations, networks, temporal, summary, period_summary)."""
    try:
        return results.table(name, Path(home) / "validation")
    except InputError as exc:
        raise EmptyState(f"No validation table {name!r}: {validate_hint(home)}. ({exc.what})") from exc


METRIC_COLUMNS = ["model", "R", "bias", "ubRMSE", "N", "rank_R", "rank_bias", "rank_ubRMSE", "status"]


def station_metrics(home: str, station_id: str, period: str = "test", models=None) -> pd.DataFrame:
    """Metrics of every product at one station (R, bias, ubRMSE, N, ranks), best R first."""
    st = table(home, "stations")
    sub = st[(st["id"] == station_id) & (st["period"] == period)]
    if sub.empty:
        raise EmptyState(f"No metrics for station {station_id} in the {period} period "
                         "(no matched pairs, or the station is outside the product).")
    return _metric_rows(sub, models)


def network_metrics(home: str, network: str, period: str = "test", models=None) -> pd.DataFrame:
    """Metrics of the network-mean series (``form = network_mean_series``)."""
    nt = table(home, "networks")
    sub = nt[(nt["network"] == network) & (nt["period"] == period) & (nt["form"] == "network_mean_series")]
    if sub.empty:
        raise EmptyState(f"No network metrics for {NETWORK_LABELS.get(network, network)} in the {period} period.")
    return _metric_rows(sub, models)


def _metric_rows(sub: pd.DataFrame, models) -> pd.DataFrame:
    cols = [c for c in METRIC_COLUMNS if c in sub]
    out = sub[cols].copy()
    if models:
        keep = set(models) | set(SERIES_REFERENCES) | {"smap_l3_9km"}
        out = out[out["model"].isin(keep)]
    if "N" in out:
        out["N"] = out["N"].fillna(0).astype(int)
    for c in ("rank_R", "rank_bias", "rank_ubRMSE"):
        if c in out:
            out[c] = out[c].astype("Int64")
    for c in ("R", "bias", "ubRMSE"):
        if c in out:
            out[c] = out[c].astype(float).round(3)
    return out.sort_values(["rank_R", "model"] if "rank_R" in out else ["model"], na_position="last").reset_index(drop=True)


@versioned_cache
def metric_maps(home: str, reference: str):
    """Per-cell metric maps against ``smap`` (M09 cells) or ``truth`` (TP10), loaded (small)."""
    try:
        with results.maps(reference, Path(home) / "validation") as ds:
            return ds.load()
    except InputError as exc:
        what = ("the hidden truth exists only on the virtual TP" if reference == "truth"
                else validate_hint(home))
        raise EmptyState(f"No metric maps against {reference}: {what}.") from exc


@versioned_cache
def scatter(home: str):
    try:
        with results.scatter(Path(home) / "validation") as ds:
            return ds.load()
    except InputError as exc:
        raise EmptyState(f"No scatter-density data: {validate_hint(home)}.") from exc


# ------------------------------------------------------------------ basemap
def naturalearth_dir() -> Path:
    return RESOURCES / "naturalearth"


BASEMAP_LAYERS = {
    "coastline": ("physical", "ne_50m_coastline"),
    "borders": ("cultural", "ne_50m_admin_0_boundary_lines_land"),
    "lakes": ("physical", "ne_50m_lakes"),
    "rivers": ("physical", "ne_50m_rivers_lake_centerlines"),
}
BBOX = (73.0, 25.0, 105.0, 40.0)


@lru_cache(maxsize=1)
def basemap_lines() -> dict:
    """Natural Earth lines clipped to the TP box, read directly with pyshp + shapely (no
    cartopy at render time): ``{layer: (N, 2) lon/lat array, lines separated by NaN rows}``,
    for coastline, borders, lakes, rivers and ``tp_outline`` (simplified to 0.01 degree)."""

    clip = box(BBOX[0] - 1, BBOX[1] - 1, BBOX[2] + 1, BBOX[3] + 1)
    root = naturalearth_dir() / "shapefiles" / "natural_earth"
    out = {}
    for name, (kind, stem) in BASEMAP_LAYERS.items():
        lines = []
        path = root / kind / f"{stem}.shp"
        if not path.exists():
            log.warning("basemap layer %s missing at %s", name, path)
            out[name] = lines
            continue
        with shapefile.Reader(str(path)) as r:
            for s in r.shapes():
                g = shape(s.__geo_interface__)
                if not g.intersects(clip):
                    continue
                lines.extend(_coords(g.intersection(clip).boundary if g.geom_type.endswith("Polygon")
                                     else g.intersection(clip)))
        out[name] = _join(lines)
    outline = tp_polygon().simplify(0.02, preserve_topology=True)
    polys = getattr(outline, "geoms", [outline])
    rings = [np.asarray(p.exterior.coords)[:, :2] for p in polys if p.area > 0.5]
    out["tp_outline"] = _join(rings)
    return out


def _join(lines: list) -> np.ndarray:
    """Lines as ONE (N, 2) array with NaN rows between them (a single fast path to draw)."""
    if not lines:
        return np.empty((0, 2))
    parts = []
    for a in lines:
        parts.extend([a, np.full((1, 2), np.nan)])
    return np.concatenate(parts[:-1])


def _coords(geom) -> list:
    if geom.is_empty:
        return []
    if hasattr(geom, "geoms"):
        return [a for g in geom.geoms for a in _coords(g)]
    if geom.geom_type in ("LineString", "LinearRing"):
        return [np.asarray(geom.coords)[:, :2]]
    if geom.geom_type == "Polygon":
        return _coords(geom.exterior) + [a for i in geom.interiors for a in _coords(i)]
    return []


def warm(home: str | None = None) -> None:
    """Fill the caches a first page needs (used by ``panel serve --warm`` and the benchmark)."""
    home = home or current_home()
    basemap_lines()
    inv = inventory(home)
    try:
        station_table(home)
    except Exception as exc:  # noqa: BLE001 - warming must never stop a server
        log.warning("warming the station table failed: %s", exc)
    if inv.models and inv.has_archive:
        try:
            frame(home, "product", inv.models[0], time_key(inv.times[0]))
        except EmptyState:
            pass
