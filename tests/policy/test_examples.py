"""Every example policy loads, validates against the printed schema, and gates as documented."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from compaudit.cli import build_cli
from compaudit.gates import decide_verdict, evaluate_gates, exit_status_for
from compaudit.policy import load_policy

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "policies").glob("*.yaml"))


def test_the_four_examples_exist() -> None:
    assert [p.name for p in EXAMPLES] == [
        "advisory.yaml",
        "digits-demo.yaml",
        "fairness-review.yaml",
        "strict-release.yaml",
    ]


def cli_schema(name: str) -> dict[str, Any]:
    result = CliRunner().invoke(build_cli(), ["schema", name])
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_schema_policy_command_prints_a_schema_the_examples_satisfy() -> None:
    schema = cli_schema("policy")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in EXAMPLES:
        validator.validate(json.loads(json.dumps(yaml.safe_load(path.read_text()))))
    # ... and rejects what load_policy rejects: a misspelled gate.
    with pytest.raises(jsonschema.ValidationError, match="top1_dorp"):
        validator.validate({"version": 1, "gates": {"top1_dorp": 0.01}})


def test_schema_report_command_prints_the_shipped_schema(rb: SimpleNamespace) -> None:
    schema = cli_schema("report")
    assert schema == rb.schema()
    assert schema["properties"]["schema"] == {"const": "compaudit.report/v1"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_unknown_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(build_cli(), ["schema", "recipe"])
    assert result.exit_code == 2
    assert "'recipe' is not one of 'policy', 'report'" in result.output


def verdict(report: dict[str, Any], path: Path) -> tuple[str, int]:
    results = evaluate_gates(report, load_policy(path))
    v = decide_verdict(results, [])
    return v, int(exit_status_for(v))


def example(name: str) -> Path:
    return next(p for p in EXAMPLES if p.name == name)


def test_strict_release(rb: SimpleNamespace) -> None:
    path = example("strict-release.yaml")
    good = rb.comparison("pruned", top1_delta=-0.004, cie_rate=0.02, cie_u_rate=0.012)
    assert verdict(rb.report(good), path) == ("pass", 0)
    # The same numbers fail for int8, whose override allows only 0.002 of top-1.
    int8 = rb.comparison("int8", top1_delta=-0.004, cie_rate=0.02, cie_u_rate=0.012)
    results = evaluate_gates(rb.report(int8), load_policy(path))
    assert [r.name for r in results if not r.passed] == ["top1_drop", "cie_rate"]
    # No top-5 in the report: strict means exit 2, not a silent pass.
    no_top5 = rb.comparison("pruned", top5_delta=None)
    assert verdict(rb.report(no_top5), path) == ("error", 2)
    classes = [rb.klass(0, -0.05, significant=True, p=0.001), rb.klass(1, 0.02)]
    assert verdict(rb.report(rb.comparison(classes=classes)), path) == ("fail", 1)


def test_advisory(rb: SimpleNamespace) -> None:
    path = example("advisory.yaml")
    policy = load_policy(path)
    assert (policy.correction, policy.alpha, policy.on_unevaluable) == (
        "bh",
        0.10,
        "skip-with-warning",
    )
    # Two significant drops are within the advisory allowance of three.
    classes = [
        rb.klass(0, -0.05, significant=True, p=0.01),
        rb.klass(1, -0.2, significant=False),
        rb.klass(2, -0.04, significant=True, p=0.02),
    ]
    comp = rb.comparison(top1_delta=-0.02, top5_delta=None, classes=classes)
    results = evaluate_gates(rb.report(comp), policy)
    assert {r.name: r.status for r in results}["top5_drop"] == "skipped"
    # The worst drop (0.2) is not significant: only the significant 0.05 counts.
    assert {r.name: r.value for r in results}["class_recall_drop"] == 0.05
    assert decide_verdict(results, []) == "pass"
    assert verdict(rb.report(rb.comparison(top1_delta=-0.05)), path) == ("fail", 1)


def test_fairness_review(rb: SimpleNamespace, fairness_comparison: dict[str, Any]) -> None:
    path = example("fairness-review.yaml")
    results = evaluate_gates(rb.report(fairness_comparison), load_policy(path))
    by_name = {r.name: r for r in results}
    # min_support 50: (F, B) with n = 10 is listed as not testable; (F, A) has +61.1 % growth
    # (over 50) and an extra drop of 0.03 (over 0.02).
    assert by_name["subgroups.pie_share_growth"].passed is False
    assert "not testable (n < 50): sex=F, race=B (n=10)" in by_name["subgroups.accuracy_gap"].detail
    assert by_name["subgroups.accuracy_gap"].passed is False
    assert decide_verdict(results, []) == "fail"
    # Audited without attributes: the subgroup gates cannot run, so the run is an error.
    plain = rb.comparison(top1_delta=-0.01)
    assert verdict(rb.report(plain), path) == ("error", 2)


def test_digits_demo(rb: SimpleNamespace) -> None:
    path = example("digits-demo.yaml")
    light = rb.comparison(
        "prune30", top1_delta=-0.009, cie_rate=0.06, cie_u_rate=0.035, pie_rate=0.02
    )
    assert verdict(rb.report(light), path) == ("pass", 0)
    heavy = rb.comparison(
        "prune90",
        top1_delta=-0.08,
        cie_rate=0.2,
        cie_u_rate=0.14,
        pie_rate=0.09,
        classes=[rb.klass(8, -0.25, significant=True, p=1e-6), rb.klass(1, 0.03)],
    )
    results = evaluate_gates(rb.report(heavy), load_policy(path))
    assert [r.name for r in results if r.passed is False] == [
        "top1_drop",
        "cie_rate",
        "pie_rate",
        "significant_classes",
        "class_recall_drop",
    ]
