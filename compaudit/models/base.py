"""The runner contract: a loaded model that predicts top-k labels in batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

TRUST_MODEL_CODE_HELP = (
    "Let model formats that are code (TorchScript .pt/.pth, module:factory) run; without "
    "it they are refused. Give it only for models whose code you trust."
)
"""Help of ``--trust-model-code`` (``report``, ``check``, ``predict``)."""


@dataclass(frozen=True)
class Prediction:
    """Output of one model on one dataset.

    Attributes
    ----------
    topk : ndarray of int, shape (N, k)
        Class indices, best first (column 0 is the top-1 prediction).
    probs : ndarray of float32, shape (N, k)
        Probabilities of those classes (softmax of logits unless the model
        declares it outputs probabilities).
    """

    topk: np.ndarray
    probs: np.ndarray


@dataclass(frozen=True)
class RunnerSettings:
    """Settings that change what a runner computes (part of the cache key).

    ``progress`` and ``trust_model_code`` are the exceptions, not in :meth:`key`:
    ``progress`` only shows or hides the progress bar (the trainer hides it
    under its own display); ``trust_model_code`` lets loaders run model formats
    that are code (TorchScript, ``module:factory``), which without it they refuse.
    """

    batch_size: int = 256
    k: int = 5
    device: str = "cpu"  # "cpu" | "cuda"
    outputs_probabilities: bool = False
    progress: bool = True
    trust_model_code: bool = False

    def key(self) -> dict[str, Any]:
        """The fields that affect results.

        Batch size is one: dynamically quantized models (torch and ONNX
        Runtime) compute activation scales per batch, so their outputs move
        with it.
        """
        return {
            "k": self.k,
            "device": self.device,
            "probs": self.outputs_probabilities,
            "batch_size": self.batch_size,
        }


@runtime_checkable
class Runner(Protocol):
    """A loaded model."""

    name: str
    fingerprint: str
    """sha256 of the model's file(s)."""
    meta: Mapping[str, Any]

    def predict(
        self, x: np.ndarray, settings: RunnerSettings, *, num_classes: int | None = None
    ) -> Prediction:
        """Batched inference over all of ``x`` with a progress bar.

        When ``num_classes`` is given, an output of another width is a ``ModelError``.
        """
        ...


@runtime_checkable
class ModelLoader(Protocol):
    """What a model-loader plugin registers (``register_model_loaders`` hook).

    When several loaders match one spec, the one declaring the longest
    matching suffix reads it; a tie is an error (:func:`compaudit.plugins.resolve`).
    A loader may also have ``fingerprint(path, *, options=None) -> str``
    (the model's sha256 without loading it), which lets the prediction cache
    answer without loading the model.
    """

    name: str
    suffixes: tuple[str, ...]
    """File suffixes read, lower-case with the dot (``(".pt", ".pth")``); ``()``
    for loaders of specs that are not files (``module:factory``). They also
    name candidates: ``m/int8.pth`` is called ``int8``."""

    def matches(self, path: str) -> bool:
        """Whether this loader understands the file or spec ``path``."""
        ...

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> Runner:
        """Load the model; raise ``ModelError`` naming the file when it cannot.

        ``options["trust_model_code"]`` is True only when the user allowed model
        code to run (``--trust-model-code``): a loader of a format that runs
        code when loaded or called must refuse it otherwise, in ``load`` and in
        ``fingerprint`` alike.
        """
        ...


@dataclass
class MemberSpec:
    """One member of a population spec after glob/directory expansion."""

    path: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
