"""The training loop: short enough to read in one sitting (airbench style).

One member = ``torch.manual_seed(seed)``, build, (optionally) attach a
pruning session, then ``epochs`` passes over the training split in an order
drawn from a generator seeded with the same ``seed``. Nothing else is random,
so on CPU the same recipe and seed give bit-identical weights.

Health checks: the loss of every step must be finite (checked before its
backward pass, so a NaN never reaches the weights) and so must every weight
and buffer after each epoch; otherwise training stops with
:class:`NonFiniteError`, naming the step.

Evaluation is not here: members are evaluated from the files they were saved
to, through the model runners (:mod:`compaudit.train.member`), so that the
manifest's metrics come from the code ``compaudit report`` runs.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch convention)

from compaudit.errors import ModelError
from compaudit.train.base import PruningSession
from compaudit.train.recipe import TrainingConfig

__all__ = [
    "SMALL_STEP_MACS",
    "NonFiniteError",
    "auto_threads",
    "check_weights",
    "complete_arch_kwargs",
    "deterministic",
    "lr_at",
    "make_optimizer",
    "nonfinite_tensors",
    "step_macs",
    "steps_per_epoch",
    "train_model",
]


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """Deterministic kernels for the duration (restored afterwards)."""
    if device == "cuda":
        # cuBLAS needs this before its first use to be reproducible.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


ERR_NONFINITE_LOSS = "non-finite loss ({value}) at step {step} of {total}"
ERR_NONFINITE_WEIGHTS = "non-finite weights ({names}) after step {step} of {total}"


class NonFiniteError(ModelError):
    """Training produced a non-finite loss or non-finite weights.

    ``step`` is the 0-based optimizer step (for weights: the number of steps
    taken when they were checked); ``total`` the run's number of steps.
    """

    def __init__(self, message: str, *, step: int, total: int) -> None:
        super().__init__(message)
        self.step = step
        self.total = total

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields: pickle (a process pool) would otherwise lose them.
        return (_rebuild_nonfinite, (str(self), self.step, self.total))


def _rebuild_nonfinite(message: str, step: int, total: int) -> NonFiniteError:
    return NonFiniteError(message, step=step, total=total)


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers holding a NaN or an infinity."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [
        name
        for name, t in tensors
        if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all())
    ]


def check_weights(model: nn.Module, *, step: int, total: int) -> None:
    """Raise :class:`NonFiniteError` when a weight or buffer of ``model`` is not finite."""
    bad = nonfinite_tensors(model)
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteError(
            ERR_NONFINITE_WEIGHTS.format(names=names, step=step, total=total),
            step=step,
            total=total,
        )


def complete_arch_kwargs(
    arch: str, kwargs: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> dict[str, Any]:
    """Fill in the input size and number of classes the data imply.

    ``input_shape`` is one example's shape (without the batch axis).
    """
    out = dict(kwargs)
    out.setdefault("num_classes", num_classes)
    if arch == "mlp":
        out.setdefault("in_features", int(np.prod(input_shape)))
    elif len(input_shape) == 3:
        out.setdefault("in_channels", int(input_shape[0]))
        if arch == "cnn28":
            out.setdefault("in_size", int(input_shape[1]))
    return out


# Below this many multiply-accumulates per optimizer step, extra intra-op
# threads cost more in synchronisation than they save (and on a busy machine
# they spin): 1 thread is faster for the digits MLP by 2-20x.
SMALL_STEP_MACS = 5_000_000


def step_macs(model: nn.Module, example: torch.Tensor, batch_size: int) -> int:
    """Multiply-accumulates of the conv and linear layers in one forward pass of a batch."""
    total = 0

    def count(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        # Each output element costs one weight row/filter of MACs.
        weight = cast(torch.Tensor, module.weight)
        total += weight[0].numel() * out[0].numel()

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
    ]
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return total * batch_size


# Threads per member (``python -m benchmarks.bench_trainer --threads`` on the idle
# 2-core machine, load 0.8, best of 3): 2 threads against 1 trained the digits cnn28
# in 0.79x and the Fashion-MNIST cnn28 in 0.75x the time, and ran inference in
# 0.56-0.66x; but two members side by side at 1 thread each took 0.66x (digits) and
# 0.73x (Fashion-MNIST) the wall time of the same two one after another at 2
# threads. So a single job takes every core, and parallelism is better spent on
# members (``--jobs`` = cores, each then gets ``cores // jobs``). Under load (2-6),
# extra threads spin instead: 2 threads were 5-33x slower there.
def auto_threads(model: nn.Module, example: torch.Tensor, batch_size: int) -> int:
    """Torch threads for training ``model`` on CPU in this process.

    1 when a step is small (under :data:`SMALL_STEP_MACS`), else torch's
    default (every core).
    """
    if step_macs(model, example, batch_size) < SMALL_STEP_MACS:
        return 1
    return torch.get_num_threads()


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch (a last batch of one example is dropped: batch norm)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


def lr_at(step: int, *, total_steps: int, steps_per_epoch: int, cfg: TrainingConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))
    if cfg.lr_schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)
    return cfg.lr


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam over every parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainingConfig,
    *,
    epochs: int,
    seed: int,
    pruning: PruningSession | None = None,
    on_epoch: Callable[[int], None] | None = None,
    indices: torch.Tensor | None = None,
) -> int:
    """Train ``model`` in place on ``(x, y)`` (already on the model's device).

    Parameters
    ----------
    model : torch.nn.Module
        The model (with its pruning re-parametrisation already attached).
    x, y : torch.Tensor
        All training inputs and labels.
    cfg : TrainingConfig
        Hyperparameters (``cfg.epochs`` is overridden by ``epochs``).
    epochs : int
        Passes over the data.
    seed : int
        Seed of the data order (a CPU generator, so orders match across devices).
    pruning : PruningSession, optional
        Told about every step before it is taken, and once after the last.
    on_epoch : callable, optional
        Called with the number of finished epochs.
    indices : torch.Tensor, optional
        Train on these rows of ``(x, y)`` only (int64, on ``x``'s device): each
        batch is gathered by index, the data are never copied whole. Default: all.

    Returns
    -------
    int
        The number of optimizer steps taken.

    Raises
    ------
    NonFiniteError
        A step's loss, or a weight or buffer after an epoch, is NaN or infinite.
    """
    n = int(y.shape[0]) if indices is None else int(indices.shape[0])
    spe = steps_per_epoch(n, cfg.batch_size)
    total = spe * epochs
    optimizer = make_optimizer(model, cfg)
    order = torch.Generator().manual_seed(seed)
    model.train()
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=order).to(x.device)
        for b in range(spe):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if indices is not None:
                idx = indices[idx]
            if pruning is not None:
                pruning.step(step)
            lr = lr_at(step, total_steps=total, steps_per_epoch=spe, cfg=cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x[idx]), y[idx])
            # One scalar test per step (the loss is computed anyway); stop before
            # backward so that a NaN never reaches the weights or the optimizer state.
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteError(
                    ERR_NONFINITE_LOSS.format(value=value, step=step, total=total),
                    step=step,
                    total=total,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            step += 1
        check_weights(model, step=step, total=total)
        if on_epoch is not None:
            on_epoch(epoch + 1)
    if pruning is not None:
        pruning.step(step)
    model.eval()
    return step
