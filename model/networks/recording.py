"""Constructor-argument recording shared by every registry model (torch-free).

Following physicsnemo's ``Module``, a model records its JSON-serialisable constructor
arguments when it is built (:meth:`ConfigMixin.config_dict`), so that a checkpoint alone
rebuilds it by registry name. Constructors take no ``*args``/``**kwargs``; tuples come back as
lists (constructors accept any sequence).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: constructor argument value {value!r} is not "
                        "JSON-serialisable; use numbers, strings, booleans, None and lists") from None
    return value


def record_config(cls: type, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """Bind constructor arguments to ``cls.__init__``'s signature (defaults applied)."""
    sig = inspect.signature(cls.__init__)
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError:
        return None  # e.g. copy/pickle re-creation without arguments; __dict__ follows
    bound.apply_defaults()
    items = list(bound.arguments.items())[1:]
    return {k: _jsonable(v, f"{cls.__name__}({k}=...)") for k, v in items}


class ConfigMixin:
    """Records constructor arguments in ``self._config`` before ``__init__`` runs.

    Also the base of every method's CAPABILITIES, class attributes that the trainer, the runner
    and the archive ask instead of checking names (``docs/adding-a-method.md``):

    ``kind``
        "torch" (trained by gradient descent on patches or pixels), "sklearn" (fitted on
        per-pixel samples; tree ensembles) or "reference" (fitted without learning; predicts
        one scene at a time).
    ``per_pixel``
        True when the method sees no spatial context (one cell's inputs give its value): it is
        trained on sampled pixels and run on the cells that have inputs only, as a 1 x N strip.
        False: trained on patches and run on the whole data region.
    ``batchable``
        True when several scenes go through one call (the runner and archive then batch them).
    ``cpu_batch``
        scenes per call on the CPU (the archive, the experiments). 1 by default: a batch of
        whole 10 km scenes runs slower per scene than one at a time on a CPU (measured per
        method on one EPYC core, docs/benchmarks.md "Scenes per call on the CPU"); the LSTM
        takes a day (8), whose scenes share their history.
    ``reads_channel``
        references only: the analysis-ready ERA5-Land channel the method maps onto SMAP's
        scale (e.g. "swvl1"), or None when it reads SMAP itself.
    ``demo_minutes``
        the training budget of ``sm-downscale demo`` (minutes on 2 CPU cores); one minute
        for every method (equal budgets, as the season2 comparison: docs/benchmarks.md).
    """

    #: registry name; set by each concrete class
    name: ClassVar[str] = ""
    #: registry kind: "torch", "sklearn" or "reference"
    kind: ClassVar[str] = ""
    #: no spatial context: trained on pixels, run on the cells with inputs only
    per_pixel: ClassVar[bool] = False
    #: several scenes in one call
    batchable: ClassVar[bool] = True
    #: scenes per call on the CPU (1: whole scenes one at a time run fastest per scene)
    cpu_batch: ClassVar[int] = 1
    #: references: the ERA5-Land channel mapped onto SMAP's scale (None: reads SMAP)
    reads_channel: ClassVar[str | None] = None
    #: training budget of the demo (minutes on 2 CPU cores)
    demo_minutes: ClassVar[float] = 1.0
    #: architecture version; bump when a change makes old state dicts unloadable
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                raise TypeError(f"{cls.__name__}.__init__ must not take *args/**kwargs: "
                                "the checkpoint rebuilds models from named arguments")

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        object.__setattr__(self, "_config", record_config(cls, args, kwargs))
        return self

    def config_dict(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable): ``type(self)(**cfg)`` rebuilds it."""
        return json.loads(json.dumps(self._config))
