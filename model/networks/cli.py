"""``sm-downscale models``: the table of the model registry (``--json`` for machines)."""

from __future__ import annotations

import json

from .registry import list_models


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the downscaling models of the registry",
                              description="List every model the workbench can train or apply: "
                                          "torch networks, scikit-learn models and the "
                                          "no-learning references.")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--kind", choices=["torch", "sklearn", "reference"],
                   help="only models of this kind")
    p.set_defaults(func=run)


def format_table(rows: list[dict[str, str]]) -> str:
    cols = ["name", "kind", "family", "description"]
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    lines = ["  ".join(c.ljust(width[c]) if c in width else c for c in cols)]
    lines.append("  ".join("-" * width[c] if c in width else "-" * 11 for c in cols))
    for r in rows:
        lines.append("  ".join(r[c].ljust(width[c]) if c in width else r[c] for c in cols))
    return "\n".join(lines)


def run(args) -> int:
    rows = [m.as_dict() for m in list_models(getattr(args, "kind", None))]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
