"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from compaudit.population import Population


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the prediction cache out of the user's home and never download data."""
    if "COMPAUDIT_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("COMPAUDIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("COMPAUDIT_NO_DOWNLOAD", "1")


def synthetic_population(
    rng: np.random.Generator,
    *,
    y: np.ndarray,
    k: int,
    num_classes: int,
    difficulty: np.ndarray,
    damage: dict[int, float] | None = None,
) -> np.ndarray:
    """Predictions [k, N]: members right with prob. ``difficulty``, damaged per class."""
    n = y.shape[0]
    p = difficulty.copy()
    for c, loss in (damage or {}).items():
        p[y == c] *= 1 - loss
    correct = rng.random((k, n)) < p
    wrong = (y + rng.integers(1, num_classes, (k, n))) % num_classes
    return np.where(correct, y, wrong)


@pytest.fixture
def small_case() -> dict[str, object]:
    """A seeded 10-class case: reference K=5, a damaged candidate K=5, attributes."""
    rng = np.random.default_rng(1234)
    n, c = 2000, 10
    y = rng.integers(0, c, n)
    difficulty = rng.uniform(0.7, 0.99, n)
    ref = synthetic_population(rng, y=y, k=5, num_classes=c, difficulty=difficulty)
    cand = synthetic_population(
        rng, y=y, k=5, num_classes=c, difficulty=difficulty, damage={3: 0.4}
    )
    attrs = {
        "sex": rng.choice(["F", "M"], n),
        "age": rng.choice(["<30", "30+", "60+"], n, p=[0.5, 0.45, 0.05]),
    }
    return {
        "reference": Population.create(ref, y, attributes=attrs, source="ref.npz"),
        "candidate": Population.create(cand, y, source="cand.npz"),
        "y": y,
    }


@pytest.fixture
def shared_data_dir() -> Path:
    """The real datasets (../shared/data), or skip with the reason."""
    value = os.environ.get("COMPAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("real data not available: set COMPAUDIT_DATA_DIR to ../shared/data")
    return Path(value)
