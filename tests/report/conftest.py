"""A fixed report for every reporter, and the golden-file fixture.

Reporters read the typed :class:`~compaudit.results.AuditReport` (fixture
``report``). A test that edits the report edits its dict form (fixture
``doc``) and renders ``AuditReport.from_dict(doc)``, which also checks the edit.

Refresh the goldens after an intended change of an output format (or of the
statistics behind the fixed input), then review the diff::

    COMPAUDIT_UPDATE_GOLDEN=1 ./run test tests/report
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit.engine import AuditResult, AuditSettings, audit
from compaudit.gates import candidate_verdicts
from compaudit.population import Population
from compaudit.results import AuditReport, ClassRow

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_ENV = "COMPAUDIT_UPDATE_GOLDEN"
GOLDEN_VERSION = "0.0.0+golden"  # pinned so that a version bump does not churn the goldens

N, C = 600, 6
# Names with Markdown, HTML and XML metacharacters, to prove that every format escapes them.
CLASS_NAMES = ["airplane", "automobile", "bird", "cat|lynx", "deer", "dog & <wolf>"]


def _predictions(
    rng: np.random.Generator, y: np.ndarray, hurt: np.ndarray, k: int, acc: float
) -> np.ndarray:
    """``k`` members right with probability ``acc``, except where ``hurt`` knocks them out."""
    correct = (rng.random((k, N)) < acc) & ~(rng.random((k, N)) < hurt)
    wrong = (y + rng.integers(1, C, (k, N))) % C
    return np.where(correct, y, wrong)


def build_result() -> AuditResult:
    """Reference K=5, a pruned K=5 population that forgets class 3 and old women, an int8 K=1."""
    rng = np.random.default_rng(20240607)
    y = np.repeat(np.arange(C), N // C)
    sex = rng.choice(["female", "male"], N, p=[0.35, 0.65])
    age = rng.choice(["young", "old"], N, p=[0.75, 0.25])
    no_hurt = np.zeros(N)
    hurt = np.where(y == 3, 0.3, 0.0) + np.where((sex == "female") & (age == "old"), 0.3, 0.0)
    attrs = {"sex": sex, "age": age}
    ref = Population.create(
        _predictions(rng, y, no_hurt, 5, 0.9), y, class_names=CLASS_NAMES, attributes=attrs,
        source="reference.npz",
    )  # fmt: skip
    pruned = Population.create(
        _predictions(rng, y, hurt, 5, 0.89), y, class_names=CLASS_NAMES, source="pruned.npz"
    )
    int8 = Population.create(
        _predictions(rng, y, no_hurt, 1, 0.9), y, class_names=CLASS_NAMES, source="int8.onnx"
    )
    settings = AuditSettings(attributes=("sex", "age"), min_support=30, seed=7)
    return audit(ref, {"pruned-90": pruned, "int8": int8}, settings=settings)


def gates_for(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand-written gate results (the shape ``compaudit.gates`` writes): pass, fail, error, skip."""
    pruned, int8 = report["comparisons"]
    return [
        {
            "name": "top1_drop", "candidate": "pruned-90", "value": -pruned["top1_delta"],
            "threshold": 0.01, "passed": False, "status": "failed",
            "detail": "top-1 dropped by more than allowed (limit 0.01)",
        },
        {
            "name": "pie_rate", "candidate": "pruned-90", "value": pruned["pie"]["rate"],
            "threshold": 0.1, "passed": True, "status": "passed",
            "detail": "share of PIEs among all examples (limit 0.1)",
        },
        {
            "name": "subgroups.accuracy_gap", "candidate": "pruned-90", "value": None,
            "threshold": 0.03, "passed": None, "status": "error",
            "detail": "cannot be evaluated: no group reaches min_support 500",
        },
        {
            "name": "top1_drop", "candidate": "int8", "value": -int8["top1_delta"],
            "threshold": 0.02, "passed": True, "status": "passed",
            "detail": "top-1 dropped by no more than allowed (limit 0.02)",
        },
        {
            "name": "subgroups.pie_share_growth", "candidate": "int8", "value": None,
            "threshold": 100.0, "passed": None, "status": "skipped",
            "detail": "warning: skipped, cannot be evaluated (on_unevaluable: skip-with-warning)",
        },
    ]  # fmt: skip


@pytest.fixture(scope="session")
def audit_result() -> AuditResult:
    """The fixed audit (computed once per session)."""
    return build_result()


@pytest.fixture(scope="session")
def _fixed_doc(audit_result: AuditResult) -> dict[str, Any]:
    report = audit_result.to_report()
    report = audit_result.to_report(gates=gates_for(report), verdict="error")
    report["tool"]["version"] = GOLDEN_VERSION
    # Each candidate's own verdict, as compaudit.gates.judge sets it.
    typed = AuditReport.from_dict(report)
    for comp, judged in zip(report["comparisons"], candidate_verdicts(typed), strict=True):
        comp["verdict"] = judged.verdict
    return AuditReport.from_dict(report).to_dict()


@pytest.fixture(scope="session")
def _fixed_report(_fixed_doc: dict[str, Any]) -> AuditReport:
    return AuditReport.from_dict(_fixed_doc)


@pytest.fixture
def doc(_fixed_doc: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the fixed report's dict form (tests may change it)."""
    return copy.deepcopy(_fixed_doc)


@pytest.fixture
def report(_fixed_report: AuditReport) -> AuditReport:
    """The fixed report, typed (frozen: to change it, edit ``doc`` and read it back)."""
    return _fixed_report


@pytest.fixture(scope="session")
def ungated_report(audit_result: AuditResult) -> AuditReport:
    """The fixed audit without a policy: verdict ``ungated``, no gates."""
    doc = audit_result.report().to_dict()
    doc["tool"]["version"] = GOLDEN_VERSION
    return AuditReport.from_dict(doc)


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    """Seeded 8x8 grey display images, one per example."""
    return np.random.default_rng(5).integers(0, 256, (N, 8, 8), dtype=np.uint8)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with ``golden/<name>``, or rewrite it when updating."""
    update = os.environ.get(UPDATE_ENV) == "1"

    def check(name: str, actual: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual.encode("utf-8"))
            return
        if not path.is_file():
            pytest.fail(f"{path} is missing; create it with {UPDATE_ENV}=1 ./run test tests/report")
        expected = path.read_bytes().decode("utf-8")
        if actual != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    actual.splitlines(keepends=True),
                    f"golden/{name}",
                    "actual",
                )
            )
            pytest.fail(
                f"output differs from golden/{name}; if intended, refresh with "
                f"{UPDATE_ENV}=1 ./run test tests/report and review the diff\n{diff[:6000]}"
            )

    return check


def class_row(i: int, d: float | None, *, sig: bool = False, name: str | None = None) -> ClassRow:
    """A class row with normalized recall difference ``d`` (the charts' input)."""
    return ClassRow(
        class_index=i, name=name or f"class{i}", support=50, recall_reference=0.9,
        recall_candidate=0.9, normalized_recall_difference=d, test="welch", statistic=None,
        p_value=None, p_adjusted=None, significant=sig,
    )  # fmt: skip
