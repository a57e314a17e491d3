"""The Fashion-MNIST study judges the paper's claims from its numbers (no retraining here)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ._load import load_example

ROOT = Path(__file__).resolve().parents[2]


def _study() -> ModuleType:
    return load_example("examples/fashion-mnist/study.py", "fmnist_study")


def _level(name: str, delta: float, worse: int, pies: int) -> dict[str, Any]:
    return {"population": name, "top1_delta": delta, "sig_classes_worse": worse, "pies": pies}


def _subset(name: str, n: int, pie: float, rand: float) -> dict[str, Any]:
    return {
        "candidate": name,
        "n_pie": n,
        "pie_reference": pie,
        "pie_candidate": pie - 0.1,
        "random_reference": rand,
        "random_candidate": rand - 0.01,
    }


def test_claims_hold_on_paper_like_numbers() -> None:
    levels = [
        {"population": "dense", "top1_delta": None, "sig_classes_worse": None, "pies": None},
        _level("prune-50", -0.001, 1, 100),
        _level("prune-80", -0.004, 2, 180),
        _level("prune-95", -0.03, 4, 600),
        _level("int8", -0.0005, 0, 20),
    ]
    subsets = [_subset(n, 10, 0.5, 0.9) for n in ("prune-50", "prune-80", "prune-95", "int8")]
    verdicts = {claim: holds for claim, holds, _ in _study().claims(levels, subsets)}
    assert all(verdicts.values()), verdicts
    assert len(verdicts) == 5


def test_claims_fail_when_the_numbers_say_so() -> None:
    levels = [
        _level("prune-50", -0.02, 0, 300),  # top-1 moves a lot, no class singled out
        _level("prune-80", -0.004, 0, 200),  # fewer PIEs at higher sparsity
        _level("int8", -0.03, 0, 400),  # quantization worse than pruning
    ]
    subsets = [_subset("prune-50", 10, 0.95, 0.9), _subset("prune-80", 10, 0.5, 0.9)]
    verdicts = [holds for _, holds, _ in _study().claims(levels, subsets)]
    assert verdicts == [False, False, False, False, False]
