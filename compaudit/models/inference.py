"""The batched inference loop shared by every built-in runner.

A runner supplies one function, ``run_batch(x_batch) -> scores [B, C]``; this
module slices the inputs, validates the scores (finite, the right width,
probabilities when declared), and writes top-k labels and probabilities into
preallocated arrays. Per-batch work outside the model is a few small numpy
operations on ``[B, C]`` arrays, so the loop stays within a few per cent of a
bare ``session.run`` loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from compaudit._io import progress_enabled
from compaudit.errors import CompauditWarning, ModelError
from compaudit.models.base import Prediction, RunnerSettings

__all__ = [
    "ERR_BAD_SCORES_SHAPE",
    "ERR_NONFINITE",
    "ERR_NOT_PROBABILITIES",
    "ERR_WIDTH",
    "PROGRESS_MIN_EXAMPLES",
    "WARN_LOOKS_LIKE_PROBABILITIES",
    "ScoreFn",
    "describe_array",
    "run_batches",
    "short_error",
    "topk_from_scores",
]

# Error messages (tests assert them exactly).
ERR_NONFINITE = (
    "{model}: the model produced NaN or infinite outputs for {bad} of {n} examples; "
    "check the model (overflow after compression?) and that inputs are preprocessed as in training"
)
ERR_WIDTH = (
    "{model}: the model outputs {width} score(s) per example but the dataset has {c} classes; "
    "use the data the model was trained for (or fix class_names)"
)
ERR_BAD_SCORES_SHAPE = (
    "{model}: expected scores of shape [batch, classes] = [{b}, C], got {shape}; "
    "the model must return one row of class scores per example"
)
ERR_SCORES_DTYPE = (
    "{model}: the model outputs values of dtype {dtype}; it must return numeric class "
    "scores (one row of floats per example)"
)
ERR_NOT_PROBABILITIES = (
    "{model}: --outputs-probabilities was given but the outputs are not probabilities "
    "(row sums {lo:.4g} .. {hi:.4g}, min value {vmin:.4g}); drop the flag to apply softmax"
)

# A CompauditWarning (the CLI prefixes "compaudit: warning: ").
WARN_LOOKS_LIKE_PROBABILITIES = (
    "{model}: the outputs look like probabilities already (non-negative, "
    "rows sum to 1); pass --outputs-probabilities so that softmax is not applied twice"
)

PROGRESS_MIN_EXAMPLES = 4096
"""Below this many examples no progress bar is shown (it would only flicker)."""

# Up to this many classes a full stable sort of [B, C] costs about as much as
# argpartition; both paths break ties like argmax (lower class index first).
_FULL_SORT_MAX_CLASSES = 64
_PROB_ATOL = 1e-3

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps one input batch to class scores ``[B, C]`` (float)."""


def short_error(exc: BaseException, limit: int = 300) -> str:
    """First meaningful line of an exception, for one-line messages.

    Longer than ``limit`` characters, it is cut at a word boundary and ends in "...",
    never mid-word (a cut word reads like a typo in the library's message).
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "..."


def describe_array(x: np.ndarray) -> str:
    """``float32 [N, 1, 8, 8]`` style description of the model input."""
    return f"{x.dtype} [{', '.join(str(d) for d in x.shape)}]"


def topk_from_scores(
    scores: np.ndarray, k: int, *, probabilities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k class indices (best first) and their probabilities.

    Parameters
    ----------
    scores : ndarray of shape (B, C)
        Finite logits (or probabilities when ``probabilities``).
    k : int
        Number of classes to keep, ``1 <= k <= C``.
    probabilities : bool
        Whether ``scores`` already are probabilities (no softmax).

    Returns
    -------
    idx : ndarray of int64, shape (B, k)
        Ties are broken toward the lower class index (as ``argmax`` does).
    probs : ndarray of float32, shape (B, k)
        Softmax of ``scores`` at ``idx`` (or ``scores`` at ``idx``).
    """
    c = scores.shape[1]
    if c <= _FULL_SORT_MAX_CLASSES or k == c:
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, part, axis=1)
        # Order the k survivors by score (descending), then by class index.
        order = np.lexsort((part, -vals), axis=-1)
        idx = np.take_along_axis(part, order, axis=1)
        # Rows whose k-th score is tied with scores left out: argpartition chose
        # among the tied classes arbitrarily; redo them with a stable sort.
        tied = (scores >= vals.min(axis=1, keepdims=True)).sum(axis=1) > k
        if tied.any():
            idx[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, idx, axis=1)
    if probabilities:
        return idx, top.astype(np.float32, copy=False)
    # Stable softmax evaluated only where needed: exp(top - max) / sum(exp(all - max)).
    s64 = scores.astype(np.float64, copy=False)
    m = s64[np.arange(s64.shape[0]), idx[:, 0]][:, None]
    denom = np.exp(s64 - m).sum(axis=1, keepdims=True)
    probs = np.exp(top.astype(np.float64) - m) / denom
    return idx, probs.astype(np.float32)


