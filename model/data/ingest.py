"""Ingest: raw inputs (through the catalog) -> the analysis-ready store ``ard.zarr``.

``ard.zarr`` (Zarr format 2, consolidated metadata: the most widely readable layout) holds
groups ``era5`` (3-hourly ERA5-Land on TP10), ``smap_m36`` and ``smap_m09`` (SMAP L3
retrievals placed at the nearest 3-hourly product step, with each cell's own observation
time), ``smap_l4`` (L4 on M09), ``static`` (TP10 static layers), and ``stations.parquet``.

Batch ingestion goes on past a bad file: each skipped file is listed with its reason in the
:class:`IngestReport` printed at the end. Every output is written to a temporary path and
renamed, so an interrupted run never leaves a store that looks complete.
"""

from __future__ import annotations

import json
import logging
import time as _time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from ..errors import CoverageError, InputError
from ..grids.core import TP_BBOX
from ..io import atomic_path
from .catalog import (
    default_ard_path,
    default_catalog_path,
    entry_files,
    entry_pattern,
    has_entry,
    open_catalog,
    read_entry,
)
from .cubes import (  # noqa: F401 - re-exported: ingest's public names
    SOURCES,
    STEP,
    IngestReport,
    SourceCheck,
    nearest_step,
    smap_l3_cube,
    smap_l4_cube,
    sources_table,
)
from .era5 import read_era5, regrid_to_tp10
from .era5_time import to_3hourly
from .ismn_sources import _collect_sources, _scan
from .smap import check_smap_file
from .static import static_layers

log = logging.getLogger(__name__)


def _read_hourly(paths, bbox):
    """ERA5-Land hourly, lazily (Dask), cropped to ``bbox`` when the files contain it."""
    try:
        return read_era5([str(p) for p in paths], bbox=bbox, chunks={"time": 24})
    except CoverageError:
        return read_era5([str(p) for p in paths], bbox=None, chunks={"time": 24})


#: days of 3-hourly steps made per piece when streaming ERA5-Land (bounds the memory)
ERA5_PIECE_DAYS = 5


_STEP_NS = 3 * 3600 * 10**9


