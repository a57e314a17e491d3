"""Gates on a report written by the real audit engine (not a hand-built dict)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema
import numpy as np

from compaudit.audit import AuditSettings, audit
from compaudit.gates import decide_verdict, evaluate_gates, exit_status_for, settings
from compaudit.policy import load_policy
from compaudit.population import Population


def test_digits_demo_policy_on_a_real_audit(rb: SimpleNamespace) -> None:
    # Populations of 5 models whose errors are drawn per example: the "pruned" one
    # forgets class 3 (60 % errors instead of 3-4 %), the "int8" one is unchanged.
    rng = np.random.default_rng(0)
    n, classes, k = 2000, 10, 5
    y = rng.integers(0, classes, n)

    def population(error: np.ndarray) -> Population:
        wrong = rng.random((k, n)) < error[None, :]
        noise = (y[None, :] + rng.integers(1, classes, (k, n))) % classes  # never the label
        return Population.create(predictions=np.where(wrong, noise, y[None, :]), y=y)

    base = np.full(n, 0.03)
    forgets_3 = np.where(y == 3, 0.60, 0.04)
    policy = load_policy(rb.examples / "digits-demo.yaml")
    s = settings(policy)
    result = audit(
        population(base),
        {"pruned": population(forgets_3), "int8": population(base)},
        settings=AuditSettings(
            alpha=s["alpha"],
            correction=s["correction"],
            seed=s["seed"],
            min_support=s["min_support"],
        ),
    )
    gates = evaluate_gates(result.to_report(), policy)
    failed = [(g.candidate, g.name) for g in gates if g.passed is False]
    assert failed == [
        ("pruned", "top1_drop"),
        ("pruned", "cie_rate"),
        ("pruned", "significant_classes"),
        ("pruned", "class_recall_drop"),
    ]
    by = {(g.candidate, g.name): g for g in gates}
    assert (
        "significantly worse than the overall shift: 3"
        in by["pruned", "significant_classes"].detail
    )
    assert "in class 3" in by["pruned", "class_recall_drop"].detail
    verdict = decide_verdict(gates, [])
    assert (verdict, int(exit_status_for(verdict))) == ("fail", 1)
    report = result.to_report(gates=[g.to_dict() for g in gates], verdict=verdict)
    jsonschema.Draft202012Validator(rb.schema()).validate(json.loads(json.dumps(report)))
