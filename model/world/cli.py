"""``sm-downscale world``: build the virtual Tibetan Plateau."""

from __future__ import annotations

from .build import build_world
from .config import SIZES, check_seed, get_config


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "world", help="build the virtual Tibetan Plateau (truth + SMAP/ERA5-Land/ISMN-like inputs)",
        description="Simulate the hidden 10 km truth and write what a user would have (SMAP L3/L4, "
                    "ERA5-Land, ISMN, static layers) in the real formats, plus an Intake catalog. "
                    "Deterministic from --seed; a rerun finishes an interrupted build.")
    p.add_argument("--size", default="demo", help=f"world size: {', '.join(SIZES)} (default demo)")
    p.add_argument("--seed", default="42", help="random seed, an integer (default 42)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="world folder (default $SMDS_HOME/worlds/<size>)")
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes in all; extra ones write files while one simulates (default min(2, CPUs))")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = get_config(args.size)
    seed = check_seed(args.seed)
    build_world(cfg, args.out, seed, progress=True, force=args.force, workers=args.workers)
    return 0
