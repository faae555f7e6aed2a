"""The import contract of ``model/``, drawn from the source (AST), not remembered.

Layers, bottom to top (issue 14; ``docs/architecture.md``): a module may import only from its
own layer or below. Imports inside functions count too: hiding an import in a function does not
change the dependency. There are no known violations left (the allow-lists are empty): any
upward import or cycle fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: layer of each top-level part of ``model`` (``model.<part>``); higher imports lower only
LAYERS = {
    "errors": 0, "config": 0, "io": 0, "machine": 0, "schema": 0, "resources": 0, "progress": 0,
    "grids": 1,
    "data": 2, "figures": 2,
    "features": 3, "runs": 3,
    "world": 4, "networks": 4,
    "training": 5,
    "inference": 6,
    "validation": 7,
    "products": 8,
    "demo": 9, "cli": 9, "experiments": 9,
}

#: GUI libraries the science never imports (DESIGN section 5)
GUI = ("panel", "holoviews", "bokeh", "geoviews", "hvplot")

#: upward imports allowed (none: issue 14 removed the last ones; keep it empty)
KNOWN_UPWARD: set[tuple[str, str]] = set()

#: import cycles between modules allowed (none; keep it empty)
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_edges(root: Path = ROOT, package: str = "model"):
    """Every import of a ``package`` module by a ``package`` module: (importer, imported, line)."""
    edges = []
    for path in sorted((root / package).rglob("*.py")):
        name = _module_name(path, root)
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                    names = [f"{target}.{a.name}" for a in node.names]
                else:
                    names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for target in names:
                if target == package or target.startswith(package + "."):
                    edges.append((name, target, node.lineno))
    return edges


def module_names(root: Path = ROOT, package: str = "model") -> set[str]:
    return {_module_name(p, root) for p in (root / package).rglob("*.py")}


def gui_imports(root: Path = ROOT, package: str = "model"):
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                    else [])
            bad += [(str(path.relative_to(root)), m, node.lineno)
                    for m in mods if m.split(".")[0] in GUI]
    return bad


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(edges, modules):
    out = set()
    for src, dst, _ in edges:
        ls, ld = layer_of(src), layer_of(dst)
        if ls is not None and ld is not None and ld > ls:
            out.add((src, _owner(dst, modules)))
    return out


def _owner(target: str, modules: set[str]) -> str:
    """``model.a.b.name`` -> the longest existing module prefix (``from x import name``)."""
    parts = target.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return target


def cycles(edges, modules):
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for src, dst, _ in edges:
        dst = _owner(dst, modules)
        if dst in modules and dst != src and not src.startswith(dst + "."):
            # importing a package's __init__ from inside it is not a cycle of modules
            graph[src].add(dst)
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return out


EDGES = import_edges()
MODULES = module_names()


def test_every_model_part_has_a_layer():
    parts = {m.split(".")[1] for m, _, _ in EDGES if m.count(".") >= 1}
    missing = sorted(p for p in parts if p not in LAYERS)
    assert not missing, f"model parts without a layer in LAYERS: {missing}; add them"


def test_no_new_upward_import():
    new = upward_imports(EDGES, MODULES) - KNOWN_UPWARD
    assert not new, ("upward imports (a lower layer importing a higher one): "
                     + ", ".join(f"{a} -> {b}" for a, b in sorted(new)))


def test_no_new_import_cycle():
    new = [c for c in cycles(EDGES, MODULES) if c not in KNOWN_CYCLES]
    assert not new, f"import cycles between modules: {[sorted(c) for c in new]}"


def test_known_violations_still_exist():
    """A fixed violation must leave the allow-lists, so they cannot hide a new one."""
    gone = KNOWN_UPWARD - upward_imports(EDGES, MODULES)
    gone_cycles = KNOWN_CYCLES - set(cycles(EDGES, MODULES))
    assert not gone and not gone_cycles, (
        f"remove from the allow-lists (fixed): {sorted(gone)} {[sorted(c) for c in gone_cycles]}")


def test_science_never_imports_gui():
    assert not gui_imports(), f"model/ imports a GUI library: {gui_imports()}"


@pytest.mark.parametrize("source, expected", [
    ("from ..inference import runner\n", ("model.training.x", "model.inference.runner")),
    ("from model.validation.metrics import pearson\n", ("model.training.x", "model.validation.metrics")),
])
def test_contract_catches_an_upward_import(tmp_path, source, expected):
    """The checker itself: a planted upward import in a copy of a small tree is found."""
    pkg = tmp_path / "model"
    for sub in ("training", "inference", "validation"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "inference" / "runner.py").write_text("")
    (pkg / "validation" / "metrics.py").write_text("def pearson(): pass\n")
    (pkg / "training" / "x.py").write_text(source)
    assert expected in upward_imports(import_edges(tmp_path), module_names(tmp_path))


def test_contract_catches_a_cycle(tmp_path):
    pkg = tmp_path / "model" / "data"
    pkg.mkdir(parents=True)
    (tmp_path / "model" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    assert frozenset({"model.data.a", "model.data.b"}) in cycles(import_edges(tmp_path), module_names(tmp_path))


def test_soil_moisture_cf_attributes_are_defined_once():
    """Units and standard name of soil moisture come from model/schema.py (sm_attrs,
    SM_UNITS, SM_STANDARD_NAME); only ECMWF's parameter table names its own fields."""
    import model.schema as schema

    assert schema.sm_attrs("x", time="t") == {"units": "m3 m-3", "standard_name":
                                              "volume_fraction_of_condensed_water_in_soil",
                                              "long_name": "x", "time": "t"}
    here = []
    for root in (ROOT / "model", ROOT / "dashboard"):
        for f in root.rglob("*.py"):
            if f.name in ("schema.py", "era5_grib.py"):
                continue
            for k, line in enumerate(f.read_text().splitlines(), 1):
                if "volume_fraction_of_condensed_water_in_soil" in line or line.strip().startswith('SM_UNITS = '):
                    here.append(f"{f.relative_to(ROOT)}:{k}")
    assert not here, f"soil-moisture CF attributes written out again (use model.schema): {here}"


