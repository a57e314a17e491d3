"""Gradual magnitude pruning (Zhu & Gupta 2017), as Hooker et al. use it.

Schedule. Pruning starts at step ``t0 = begin_step`` and re-computes the mask
every ``dt = frequency`` steps; the sparsity at pruning step ``t`` is

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3,   n dt = end_step - t0,

so it rises fast at first and flattens out, and reaches the target ``s_f``
exactly at ``end_step`` (added as a last pruning step when ``end_step - t0``
is not a multiple of ``dt``). Between pruning steps the sparsity stays at the
value of the last pruning step; after ``end_step`` the mask is fixed.

Masks. The model keeps its dense weights. The mask is applied in the forward
pass (``torch.where(mask, w, w - w.detach())``: the value is ``w * mask``,
but the gradient reaches every weight, a straight-through estimator), so a
pruned weight keeps receiving updates and comes back when its magnitude
overtakes a kept one at the next pruning step. ``torch.nn.utils.prune`` zeros
pruned weights for good and could not do that. :meth:`finalize` bakes the
final mask into the weights (zeros in place) and removes the re-parametrisation,
so only the remaining weights count at inference and a saved model needs no
pruning code.

Layers. Every ``Conv1d/2d/3d`` and ``Linear`` weight is pruned, the final
classifier included, as the paper prunes all layers; biases and normalisation
parameters are not. ``skip`` leaves named modules dense.

Scope and structure. ``global`` ranks magnitudes across all pruned layers,
``layer`` within each layer (each reaches the target on its own).
``unstructured`` prunes single weights; ``structured`` prunes whole output
units (rows of a ``Linear``, filters of a conv, bias included) by L2 norm, in
``global`` scope by RMS (norm / sqrt(fan-in)) so that layers of different
fan-in compare fairly, and never removes a layer's last unit. For structured
pruning, ``sparsity`` is the fraction of units removed.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Literal, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from compaudit.train.recipe import PruneConfig

__all__ = [
    "MagnitudePruner",
    "MagnitudePruningSession",
    "achieved_sparsity",
    "compute_masks",
    "cubic_sparsity",
    "prunable_layers",
    "pruning_steps",
    "scheduled_sparsity",
]

_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def pruning_steps(begin_step: int, end_step: int, frequency: int) -> list[int]:
    """Steps at which the mask is re-computed: ``t0, t0 + dt, ...`` and ``end_step``."""
    if end_step <= begin_step or frequency < 1:
        raise ValueError("need end_step > begin_step and frequency >= 1")
    steps = list(range(begin_step, end_step, frequency))
    return [*steps, end_step]


def cubic_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int
) -> float:
    """Zhu & Gupta's cubic sparsity at (pruning) step ``step``.

    ``initial`` before ``begin_step``, ``final`` from ``end_step`` on, and
    ``final + (initial - final) * (1 - (step - begin) / (end - begin))**3`` between.
    """
    if step <= begin_step:
        return initial
    if step >= end_step:
        return final
    frac = (step - begin_step) / (end_step - begin_step)
    return final + (initial - final) * (1.0 - frac) ** 3


def scheduled_sparsity(step: int, config: PruneConfig) -> float:
    """Sparsity in force during step ``step``: that of the last pruning step ``<= step``."""
    if step < config.begin_step:
        return 0.0
    last = max(
        t for t in pruning_steps(config.begin_step, config.end_step, config.frequency) if t <= step
    )
    return cubic_sparsity(
        last,
        initial=config.initial_sparsity,
        final=config.sparsity,
        begin_step=config.begin_step,
        end_step=config.end_step,
    )


def prunable_layers(model: nn.Module, skip: list[str] | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every conv and linear layer not matched by ``skip``."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, _PRUNABLE) and not any(fnmatch.fnmatch(name, p) for p in skip or [])
    ]


def _chunks(flat: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Split a flat tensor into consecutive pieces of ``sizes``."""
    out, start = [], 0
    for size in sizes:
        out.append(flat[start : start + size])
        start += size
    return out


def _tensor(module: nn.Module, name: str) -> torch.Tensor:
    return cast(torch.Tensor, getattr(module, name))


def _prune_lowest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask with the ``count`` lowest scores pruned; ties go to the lower index."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if count > 0:
        order = torch.argsort(scores.reshape(-1), stable=True)
        keep[order[:count]] = False
    return keep


def compute_masks(
    weights: list[torch.Tensor],
    sparsity: float,
    *,
    scope: Literal["global", "layer"] = "global",
    structure: Literal["unstructured", "structured"] = "unstructured",
) -> list[torch.Tensor]:
    """Keep-masks (bool, shaped like each weight) that prune to ``sparsity``.

    Unstructured: exactly ``round(sparsity * total)`` weights are pruned in
    ``global`` scope, ``round(sparsity * numel)`` per layer in ``layer``
    scope. Structured: whole rows along dim 0 (output units), counted the
    same way over units, each layer keeping at least one.
    """
    ws = [w.detach() for w in weights]
    if structure == "unstructured":
        if scope == "layer":
            return [_prune_lowest(w.abs(), round(sparsity * w.numel())).view_as(w) for w in ws]
        flat = torch.cat([w.abs().reshape(-1) for w in ws])
        keep = _prune_lowest(flat, round(sparsity * flat.numel()))
        return [
            k.view_as(w) for k, w in zip(_chunks(keep, [w.numel() for w in ws]), ws, strict=True)
        ]

    norms = [w.reshape(w.shape[0], -1).norm(dim=1) for w in ws]
    if scope == "layer":
        units = [_prune_lowest(n, min(round(sparsity * n.numel()), n.numel() - 1)) for n in norms]
    else:
        rms = torch.cat([n / math.sqrt(w[0].numel()) for n, w in zip(norms, ws, strict=True)])
        keep = _prune_lowest(rms, round(sparsity * rms.numel()))
        units = _chunks(keep, [n.numel() for n in norms])
        for i, (u, n) in enumerate(zip(units, norms, strict=True)):
            if not u.any():  # never cut a layer off completely
                u = u.clone()
                u[int(torch.argmax(n))] = True
                units[i] = u
    return [
        u.view(-1, *([1] * (w.dim() - 1))).expand_as(w).clone()
        for u, w in zip(units, ws, strict=True)
    ]


