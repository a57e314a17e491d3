"""The gradual cubic pruning schedule of Zhu & Gupta (2017)."""

from __future__ import annotations

import pytest
import torch

from compaudit.train.pruning import (
    MagnitudePruner,
    cubic_sparsity,
    pruning_steps,
    scheduled_sparsity,
)
from compaudit.train.recipe import PruneConfig


def _formula(t: int, s_i: float, s_f: float, t0: int, end: int) -> float:
    # s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, written out independently.
    return s_f + (s_i - s_f) * (1 - (t - t0) / (end - t0)) ** 3


def test_pruning_steps_include_end_step() -> None:
    assert pruning_steps(10, 50, 10) == [10, 20, 30, 40, 50]
    # end - begin not a multiple of the frequency: the end step is added.
    assert pruning_steps(0, 25, 10) == [0, 10, 20, 25]


@pytest.mark.parametrize(
    ("s_i", "s_f", "t0", "end", "dt"), [(0.0, 0.9, 0, 100, 10), (0.1, 0.5, 7, 40, 3)]
)
def test_cubic_sparsity_matches_formula(s_i: float, s_f: float, t0: int, end: int, dt: int) -> None:
    for t in pruning_steps(t0, end, dt):
        got = cubic_sparsity(t, initial=s_i, final=s_f, begin_step=t0, end_step=end)
        assert got == pytest.approx(_formula(t, s_i, s_f, t0, end), abs=1e-12)
    assert cubic_sparsity(end, initial=s_i, final=s_f, begin_step=t0, end_step=end) == s_f
    assert cubic_sparsity(end + 5, initial=s_i, final=s_f, begin_step=t0, end_step=end) == s_f
    assert cubic_sparsity(t0 - 1, initial=s_i, final=s_f, begin_step=t0, end_step=end) == s_i


def test_hand_computed_values() -> None:
    # t0 = 0, n dt = 100, s_f = 0.8: at t = 50, 0.8 - 0.8 * 0.5^3 = 0.7.
    assert cubic_sparsity(50, initial=0.0, final=0.8, begin_step=0, end_step=100) == pytest.approx(
        0.7
    )
    assert cubic_sparsity(25, initial=0.0, final=0.8, begin_step=0, end_step=100) == pytest.approx(
        0.8 - 0.8 * 0.75**3
    )


def test_sparsity_holds_between_pruning_steps() -> None:
    c = PruneConfig(sparsity=0.9, begin_step=5, end_step=45, frequency=10)
    assert scheduled_sparsity(4, c) == 0.0
    assert scheduled_sparsity(5, c) == 0.0  # s_i at t0
    assert scheduled_sparsity(24, c) == pytest.approx(_formula(15, 0.0, 0.9, 5, 45))
    assert scheduled_sparsity(45, c) == 0.9
    assert scheduled_sparsity(1000, c) == 0.9


def test_session_applies_the_schedule_exactly() -> None:
    """At every pruning step the zero fraction of the masked weights is the formula's."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
    c = PruneConfig(sparsity=0.85, begin_step=3, end_step=33, frequency=6)
    session = MagnitudePruner().attach(model, c)
    total = 20 * 50 + 50 * 10
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    for t in range(40):
        session.step(t)
        if t in pruning_steps(3, 33, 6):
            zeros = sum(int((m.weight == 0).sum()) for m in (model[0], model[2]))
            assert zeros == round(_formula(t, 0.0, 0.85, 3, 33) * total)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert [s for s, _ in session.history] == pruning_steps(3, 33, 6)
    assert session.history[-1] == (33, 0.85)
    stats = session.finalize()
    assert stats["sparsity"] == round(0.85 * total) / total
