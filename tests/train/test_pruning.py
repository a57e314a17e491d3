"""Magnitude masks: exact counts, regrowth between pruning steps, structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compaudit.models.architectures import build
from compaudit.train.pruning import MagnitudePruner, compute_masks, prunable_layers
from compaudit.train.recipe import PruneConfig


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return build("cnn28", in_size=8, channels=[4, 8], hidden=16, num_classes=10)


def _prune_now(model: nn.Module, **kw: object) -> dict[str, object]:
    """Prune straight to the target (one pruning step at 0, end at 1) and bake."""
    cfg = PruneConfig(begin_step=0, end_step=1, frequency=1, **kw)  # type: ignore[arg-type]
    session = MagnitudePruner().attach(model, cfg)
    session.step(0)
    session.step(1)
    return session.finalize()


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.37])
def test_global_zero_fraction_is_exact(sparsity: float) -> None:
    model = _cnn()
    layers = prunable_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    stats = _prune_now(model, sparsity=sparsity)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    assert zeros == round(sparsity * total)
    assert stats["sparsity"] == pytest.approx(sparsity, abs=1 / total)


def test_global_prunes_the_smallest_magnitudes() -> None:
    model = _cnn()
    before = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_layers(model)])
    _prune_now(model, sparsity=0.6)
    after = torch.cat([m.weight.detach().flatten() for _, m in prunable_layers(model)])
    kept, pruned = before[after != 0], before[after == 0]
    assert kept.min() >= pruned.max()


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_layer_scope_each_layer_within_one_weight(sparsity: float) -> None:
    model = _cnn()
    stats = _prune_now(model, sparsity=sparsity, scope="layer")
    for name, m in prunable_layers(model):
        zeros = int((m.weight == 0).sum())
        assert abs(zeros - sparsity * m.weight.numel()) <= 1, name
        assert stats["layer_sparsity"][name] == zeros / m.weight.numel()  # type: ignore[index]


def test_baked_model_has_no_parametrisation() -> None:
    model = _cnn()
    _prune_now(model, sparsity=0.5)
    assert sorted(model.state_dict()) == sorted(_cnn().state_dict())


def test_pruned_weight_regrows_between_pruning_steps() -> None:
    """A masked weight still gets gradient, grows, and is kept at the next pruning step."""
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 0.1]]))
    cfg = PruneConfig(
        sparsity=0.25, begin_step=0, end_step=10, frequency=5, initial_sparsity=0.25 - 1e-9
    )
    session = MagnitudePruner().attach(layer, cfg)
    session.step(0)  # sparsity ~0.25 of 4 weights: the 0.1 weight is masked
    assert layer.weight.detach().tolist() == [[1.0, 2.0, 3.0, 0.0]]
    original = layer.parametrizations.weight.original  # type: ignore[union-attr,index]
    # Gradient descent on -w.x with x = e_3 pushes only the masked weight up.
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    for t in range(1, 5):
        session.step(t)
        loss = -layer(torch.tensor([[0.0, 0.0, 0.0, 1.0]])).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert original[0, 3].item() == pytest.approx(4.1)  # it received 4 updates while masked
    assert layer.weight[0, 3].item() == 0.0  # still masked until the next pruning step
    session.step(5)
    w = layer.weight.detach()[0]
    assert w[3].item() == pytest.approx(4.1)  # came back
    assert w[0].item() == 0.0  # the now-smallest weight went instead
    stats = session.finalize()
    assert stats["sparsity"] == 0.25


def test_structured_zeroes_whole_rows_and_filters() -> None:
    model = _cnn()
    _prune_now(model, sparsity=0.5, structure="structured", scope="layer")
    for name, m in prunable_layers(model):
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        dead = (w == 0).all(dim=1)
        # Every weight is either in a fully pruned unit or a kept unit with no zeros.
        assert int(dead.sum()) == round(0.5 * w.shape[0]), name
        assert not (w[~dead] == 0).any(), name
        assert (m.bias.detach()[dead] == 0).all(), name


def test_structured_global_keeps_a_unit_per_layer() -> None:
    weights = [torch.full((3, 2), 0.01), torch.full((4, 2), 5.0)]
    # 0.4 of 7 units = 3: all of layer 0 by RMS, of which one is kept back.
    masks = compute_masks(weights, 0.4, scope="global", structure="structured")
    assert masks[0].any(dim=1).sum() == 1  # would all go by RMS; one unit is kept
    assert masks[1].all()


def test_skip_leaves_layers_dense() -> None:
    model = _cnn()
    _prune_now(model, sparsity=0.9, skip=["classifier.*"])
    assert (model.classifier[4].weight != 0).all()
    assert (model.features[3].weight == 0).any()
