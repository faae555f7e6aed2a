"""What ingest reads and how it reports: the input sources, the per-source check rows, the
ingest report, and the SMAP cubes (L3 retrievals at the nearest 3-hourly step, L4 on M09).

Used by :mod:`model.data.ingest` (the store writer) and by the inputs catalog's SMAP readers
(:mod:`model.data.catalog`), which is why it lives apart from both (one-way imports).
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..errors import InputError
from .smap import read_smap_l3, read_smap_l4
from .smap_format import QualityPolicy

log = logging.getLogger(__name__)

STEP = np.timedelta64(3, "h")


#: the inputs catalog entries ingest reads: entry -> (label, required, what it means when absent)
SOURCES = {
    "era5land": ("ERA5-Land", True,
                 "required: the predictors of every model and the 10 km grid; nothing can be made without it"),
    "smap_l3_9km": ("SMAP L3 9 km (SPL3SMP_E)", True,
                    "required: the default training target and the reference of validation experiment 1"),
    "smap_l3_36km": ("SMAP L3 36 km (SPL3SMP)", False,
                     "absent: training with --target smap_l3_36km is not possible; all else runs"),
    "smap_l4": ("SMAP L4 (SPL4SMGP)", False,
                "absent: the SMAP L4 comparison is left out of validation and of the products catalog; "
                "training and downscaling never use it"),
    "ismn": ("ISMN stations", False,
             "absent: validation against stations (experiments 2 and 4) is skipped"),
    "static_extra": ("static extras (soil, land cover)", False,
                     "absent: models use the packaged elevation, slope, aspect and position only"),
}


@dataclass
class SourceCheck:
    """One row of ingest's table: a source, its files, what was read and skipped."""

    entry: str
    label: str
    required: bool
    pattern: str = ""
    found: int = 0
    read: int = 0
    unit: str = "files"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    period: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    ok_files: list = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return bool(self.ok_files) if self.unit == "files" else self.read > 0

    def consequence(self) -> str:
        if self.usable:
            return "used" + (f"; {len(self.skipped)} skipped (listed below)" if self.skipped else "")
        return SOURCES[self.entry][2]

    def to_dict(self) -> dict:
        return {"entry": self.entry, "label": self.label, "required": self.required,
                "pattern": self.pattern, "found": self.found, "read": self.read, "unit": self.unit,
                "skipped": self.skipped, "period": self.period, "notes": self.notes,
                "consequence": self.consequence()}


def sources_table(rows: list[SourceCheck], max_reasons: int = 10) -> str:
    """The per-source table: found / read / skipped, period, consequence; then the reasons."""
    head = f"  {'source':<34} {'need':<9} {'found':>6} {'read':>6} {'skipped':>8}  {'period':<25} consequence"
    lines = [head, "  " + "-" * (len(head) + 20)]
    for r in rows:
        per = f"{r.period[0]} .. {r.period[1]}" if r.period else "-"
        lines.append(f"  {r.label:<34} {'required' if r.required else 'optional':<9} {r.found:>6} "
                     f"{r.read:>6} {len(r.skipped):>8}  {per:<25} {r.consequence()}")
    for r in rows:
        for n in r.notes:
            lines.append(f"  {r.label}: {n}")
        if r.skipped:
            lines.append(f"  {r.label}: skipped {len(r.skipped)} {r.unit}:")
            lines += [f"    {p}: {why}" for p, why in r.skipped[:max_reasons]]
            if len(r.skipped) > max_reasons:
                lines.append(f"    ... and {len(r.skipped) - max_reasons} more")
    return "\n".join(lines)


@dataclass
class IngestReport:
    """What was read, what was skipped and why."""

    read: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    emptied: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    sources: list[SourceCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_fields: dict[str, int] = field(default_factory=dict)

    def add_read(self, kind: str, n: int = 1):
        self.read[kind] = self.read.get(kind, 0) + n

    def skip(self, path, reason: str):
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def note(self, text: str):
        if text not in self.notes:
            self.notes.append(text)

    def summary(self) -> str:
        lines = ["ingest summary:"]
        if self.sources:
            lines.append(sources_table(self.sources))
        else:
            for k, n in self.read.items():
                lines.append(f"  read {n:6d} {k}")
        if not self.sources:
            for field_name, n in self.missing_fields.items():
                lines.append(f"  {n} SMAP L3 file(s) have no {field_name}: read as 'no information' "
                             f"(no cell rejected by that rule)")
        for n in self.notes:
            lines.append(f"  {n}")
        if self.emptied:
            lines.append(f"  {len(self.emptied)} inputs left empty by the quality policy:")
            lines += [f"    {p}: {r}" for p, r in self.emptied[:20]]
        listed = {p for r in self.sources for p, _ in r.skipped}
        other = [(p, r) for p, r in self.skipped if p not in listed]
        if other:
            lines.append(f"  skipped {len(other)} unreadable inputs:")
            lines += [f"    {p}: {r}" for p, r in other[:50]]
            if len(other) > 50:
                lines.append(f"    ... and {len(other) - 50} more")
        elif not self.skipped and not any(r.skipped for r in self.sources):
            lines.append("  skipped nothing")
        for k, s in self.seconds.items():
            lines.append(f"  {k}: {s:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"read": self.read, "skipped": self.skipped, "emptied": self.emptied,
                "seconds": self.seconds, "sources": [r.to_dict() for r in self.sources],
                "notes": self.notes, "missing_fields": self.missing_fields}


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
        for name in filter(None, ds.attrs.get("missing_quality_fields", "").split(",")):
            report.missing_fields[name] = report.missing_fields.get(name, 0) + 1
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
