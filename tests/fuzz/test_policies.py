"""Gates fail closed, always (issue 11, part 2).

``compaudit check`` never exits 0 unless at least one gate per candidate was
evaluated and every evaluated gate passed: a policy that gates nothing, skips
everything, silences its own ``on_unevaluable: error`` per candidate, or sets
a threshold no value can exceed is an error (exit 2, one error line naming the
policy file). Each case passed (exit 0) before the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz.conftest import fails_closed, run_cli

N = 600  # examples in good_preds


def attributes_csv(directory: Path) -> Path:
    """A valid attributes CSV for good_preds: two big ``sex`` groups."""
    path = directory / "attrs.csv"
    sex = np.where(np.arange(N) % 2 == 0, "F", "M")
    path.write_text("id,sex\n" + "".join(f"{i},{s}\n" for i, s in enumerate(sex)))
    return path


# (id, policy YAML, extra arguments): each passed (exit 0) on the code before issue 11.
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("no-gates-at-all", "version: 1\n", ()),
    ("every-gate-null", "version: 1\ngates: {top1_drop: null, cie_rate: null}\n", ()),
    ("no-gates-and-exit-zero", "version: 1\nalpha: 0.05\n", ("--exit-zero",)),
    (
        "skip-with-warning-skips-every-gate",
        # 4 classes: no top-5; the data carry no 'race' attribute.
        "version: 1\non_unevaluable: skip-with-warning\n"
        "gates: {top5_drop: 0.01, subgroups: {attributes: [race], accuracy_gap: 0.1}}\n",
        (),
    ),
    (
        "skip-with-warning-leaves-one-candidate-unchecked",
        "version: 1\non_unevaluable: skip-with-warning\n"
        "gates: {top1_drop: 0.5, top5_drop: 0.01}\n"
        "candidates: {b: {gates: {top1_drop: null}}}\n",
        ("two-candidates",),
    ),
    (
        "override-switches-off-every-gate-of-a-candidate",
        "version: 1\ngates: {top1_drop: 0.5}\ncandidates: {b: {gates: {top1_drop: null}}}\n",
        ("two-candidates",),
    ),
    (
        "override-silences-base-error-with-skip",
        "version: 1\non_unevaluable: error\ngates: {top1_drop: 0.5, top5_drop: 0.01}\n"
        "candidates: {cand: {on_unevaluable: skip-with-warning}}\n",
        (),
    ),
    (
        "override-turns-base-error-into-fail-under-exit-zero",
        "version: 1\non_unevaluable: error\ngates: {top1_drop: 0.5, top5_drop: 0.01}\n"
        "candidates: {cand: {on_unevaluable: fail}}\n",
        ("--exit-zero",),
    ),
    (
        "on-unevaluable-fail-masked-by-exit-zero",
        "version: 1\non_unevaluable: fail\ngates: {top1_drop: 0.5, top5_drop: 0.01}\n",
        ("--exit-zero",),
    ),
    ("top1-drop-of-100-percent", "version: 1\ngates: {top1_drop: 1.0}\n", ()),
    ("cie-rate-of-100-percent", "version: 1\ngates: {cie_rate: 1.0}\n", ()),
    ("cie-u-rate-of-100-percent", "version: 1\ngates: {cie_u_rate: 1}\n", ()),
    ("pie-rate-of-100-percent", "version: 1\ngates: {pie_rate: 1.0}\n", ()),
    ("class-recall-drop-of-200-points", "version: 1\ngates: {class_recall_drop: 2.0}\n", ()),
    ("class-recall-drop-of-100-points", "version: 1\ngates: {class_recall_drop: 1.0}\n", ()),
    # 4 classes: at most 3 can be worse than the overall shift (a weighted mean of theirs).
    ("significant-classes-at-class-count", "version: 1\ngates: {significant_classes: 3}\n", ()),
    ("significant-classes-huge", "version: 1\ngates: {significant_classes: 1000000}\n", ()),
    (
        "accuracy-gap-of-100-points",
        "version: 1\ngates: {subgroups: {attributes: [sex], accuracy_gap: 1.0}}\n",
        ("attributes",),
    ),
    (
        "min-pies-beyond-any-bound",
        "version: 1\ngates: {subgroups: {attributes: [sex], min_pies: 1000000, "
        "require_significance: false, pie_share_growth: 0}}\n",
        ("attributes",),
    ),
    (
        "no-group-has-min-pies",
        # Two groups of 300 and a few dozen PIEs: no group has 1000 PIEs to judge.
        "version: 1\ngates: {subgroups: {attributes: [sex], min_pies: 1000, "
        "require_significance: false, pie_share_growth: 0}}\n",
        ("attributes",),
    ),
]


def check_args(
    good_preds: dict[str, Path], policy: Path, out: Path, extra: tuple[str, ...]
) -> list[str]:
    args = ["check", "-r", str(good_preds["ref"]), "-p", str(policy), "--out", str(out)]
    args += ["-f", "json"]
    if "two-candidates" in extra:
        args += ["-c", f"a={good_preds['cand']}", "-c", f"b={good_preds['cand']}"]
    else:
        args += ["-c", f"cand={good_preds['cand']}"]
    if "attributes" in extra:
        args += ["--attributes", str(attributes_csv(policy.parent))]
    return args + [a for a in extra if a.startswith("--")]


@pytest.mark.parametrize(("text", "extra"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_fails_closed(
    good_preds: dict[str, Path], tmp_path: Path, text: str, extra: tuple[str, ...]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    out = tmp_path / "out"
    fails_closed(check_args(good_preds, policy, out, extra), names=str(policy))
    report = out / "report.json"
    if report.exists():  # a policy refused at load time leaves the minimal error report
        assert json.loads(report.read_text())["verdict"] != "pass"


def test_nothing_evaluated_is_the_reports_error(
    good_preds: dict[str, Path], tmp_path: Path
) -> None:
    from compaudit import gates as g

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    out = tmp_path / "out"
    run = fails_closed(check_args(good_preds, policy, out, ()), names=str(policy))
    expected = g.ERR_NOTHING_EVALUATED.format(candidate="cand", why=g.WHY_NO_GATES)
    assert run.error_lines == [f"compaudit: error: {policy}: {expected}"]
    report = json.loads((out / "report.json").read_text())
    assert (report["verdict"], report["errors"], report["gates"]) == ("error", [expected], [])


def test_allowed_weaker_override_still_needs_one_evaluated_gate(
    good_preds: dict[str, Path], tmp_path: Path
) -> None:
    # Saying so explicitly lets the candidate skip, but never everything.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\ngates: {top1_drop: 0.5, top5_drop: 0.01}\n"
        "candidates: {cand: {on_unevaluable: skip-with-warning, "
        "allow_weaker_on_unevaluable: true}}\n"
    )
    ok = run_cli(check_args(good_preds, policy, tmp_path / "a", ()))
    assert ok.code == 0, ok.stderr  # top1_drop evaluated and passed, top5 skipped
    policy.write_text(policy.read_text().replace("top1_drop: 0.5, ", ""))
    fails_closed(check_args(good_preds, policy, tmp_path / "b", ()), names=str(policy))


def test_report_without_policy_stays_ungated(good_preds: dict[str, Path], tmp_path: Path) -> None:
    args = ["report", "-r", str(good_preds["ref"]), "-c", str(good_preds["cand"])]
    run = run_cli([*args, "--out", str(tmp_path), "-f", "json"])
    assert run.code == 0, run.stderr
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "ungated"
