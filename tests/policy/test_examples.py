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


def seed_only(rb: SimpleNamespace, name: str, **kw: Any) -> dict[str, Any]:
    """Two populations that differ only in seeds: rates at their floors, no class flagged."""
    defaults: dict[str, Any] = {
        "top1_delta": -0.001,
        "top5_delta": None,
        "cie_rate": 0.061,
        "cie_u_rate": 0.031,
        "pie_rate": 0.022,
        "basis": "mean-over-pairs",
        "floors": True,
        "pie_floor": 0.024,
        "cie_floor": 0.058,
        "classes": [
            rb.klass(0, -0.012, p=0.3, floor=-0.02),
            rb.klass(1, -0.025, p=0.08, floor=-0.03),  # a noisy class, within its floor
            rb.klass(2, 0.02, floor=-0.02),
        ],
    }
    return rb.comparison(name, **(defaults | kw))  # type: ignore[no-any-return]


def failed(report: dict[str, Any], path: Path) -> list[tuple[str | None, str]]:
    return [
        (r.candidate, r.name) for r in evaluate_gates(report, load_policy(path)) if not r.passed
    ]


def test_strict_release(rb: SimpleNamespace) -> None:
    path = example("strict-release.yaml")
    assert verdict(rb.report(seed_only(rb, "pruned")), path) == ("pass", 0)
    # One class forgotten: tested, beyond its floor, and it drags the PIE rate over its floor.
    damaged = seed_only(
        rb,
        "pruned",
        top1_delta=-0.004,
        pie_rate=0.041,
        classes=[
            rb.klass(0, -0.2, significant=True, p=1e-6, floor=-0.02),
            rb.klass(1, 0.01, floor=-0.03),
        ],
    )
    assert failed(rb.report(damaged), path) == [
        ("pruned", "pie_rate_excess"),
        ("pruned", "significant_classes"),
        ("pruned", "class_recall_drop"),
    ]
    # int8 made member by member: judged on its paired CIE and PIE rates (no floor).
    paired = {"basis": "paired", "pairs": 4, "cie_u_rate": 0.002}
    int8 = seed_only(rb, "int8", **paired, cie_rate=0.004, pie_rate=0.003)
    assert verdict(rb.report(int8), path) == ("pass", 0)
    worse = seed_only(rb, "int8", **paired, cie_rate=0.02, pie_rate=0.02, top1_delta=-0.003)
    assert failed(rb.report(worse), path) == [
        ("int8", "top1_drop"),
        ("int8", "cie_rate"),
        ("int8", "pie_rate"),
    ]
    # Unpaired int8 (mean over all pairs) would be failed on seed disagreement, and says so.
    unpaired = evaluate_gates(rb.report(seed_only(rb, "int8")), load_policy(path))
    cie = next(r for r in unpaired if r.name == "cie_rate")
    assert cie.passed is False
    assert "seed disagreement, not what compression changed" in cie.detail
    # One model per side: no floor, so the floor gates cannot run; strict means exit 2.
    single = rb.comparison(
        "pruned", floors="one model per side", classes=[rb.klass(0, 0.0, floor=None)]
    )
    assert verdict(rb.report(single), path) == ("error", 2)


def test_advisory(rb: SimpleNamespace) -> None:
    path = example("advisory.yaml")
    policy = load_policy(path)
    assert (policy.correction, policy.alpha, policy.on_unevaluable) == (
        "bh",
        0.10,
        "skip-with-warning",
    )
    assert verdict(rb.report(seed_only(rb, "pruned")), path) == ("pass", 0)
    # Two significant drops are within the advisory allowance of three.
    classes = [
        rb.klass(0, -0.05, significant=True, p=0.01),
        rb.klass(1, -0.2, significant=False),
        rb.klass(2, -0.04, significant=True, p=0.02),
    ]
    comp = rb.comparison(top1_delta=-0.02, top5_delta=None, classes=classes)
    results = evaluate_gates(rb.report(comp), policy)
    status = {r.name: r.status for r in results}
    # No top-5 and no floors (an old or single-model report): skipped with a warning.
    assert (status["top5_drop"], status["pie_rate_excess"]) == ("skipped", "skipped")
    # The worst drop (0.2) is not significant: only the significant 0.05 counts.
    assert {r.name: r.value for r in results}["class_recall_drop"] == 0.05
    assert decide_verdict(results, []) == "pass"
    assert verdict(rb.report(rb.comparison(top1_delta=-0.05)), path) == ("fail", 1)


