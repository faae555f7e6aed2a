"""A one-cycle learning-rate schedule that finishes inside the run's budget, whichever binds.

Every network trains with AdamW under a one-cycle schedule (warm up from ``peak / div`` to
``peak`` over the first ``pct_start`` of the run, then cosine-anneal to ``peak / div /
final_div``; Smith & Topin 2019). Sized by steps alone (``max_epochs x steps_per_epoch``), a
run stopped by its wall-clock budget ends long before the schedule does: on the demo world every
network stopped by time with its learning rate still at 75-100 % of the peak, and in the
1-minute ``season2`` comparison most networks stopped inside the warm-up. They were compared
before they had annealed, so the budget, not the method, set the table (issue 12).

:class:`BudgetOneCycle` runs the same one-cycle curve over a *virtual step*, the further
along of the steps taken and the fraction of the time budget spent (times the planned steps).
A run bound by its step count gets exactly torch's ``OneCycleLR`` (``anneal_strategy="cos"``,
``three_phase=False``; tested step by step against it); a run bound by its time budget warms
up in the first ``pct_start`` of its time and anneals by its deadline. The price: a run bound
by time depends on the machine's speed (it did before, through where it stopped).
"""

from __future__ import annotations

import math
import time as _time

#: how the learning rate moves, as recorded in each torch run's summary and an experiment's key
SCHEDULE = "one-cycle (cosine, 10 % warm-up) over the step limit or the time budget, whichever binds"


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * frac))


class BudgetOneCycle:
    """One-cycle learning rate over ``total_steps`` steps or ``seconds`` seconds, whichever
    the run reaches first. Call :meth:`step` after each optimizer step, like a torch scheduler.

    ``clock`` (default :func:`time.perf_counter`) is read at construction and at each step;
    ``seconds=None`` gives the step-bound schedule only.
    """

    def __init__(self, optimizer, max_lr: float, total_steps: int, seconds: float | None,
                 pct_start: float = 0.1, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 base_momentum: float = 0.85, max_momentum: float = 0.95, clock=_time.perf_counter):
        if total_steps < 2:
            raise ValueError(f"a one-cycle schedule needs at least 2 steps, got {total_steps}")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"the time budget must be positive, got {seconds} s")
        self.optimizer = optimizer
        self.max_lr = float(max_lr)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.total_steps = int(total_steps)
        self.seconds = seconds
        self.clock = clock
        self.t0 = clock()
        # the phase ends as torch's OneCycleLR puts them (last step index = total_steps - 1)
        self.warm_end = float(pct_start * self.total_steps) - 1.0
        self.last_end = float(self.total_steps - 1)
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        self.steps = 0
        self._set(0.0)

    def virtual_step(self) -> float:
        """How far along the cycle the run is, in steps: the steps taken or the budget's
        elapsed share of the cycle, whichever is further (capped at the last step)."""
        v = float(self.steps)
        if self.seconds is not None:
            v = max(v, (self.clock() - self.t0) / self.seconds * self.last_end)
        return min(v, self.last_end)

    def at(self, v: float) -> tuple[float, float]:
        """Learning rate and momentum (Adam's beta1) at virtual step ``v``: torch's cosine
        one-cycle in two phases; the momentum moves against the learning rate."""
        if v <= self.warm_end:
            f = v / self.warm_end if self.warm_end > 0 else 1.0
            return (_cos(self.initial_lr, self.max_lr, f), _cos(self.max_momentum, self.base_momentum, f))
        f = (v - self.warm_end) / (self.last_end - self.warm_end)
        return _cos(self.max_lr, self.min_lr, f), _cos(self.base_momentum, self.max_momentum, f)

    def step(self) -> None:
        self.steps += 1
        self._set(self.virtual_step())

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _set(self, v: float) -> None:
        lr, momentum = self.at(v)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
            if "betas" in g:
                g["betas"] = (momentum, *g["betas"][1:])
            elif "momentum" in g:
                g["momentum"] = momentum