class _StraightThroughMask(nn.Module):
    """Parametrisation ``w -> w * mask`` whose gradient reaches masked weights too."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # w - w.detach() is exactly 0 in value but carries gradient 1.
        return torch.where(self.mask, w, w - w.detach())


class MagnitudePruningSession:
    """Gradual magnitude pruning of one model during one training run."""

    def __init__(self, model: nn.Module, config: PruneConfig) -> None:
        self.config = config
        self.layers = prunable_layers(model, config.skip)
        if not self.layers:
            raise ValueError("the model has no conv or linear layer to prune (check 'skip')")
        self._steps = set(pruning_steps(config.begin_step, config.end_step, config.frequency))
        self.history: list[tuple[int, float]] = []
        """``(step, sparsity)`` at each mask update."""
        self._masks: list[_StraightThroughMask] = []
        self._bias_masks: list[_StraightThroughMask | None] = []
        for _, m in self.layers:
            pm = _StraightThroughMask(torch.ones_like(_tensor(m, "weight"), dtype=torch.bool))
            parametrize.register_parametrization(m, "weight", pm, unsafe=True)
            self._masks.append(pm)
            bm: _StraightThroughMask | None = None
            if config.structure == "structured" and m.bias is not None:
                bm = _StraightThroughMask(torch.ones_like(_tensor(m, "bias"), dtype=torch.bool))
                parametrize.register_parametrization(m, "bias", bm, unsafe=True)
            self._bias_masks.append(bm)

    def _dense_weights(self) -> list[torch.Tensor]:
        return [
            _tensor(getattr(m.parametrizations, "weight"), "original")  # noqa: B009
            for _, m in self.layers
        ]

    @torch.no_grad()
    def step(self, step: int) -> None:
        """Re-compute the masks when ``step`` is a pruning step."""
        if step not in self._steps:
            return
        c = self.config
        s = cubic_sparsity(
            step,
            initial=c.initial_sparsity,
            final=c.sparsity,
            begin_step=c.begin_step,
            end_step=c.end_step,
        )
        masks = compute_masks(self._dense_weights(), s, scope=c.scope, structure=c.structure)
        for pm, bm, mask in zip(self._masks, self._bias_masks, masks, strict=True):
            pm.mask.copy_(mask)
            if bm is not None:
                bm.mask.copy_(mask.reshape(mask.shape[0], -1)[:, 0])
        self.history.append((step, s))

    @torch.no_grad()
    def finalize(self) -> dict[str, Any]:
        """Bake the final masks into the weights and remove the parametrisations."""
        for (_, m), bm in zip(self.layers, self._bias_masks, strict=True):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
            if bm is not None:
                parametrize.remove_parametrizations(m, "bias", leave_parametrized=True)
        weights = {name: _tensor(m, "weight") for name, m in self.layers}
        return {
            **achieved_sparsity(
                list(weights.values()), structured=self.config.structure == "structured"
            ),
            "target_sparsity": self.config.sparsity,
            "pruned_weights": sum(w.numel() for w in weights.values()),
            "layer_sparsity": {
                name: float((w == 0).sum().item() / w.numel()) for name, w in weights.items()
            },
            "mask_updates": len(self.history),
        }


def achieved_sparsity(weights: list[torch.Tensor], *, structured: bool) -> dict[str, float]:
    """Fraction of exactly-zero weights (``sparsity``); with ``structured``, also of
    all-zero output units (``unit_sparsity``, what a structured target counts).

    A NaN or infinite weight is not zero, so it counts as not pruned: the masked
    forward keeps ``w - w.detach()``, which is NaN for a NaN weight, and a
    diverged model must not report the sparsity it was asked for.
    """
    zeros = sum(int((w == 0).sum().item()) for w in weights)
    out = {"sparsity": zeros / max(1, sum(w.numel() for w in weights))}
    if structured:
        units = [(w.reshape(w.shape[0], -1) == 0).all(dim=1) for w in weights]
        out["unit_sparsity"] = sum(int(u.sum().item()) for u in units) / max(
            1, sum(u.numel() for u in units)
        )
    return out


class MagnitudePruner:
    """The built-in pruning compressor (``prune.method: magnitude``)."""

    name = "magnitude"
    kind: Literal["prune"] = "prune"

    def attach(self, model: nn.Module, config: PruneConfig) -> MagnitudePruningSession:
        """Re-parametrise ``model``'s prunable weights with all-ones masks."""
        return MagnitudePruningSession(model, config)
