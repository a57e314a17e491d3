"""Hand-built ``compaudit.report/v1`` dicts for the gate tests.

Every report is validated against the shipped JSON Schema, so the gates are
tested on reports of the shape the audit writes. Derived numbers (subgroup
shares, growth, shift differences) are computed here from counts with the
design's formulas, independently of the audit engine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def report_schema() -> dict[str, Any]:
    text = (resources.files("compaudit") / "report" / "report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def klass(
    c: int, nrd: float, *, significant: bool = False, p: float | None = 0.5, name: str = ""
) -> dict[str, Any]:
    """One row of ``classes`` with normalized recall difference ``nrd``."""
    return {
        "class": c,
        "name": name or f"c{c}",
        "support": 100,
        "recall_reference": 0.9,
        "recall_candidate": 0.9 + nrd,
        "normalized_recall_difference": nrd,
        "test": "paired-exact" if p is not None else None,
        "statistic": None,
        "p_value": p,
        "p_adjusted": p,
        "significant": significant,
    }


def groups(
    rows: Sequence[tuple[dict[str, Any], int, int, float, float]], top1_delta: float
) -> list[dict[str, Any]]:
    """Subgroup rows from ``(group, n, n_pie, top1_reference, top1_candidate)``.

    Shares follow Hooker et al. Table 1: each group's count as a percentage of
    all PIEs / all non-PIEs, growth = (pct_pie / pct_non_pie - 1) * 100.
    """
    total_pie = sum(r[2] for r in rows)
    total_non = sum(r[1] - r[2] for r in rows)
    out = []
    for group, n, n_pie, ref, cand in rows:
        pct_pie = 100.0 * n_pie / total_pie if total_pie else None
        pct_non = 100.0 * (n - n_pie) / total_non if total_non else None
        growth = None
        if pct_pie is not None and pct_non:
            growth = (pct_pie / pct_non - 1.0) * 100.0
        out.append(
            {
                "group": group,
                "n": n,
                "n_non_pie": n - n_pie,
                "n_pie": n_pie,
                "pct_non_pie": pct_non,
                "pct_pie": pct_pie,
                "pct_growth": growth,
                "top1_reference": ref,
                "top1_candidate": cand,
                "shift_difference": (cand - ref) - top1_delta,
                "testable": True,
                "test": None,
                "statistic": None,
                "p_value": None,
                "p_adjusted": None,
                "significant": False,
            }
        )
    return out


def comparison(
    candidate: str = "cand",
    *,
    top1_delta: float = -0.004,
    top5_delta: float | None = -0.001,
    cie_rate: float = 0.02,
    cie_u_rate: float = 0.012,
    pie_rate: float = 0.01,
    n: int = 1000,
    classes: list[dict[str, Any]] | None = None,
    subgroup_attributes: Sequence[str] = (),
    subgroups: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One comparison; defaults pass every gate of the example policies."""
    subset = {"n": 0, "top1_reference": None, "top1_candidate": None}
    return {
        "reference": "reference",
        "candidate": candidate,
        "top1_delta": top1_delta,
        "top5_delta": top5_delta,
        "class_test": "paired",
        "cie": {
            "basis": "single-pair",
            "count": round(cie_rate * n),
            "rate": cie_rate,
            "cie_u": round(cie_u_rate * n),
            "cie_c": round((cie_rate - cie_u_rate) * n),
            "cie_u_rate": cie_u_rate,
            "cie_c_rate": cie_rate - cie_u_rate,
            "both_wrong_different": 0,
        },
        "pie": {
            "count": round(pie_rate * n),
            "rate": pie_rate,
            "tie_rule": "lowest class index",
            "examples": [],
        },
        "subsets": {"pie": subset, "non_pie": subset, "random": subset, "seed": 0},
        "classes": classes if classes is not None else [klass(c, 0.0) for c in range(3)],
        "subgroup_attributes": list(subgroup_attributes),
        "subgroups": subgroups or [],
    }


def report(
    *comparisons: dict[str, Any], gates: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A whole report, validated against ``report.schema.json``."""
    doc = {
        "schema": "compaudit.report/v1",
        "verdict": "pass",
        "populations": {
            "reference": {"k": 1, "top1": 0.9, "top1_std": None, "top5": 0.99},
            **{
                c["candidate"]: {
                    "k": 1,
                    "top1": 0.9 + c["top1_delta"],
                    "top1_std": None,
                    "top5": None,
                }
                for c in comparisons
            },
        },
        "comparisons": list(comparisons),
        "gates": gates or [],
    }
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    return doc


@pytest.fixture
def fairness_comparison() -> dict[str, Any]:
    """sex x race groups; (F, B) is below a min_support of 30."""
    delta = -0.02
    rows = [
        ({"sex": "F", "race": "A"}, 100, 10, 0.90, 0.85),
        ({"sex": "M", "race": "A"}, 200, 5, 0.90, 0.90),
        ({"sex": "F", "race": "B"}, 10, 5, 0.90, 0.50),
    ]
    return comparison(
        top1_delta=delta, subgroup_attributes=["sex", "race"], subgroups=groups(rows, delta)
    )


@pytest.fixture
def rb() -> SimpleNamespace:
    """The report builders above (fixtures, not imports: conftest modules are not importable)."""
    return SimpleNamespace(
        klass=klass,
        groups=groups,
        comparison=comparison,
        report=report,
        schema=report_schema,
        examples=EXAMPLES,
    )
