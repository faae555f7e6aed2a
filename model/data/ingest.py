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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

STEP = np.timedelta64(3, "h")


@dataclass
class IngestReport:
    """What was read, what was skipped and why."""

    read: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    emptied: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add_read(self, kind: str, n: int = 1):
        self.read[kind] = self.read.get(kind, 0) + n

    def skip(self, path, reason: str):
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def summary(self) -> str:
        lines = ["ingest summary:"]
        for k, n in self.read.items():
            lines.append(f"  read {n:6d} {k}")
        if self.emptied:
            lines.append(f"  {len(self.emptied)} inputs left empty by the quality policy:")
            lines += [f"    {p}: {r}" for p, r in self.emptied[:20]]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unreadable inputs:")
            lines += [f"    {p}: {r}" for p, r in self.skipped[:50]]
            if len(self.skipped) > 50:
                lines.append(f"    ... and {len(self.skipped) - 50} more")
        else:
            lines.append("  skipped nothing")
        for k, s in self.seconds.items():
            lines.append(f"  {k}: {s:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"read": self.read, "skipped": self.skipped, "emptied": self.emptied,
                "seconds": self.seconds}


def nearest_step(times) -> np.ndarray:
    """Nearest 3-hourly product step (00, 03, ..., 21 UTC) of each time (NaT stays NaT)."""
    t = np.asarray(times, dtype="datetime64[ns]")
    out = np.full(t.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = ~np.isnat(t)
    step_ns = np.int64(3 * 3600 * 10**9)
    iv = t[ok].astype(np.int64)
    out[ok] = ((iv + step_ns // 2) // step_ns * step_ns).astype("datetime64[ns]")
    return out


def smap_l3_cube(files, product: str | None = None, policy=None, report: IngestReport | None = None):
    """Daily SMAP L3 files -> Dataset (time, y, x) at product steps.

    Each retrieval is placed at the 3-hourly step nearest to its own observation time
    (``obs_time`` is kept). Where two retrievals of one cell fall on one step, the one
    observed closer to the step wins.

    Returns
    -------
    (xarray.Dataset, IngestReport)
        ``soil_moisture`` (m3 m-3, float32), ``obs_time`` (datetime64), ``overpass``
        (0 = AM, 1 = PM, -1 none) on dims (time, y, x).
    """
    import xarray as xr

    from .smap import QualityPolicy, read_smap_l3

    report = report or IngestReport()
    policy = policy or QualityPolicy()
    layers: dict[np.datetime64, dict] = {}
    grid_ds = None
    t0 = _time.perf_counter()
    for f in files:
        try:
            ds = read_smap_l3(f, policy=policy)
        except InputError as exc:
            report.skip(f, str(exc.what if hasattr(exc, "what") else exc))
            continue
        if product and ds.attrs.get("product") not in (product, None):
            report.skip(f, f"is {ds.attrs.get('product')}, expected {product}")
            continue
        if grid_ds is None:
            grid_ds = ds
        elif ds.sizes["y"] != grid_ds.sizes["y"] or ds.sizes["x"] != grid_ds.sizes["x"]:
            report.skip(f, "grid differs from the first file's")
            continue
        sm = ds["soil_moisture"].values
        ot = ds["obs_time"].values.astype("datetime64[ns]")
        if not np.isfinite(sm).any():
            report.emptied.append((str(f), "no valid retrieval after the quality policy"))
        for k in range(sm.shape[0]):
            steps = nearest_step(ot[k])
            valid = np.isfinite(sm[k]) & ~np.isnat(steps)
            for s in np.unique(steps[valid]):
                sel = valid & (steps == s)
                layer = layers.get(s)
                if layer is None:
                    layer = {"sm": np.full(sm.shape[1:], np.nan, np.float32),
                             "ot": np.full(sm.shape[1:], np.datetime64("NaT"), "datetime64[ns]"),
                             "op": np.full(sm.shape[1:], -1, np.int8)}
                    layers[s] = layer
                dt_new = np.abs(ot[k] - s)
                old_ok = ~np.isnat(layer["ot"])
                dt_old = np.where(old_ok, np.abs(layer["ot"] - s), np.timedelta64(10**18, "ns"))
                take = sel & (dt_new < dt_old)
                layer["sm"][take] = sm[k][take]
                layer["ot"][take] = ot[k][take]
                layer["op"][take] = k
        report.add_read(f"SMAP L3 files ({ds.attrs.get('product', '?')})")
    report.seconds["SMAP L3"] = report.seconds.get("SMAP L3", 0) + _time.perf_counter() - t0
    if grid_ds is None:
        raise InputError("no SMAP L3 file could be read", "see the skipped files listed above")
    times = np.array(sorted(layers), dtype="datetime64[ns]")
    coords = {k: v for k, v in grid_ds.coords.items() if "overpass" not in v.dims}
    cube = xr.Dataset(
        {
            "soil_moisture": (("time", "y", "x"), np.stack([layers[t]["sm"] for t in times]) if len(times) else
                              np.zeros((0, grid_ds.sizes["y"], grid_ds.sizes["x"]), np.float32),
                              grid_ds["soil_moisture"].attrs),
            "obs_time": (("time", "y", "x"), np.stack([layers[t]["ot"] for t in times]) if len(times) else
                         np.zeros((0, grid_ds.sizes["y"], grid_ds.sizes["x"]), "datetime64[ns]"),
                         {"long_name": "observation time of the retrieval (UTC)"}),
            "overpass": (("time", "y", "x"), np.stack([layers[t]["op"] for t in times]) if len(times) else
                         np.zeros((0, grid_ds.sizes["y"], grid_ds.sizes["x"]), np.int8),
                         {"long_name": "overpass", "flag_values": "-1 0 1", "flag_meanings": "none AM PM"}),
        },
        coords={"time": ("time", times, {"long_name": "nearest 3-hourly product step (UTC)"}), **coords},
        attrs={k: v for k, v in grid_ds.attrs.items() if k in ("product", "quality_policy")},
    )
    cube.attrs["source_files"] = len(list(files)) if not isinstance(files, list) else len(files)
    return cube, report


def smap_l4_cube(files, report: IngestReport | None = None):
    """SPL4SMGP 3-hourly files -> Dataset (time, y, x) on M09 (bad files skipped and reported).

    The L4 time stamps (centre of the 3-hourly window, e.g. 01:30) are kept as ``obs_time``;
    ``time`` is the product step that ends the window (03:00 for 00:00-03:00).
    """
    import xarray as xr

    from .smap import read_smap_l4

    report = report or IngestReport()
    parts = []
    for f in files:
        try:
            parts.append(read_smap_l4(f))
            report.add_read("SMAP L4 files")
        except InputError as exc:
            report.skip(f, str(exc))
    if not parts:
        raise InputError("no SMAP L4 file could be read", "see the skipped files listed above")
    ds = xr.concat(parts, dim="time").sortby("time")
    centre = ds["time"].values.astype("datetime64[ns]")
    step = nearest_step(centre + np.timedelta64(90, "m"))
    ds = ds.assign_coords(obs_time=("time", centre), time=("time", step))
    _, idx = np.unique(ds["time"].values, return_index=True)
    return ds.isel(time=np.sort(idx))


def era5_cube_files(files, report: IngestReport, start=None, end=None):
    """Yield 3-hourly ERA5-Land Datasets on TP10, one per input file, in time order.

    Each file is read together with the previous one, so that de-accumulation and the
    (t-3h, t] bins at the file's first steps see the hours before them.
    """
    from .era5 import read_era5, regrid_to_tp10, to_3hourly

    prev = None
    seen_end = None
    for f in files:
        t0 = _time.perf_counter()
        try:
            paths = [str(prev), str(f)] if prev is not None else [str(f)]
            try:
                hourly = read_era5(paths, bbox=None)
            except InputError:
                if prev is None:
                    raise
                hourly = read_era5([str(f)], bbox=None)  # the previous file was the bad one
            ds3 = to_3hourly(hourly)
            if seen_end is not None:
                ds3 = ds3.sel(time=slice(seen_end + np.timedelta64(1, "ns"), None))
            ds3 = ds3.dropna("time", how="all", subset=[v for v in ds3.data_vars][:1])
            if start is not None:
                ds3 = ds3.sel(time=slice(np.datetime64(start), None))
            if end is not None:
                ds3 = ds3.sel(time=slice(None, np.datetime64(end)))
            ds3 = regrid_to_tp10(ds3)
            if ds3.sizes["time"]:
                seen_end = ds3["time"].values[-1]
            report.add_read("ERA5-Land files")
            report.seconds["ERA5-Land"] = report.seconds.get("ERA5-Land", 0) + _time.perf_counter() - t0
            prev = f
            yield ds3
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
    return data, pd.DataFrame(meta)


def ingest(catalog: str | Path | None = None, out: str | Path | None = None, start=None, end=None,
           progress: bool = True) -> tuple[Path, IngestReport]:
    """Read every raw input of a catalog into ``ard.zarr`` (atomically) and report.

    Parameters
    ----------
    catalog : the inputs catalog (default: the demo world's, or ``$SMDS_CATALOG``).
    out : the store to write (default: ``ard.zarr`` beside the catalog).
    start, end : optional period to keep (ISO dates).
    """
    import xarray as xr
    from tqdm.auto import tqdm

    from ..io import atomic_path
    from .catalog import default_catalog_path, entry_files, has_entry, open_catalog, read_entry
    from .static import static_layers

    cat_path = Path(catalog) if catalog else default_catalog_path()
    cat = open_catalog(cat_path)
    out = Path(out) if out else cat_path.parent / "ard.zarr"
    report = IngestReport()
    t_all = _time.perf_counter()
    enc2 = {"zarr_format": 2, "consolidated": True}
    with atomic_path(out) as tmp:
        # static layers
        static = static_layers()
        if has_entry(cat, "static_extra"):
            try:
                extra = read_entry(cat, "static_extra").load()
                extra = extra.drop_vars([v for v in extra.data_vars if v in static], errors="ignore")
                static = xr.merge([static, extra.assign_coords(lat=static.lat, lon=static.lon)],
                                  compat="override", join="override")
                report.add_read("static layer files")
            except InputError as exc:
                report.skip("static_extra", str(exc))
        static.to_zarr(tmp, group="static", mode="w", **enc2)
        # ERA5-Land, file by file
        files = entry_files(cat, "era5land")
        first = True
        for ds3 in tqdm(era5_cube_files(files, report, start, end), total=len(files),
                        desc="ERA5-Land", disable=not progress, unit="file"):
            if not ds3.sizes["time"]:
                continue
            ds3 = ds3.chunk({"time": 8, "lat": 150, "lon": 320}).astype("float32")
            for v in ds3.data_vars:
                ds3[v].encoding = {}
            if first:
                ds3.to_zarr(tmp, group="era5", mode="w", **enc2)
                first = False
            else:
                ds3.to_zarr(tmp, group="era5", append_dim="time", align_chunks=True, **enc2)
        if first:
            raise InputError("no ERA5-Land file could be read", "see the skipped files above")
        # SMAP L3 (36 and 9 km) and L4
        for entry, group in (("smap_l3_36km", "smap_m36"), ("smap_l3_9km", "smap_m09")):
            if not has_entry(cat, entry):
                continue
            cube, _ = smap_l3_cube(tqdm(entry_files(cat, entry), desc=entry, disable=not progress,
                                        unit="file"), report=report)
            if start is not None or end is not None:
                cube = cube.sel(time=slice(start and np.datetime64(start), end and np.datetime64(end)))
            cube.to_zarr(tmp, group=group, mode="w", **enc2)
        if has_entry(cat, "smap_l4"):
            l4 = smap_l4_cube(tqdm(entry_files(cat, "smap_l4"), desc="smap_l4", disable=not progress,
                                   unit="file"), report=report)
            l4.to_zarr(tmp, group="smap_l4", mode="w", **enc2)
        # stations
        if has_entry(cat, "ismn"):
            t0 = _time.perf_counter()
            series = read_entry(cat, "ismn")
            for s in series:
                if s.status != "ok":
                    report.emptied.append((f"{s.network}/{s.station}", s.status))
            data, meta = stations_frame(series)
            data.to_parquet(tmp / "stations.parquet")
            meta.to_parquet(tmp / "stations_meta.parquet")
            report.add_read("ISMN station series", len(series))
            report.seconds["ISMN"] = _time.perf_counter() - t0
        report.seconds["total"] = _time.perf_counter() - t_all
        era5 = xr.open_zarr(tmp, group="era5", consolidated=True)
        manifest = {"catalog": str(cat_path), "start": str(era5.time.values[0]),
                    "end": str(era5.time.values[-1]), "report": report.to_dict()}
        world_json = cat_path.parent / "world.json"
        if world_json.exists():
            w = json.loads(world_json.read_text())
            manifest["world"] = {k: w.get(k) for k in ("size", "seed", "periods") if k in w}
        (tmp / ".complete").write_text(json.dumps(manifest, indent=1, default=str))
    return out, report


def register(sub):
    p = sub.add_parser("ingest", help="read a catalog's raw inputs into the analysis-ready store")
    p.add_argument("--catalog", help="inputs catalog (default: the demo world's, or $SMDS_CATALOG)")
    p.add_argument("--out", help="store to write (default: ard.zarr beside the catalog)")
    p.add_argument("--start", help="first date to keep (ISO)")
    p.add_argument("--end", help="last date to keep (ISO)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    out, report = ingest(args.catalog, args.out, args.start, args.end)
    print(report.summary())
    print(f"wrote {out}")
    return 0
