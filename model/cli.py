"""The one command-line entry point: ``sm-downscale <subcommand>``.

Each subcommand lives in its own module that defines ``register(subparsers)``; the module
is imported only when listed here, and heavy imports (torch, dask) happen inside the
handlers, so ``sm-downscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .config import home
from .errors import InputError
from .machine import keep_freed_memory
from .products import refresh_products

#: subcommand modules, in the order they appear in ``--help``
COMMAND_MODULES = [
    "model.data.project",
    "model.data.inspect",
    "model.data.ingest",
    "model.world.cli",
    "model.networks.cli",
    "model.training.cli",
    "model.inference.downscale",
    "model.inference.cli",
    "model.validation.cli",
    "model.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sm-downscale",
        description="Soil-moisture downscaling workbench for the Tibetan Plateau "
                    "(SMAP + ERA5-Land -> 10 km, 3-hourly).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    keep_freed_memory()  # training and inference on whole scenes: model.machine explains
    try:
        rc = args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, non-zero; -v shows the traceback
        if args.verbose:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: sm-downscale {args.command} failed: {type(exc).__name__}: {first} -- rerun "
              "with -v for the traceback; finished steps are kept, so the same command resumes",
              file=sys.stderr)
        return 1
    if not rc and args.command in PRODUCT_WRITERS:
        _refresh_products(args)
    return int(rc or 0)


#: commands that write products, and the home folder they write by default
PRODUCT_WRITERS = {"archive": "archive", "validate": "validation"}


def _refresh_products(args) -> None:
    """The products catalog follows what ``archive`` and ``validate`` wrote (the writers do not
    import the catalog: it sits above them, :mod:`model.products`)."""
    written = getattr(args, "out", None) or home() / PRODUCT_WRITERS[args.command]
    refresh_products(written, getattr(args, "ard", None))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
