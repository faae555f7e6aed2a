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
    """Records constructor arguments in ``self._config`` before ``__init__`` runs."""

    #: registry name; set by each concrete class
    name: ClassVar[str] = ""
    #: registry kind: "torch", "sklearn" or "reference"
    kind: ClassVar[str] = ""
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
