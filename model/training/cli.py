"""``sm-downscale train`` and ``sm-downscale downscale``."""

from __future__ import annotations

import json

from ..errors import InputError
from ..features.ard import ard_info, default_ard
from ..networks.registry import get_model_class, model_info
from .trainer import TrainConfig, train


def register(sub):
    p = sub.add_parser("train", help="train one model on SMAP under scale invariance (CPU or GPU)")
    p.add_argument("--model", required=True, help="registry name (sm-downscale models)")
    p.add_argument("--ard", help="analysis-ready store (default: the project's when run inside a folder "
                                 "made by `sm-downscale init`, else the demo world's)")
    p.add_argument("--start", help="training start (default: the store's training period: the world's, or "
                                   "for real data the one ingest chose and printed)")
    p.add_argument("--end", help="training end (default: the end of that training period)")
    p.add_argument("--target", default="smap_l3_9km", choices=["smap_l3_9km", "smap_l3_36km"])
    p.add_argument("--config", default="demo", choices=["demo", "full"],
                   help="demo: minutes-scale budget on 2 CPU cores; full: longer training")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--max-minutes", type=float, help="time budget (default by --config and model)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run folder (default $SMDS_HOME/runs/<model>/<stamp>)")
    p.set_defaults(func=_train)


def train_config(model: str, ard, start=None, end=None, config: str = "demo", **over):
    info = ard_info(ard or default_ard())
    per = ((info.get("world") or {}).get("periods") or {}).get("train")
    if not (start and end):
        if not per:
            raise InputError("the inputs define no training period", "give --start and --end")
        start, end = start or per[0], end or per[1]
    kw = {k: v for k, v in over.items() if v is not None}
    if config == "demo":
        kw.setdefault("max_minutes", get_model_class(model).demo_minutes)
    else:
        kw.setdefault("max_minutes", 120.0)
        kw.setdefault("max_epochs", 200)
        kw.setdefault("steps_per_epoch", 200)
        kw.setdefault("patience", 10)
    return TrainConfig(model=model, train_start=str(start), train_end=str(end), **kw)


def _train(args) -> int:
    model_info(args.model)  # unknown names fail here, with the nearest valid names
    cfg = train_config(args.model, args.ard, args.start, args.end, args.config, target=args.target,
                       device=args.device, max_minutes=args.max_minutes, batch_size=args.batch_size,
                       seed=args.seed)
    run = train(args.model, cfg, ard=args.ard, out=args.out)
    print(json.dumps(json.loads((run / "summary.json").read_text()), indent=1))
    return 0