def _ceil_step(t: np.datetime64) -> np.datetime64:
    """The first product step at or after ``t``."""
    v = int(np.datetime64(t, "ns").astype(np.int64))
    return np.datetime64(-(-v // _STEP_NS) * _STEP_NS, "ns")


def _floor_step(t: np.datetime64) -> np.datetime64:
    """The last product step at or before ``t``."""
    v = int(np.datetime64(t, "ns").astype(np.int64))
    return np.datetime64(v // _STEP_NS * _STEP_NS, "ns")


def era5_cube_files(files, report: IngestReport, start=None, end=None, dropped: dict | None = None):
    """Yield 3-hourly ERA5-Land Datasets on TP10, piece by piece, in time order.

    Streams: each file is opened lazily together with the previous one (de-accumulation and
    the (t-3h, t] bins at the file's first steps need the hours before them), and the steps
    are made :data:`ERA5_PIECE_DAYS` days at a time, so memory holds a few days of hourly
    data whatever the size of the files. Steps whose bin cannot be complete are not made and
    are counted in ``dropped`` (``{"n", "times"}``), which ingest reports once: the record's
    first step when the first sample is on it (e.g. 00 UTC: the bin needs 22 and 23 UTC of
    the day before), the step after the last sample, and steps inside gaps.
    """
    dropped = dropped if dropped is not None else {"n": 0, "times": []}
    files = list(files)

    def drop(times, why):
        dropped["n"] += len(times)
        dropped["times"] += [f"{str(t)[:16].replace('T', ' ')} ({why})" for t in times[:3]]

    prev = None
    seen_end = None
    for k, f in enumerate(files):
        t0 = _time.perf_counter()
        try:
            paths = [prev, f] if prev is not None else [f]
            try:
                hourly = _read_hourly(paths, TP_BBOX)
            except InputError:
                if prev is None:
                    raise
                hourly = _read_hourly([f], TP_BBOX)  # the previous file was the bad one
            times = hourly["time"].values
            if seen_end is None:
                e0 = _ceil_step(times[0])
                if times[0] > e0 - np.timedelta64(2, "h") and times.size > 1:
                    drop([e0], "first step: its bin needs the hours before the first sample")
                    e0 = e0 + STEP
            else:
                e0 = seen_end + STEP
            stop = _floor_step(times[-1])
            if k == len(files) - 1 and _ceil_step(times[-1]) != stop:
                drop([_ceil_step(times[-1])], "after the last sample")
            while e0 <= stop:
                e1 = min(e0 + np.timedelta64(ERA5_PIECE_DAYS, "D") - STEP, stop)
                sub = hourly.sel(time=slice(e0 - np.timedelta64(2, "h"), e1)).load()
                ds3 = to_3hourly(sub).sel(time=slice(e0, e1))
                del sub
                first = [v for v in ds3.data_vars][:1]
                kept = ds3.dropna("time", how="all", subset=first)
                if kept.sizes["time"] < ds3.sizes["time"]:
                    drop(np.setdiff1d(ds3["time"].values, kept["time"].values), "gap in the hourly record")
                seen_end = e1
                e0 = e1 + STEP
                if start is not None:
                    kept = kept.sel(time=slice(np.datetime64(start), None))
                if end is not None:
                    kept = kept.sel(time=slice(None, np.datetime64(end)))
                yield regrid_to_tp10(kept)
            report.add_read("ERA5-Land files")
            report.seconds["ERA5-Land"] = report.seconds.get("ERA5-Land", 0) + _time.perf_counter() - t0
            prev = f
        except InputError as exc:
            report.skip(f, str(exc))


def stations_frame(series_list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ISMN StationSeries -> (long data table, station metadata table)."""
    rows, meta = [], []
    for s in series_list:
        meta.append({"network": s.network, "station": s.station, "lat": s.lat, "lon": s.lon,
                     "elevation": s.elevation, "depth_from": s.depth_from, "depth_to": s.depth_to,
                     "sensor": s.sensor, "n_raw": s.n_raw, "n_kept": s.n_kept, "status": s.status})
        if s.data is None or len(s.data) == 0:
            continue
        d = s.data.copy()
        d.index.name = "time"
        d = d.reset_index()
        d.insert(0, "station", s.station)
        d.insert(0, "network", s.network)
        rows.append(d)
    data = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["network", "station", "time", "soil_moisture", "flag"])
    if "time" in data:
        data["time"] = pd.to_datetime(data["time"], utc=True).dt.tz_convert(None)
    cols = ["network", "station", "lat", "lon", "elevation", "depth_from", "depth_to", "sensor",
            "n_raw", "n_kept", "status"]
    return data, pd.DataFrame(meta, columns=cols)


def _files_of(cat, entry: str, row: SourceCheck) -> list[Path]:
    """The files of an entry; an entry whose path matches nothing gives [] (the check says so)."""
    row.pattern = entry_pattern(cat, entry) or ""
    try:
        return entry_files(cat, entry)
    except InputError:
        return []


def _period(times) -> tuple[str, str] | None:
    t = [np.datetime64(x, "s") for x in times if x is not None and not np.isnat(np.datetime64(x, "s"))]
    if not t:
        return None
    return str(min(t))[:16].replace("T", " "), str(max(t))[:16].replace("T", " ")


def _check_era5(files, row: SourceCheck):
    times = []
    for f in files:
        try:
            ds = read_era5([str(f)], chunks={"time": 24})   # lazy: metadata and coordinates only
            t = ds["time"].values
            if t.size:
                times += [t[0], t[-1]]
            row.ok_files.append(f)
        except InputError as exc:
            row.skipped.append((str(f), str(exc)))
    row.period = _period(times)


def _check_smap(files, row: SourceCheck, product: str):
    times, missing = [], {}
    for f in files:
        try:
            info = check_smap_file(f, wanted=(product,))
        except InputError as exc:
            row.skipped.append((str(f), str(exc)))
            continue
        row.ok_files.append(f)
        if info["time"] is not None:
            times.append(info["time"])
        for m in info["missing"]:
            missing[m] = missing.get(m, 0) + 1
    row.period = _period(times)
    if product == "SPL3SMP_E" or product == "SPL3SMP":
        row.period = (row.period[0][:10], row.period[1][:10]) if row.period else None
    for m, n in missing.items():
        row.notes.append(f"{n} of {len(row.ok_files)} files have no {m}: read as 'no information' "
                         f"(nothing rejected by that rule)")


def _check_ismn(path: Path, row: SourceCheck):
    row.unit = "station files"
    try:
        _kind, sources = _collect_sources(path)
    except InputError as exc:
        row.skipped.append((str(path), str(exc)))
        return
    row.found = len(sources)
    stations = set()
    for src in sources:
        sc = _scan(src, clean=True)
        if sc.header_error:
            row.skipped.append((src.origin, sc.header_error))
            continue
        row.ok_files.append(src.origin)
        stations.add((sc.network, sc.station))
        if sc.bad_lines:
            row.notes.append(f"{src.origin}: {len(sc.bad_lines)} malformed line(s) will be left out")
    nets = sorted({n for n, _ in stations})
    if stations:
        row.notes.append(f"{len(stations)} stations in {len(nets)} networks ({', '.join(nets)})")


def check_inputs(cat) -> list[SourceCheck]:
    """The fast first pass over every input of an inputs catalog (no heavy work).

    Per source: the files found, those that open and are of the right product, those
    skipped and why, the period covered, optional quality fields missing. Entries that the
    catalog does not list, or whose path matches nothing, are "found 0".
    """
    rows = []
    for entry, (label, required, _) in SOURCES.items():
        row = SourceCheck(entry, label, required)
        rows.append(row)
        if not has_entry(cat, entry):
            row.pattern = "(not in the catalog)"
            continue
        if entry == "ismn":
            files = _files_of(cat, entry, row)
            if files:
                _check_ismn(files[0], row)
            row.read = len(row.ok_files)
            continue
        files = _files_of(cat, entry, row)
        row.found = len(files)
        if entry == "era5land":
            _check_era5(files, row)
        elif entry in ("smap_l3_36km", "smap_l3_9km"):
            _check_smap(files, row, "SPL3SMP" if entry == "smap_l3_36km" else "SPL3SMP_E")
        elif entry == "smap_l4":
            _check_smap(files, row, "SPL4SMGP")
        elif entry == "static_extra":
            for f in files:
                try:
                    with xr.open_dataset(f) as ds:
                        if not {"lat", "lon"} <= set(ds.dims):
                            raise InputError(f"dims {tuple(ds.dims)} are not (lat, lon)",
                                             "give soil/land-cover layers on the TP10 lat/lon grid", f)
                    row.ok_files.append(f)
                except (InputError, OSError, ValueError) as exc:
                    row.skipped.append((str(f), str(exc)))
        row.read = len(row.ok_files)
    return rows


def _fail_early(rows: list[SourceCheck]) -> None:
    """Required sources with nothing usable, or no common period: stop before heavy work."""
    problems = []
    for r in rows:
        if r.required and not r.usable:
            where = r.pattern or "(no catalog entry)"
            why = f"{r.found} files found" + (f", {len(r.skipped)} unreadable" if r.skipped else "")
            problems.append(f"{r.label}: nothing usable at {where} ({why})")
    if not problems:
        era5 = next(r for r in rows if r.entry == "era5land")
        l3 = next(r for r in rows if r.entry == "smap_l3_9km")
        if era5.period and l3.period and (l3.period[1][:10] < era5.period[0][:10]
                                          or l3.period[0][:10] > era5.period[1][:10]):
            problems.append(f"SMAP L3 ({l3.period[0]} .. {l3.period[1]}) and ERA5-Land "
                            f"({era5.period[0]} .. {era5.period[1]}) do not overlap in time")
    if problems:
        raise InputError("; ".join(problems),
                         "put the downloads where the catalog points (see the table above and "
                         "`sm-downscale init --inputs FOLDER`), or fix the catalog's paths; nothing "
                         "was written")


def default_periods(start: str, end: str, history_days: int = 28) -> dict:
    """Training and test periods for real data (no world to define them).

    Two or more calendar years: the last year is the test period, the rest training (the
    paper: 2016-2017 train, 2018 test). Shorter records: the last third is the test period.
    Training starts after ``history_days`` when the record is long enough for it (so every
    training window has its full history; shorter records start at once and the padded
    windows are counted in the training summary).
    """
    s, e = np.datetime64(start[:10], "D"), np.datetime64(end[:10], "D")
    days = int((e - s).astype(int)) + 1
    first_year, last_year = int(str(s)[:4]), int(str(e)[:4])
    if last_year - first_year >= 2 or (last_year > first_year and str(s)[5:10] == "01-01"):
        test0 = np.datetime64(f"{last_year}-01-01", "D")
    else:
        test0 = s + np.timedelta64(max(1, days - days // 3), "D")
    train0 = s + np.timedelta64(history_days, "D") if (test0 - s).astype(int) > 2 * history_days else s
    return {"train": [str(train0), str(test0 - np.timedelta64(1, "D"))], "test": [str(test0), str(e)],
            "how": ("last calendar year = test" if str(test0)[5:] == "01-01" and test0 != s
                    else "last third of the record = test")
                   + (f"; training starts {history_days} days in, so windows have full history"
                      if train0 != s else "; record too short to skip the history: early windows are padded")}


def ingest(catalog: str | Path | None = None, out: str | Path | None = None, start=None, end=None,
           progress: bool = True, echo=None) -> tuple[Path, IngestReport]:
    """Read every raw input of a catalog into ``ard.zarr`` (atomically) and report.

    First a fast check pass over every input (:func:`check_inputs`), printed as one table
    through ``echo``; a required source without usable files, or SMAP and ERA5-Land periods
    that do not overlap, stop here with what to do, before any heavy work. Optional sources
    (SMAP L4, the 36 km L3, ISMN, static extras) may be absent.

    Parameters
    ----------
    catalog : the inputs catalog (default: the project's, ``$SMDS_CATALOG``, or the demo world's).
    out : the store to write (default: the project's ``ard.zarr``, else ``ard.zarr`` beside
        the catalog).
    start, end : optional period to keep (ISO dates).
    echo : callable taking a string (e.g. ``print``) for the check table, or None.
    """
    cat_path = Path(catalog) if catalog else default_catalog_path()
    cat = open_catalog(cat_path)
    out = Path(out) if out else default_ard_path(cat_path)
    report = IngestReport()
    t_all = _time.perf_counter()
    rows = check_inputs(cat)
    report.sources = rows
    report.seconds["check pass"] = _time.perf_counter() - t_all
    if echo is not None:
        echo("inputs (fast check before the heavy work):\n" + sources_table(rows))
    _fail_early(rows)
    by = {r.entry: r for r in rows}
    with atomic_path(out) as tmp:
        _ingest_static(cat, by["static_extra"], report, tmp)
        # SMAP L3 (36 and 9 km) first: quick, and a failure here costs no ERA5-Land work
        _ingest_smap(by, report, tmp, start, end, progress)
        _ingest_stations(cat, by["ismn"], report, tmp)
        # ERA5-Land, file by file (the heavy part, last)
        _ingest_era5(by["era5land"], report, tmp, start, end, progress)
        report.seconds["total"] = _time.perf_counter() - t_all
        manifest = _ard_manifest(tmp, cat_path, report)
        (tmp / ".complete").write_text(json.dumps(manifest, indent=1, default=str))
    return out, report


_ENC2 = {"zarr_format": 2, "consolidated": True}


def _ingest_static(cat, row: SourceCheck, report: IngestReport, tmp: Path) -> None:
    """The static layers (the packaged DEM's), with the catalog's extra layers merged in."""
    static = static_layers()
    if row.ok_files:
        try:
            extra = read_entry(cat, "static_extra").load()
            extra = extra.drop_vars([v for v in extra.data_vars if v in static], errors="ignore")
            static = xr.merge([static, extra.assign_coords(lat=static.lat, lon=static.lon)],
                              compat="override", join="override")
            report.add_read("static layer files")
        except InputError as exc:
            row.skipped.append(("static_extra", str(exc)))
            row.ok_files = []
            row.read = 0
    static.to_zarr(tmp, group="static", mode="w", **_ENC2)


def _ingest_smap(by: dict, report: IngestReport, tmp: Path, start, end, progress: bool) -> None:
    """SMAP L3 (9 and 36 km) cubes, then the optional L4 (left out, with a note, if unreadable)."""
    for entry, group in (("smap_l3_9km", "smap_m09"), ("smap_l3_36km", "smap_m36")):
        row = by[entry]
        if not row.ok_files:
            continue
        n_skip = len(report.skipped)
        cube, _ = smap_l3_cube(tqdm(row.ok_files, desc=entry, disable=not progress, unit="file"),
                               report=report)
        row.skipped += report.skipped[n_skip:]
        row.read = len(row.ok_files) - (len(report.skipped) - n_skip)
        if start is not None or end is not None:
            cube = cube.sel(time=slice(start and np.datetime64(start), end and np.datetime64(end)))
        cube.to_zarr(tmp, group=group, mode="w", **_ENC2)
    if by["smap_l4"].ok_files:
        row = by["smap_l4"]
        n_skip = len(report.skipped)
        try:
            l4 = smap_l4_cube(tqdm(row.ok_files, desc="smap_l4", disable=not progress, unit="file"),
                              report=report)
            if start is not None or end is not None:
                l4 = l4.sel(time=slice(start and np.datetime64(start), end and np.datetime64(end)))
            l4.to_zarr(tmp, group="smap_l4", mode="w", **_ENC2)
        except InputError as exc:   # optional: say so and go on
            report.note(f"SMAP L4 left out: {exc}")
        row.skipped += report.skipped[n_skip:]
        row.read = len(row.ok_files) - (len(report.skipped) - n_skip)


def _ingest_stations(cat, row: SourceCheck, report: IngestReport, tmp: Path) -> None:
    """Stations (optional): every unreadable file is skipped and counted, never read; no
    stations give empty tables, so validation runs (and says there are none)."""
    if not row.ok_files:
        data, meta = stations_frame([])
        data.to_parquet(tmp / "stations.parquet")
        meta.to_parquet(tmp / "stations_meta.parquet")
        return
    t0 = _time.perf_counter()
    series = read_entry(cat, "ismn", errors="skip")
    ok = [s for s in series if s.status != "unreadable"]
    for s in series:
        if s.status == "unreadable":
            why = "; ".join(s.notes) or "unreadable"
            if (s.source, why) not in row.skipped and not any(p == s.source for p, _ in row.skipped):
                row.skipped.append((s.source, why))
        elif s.status != "ok":
            report.emptied.append((f"{s.network}/{s.station}", s.status))
    data, meta = stations_frame(ok)
    data.to_parquet(tmp / "stations.parquet")
    meta.to_parquet(tmp / "stations_meta.parquet")
    row.read = len(row.ok_files) - sum(1 for s in series if s.status == "unreadable"
                                       and s.source in row.ok_files)
    n_ok = sum(1 for s in ok if s.status == "ok")
    row.notes.append(f"{n_ok} station series with soil moisture in 0-0.05 m read; "
                     f"{len(ok) - n_ok} empty (listed below)")
    report.add_read("ISMN station series", n_ok)
    report.seconds["ISMN"] = _time.perf_counter() - t0


def _ingest_era5(row: SourceCheck, report: IngestReport, tmp: Path, start, end, progress: bool) -> None:
    """ERA5-Land to 3-hourly TP10, file by file, appended to the ``era5`` group."""
    dropped = {"n": 0, "times": []}
    n_skip = len(report.skipped)
    first = True
    for ds3 in tqdm(era5_cube_files(row.ok_files, report, start, end, dropped),
                    desc="ERA5-Land", disable=not progress, unit="piece"):
        if not ds3.sizes["time"]:
            continue
        ds3 = ds3.chunk({"time": 8, "lat": 150, "lon": 320}).astype("float32")
        for v in ds3.data_vars:
            ds3[v].encoding = {}
        if first:
            ds3.to_zarr(tmp, group="era5", mode="w", **_ENC2)
            first = False
        else:
            ds3.to_zarr(tmp, group="era5", append_dim="time", align_chunks=True, **_ENC2)
    row.skipped += report.skipped[n_skip:]
    row.read = len(row.ok_files) - (len(report.skipped) - n_skip)
    if first:
        raise InputError("no ERA5-Land file could be read", "see the skipped files above")
    if dropped["n"]:
        report.note(f"ERA5-Land: {dropped['n']} 3-hourly step(s) not made, their bin (t-3h, t] lacking "
                    f"hourly samples: {'; '.join(dropped['times'][:4])} (UTC)")


def _ard_manifest(tmp: Path, cat_path: Path, report: IngestReport) -> dict:
    """The store's ``.complete`` manifest: period, report, groups and the world (its size,
    seed and periods; for real data the default periods, noted in the report)."""
    era5 = xr.open_zarr(tmp, group="era5", consolidated=True)
    manifest = {"catalog": str(cat_path), "start": str(era5.time.values[0]),
                "end": str(era5.time.values[-1]), "report": report.to_dict(),
                "groups": sorted(p.name for p in tmp.iterdir() if p.is_dir())}
    world_json = cat_path.parent / "world.json"
    if world_json.exists():
        w = json.loads(world_json.read_text())
        manifest["world"] = {k: w.get(k) for k in ("size", "seed", "periods") if k in w}
    else:
        per = default_periods(manifest["start"], manifest["end"])
        manifest["world"] = {"size": "real", "periods": {"train": per["train"], "test": per["test"]},
                             "periods_how": per["how"]}
        report.note(f"periods (real data): training {per['train'][0]} .. {per['train'][1]}, "
                    f"test {per['test'][0]} .. {per['test'][1]} ({per['how']})")
        manifest["report"] = report.to_dict()
    return manifest


def register(sub):
    p = sub.add_parser("ingest", help="read a catalog's raw inputs into the analysis-ready store")
    p.add_argument("--catalog", help="inputs catalog (default: the project's inputs.yaml when run "
                                     "inside a folder made by `sm-downscale init`, else $SMDS_CATALOG, "
                                     "else the demo world's)")
    p.add_argument("--out", help="store to write (default: the project's ard.zarr, else ard.zarr "
                                 "beside the catalog)")
    p.add_argument("--start", help="first date to keep (ISO; default: the first ERA5-Land step)")
    p.add_argument("--end", help="last date to keep (ISO; default: the last ERA5-Land step)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    out, report = ingest(args.catalog, args.out, args.start, args.end,
                         echo=lambda s: print(s, flush=True))
    print(report.summary())
    print(f"wrote {out}")
    return 0
