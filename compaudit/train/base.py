"""Contracts of the trainer's extension points (compressors and executors).

Built-ins implement them in :mod:`compaudit.train.pruning`,
:mod:`compaudit.train.quantization` and :mod:`compaudit.train.executors` and
register through the ``register_compressors`` / ``register_executors`` hooks,
exactly as a third-party plugin would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    # Annotations only: so that the registry (which the recipe consults for
    # plugin methods) can check these contracts without importing the recipe or torch.
    from torch import nn

    from compaudit.train.recipe import PruneConfig, QuantizeConfig

__all__ = [
    "Compressor",
    "Executor",
    "MemberJob",
    "MemberResult",
    "ProgressEvent",
    "ProgressFn",
    "Pruner",
    "PruningSession",
    "QuantizedFiles",
    "Quantizer",
    "SourceMember",
]


class PruningSession(Protocol):
    """Pruning state attached to one model for one training run."""

    def step(self, step: int) -> None:
        """Called before optimizer step ``step`` (0-based) and once after the last one."""
        ...

    def finalize(self) -> dict[str, Any]:
        """Fix the final mask, bake the zeros into the weights, remove any hooks.

        Returns statistics for the manifest (at least ``sparsity``).
        """
        ...


@runtime_checkable
class Compressor(Protocol):
    """What the ``register_compressors`` hook returns: a pruner or a quantizer."""

    name: str
    kind: Literal["prune", "quantize"]


@runtime_checkable
class Pruner(Protocol):
    """A pruning compressor (``kind == "prune"``), named by ``prune.method``."""

    name: str
    kind: Literal["prune"]

    def attach(self, model: nn.Module, config: PruneConfig) -> PruningSession:
        """Prepare ``model`` for pruning during training with ``config``."""
        ...


@dataclass(frozen=True)
class SourceMember:
    """A trained float member that a quantizer starts from."""

    model: nn.Module
    """The float model in eval mode, on CPU."""
    checkpoint: Path
    onnx: Path | None
    """Float ONNX export of the same model, when one was written."""
    info: Mapping[str, Any]
    """Checkpoint fields (arch, arch_kwargs, class_names, preprocessing, meta)."""
    example_input: np.ndarray
    """A small float32 batch with the model's input shape (for exports)."""


@dataclass(frozen=True)
class QuantizedFiles:
    """What a quantizer wrote for one member."""

    files: dict[str, str]
    """Kind (``"ckpt"``, ``"onnx"``) to absolute path."""
    canonical: str
    """Key of ``files`` that the audit should load."""
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Quantizer(Protocol):
    """A post-training quantization compressor (``kind == "quantize"``)."""

    name: str
    kind: Literal["quantize"]

    def quantize(
        self,
        source: SourceMember,
        config: QuantizeConfig,
        calibration: np.ndarray,
        out_stem: Path,
    ) -> QuantizedFiles:
        """Write the quantized model to ``out_stem`` + suffix; ``calibration`` is
        float32 training data drawn with ``config.seed``."""
        ...


@dataclass(frozen=True)
class MemberJob:
    """One member of one variant; picklable so that any executor can ship it."""

    run_dir: str
    recipe: dict[str, Any]
    """The recipe's JSON form (:meth:`Recipe.to_dict`)."""
    variant: str
    member: int
    device: str
    """Resolved device: ``"cpu"`` or ``"cuda"``."""
    threads: int | None = None
    """Torch intra-op threads for this job (None: leave as is)."""

    @property
    def key(self) -> str:
        """Display name ``variant/member``."""
        return f"{self.variant}/{self.member}"


@dataclass(frozen=True)
class MemberResult:
    """A finished member: its manifest entry (files relative to the run dir), or its failure."""

    variant: str
    member: int
    entry: dict[str, Any]
    error: str | None = None
    """Set when the member failed on its own account (it diverged: a non-finite loss
    or weights); ``entry`` then names no files, the run records nothing for it and
    carries on with the other members. Executors pass such a result on like any
    other (it is no exception, so a retrying executor does not retry it)."""


@dataclass(frozen=True)
class ProgressEvent:
    """``start`` (with ``total`` epochs), ``epoch`` (``done`` of ``total``) or ``end``."""

    kind: Literal["start", "epoch", "end"]
    job: str
    done: int = 0
    total: int = 0


ProgressFn = Callable[[ProgressEvent], None]


@runtime_checkable
class Executor(Protocol):
    """Runs member jobs somewhere (this process, a pool, a cluster)."""

    name: str

    def run(
        self,
        jobs: Sequence[MemberJob],
        *,
        workers: int,
        on_result: Callable[[MemberResult], None],
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Run every job with :func:`compaudit.train.member.run_job`.

        Call ``on_result`` in the calling process as each job finishes (the
        run layer records it in the manifest at once). When a job fails,
        still report the jobs that finished, then raise the first error.
        """
        ...