def fairness(rb: SimpleNamespace, significant: list[dict[str, Any]]) -> dict[str, Any]:
    """sex x race groups; (F, A) lost 3 points beyond the overall change, (F, B) is small."""
    delta = -0.02
    rows = [
        ({"sex": "F", "race": "A"}, 100, 10, 0.90, 0.85),
        ({"sex": "M", "race": "A"}, 200, 5, 0.90, 0.90),
        ({"sex": "F", "race": "B"}, 10, 5, 0.90, 0.50),
    ]
    return rb.comparison(  # type: ignore[no-any-return]
        top1_delta=delta,
        pie_rate=0.02,
        floors=True,
        pie_floor=0.015,
        subgroup_attributes=["sex", "race"],
        subgroups=rb.groups(rows, delta, significant=significant, p_adjusted=0.3),
    )


def test_fairness_review(rb: SimpleNamespace) -> None:
    path = example("fairness-review.yaml")
    # A planted disparity the subgroup test finds: (F, A) has +61.1% growth (over 50) and an
    # extra drop of 3 points (over 2); min_support 50 leaves (F, B) with n = 10 untestable.
    results = evaluate_gates(
        rb.report(fairness(rb, [{"sex": "F", "race": "A"}])), load_policy(path)
    )
    by_name = {r.name: r for r in results}
    assert by_name["subgroups.pie_share_growth"].passed is False
    assert "not testable (n < 50): sex=F, race=B (n=10)" in by_name["subgroups.accuracy_gap"].detail
    assert by_name["subgroups.accuracy_gap"].passed is False
    assert decide_verdict(results, []) == "fail"
    # The same sizes, but not significant (what seed noise does to a hard group): pass, and
    # the detail names the group as within noise.
    results = evaluate_gates(rb.report(fairness(rb, [])), load_policy(path))
    assert decide_verdict(results, []) == "pass"
    growth = next(r for r in results if r.name == "subgroups.pie_share_growth")
    assert "(within noise): sex=F, race=A (+61.1%, p_adj 0.3)" in growth.detail
    # Audited without attributes: the subgroup gates cannot run, so the run is an error.
    plain = rb.comparison(top1_delta=-0.01, floors=True, pie_floor=0.01)
    assert verdict(rb.report(plain), path) == ("error", 2)
    detail = evaluate_gates(rb.report(plain), load_policy(path))[-1].detail
    assert "the data have no attribute 'sex' (available: label)" in detail


def test_digits_demo(rb: SimpleNamespace) -> None:
    path = example("digits-demo.yaml")
    light = seed_only(rb, "prune-50", top1_delta=-0.009)
    int8 = seed_only(rb, "int8", basis="paired", pairs=4, cie_rate=0.01, pie_rate=0.002)
    assert verdict(rb.report(light, int8), path) == ("pass", 0)
    heavy = seed_only(
        rb,
        "prune-90",
        top1_delta=-0.015,
        cie_rate=0.12,
        pie_rate=0.06,
        classes=[
            rb.klass(9, -0.04, significant=True, p=1e-4, floor=-0.02),
            rb.klass(1, 0.03, floor=-0.02),
        ],
    )
    assert failed(rb.report(heavy), path) == [
        ("prune-90", "top1_drop"),
        ("prune-90", "cie_rate_excess"),
        ("prune-90", "pie_rate_excess"),
        ("prune-90", "significant_classes"),
        ("prune-90", "class_recall_drop"),
    ]


def test_readme_documents_every_key() -> None:
    from compaudit.policy import CandidateOverride, FloorSettings, Gates, Policy, SubgroupGates

    readme = (EXAMPLES[0].parent / "README.md").read_text()
    for model, prefix in [
        (Policy, ""),
        (FloorSettings, "floors."),
        (Gates, ""),
        (SubgroupGates, "subgroups."),
        (CandidateOverride, ""),
    ]:
        for key in model.model_fields:
            assert f"`{prefix}{key}`" in readme or f"`{key}`" in readme, key
