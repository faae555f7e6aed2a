"""ISMN sources: the ``.stm`` files on disk or in a zip, and the ``ismn`` package on them.

What :func:`model.data.ismn.read_ismn` reads before any value is kept: the files found under a
folder, in a zip or given one by one (:func:`_collect_sources`), their names parsed, headers and
every record line checked (:func:`_scan`; the rules are set out in :mod:`model.data.ismn`), and
the ``ismn`` package's interface opened quietly with its metadata cache out of the data folder.
Split out of ``ismn.py`` (issue 14: no module over 800 lines); the reader imports it, never the
reverse.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..config import cache_dir
from ..errors import InputError, UnreadableFileError, WrongProductError
from ..io import atomic_path

#: the reader's logger (its messages keep the name they had before the split)
log = logging.getLogger("model.data.ismn")


# --------------------------------------------------------------------------------------------
# Sources: .stm files on disk or in a zip
# --------------------------------------------------------------------------------------------

_LINE_RE = re.compile(
    rb"\s*(\d{4}/\d{2}/\d{2})\s+(\d{2}:\d{2})\s+"
    rb"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|NaN|NAN)\s+"
    rb"(\S+)(?:\s+(\S+))?\s*")
_HEADER_DOC = "'CSE NETWORK STATION LAT LON ELEV DEPTH_FROM DEPTH_TO SENSOR'"
_RECORD_DOC = "'YYYY/MM/DD HH:MM value flag original_flag'"
_NAME_DOC = "NETWORK_NETWORK_STATION_var_depthfrom_depthto_SENSOR_YYYYMMDD_YYYYMMDD.stm"


@dataclass
class _Source:
    rel: PurePosixPath          # path inside the root (dir or zip), or the bare name
    origin: str                 # what error messages show
    local: Path | None = None   # the file on disk (None inside a zip)
    zip_path: Path | None = None

    def read_bytes(self) -> bytes:
        if self.local is not None:
            return self.local.read_bytes()
        with zipfile.ZipFile(self.zip_path) as zf:
            return zf.read(str(self.rel))


@dataclass
class _Scan:
    fmt: str = "header_values"          # or "ceop_sep"
    header_error: str | None = None     # why the file cannot be used at all
    bad_lines: list = field(default_factory=list)   # (line number, text, reason)
    n_records: int = 0
    cleaned: bytes | None = None        # file content without the bad lines
    # from the header line (the file name is only cross-checked against it)
    network: str | None = None
    station: str | None = None
    depth_from: float = np.nan
    depth_to: float = np.nan
    lat: float = np.nan
    lon: float = np.nan
    elevation: float = np.nan
    name: dict | None = None            # _parse_name of the file name
    canonical: bool = True              # the ismn package splits the name correctly
    mismatch: list = field(default_factory=list)   # name vs header differences (notes)


_NAME_RE = re.compile(
    r"^(?P<prefix>.+?)_(?P<var>[A-Za-z]+)_(?P<d0>\d+(?:\.\d+)?)_(?P<d1>\d+(?:\.\d+)?)_"
    r"(?P<sensor>.+)_(?P<start>\d{8})_(?P<end>\d{8})\.stm$", re.IGNORECASE)


def _parse_name(name: str) -> dict | None:
    """Fields of an ISMN file name, network names with ``_`` included (``CTP_SMTMN``).

    ``NETWORK_NETWORK_STATION_var_from_to_SENSOR_start_end.stm``: the variable is the token
    before the two depths, so the network/station prefix may hold any number of ``_``.
    Returns ``{"prefix", "var", "d0", "d1", "sensor", "start", "end"}`` or None.
    """
    m = _NAME_RE.match(name)
    if m is None:
        return None
    d = m.groupdict()
    d["d0"], d["d1"] = float(d["d0"]), float(d["d1"])
    return d


def _name_tokens(name: str) -> list[str] | None:
    """The file name split as the ``ismn`` package splits it, when that split is right
    (variable 4th, depths 5th and 6th); None otherwise."""
    if not name.lower().endswith(".stm"):
        return None
    toks = name[:-4].split("_")
    if len(toks) < 9:
        return None
    try:
        float(toks[4]), float(toks[5])
    except ValueError:
        return None
    return toks


def _same_name(a: str, b: str) -> bool:
    return str(a).replace("_", "-").lower() == str(b).replace("_", "-").lower()


def _collect_sources(path: Path) -> tuple[str, list[_Source]]:
    """(kind, sources) for a .stm file, a download folder or a zip."""
    if not path.exists():
        raise InputError("does not exist", "give an ISMN .stm file, download folder or zip", path)
    if path.is_dir():
        files = []
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path)
            if any(part.startswith(".") or part == "python_metadata" for part in rel.parts):
                continue
            if p.is_file() and p.suffix.lower() == ".stm":
                files.append(_Source(PurePosixPath(rel.as_posix()), str(p), local=p))
        if not files:
            raise InputError("no ISMN .stm files found in this folder",
                             "point at an ISMN 'header + values' download (NETWORK/STATION/*.stm), "
                             "its zip, or one .stm file", path)
        return "dir", files
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist()
                           if n.lower().endswith(".stm") and "python_metadata" not in n)
        if not names:
            raise WrongProductError("zip holds no ISMN .stm file",
                                    "give an ISMN 'header + values' download zip", path)
        return "zip", [_Source(PurePosixPath(n), f"{path}::{n}", zip_path=path) for n in names]
    if path.suffix.lower() != ".stm" or _parse_name(path.name) is None:
        raise WrongProductError(
            f"not an ISMN header+values file (expected a name like {_NAME_DOC})",
            "give an ISMN .stm file, download folder or zip", path)
    return "file", [_Source(PurePosixPath(path.name), str(path), local=path)]


def _scan(src: _Source, clean: bool) -> _Scan:
    """Check the name, the header and every record line of one .stm file."""
    out = _Scan()
    out.name = _parse_name(src.rel.name)
    if out.name is None:
        out.header_error = f"file name does not follow {_NAME_DOC}"
        return out
    try:
        raw = src.read_bytes()
    except OSError as exc:
        out.header_error = f"cannot be read ({exc})"
        return out
    lines = raw.splitlines()
    if not lines or not lines[0].strip():
        out.header_error = "line 1: empty (no ISMN header)"
        return out
    head = lines[0].split()
    second = next((ln.split() for ln in lines[1:] if ln.strip()), [])
    if len(head) == 15 and len(second) == 15:   # the older CEOP-like format; ismn parses it
        out.fmt = "ceop_sep"
        out.n_records = sum(1 for ln in lines[1:] if ln.strip())
        return out
    try:
        if len(head) < 8:
            raise ValueError
        [float(t) for t in head[3:8]]
    except ValueError:
        shown = lines[0][:120].decode("latin-1")
        out.header_error = f"line 1: {shown!r} is not an ISMN header {_HEADER_DOC}"
        return out
    _header_fields(out, head, src)
    keep_idx, stamps = [], []
    for i, ln in enumerate(lines[1:], start=2):
        if not ln.strip():
            continue
        m = _LINE_RE.fullmatch(ln)
        if m is None:
            out.bad_lines.append((i, ln[:120].decode("latin-1"), f"not {_RECORD_DOC}"))
            continue
        keep_idx.append(i)
        stamps.append((m.group(1) + b" " + m.group(2)).decode())
    if stamps:  # real dates and times (2008/13/45 passes the pattern, not the calendar)
        t = pd.to_datetime(pd.Series(stamps), format="%Y/%m/%d %H:%M", errors="coerce")
        bad = np.flatnonzero(t.isna().to_numpy())
        if bad.size:
            bad_set = set()
            for b in bad:
                i = keep_idx[b]
                bad_set.add(i)
                out.bad_lines.append((i, lines[i - 1][:120].decode("latin-1"), "not a valid date/time"))
            keep_idx = [i for i in keep_idx if i not in bad_set]
            out.bad_lines.sort()
    out.n_records = len(keep_idx)
    if clean and out.bad_lines:
        nl = b"\r\n" if b"\r\n" in raw[:4096] else (b"\n" if b"\n" in raw[:4096] else b"\r")
        out.cleaned = nl.join([lines[0]] + [lines[i - 1] for i in keep_idx]) + nl
    return out


def _header_fields(out: _Scan, head: list[bytes], src: _Source) -> None:
    """Network, station, position and depths from the header; the file name cross-checked."""
    txt = [t.decode("latin-1") for t in head]
    out.network, out.station = txt[1], txt[2]
    out.lat, out.lon, out.elevation, out.depth_from, out.depth_to = (float(t) for t in txt[3:8])
    nm = out.name
    prefix = nm["prefix"]
    expect = f"{out.network.replace('_', '-')}_{out.network.replace('_', '-')}_{out.station.replace('_', '-')}"
    if not _same_name(prefix, f"{out.network}_{out.network}_{out.station}"):
        out.mismatch.append(f"file name says {prefix!r}, header says network {out.network!r}, "
                            f"station {out.station!r}: the header is used")
    if abs(nm["d0"] - out.depth_from) > 1e-6 or abs(nm["d1"] - out.depth_to) > 1e-6:
        out.mismatch.append(f"file name depths {nm['d0']:g}-{nm['d1']:g} m, header "
                            f"{out.depth_from:g}-{out.depth_to:g} m: the header is used")
    toks = _name_tokens(src.rel.name)
    out.canonical = (toks is not None and "_".join(toks[:3]) == expect and not out.mismatch
                     and (len(src.rel.parts) != 3 or src.rel.parts[0] == out.network))
    for m in out.mismatch:
        log.warning("%s: %s", src.origin, m)


def _malformed_error(src: _Source, scan: _Scan) -> UnreadableFileError:
    n = len(scan.bad_lines)
    first = "; ".join(f"line {i}: {txt!r} ({why})" for i, txt, why in scan.bad_lines[:3])
    more = f" and {n - 3} more" if n > 3 else ""
    return UnreadableFileError(
        f"{n} malformed line(s): {first}{more}",
        "fix or delete those lines, or read with errors='skip' to leave them out (they are then "
        "counted in StationSeries.n_malformed)", src.origin)


# --------------------------------------------------------------------------------------------
# The ismn package, quietly, with its metadata cache out of the data folder
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """Silence the ismn package's prints and progress bars (it reports through its log file)."""
    buf = io.StringIO()
    ismn_log = logging.getLogger("ismn")
    collector = logging.getLogger("ismn_meta_collector")   # per-file INFO lines: log file only
    old_level, old_prop = ismn_log.level, collector.propagate
    ismn_log.setLevel(logging.ERROR)
    collector.propagate = False
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield buf
    finally:
        ismn_log.setLevel(old_level)
        collector.propagate = old_prop


