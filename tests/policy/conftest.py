"""Hand-built ``compaudit.report/v1`` dicts for the gate tests.

Every report is validated against the shipped JSON Schema and carries every
key :meth:`compaudit.results.AuditReport.from_dict` requires (which
:func:`~compaudit.gates.evaluate_gates` parses them with), so the gates are
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


_NO_FLOOR = object()
NO_FLOOR_COMPUTED = "no floor computed"  # the audit's reason when it computed no floor


def klass(
    c: int,
    nrd: float,
    *,
    significant: bool = False,
    p: float | None = 0.5,
    name: str = "",
    floor: Any = _NO_FLOOR,
) -> dict[str, Any]:
    """One row of ``classes`` with normalized recall difference ``nrd``.

    ``floor`` (a number or None) adds the seed-noise keys: ``floor_difference``
    (a low quantile, negative), ``excess`` (how far ``nrd`` is beyond it) and
    ``p_floor``; left out, the row has none (they parse as None).
    """
    row = {
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
    if floor is not _NO_FLOOR:
        row["floor_difference"] = floor
        row["excess"] = None if floor is None else floor - nrd
        row["p_floor"] = None
    return row


def groups(
    rows: Sequence[tuple[dict[str, Any], int, int, float, float]],
    top1_delta: float,
    *,
    significant: Sequence[dict[str, Any]] = (),
    p_adjusted: float = 0.5,
    floor_growth: Any = _NO_FLOOR,
) -> list[dict[str, Any]]:
    """Subgroup rows from ``(group, n, n_pie, top1_reference, top1_candidate)``.

    Shares follow Hooker et al. Table 1: each group's count as a percentage of
    all PIEs / all non-PIEs, growth = (pct_pie / pct_non_pie - 1) * 100.
    Groups listed in ``significant`` get ``significant: true`` and p_adj 0.001,
    the others ``p_adjusted``. ``floor_growth`` (a number or None) adds the
    seed-noise keys with that floor of the PIE share growth for every group.
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
                "test": "paired-exact",
                "statistic": None,
                "p_value": 0.001 if group in significant else p_adjusted,
                "p_adjusted": 0.001 if group in significant else p_adjusted,
                "significant": group in significant,
            }
        )
        if floor_growth is not _NO_FLOOR:
            f = floor_growth
            excess = None if f is None or growth is None else growth - f  # type: ignore[operator]
            out[-1].update(
                floor_pct_growth=f, excess_pct_growth=excess, p_pct_growth=None, p_worse=None
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
    subgroup_sets: list[tuple[list[str], list[dict[str, Any]]]] | None = None,
    basis: str = "single-pair",
    pairs: int = 0,
    floors: bool | str | None = None,
    pie_floor: float | None = None,
    cie_floor: float | None = None,
) -> dict[str, Any]:
    """One comparison; defaults pass every gate of the example policies.

    ``floors``: None writes ``floors`` as the audit does when it computed none
    (unavailable, :data:`NO_FLOOR_COMPUTED`) and leaves out the PIE/CIE ``floor``
    blocks (they parse as null floors); True writes ``floors`` as available and
    the ``floor`` blocks at ``pie_floor`` / ``cie_floor`` (a null floor when
    None); a string writes ``floors`` as unavailable for that reason, with null
    floor blocks.
    """
    subset = {"n": 0, "top1_reference": None, "top1_candidate": None}
    comp: dict[str, Any] = {
        "reference": "reference",
        "candidate": candidate,
        "lineage": "paired" if basis == "paired" else "none",
        "top1_delta": top1_delta,
        "top5_delta": top5_delta,
        "class_test": "paired",
        "floors": {"available": False, "reason": NO_FLOOR_COMPUTED, "method": "disjoint-splits"},
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
    cie = comp["cie"]
    if basis != "single-pair":
        cie["basis"] = basis
        cie["count"] = cie_rate * n
    if pairs:
        cie["pairs"] = [
            {"count": cie_rate * n, "rate": cie_rate, "cie_u": 0, "cie_c": 0} for _ in range(pairs)
        ]
    if subgroup_sets is not None:
        comp["subgroup_sets"] = [{"attributes": a, "subgroups": rows} for a, rows in subgroup_sets]
        if subgroup_sets:
            comp["subgroup_attributes"], comp["subgroups"] = subgroup_sets[0]
    if floors is not None:
        available = floors is True
        comp["floors"] = {
            "available": available,
            "reason": None if available else floors,
            "method": "disjoint-splits",
            **({"k_split": 2, "n_splits": 64, "quantile": 0.95} if available else {}),
        }
        for block, rate, floor in (("pie", pie_rate, pie_floor), ("cie", cie_rate, cie_floor)):
            has = available and floor is not None
            comp[block]["floor"] = {
                "rate": floor if has else None,
                "excess": rate - floor if has else None,  # type: ignore[operator]
                "p_value": 0.03 if has else None,
            }
    return comp


def population(top1: float, top5: float | None) -> dict[str, Any]:
    """One single-model ``populations`` entry."""
    return {
        "k": 1,
        "top1": top1,
        "top1_std": None,
        "top5": top5,
        "top5_std": None,
        "top1_per_model": [top1],
        "source": "predictions.npz",
        "fingerprint": "0" * 64,
    }


def report(
    *comparisons: dict[str, Any],
    gates: list[dict[str, Any]] | None = None,
    validate: bool = True,
    data_attributes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A whole report, validated against ``report.schema.json`` unless told not to
    (an old report's rows may lack keys today's schema requires)."""
    doc: dict[str, Any] = {
        "schema": "compaudit.report/v1",
        "verdict": "pass",
        "populations": {
            "reference": population(0.9, 0.99),
            **{c["candidate"]: population(0.9 + c["top1_delta"], None) for c in comparisons},
        },
        "comparisons": list(comparisons),
        "gates": gates or [],
    }
    if data_attributes is not None:
        doc["data"] = {"n": 1000, "num_classes": 3, "attributes": list(data_attributes)}
    if validate:
        jsonschema.Draft202012Validator(_contract_schema()).validate(doc)
    return doc


def _contract_schema() -> dict[str, Any]:
    """The shipped schema, plus the CIE basis ``paired`` of the issue-9 report keys.

    The contract adds ``paired`` to ``cie.basis``; until the shipped schema lists
    it, accept it here (a no-op once it does).
    """
    schema = report_schema()
    comp = schema["properties"]["comparisons"]["items"]["properties"]
    enum = comp["cie"].get("properties", {}).get("basis", {}).get("enum")
    if isinstance(enum, list) and "paired" not in enum:
        enum.append("paired")
    return schema


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