#: libraries whose import cost (measured, warm, 2-core VM: torch 0.90 s, sklearn 0.87, panel 0.66,
#: geoviews 0.56, cfgrib 0.39, distributed 0.26, numba 0.19 plus its compiles, holoviews 0.20,
#: matplotlib/cartopy 0.25) or whose presence (ismn, playwright: optional) justifies an import
#: inside a function; docs/architecture.md keeps the table
LAZY_LIBS = {"torch", "sklearn", "dask", "distributed", "numba", "cfgrib", "eccodes", "matplotlib",
             "cartopy", "ismn", "playwright", "panel", "holoviews", "geoviews", "hvplot", "bokeh",
             "psutil", "pyinstrument", "pytesmo", "shapely", "pyogrio", "geopandas", "rasterio", "scipy"}
LAZY_MARK = "# lazy:"


def inner_imports(root: Path = ROOT, packages=("model", "dashboard")):
    """Imports inside functions or methods: (file, line, top-level module, has a lazy: comment)."""
    out = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            lines = text.splitlines()
            tree = ast.parse(text, filename=str(path))
            for fn in ast.walk(tree):
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(fn):
                    if not isinstance(node, (ast.Import, ast.ImportFrom)):
                        continue
                    if isinstance(node, ast.ImportFrom) and node.level:
                        mod = package
                    else:
                        mod = (node.names[0].name if isinstance(node, ast.Import) else node.module or "")
                    span = lines[node.lineno - 2: node.end_lineno]     # the line above, the import
                    marked = any(LAZY_MARK in ln for ln in span)
                    out.append((str(path.relative_to(root)), node.lineno, mod.split(".")[0], marked))
    return sorted(set(out))


def test_imports_inside_functions_say_why():
    """Imports sit at module top; one inside a function names its measured reason in a
    ``# lazy: ...`` comment (on its line or the line above), and imports a costly or optional
    library (LAZY_LIBS) or a project module that pulls one in."""
    bad = [f"{f}:{n} ({m})" for f, n, m, marked in inner_imports()
           if not marked or (m not in LAZY_LIBS and m not in ("model", "dashboard"))]
    assert not bad, (f"{len(bad)} imports inside functions without a measured reason "
                     f"(hoist them to the module top, or add `{LAZY_MARK} <why>`): " + ", ".join(bad[:40]))


def test_inner_import_check_finds_an_unmarked_import(tmp_path):
    pkg = tmp_path / "model"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    import json\n\n\ndef g():\n    import torch  # lazy: 0.9 s\n")
    found = inner_imports(tmp_path, packages=("model",))
    assert found == [("model/a.py", 2, "json", False), ("model/a.py", 6, "torch", True)]
