"""``sm-downscale validate``."""

from __future__ import annotations

import pandas as pd

from .campaign import register as register_experiment
from .experiments import run_validation
from .metrics import MetricSettings


def register(sub):
    p = sub.add_parser("validate", help="the five validation experiments (data + static report)")
    p.add_argument("--ard", help="analysis-ready store (default: the demo world's)")
    p.add_argument("--archive", help="archive folder (default $SMDS_HOME/archive)")
    p.add_argument("--out", help="results folder (default $SMDS_HOME/validation)")
    p.add_argument("--model", action="append", help="models to validate (default: all complete in the archive)")
    p.add_argument("--min-n", type=int, default=10, help="fewest matched pairs for a metric (default 10)")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--no-ceiling", action="store_true",
                   help="skip the ceiling rows (learners fitted to the virtual TP's truth)")
    p.add_argument("--ceiling-samples", type=int, default=20_000,
                   help="cell-steps the ceiling learners are fitted on (default 20000)")
    p.add_argument("--resamples", type=int, default=1000,
                   help="block-bootstrap resamples of the intervals (default 1000, 3-day blocks)")
    p.set_defaults(func=_run)

    register_experiment(sub)


def _run(args) -> int:
    res = run_validation(args.ard, args.archive, args.out, args.model, MetricSettings(min_n=args.min_n),
                         report=not args.no_report, ceiling=not args.no_ceiling,
                         ceiling_kw={"max_samples": args.ceiling_samples}, n_resamples=args.resamples)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(res["main_table"])
    print({k: v for k, v in res.items() if k != "main_table"})
    return 0 if all(str(v) == "ok" for v in res["status"].values()) else 1
