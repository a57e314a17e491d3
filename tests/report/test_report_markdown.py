"""Markdown report: step-summary appends, escaping, caps and the 1 MiB limit."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from compaudit.errors import InputError
from compaudit.report import markdown as md
from compaudit.report._common import NOT_GATED
from compaudit.report.base import ReportContext
from compaudit.report.markdown import MarkdownReporter, render_markdown
from compaudit.results import AuditReport


def _context() -> ReportContext:
    return ReportContext(console=Console(file=io.StringIO(), width=80))


def test_write_is_the_rendered_text(report: AuditReport, tmp_path: Path) -> None:
    path = MarkdownReporter().write(report, out_dir=tmp_path, context=_context())
    assert path == tmp_path / "report.md"
    assert path.read_text("utf-8") == render_markdown(report)


def test_without_out_dir_prints_to_the_console(report: AuditReport) -> None:
    buf = io.StringIO()
    ctx = ReportContext(console=Console(file=buf, width=200, no_color=True))
    assert MarkdownReporter().write(report, out_dir=None, context=ctx) is None
    assert buf.getvalue() == render_markdown(report)


def test_step_summary_appends_twice_and_keeps_what_was_there(
    report: AuditReport, tmp_path: Path
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    reporter = MarkdownReporter()
    reporter.append_step_summary(report, summary, context=_context())
    reporter.append_step_summary(report, summary, context=_context())
    text = summary.read_text("utf-8")
    one = render_markdown(report)
    assert text == "earlier step\n" + "\n" + one + "\n" + one
    assert text.count("## compaudit: ") == 2


def test_step_summary_into_a_new_file_starts_without_a_blank_line(
    report: AuditReport, tmp_path: Path
) -> None:
    summary = tmp_path / "new.md"
    MarkdownReporter().append_step_summary(report, summary, context=_context())
    assert summary.read_text("utf-8") == render_markdown(report)


def test_unwritable_step_summary_names_the_file(report: AuditReport, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "summary.md"
    with pytest.raises(InputError) as info:
        MarkdownReporter().append_step_summary(report, target, context=_context())
    assert str(info.value) == md.ERR_SUMMARY.format(path=target, reason="No such file or directory")


def test_metacharacters_are_escaped(report: AuditReport) -> None:
    text = render_markdown(report)
    assert "cat\\|lynx" in text
    assert "dog \\& \\<wolf\\>" in text
    assert "<wolf>" not in text  # raw HTML would reach GitHub's renderer


def test_every_table_row_has_as_many_cells_as_its_header(report: AuditReport) -> None:
    rows: list[list[str]] = []
    widths: list[int] = []
    for line in [*render_markdown(report).splitlines(), ""]:
        if line.startswith("| "):
            # An escaped pipe (\|) is cell text, not a separator.
            rows.append(line.replace("\\|", "").split("|"))
        elif rows:
            widths.append(len({len(r) for r in rows}))
            rows = []
    assert widths, "no tables found"
    assert widths == [1] * len(widths)


def test_significantly_worse_classes_come_first(doc: dict[str, Any]) -> None:
    comp = doc["comparisons"][0]
    for row in comp["classes"]:
        row["significant"] = row["name"] == "bird"
        row["normalized_recall_difference"] = -0.01 if row["name"] == "bird" else -0.2
    text = render_markdown(AuditReport.from_dict(doc))
    section = text.split("<b>Worst classes</b>", 1)[1]
    first_row = section.split("\n| ")[3]  # header, rule, then the first row
    assert first_row.startswith("bird |")


def test_long_tables_are_capped_and_say_so(doc: dict[str, Any]) -> None:
    comp = doc["comparisons"][0]
    template = comp["subgroups"][0]
    comp["subgroups"] = [
        {**template, "group": {"id": f"g{i}"}} for i in range(md.MAX_GROUP_ROWS + 7)
    ]
    comp["subgroup_sets"] = [{"attributes": ["id"], "subgroups": comp["subgroups"]}]
    comp["classes"] = [dict(comp["classes"][0], name=f"c{i}", **{"class": i}) for i in range(40)]
    text = render_markdown(AuditReport.from_dict(doc))
    assert f"_7 more groups not shown ({md.MAX_GROUP_ROWS} of {md.MAX_GROUP_ROWS + 7})" in text
    assert f"_30 more classes not shown ({md.MAX_CLASS_ROWS} of 40)" in text


def test_gate_cap_never_hides_a_failure(doc: dict[str, Any]) -> None:
    passing = {**doc["gates"][1], "name": "pie_rate"}
    failing = doc["gates"][0]
    doc["gates"] = [passing] * (md.MAX_GATE_ROWS + 5) + [failing]
    text = render_markdown(AuditReport.from_dict(doc))
    assert "❌ **FAIL**" in text
    assert f"_6 more gates not shown ({md.MAX_GATE_ROWS} of {md.MAX_GATE_ROWS + 6})" in text


def test_oversized_summary_is_cut_under_the_limit(report: AuditReport) -> None:
    limit = 4000
    text = render_markdown(report, max_bytes=limit)
    assert len(text.encode("utf-8")) <= limit
    assert text.rstrip().endswith("see report.json._")
    assert text.startswith("## compaudit: ⚠️ ERROR")
    assert "The summary was cut at" in text


def test_no_gates_no_gate_table(doc: dict[str, Any]) -> None:
    doc["gates"] = []
    doc["verdict"] = "pass"  # a policy without gates
    text = render_markdown(AuditReport.from_dict(doc))
    assert "### Gates" not in text
    assert text.startswith("## compaudit: ✅ PASS")
    assert NOT_GATED not in text


def test_without_a_policy_it_says_not_gated(ungated_report: AuditReport) -> None:
    text = render_markdown(ungated_report)
    assert text.startswith("## compaudit: ➖ NOT GATED\n")
    assert f"> **{md.esc(NOT_GATED)}**" in text
    assert "PASS" not in text
    assert "✅" not in text
    assert "### Gates" not in text


def test_cie_counts_are_whole_for_one_pair_and_one_decimal_for_means(
    doc: dict[str, Any],
) -> None:
    from compaudit.report._common import cie_counts

    cie = doc["comparisons"][0]["cie"]
    cie.update(basis="single-pair", count=239.0, cie_u=182.0, cie_c=52.0)
    one = AuditReport.from_dict(doc).comparisons[0]
    assert cie_counts(one) == "239: forgot 182, learned 52; single-pair"
    # Means over pairs: 91.7 + 53.3 rounded apart would read 92 + 53 of "153".
    cie.update(basis="mean-over-pairs", count=153.3333, cie_u=91.6667, cie_c=53.3333)
    mean = AuditReport.from_dict(doc).comparisons[0]
    assert cie_counts(mean, " examples") == (
        "153.3 examples: forgot 91.7, learned 53.3; mean-over-pairs"
    )


def test_a_floor_of_few_splits_says_how_low_its_p_can_go(doc: dict[str, Any]) -> None:
    """p = (1 + #extreme) / (S + 1): with S < 19 splits it can never reach 0.05."""
    from compaudit.report._common import floor_text

    doc["comparisons"][0]["floors"]["sized_to_candidate"] = True  # the other note is apart
    for splits, suffix in ((3, "; 3 split(s): p >= 0.2500"), (18, "; 18 split(s): p >= 0.0526")):
        doc["comparisons"][0]["floors"]["n_splits"] = splits
        c = AuditReport.from_dict(doc).comparisons[0]
        assert floor_text(c, "pie").endswith(suffix)
    doc["comparisons"][0]["floors"]["n_splits"] = 64  # the default: 1/65, below 0.05
    c = AuditReport.from_dict(doc).comparisons[0]
    assert "split(s)" not in floor_text(c, "pie")
    assert floor_text(c, "pie").endswith(")")


def test_a_floor_not_sized_to_the_candidate_says_it_overstates_noise(
    doc: dict[str, Any],
) -> None:
    """Splits of k_split < K_cand members are noisier than the candidate (always so in a
    trainer run): every format's floor line says what that costs."""
    from compaudit.report._common import floor_text

    floors = doc["comparisons"][0]["floors"]
    floors.update(n_splits=64, k_split=2, sized_to_candidate=False)
    c = AuditReport.from_dict(doc).comparisons[0]
    for block in ("pie", "cie"):
        assert floor_text(c, block).endswith(  # type: ignore[arg-type]
            "; 2 vs 2 members, fewer than the candidate's: overstates noise"
        )
    floors["sized_to_candidate"] = True
    c = AuditReport.from_dict(doc).comparisons[0]
    assert "overstates" not in floor_text(c, "pie")


def test_the_header_names_every_setting_not_left_at_its_default(doc: dict[str, Any]) -> None:
    """A reviewer sees that BH replaced Holm, and which file said so (settings.sources)."""
    from compaudit.report.html import render_html

    settings = doc["settings"]
    settings.update(alpha=0.01, correction="bh", seed=1, floor_splits=16)
    settings["sources"] = {name: "default" for name in settings}
    settings["sources"].update(alpha="cli", correction="pyproject", floor_splits="pyproject")
    settings["sources"]["seed"] = "policy"
    settings["files"] = {"policy": "/ci/gates/release_<x>.yaml", "pyproject": "/ci/pyproject.toml"}
    report = AuditReport.from_dict(doc)
    text = render_markdown(report)
    header = text.splitlines()[2]
    assert "set by flags: alpha 0.01" in header
    assert "set by policy (release\\_\\<x\\>.yaml): seed 1" in header  # escaped for markdown
    assert "set by pyproject.toml: correction bh, floor\\_splits 16" in header
    assert "min\\_support" not in header  # defaults are not listed
    page = render_html(report, ReportContext())
    assert "set by policy (release_&lt;x&gt;.yaml): seed 1" in page
    assert "set by pyproject.toml: correction bh, floor_splits 16" in page


def test_a_class_that_gained_significantly_reads_better_not_yes(doc: dict[str, Any]) -> None:
    """The class test is two-sided: under "Worst classes", "yes" read as worse."""
    from compaudit.report._common import significance

    rows = doc["comparisons"][0]["classes"]
    rows[0].update(significant=True, normalized_recall_difference=-0.2)
    rows[1].update(significant=True, normalized_recall_difference=0.05)
    rows[2].update(significant=False)
    got = [significance(r) for r in AuditReport.from_dict(doc).comparisons[0].classes[:3]]
    assert got == ["worse", "better", "no"]
