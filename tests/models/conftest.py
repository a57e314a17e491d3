"""Session fixtures: real models trained once per test session (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compaudit.data.base import Dataset

from .helpers import digits, fashion, fashion_data_dir, make_digits_models, make_fashion_models


@pytest.fixture(scope="session")
def digits_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CNN and MLP trained on digits:train, in every format (see ``make_digits_models``)."""
    return make_digits_models(tmp_path_factory.mktemp("digits_models"))


@pytest.fixture(scope="session")
def digits_test() -> Dataset:
    """digits:test (540 examples)."""
    return digits("test")


@pytest.fixture(scope="session")
def fashion_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CNN trained briefly on Fashion-MNIST (skips without the real data)."""
    if fashion_data_dir() is None:
        pytest.skip("Fashion-MNIST not available: set COMPAUDIT_DATA_DIR to ../shared/data")
    return make_fashion_models(tmp_path_factory.mktemp("fashion_models"))


@pytest.fixture(scope="session")
def fashion_test(fashion_models: dict[str, Path]) -> Dataset:
    """The first 2,000 Fashion-MNIST test images."""
    return fashion("test", 2000)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty prediction cache for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("COMPAUDIT_CACHE_DIR", str(root))
    return root / "predictions"
