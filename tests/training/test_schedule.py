"""The budget-aware one-cycle schedule: torch's OneCycleLR when steps bind, annealed by the
deadline when time binds."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from model.training.schedule import BudgetOneCycle  # noqa: E402


def _pair(total: int, lr: float = 2e-3):
    w = torch.nn.Linear(3, 1)
    o1 = torch.optim.AdamW(w.parameters(), lr=lr)
    o2 = torch.optim.AdamW(w.parameters(), lr=lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(o1, max_lr=lr, total_steps=total, pct_start=0.1)
    return o1, ref, o2, BudgetOneCycle(o2, lr, total, None)


@pytest.mark.parametrize("total", [3, 12, 37, 2400])
def test_step_bound_equals_torch_one_cycle(total):
    o1, ref, o2, ours = _pair(total)
    for k in range(total):
        a, b = o1.param_groups[0], o2.param_groups[0]
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12, abs=0), k
        assert b["betas"][0] == pytest.approx(a["betas"][0], rel=1e-12), k
        assert b["betas"][1] == a["betas"][1]
        if k < total - 1:
            o1.step()
            ref.step()
            ours.step()


def test_hand_computed_points():
    """Peak 2e-3, 100 steps: starts at peak/25, peaks at step 9 (pct_start 0.1 -> 10 - 1), ends
    at peak/25/1e4; halfway through the anneal it is the mean of peak and floor."""
    w = torch.nn.Linear(1, 1)
    opt = torch.optim.AdamW(w.parameters(), lr=2e-3)
    s = BudgetOneCycle(opt, 2e-3, 100, None)
    assert s.at(0)[0] == pytest.approx(8e-5)
    assert s.at(9)[0] == pytest.approx(2e-3)
    assert s.at(99)[0] == pytest.approx(8e-9)
    assert s.at(9 + 45)[0] == pytest.approx((2e-3 + 8e-9) / 2)
    assert s.at(0)[1] == pytest.approx(0.95) and s.at(9)[1] == pytest.approx(0.85)
    assert s.at(4.5)[0] == pytest.approx(8e-5 + (2e-3 - 8e-5) * (1 - math.cos(math.pi / 2)) / 2)


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _stepped(lr: float, total_steps: int, seconds: float, *, steps: int, dt: float):
    """A schedule on a fake clock after ``steps`` steps of ``dt`` seconds each."""
    clock = _Clock()
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=lr)
    s = BudgetOneCycle(opt, lr, total_steps, seconds, clock=clock)
    for _ in range(steps):
        clock.t += dt
        s.step()
    return s, clock


def test_time_bound_run_anneals_by_its_deadline():
    """2,400 planned steps but a 60-s budget: after 10 steps and 30 s the run is half-way
    through its cycle (not at step 10 of 2,400, still warming up); at the deadline the rate is
    the floor."""
    s, clock = _stepped(2e-3, 2400, 60.0, steps=10, dt=3.0)
    assert s.virtual_step() == pytest.approx(0.5 * 2399)
    assert s.get_last_lr()[0] == pytest.approx(s.at(0.5 * 2399)[0])
    assert s.get_last_lr()[0] > 1e-3  # past the peak, annealing
    clock.t += 30.0
    s.step()
    assert s.get_last_lr()[0] == pytest.approx(8e-9)
    clock.t += 30.0  # past the deadline: stays at the floor
    s.step()
    assert s.get_last_lr()[0] == pytest.approx(8e-9)


def test_steps_ahead_of_time_follow_steps():
    s, _ = _stepped(1e-2, 20, 3600.0, steps=15, dt=0.01)
    assert s.virtual_step() == 15
    assert s.get_last_lr()[0] == pytest.approx(s.at(15)[0])


@pytest.mark.parametrize("kwargs, msg", [({"total_steps": 1, "seconds": None}, "at least 2 steps"),
                                         ({"total_steps": 10, "seconds": 0.0}, "must be positive")])
def test_bad_settings(kwargs, msg):
    w = torch.nn.Linear(1, 1)
    opt = torch.optim.AdamW(w.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=msg):
        BudgetOneCycle(opt, 1e-3, **kwargs)