def _progress(n: int, *, wanted: bool = True) -> Progress:
    """A transient bar on stderr; off unless ``wanted``, ``n`` is large and
    :func:`~compaudit._io.progress_enabled` (no ``-q``, stderr a terminal)."""
    console = Console(stderr=True)
    enabled = wanted and n >= PROGRESS_MIN_EXAMPLES and progress_enabled() and console.is_terminal
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )


def run_batches(
    model: str | Path,
    x: np.ndarray,
    run_batch: ScoreFn,
    settings: RunnerSettings,
    *,
    num_classes: int | None = None,
    batch_size: int | None = None,
) -> Prediction:
    """Run ``run_batch`` over ``x`` in batches and collect top-k predictions.

    Parameters
    ----------
    model : str or Path
        Model name or file, used in messages and the progress bar.
    x : ndarray of shape (N, ...)
        All model inputs.
    run_batch : callable
        Scores ``[B, C]`` for one batch ``x[i:i + B]``.
    settings : RunnerSettings
        ``batch_size``, ``k``, ``outputs_probabilities`` and ``progress`` are used here.
    num_classes : int, optional
        Expected score width; checked on the first batch.
    batch_size : int, optional
        Overrides ``settings.batch_size`` (models with a fixed batch dimension).

    Returns
    -------
    Prediction

    Raises
    ------
    ModelError
        Scores that are not numbers, of the wrong shape or width, non-finite
        scores (counted over all examples), or declared probabilities that are not.

    Warns
    -----
    CompauditWarning
        Scores that look like probabilities without ``outputs_probabilities``
        (:data:`WARN_LOOKS_LIKE_PROBABILITIES`).
    """
    n = int(x.shape[0])
    bs = max(1, int(batch_size or settings.batch_size))
    if settings.k < 1:
        raise ModelError(f"{model}: top-k must be at least 1, got {settings.k}")
    idx_out: np.ndarray | None = None
    prob_out: np.ndarray | None = None
    k = width = 0
    nonfinite = 0
    with _progress(n, wanted=settings.progress) as progress:
        task = progress.add_task(Path(str(model)).name, total=n)
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            scores = np.asarray(run_batch(x[start:stop]))
            if scores.dtype.kind not in "iuf":  # strings, bools, objects: not class scores
                raise ModelError(ERR_SCORES_DTYPE.format(model=model, dtype=scores.dtype))
            if idx_out is None:
                if scores.ndim != 2 or scores.shape[0] != stop - start:
                    raise ModelError(
                        ERR_BAD_SCORES_SHAPE.format(model=model, b=stop - start, shape=scores.shape)
                    )
                width = int(scores.shape[1])
                if num_classes is not None and width != num_classes:
                    raise ModelError(ERR_WIDTH.format(model=model, width=width, c=num_classes))
                k = min(settings.k, width)
                if not settings.outputs_probabilities and _are_probabilities(scores):
                    # Top-k is unaffected, but reported probabilities would be flattened.
                    warnings.warn(
                        WARN_LOOKS_LIKE_PROBABILITIES.format(model=model),
                        CompauditWarning,
                        stacklevel=2,
                    )
                idx_out = np.empty((n, k), dtype=np.int64)
                prob_out = np.empty((n, k), dtype=np.float32)
            elif scores.shape != (stop - start, width):
                raise ModelError(
                    ERR_BAD_SCORES_SHAPE.format(model=model, b=stop - start, shape=scores.shape)
                )
            assert prob_out is not None  # allocated with idx_out
            if nonfinite or not np.isfinite(scores).all():
                # Keep counting over all examples so the message says how many.
                nonfinite += int((~np.isfinite(scores).all(axis=1)).sum())
                progress.update(task, advance=stop - start)
                continue
            if settings.outputs_probabilities:
                _check_probabilities(model, scores)
            idx, probs = topk_from_scores(scores, k, probabilities=settings.outputs_probabilities)
            idx_out[start:stop] = idx
            prob_out[start:stop] = probs
            progress.update(task, advance=stop - start)
    if nonfinite:
        raise ModelError(ERR_NONFINITE.format(model=model, bad=nonfinite, n=n))
    if idx_out is None or prob_out is None:  # N == 0
        raise ModelError(f"{model}: there are no examples to predict (N = 0)")
    return Prediction(topk=idx_out, probs=prob_out)


def _probability_stats(scores: np.ndarray) -> tuple[float, float, float]:
    sums = scores.sum(axis=1, dtype=np.float64)
    return float(sums.min()), float(sums.max()), float(scores.min())


def _are_probabilities(scores: np.ndarray) -> bool:
    if not np.isfinite(scores).all():
        return False
    lo, hi, vmin = _probability_stats(scores)
    return vmin >= -_PROB_ATOL and lo >= 1 - _PROB_ATOL and hi <= 1 + _PROB_ATOL


def _check_probabilities(model: str | Path, scores: np.ndarray) -> None:
    if not _are_probabilities(scores):
        lo, hi, vmin = _probability_stats(scores)
        raise ModelError(ERR_NOT_PROBABILITIES.format(model=model, lo=lo, hi=hi, vmin=vmin))
