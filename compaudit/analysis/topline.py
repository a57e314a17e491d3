"""Per-population accuracy: top-1 (and top-5 when top-k labels exist) per model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compaudit.population import Population

__all__ = ["TopLine", "correct_matrix", "summarize", "topk_correct"]


def correct_matrix(predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean ``[K, N]``: whether each model's top-1 prediction is right."""
    return np.asarray(predictions == y[None, :])


def topk_correct(topk: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Boolean ``[K, N]``: whether the label is among each model's first ``k`` guesses."""
    return np.asarray((topk[:, :, :k] == y[None, :, None]).any(axis=2))


def _std(values: np.ndarray) -> float | None:
    # The spread of one model is undefined, not zero.
    return float(values.std(ddof=1)) if values.size >= 2 else None


@dataclass(frozen=True)
class TopLine:
    """Accuracy of every model in a population, with mean and std (ddof=1).

    ``top5*`` are ``None`` when the population has fewer than 5 top-k columns.
    """

    k: int
    top1_per_model: np.ndarray
    top1: float
    top1_std: float | None
    top5_per_model: np.ndarray | None
    top5: float | None
    top5_std: float | None


def summarize(population: Population, *, correct: np.ndarray | None = None) -> TopLine:
    """Top-1 (and top-5) accuracy per model of ``population``.

    Parameters
    ----------
    population : Population
        The models' predictions.
    correct : ndarray of bool, shape (K, N), optional
        Precomputed :func:`correct_matrix`, to avoid recomputing it.
    """
    c = correct if correct is not None else correct_matrix(population.predictions, population.y)
    top1 = c.mean(axis=1)
    top5 = None
    if population.topk is not None and population.topk.shape[2] >= 5:
        top5 = topk_correct(population.topk, population.y, 5).mean(axis=1)
    return TopLine(
        k=population.k,
        top1_per_model=top1,
        top1=float(top1.mean()),
        top1_std=_std(top1),
        top5_per_model=top5,
        top5=float(top5.mean()) if top5 is not None else None,
        top5_std=_std(top5) if top5 is not None else None,
    )
