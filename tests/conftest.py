"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from compaudit.population import Population, save_population


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


def gated_predictions(directory: Path, names: tuple[str, str, str]) -> dict[str, Path]:
    """Predictions files for exit-code tests: a reference (K = 5, N = 2,000, 10
    classes), a quantized candidate (member k from reference member k, 0.2% of
    predictions touched) that passes ``digits-demo.yaml`` with ``--paired``, and a
    pruned one that forgets class 3 (60% errors there) and fails it.

    ``names`` are the file stems of (reference, passing, failing).
    """
    rng = np.random.default_rng(0)
    n, classes, k = 2000, 10, 5
    y = rng.integers(0, classes, n)

    def predictions(error: np.ndarray) -> np.ndarray:
        wrong = rng.random((k, n)) < error[None, :]
        noise = (y[None, :] + rng.integers(1, classes, (k, n))) % classes  # never the label
        return np.where(wrong, noise, y[None, :])

    base = predictions(np.full(n, 0.03))
    passing = base.copy()
    touched = rng.random((k, n)) < 0.002
    passing[touched] = (passing[touched] + 1) % classes
    failing = predictions(np.where(y == 3, 0.60, 0.04))
    paths = {name: directory / f"{name}.npz" for name in names}
    for name, pred in zip(names, (base, passing, failing), strict=True):
        save_population(Population.create(predictions=pred, y=y), paths[name])
    return paths


class UnpickleMarker:
    """A pickle that would create ``path`` when unpickled: a test asserts it never appears."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.path), "ran"))
