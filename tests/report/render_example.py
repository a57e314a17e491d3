"""Write a realistic ``report.html`` over scikit-learn's 1797 digits, to look at in a browser.

Usage (see docs/screenshots.md for the Chromium command that photographs it)::

    .venv/bin/python tests/report/render_example.py OUT_DIR

The populations are simulated but grounded in the real images: each digit's
difficulty is the cross-validated probability a logistic regression gives its
true class, wrong answers follow that model's confusions, and the "pruned"
population loses most on atypical digits and on classes 3 and 8. The
``stroke`` attribute is the digit's ink (thin / medium / thick, by tertile);
thin digits are hurt a little more.
Gates come from the real policy engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from compaudit.engine import AuditResult, AuditSettings, audit
from compaudit.population import Population
from compaudit.report.base import ReportContext
from compaudit.report.html import HTMLReporter
from compaudit.results import AuditReport

SEED = 0
K = 5
POLICY = {
    "version": 1,
    "gates": {
        "top1_drop": 0.01,
        "pie_rate": 0.05,
        "significant_classes": 0,
        "subgroups": {"attributes": ["stroke"], "min_support": 30, "accuracy_gap": 0.05},
    },
}


def _population(
    rng: np.random.Generator, proba: np.ndarray, y: np.ndarray, p_right: np.ndarray, k: int
) -> np.ndarray:
    n, c = proba.shape
    right = rng.random((k, n)) < p_right
    confusions = proba.copy()
    confusions[np.arange(n), y] = 0.0
    confusions = (confusions + 1e-3) / (confusions + 1e-3).sum(axis=1, keepdims=True)
    cum = confusions.cumsum(axis=1)
    wrong = (rng.random((k, n, 1)) > cum[None]).sum(axis=2).clip(0, c - 1)
    return np.where(right, y, wrong)


def build(seed: int = SEED) -> tuple[AuditResult, AuditReport, np.ndarray]:
    """The audit result, its report (with real gates) and the display images."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from compaudit.gates import decide_verdict, evaluate_gates
    from compaudit.policy import Policy

    digits = load_digits()
    y = digits.target.astype(np.int64)
    x = digits.data / 16.0
    proba = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=5, method="predict_proba")
    p_true = proba[np.arange(len(y)), y]
    rng = np.random.default_rng(seed)
    ref_right = 0.6 + 0.39 * p_true**0.5
    ink = x.sum(axis=1)
    stroke = np.array(["thin", "medium", "thick"])[
        np.digitize(ink, np.quantile(ink, [1 / 3, 2 / 3]))
    ]
    hurt = 0.35 * (1 - p_true) + 0.12 * np.isin(y, [3, 8]) + 0.04 * (stroke == "thin")
    names = [str(d) for d in range(10)]
    ref = Population.create(
        _population(rng, proba, y, ref_right, K), y, class_names=names,
        attributes={"stroke": stroke}, source="digits/reference (K=5)",
    )  # fmt: skip
    pruned = Population.create(
        _population(rng, proba, y, ref_right * (1 - hurt), K), y, class_names=names,
        source="digits/pruned-90 (K=5)",
    )  # fmt: skip
    int8 = Population.create(
        _population(rng, proba, y, ref_right * (1 - 0.1 * hurt), 1), y, class_names=names,
        source="digits/int8.onnx",
    )  # fmt: skip
    settings = AuditSettings(attributes=("stroke",), min_support=30, seed=seed)
    result = audit(ref, {"pruned-90": pruned, "int8": int8}, settings=settings)
    policy = Policy.model_validate(POLICY)
    gate_results = evaluate_gates(result.report(), policy)
    report = result.report(gates=gate_results, verdict=decide_verdict(gate_results, []))
    images = (255 - digits.images * 255 / 16).round().astype(np.uint8)  # dark ink on white
    return result, report, images


def main(out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` and return its path."""
    result, report, images = build()
    context = ReportContext(
        console=Console(),
        result=result,
        images=images,
        sources={"data": "sklearn digits (1797 images)", "policy": "inline example policy"},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = HTMLReporter().write(report, out_dir=out_dir, context=context)
    assert path is not None
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "compaudit-report")))