def _interface(data_path: Path, meta_path: Path):
    # lazy: ismn.interface costs 0.49 s at import; only ISMN input needs it
    from ismn.interface import ISMN_Interface

    with _quiet():
        return ISMN_Interface(data_path, meta_path=meta_path, parallel=False,
                              temp_root=tempfile.gettempdir())


def _listing_key(path: Path, cache_root: Path) -> str:
    h = hashlib.sha1(str(path.resolve()).encode())
    if path.is_file():  # zip
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        cache_root = cache_root.resolve()
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path)
            if any(part.startswith(".") or part == "python_metadata" for part in rel.parts):
                continue
            if p.resolve().is_relative_to(cache_root):   # a cache inside the data folder
                continue
            if p.is_file() and p.suffix.lower() in (".stm", ".csv"):
                st = p.stat()
                h.update(f"{rel.as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cached_interface(path: Path, sources: list[_Source], cache: Path | None):
    """ISMN_Interface on the data itself, metadata in the cache (built once per listing)."""
    root = Path(cache) if cache is not None else cache_dir() / "ismn_metadata"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem if path.is_file() else path.name)[:60]
    meta_dir = root / f"{name}-{_listing_key(path, root)}"
    csv_name = f"{path.with_suffix('').name if path.is_file() else path.name}.csv"
    if (meta_dir / csv_name).is_file():
        return _interface(path, meta_dir)
    log.info("indexing the ISMN data in %s with the ismn package (once; index in %s)", path, meta_dir)
    with atomic_path(meta_dir) as tmp:
        tmp.mkdir(parents=True)
        iface = _interface(path, tmp)
    return iface
