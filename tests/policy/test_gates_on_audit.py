"""Gates on a report written by the real audit engine (not a hand-built dict)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema
import numpy as np

from compaudit.engine import AuditSettings, audit
from compaudit.gates import decide_verdict, evaluate_gates, exit_status_for, settings
from compaudit.policy import load_policy
from compaudit.population import Population


def test_digits_demo_policy_on_a_real_audit(rb: SimpleNamespace) -> None:
    # Populations of 5 models whose errors are drawn per example: the "pruned" one
    # forgets class 3 (60 % errors instead of 3-4 %); "int8" is the reference
    # population with a few predictions changed per member (lineage: member k
    # was made from reference member k).
    rng = np.random.default_rng(0)
    n, classes, k = 2000, 10, 5
    y = rng.integers(0, classes, n)

    def predictions(error: np.ndarray) -> np.ndarray:
        wrong = rng.random((k, n)) < error[None, :]
        noise = (y[None, :] + rng.integers(1, classes, (k, n))) % classes  # never the label
        return np.where(wrong, noise, y[None, :])

    def population(pred: np.ndarray) -> Population:
        return Population.create(predictions=pred, y=y)

    base = predictions(np.full(n, 0.03))
    quantized = base.copy()
    touched = rng.random((k, n)) < 0.002
    quantized[touched] = (quantized[touched] + 1) % classes
    forgets_3 = predictions(np.where(y == 3, 0.60, 0.04))
    policy = load_policy(rb.examples / "digits-demo.yaml")
    s = settings(policy)
    result = audit(
        population(base),
        {"pruned": population(forgets_3), "int8": population(quantized)},
        settings=AuditSettings(
            alpha=s["alpha"],
            correction=s["correction"],
            seed=s["seed"],
            min_support=s["min_support"],
            attribute_sets=tuple(tuple(a) for a in s["attribute_sets"]),
            paired=s["paired"],
            floor_splits=s["floor_splits"],
            floor_quantile=s["floor_quantile"],
        ),
        lineage={"int8": True},
    )
    report = result.to_report()
    assert report["comparisons"][1]["cie"]["basis"] == "paired"
    gates = evaluate_gates(report, policy)
    assert evaluate_gates(result.report(), policy) == gates  # the typed report, unparsed
    failed = {(g.candidate, g.name) for g in gates if g.passed is False}
    assert all(g.status in ("passed", "failed") for g in gates), [g.detail for g in gates]
    # The forgotten class is found by the test and beyond its seed-noise floor; int8 passes.
    assert {
        ("pruned", "top1_drop"),
        ("pruned", "significant_classes"),
        ("pruned", "class_recall_drop"),
    } <= failed
    assert all(c == "pruned" for c, _ in failed), failed
    by = {(g.candidate, g.name): g for g in gates}
    assert (
        "significantly worse than the overall shift: 3"
        in by["pruned", "significant_classes"].detail
    )
    assert "in class 3" in by["pruned", "class_recall_drop"].detail
    assert "paired: mean over 5 (parent, child) pairs" in by["int8", "cie_rate"].detail
    verdict = decide_verdict(gates, [])
    assert (verdict, int(exit_status_for(verdict))) == ("fail", 1)
    report = result.to_report(gates=[g.to_dict() for g in gates], verdict=verdict)
    jsonschema.Draft202012Validator(rb.schema()).validate(json.loads(json.dumps(report)))
