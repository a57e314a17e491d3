"""Numbers, selections and wording shared by every reporter.

Reporters read the typed :class:`~compaudit.results.AuditReport`; the rules
(significantly worse, worst first, beyond the floor) live on those objects
in :mod:`compaudit.results`, never here. This module only formats them, so
that every format says the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from compaudit.results import (
    AuditReport,
    ClassRow,
    Comparison,
    GateResult,
    GroupSetResult,
    LongTailRow,
    PieExamples,
    Verdict,
)

__all__ = [
    "FAILURES_FIRST",
    "LONG_TAIL_CAPTION",
    "LONG_TAIL_HEADER",
    "NOISE_LEAD",
    "NOT_GATED",
    "VERDICT_WORD",
    "CandidateVerdict",
    "GateOutcome",
    "candidate_verdicts",
    "cie_counts",
    "comparisons_failures_first",
    "floor_text",
    "fmt_p",
    "fmt_value",
    "gallery_order",
    "gate_number",
    "gate_outcome",
    "gates_failures_first",
    "header_facts",
    "long_tail_rows",
    "noise_share",
    "pct",
    "pct_points",
    "settings_sources",
    "signed_pts",
    "significance",
    "subgroup_sets",
    "summary_lines",
]

GateOutcome = Literal["pass", "FAIL", "error", "skipped"]
VERDICT_WORD: dict[Verdict, str] = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": "ERROR",
    "ungated": "NOT GATED",
}
NOT_GATED = "NOT GATED: no policy given; nothing was gated"
"""What every format says in the verdict's place when no policy was given."""

_OUTCOME: dict[str, GateOutcome] = {
    "passed": "pass",
    "failed": "FAIL",
    "error": "error",
    "skipped": "skipped",
}


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage string ("-" when missing)."""
    return "-" if x is None else f"{100 * x:z.{digits}f}%"


def signed_pts(x: float | None, digits: int = 2) -> str:
    """A signed difference of fractions in percentage points."""
    return "-" if x is None else f"{100 * x:+z.{digits}f} pp"


def fmt_p(p: float | None) -> str:
    """A p-value, compact."""
    if p is None:
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def fmt_value(x: float | None) -> str:
    """A gate value or threshold: 4 significant digits ("-" when missing)."""
    return "-" if x is None else f"{x:z.4g}"


def pct_points(x: float | None, digits: int = 1) -> str:
    """A number that is already a percentage (subgroup shares and growth)."""
    return "-" if x is None else f"{x:z.{digits}f}%"


def gate_outcome(gate: GateResult) -> GateOutcome:
    """What a gate came to, as the reports word it.

    An unevaluable gate is an ``error`` (the run fails closed) unless the
    gate module marked it ``skipped`` because the policy said so explicitly.
    """
    return _OUTCOME[gate.status]


def cie_counts(c: Comparison, unit: str = "") -> str:
    """``239: forgot 182, learned 52; single-pair``: whole numbers for one pair of models,
    one decimal for means over pairs (``153.3: forgot 91.7, ...``: rounded to whole
    numbers apart, they read as counts that do not add up); ``unit`` follows the count."""
    cie = c.cie
    values = (cie.count, cie.cie_u, cie.cie_c)
    spec = ".0f" if all(float(v).is_integer() for v in values) else ".1f"
    return (
        f"{cie.count:{spec}}{unit}: forgot {cie.cie_u:{spec}}, learned {cie.cie_c:{spec}}; "
        f"{cie.basis}"
    )


FEW_SPLITS = 19
"""Below this many seed-noise splits a floor's p-value cannot reach 0.05 (1 / (S + 1))."""


UNSIZED_FLOOR = "{k} vs {k} members, fewer than the candidate's: overstates noise"
"""Said where a floor is not sized to the candidate (``floors.sized_to_candidate``)."""
LINEAGE_NO_FLOORS = "no class or group floors: no seed noise separates a child from its parent"
"""Said for a lineage pair, whose class and group rows have no floor columns."""


def floor_text(c: Comparison, block: Literal["cie", "pie"]) -> str:
    """``"seed floor 2.40%, excess +0.70 pp (p 0.0156)"`` for the PIE or CIE block, or why none."""
    if block == "cie" and c.cie.floor_note:
        return c.cie.floor_note
    if block == "pie" and c.pie.floor_note:
        return c.pie.floor_note
    floor = c.cie.floor if block == "cie" else c.pie.floor
    if floor.rate is None:
        reason = c.floors.reason
        return f"no seed floor ({reason})" if reason else "no seed floor"
    text = (
        f"seed floor {pct(floor.rate)}, excess {signed_pts(floor.excess)} "
        f"(p {fmt_p(floor.p_value)})"
    )
    splits = c.floors.n_splits
    if splits is not None and splits < FEW_SPLITS:
        # A p-value of S splits is at least 1/(S + 1): say so where that is above 0.05,
        # or a reader takes "p 0.25" for a measured absence of damage.
        text += f"; {splits} split(s): p >= {fmt_p(1 / (splits + 1))}"
    if c.floors.sized_to_candidate is False and c.floors.k_split is not None:
        # Always so for a trainer run (one K for every variant): say what it costs.
        text += "; " + UNSIZED_FLOOR.format(k=c.floors.k_split)
    return text


def noise_share(c: Comparison) -> str:
    """How many classes seed noise alone puts beyond a floor, in words."""
    q = c.floors.quantile or 0.95
    return f"seed noise alone puts about {1 - q:.0%} there"


def gallery_order(examples: PieExamples | Sequence[Mapping[str, Any]]) -> list[int]:
    """Positions of PIE examples, most confident flips first.

    Highest candidate vote share first, then highest reference share; the
    sort is stable, so equal shares keep the report's (example) order.
    """
    if isinstance(examples, PieExamples):
        if not len(examples):
            return []
        cand, ref = examples.columns["share_candidate"], examples.columns["share_reference"]
    else:
        cand = [e["share_candidate"] for e in examples]
        ref = [e["share_reference"] for e in examples]
    return sorted(range(len(cand)), key=lambda i: (-cand[i], -ref[i]))


def subgroup_sets(c: Comparison) -> tuple[GroupSetResult, ...]:
    """The comparison's attribute sets (a report of the first schema version has one)."""
    return c.subgroup_sets or (
        GroupSetResult(attributes=c.subgroup_attributes, subgroups=c.subgroups),
    )


def summary_lines(c: Comparison) -> list[str]:
    """Plain sentences summing up one comparison (no markup)."""
    cie, pie, sub = c.cie, c.pie, c.subsets
    n_worse = len(c.significantly_worse_classes)
    n_sig = sum(1 for r in c.classes if r.significant)
    top = f"top-1 Δ {signed_pts(c.top1_delta)}"
    if c.top5_delta is not None:
        top += f", top-5 Δ {signed_pts(c.top5_delta)}"
    beyond = pie.n_beyond_noise
    pie_noise = "" if beyond is None else f", {beyond} beyond seed noise (per-example test)"
    n_floor = c.classes_beyond_floor
    lines = [top]
    if c.lineage == "paired":
        lines.append("lineage: paired (candidate member k made from reference member k)")
    return [
        *lines,
        f"CIE {pct(cie.rate)} ({cie_counts(c, ' examples')}); {floor_text(c, 'cie')}",
        f"PIE {pie.count} ({pct(pie.rate)}{pie_noise}); {floor_text(c, 'pie')}",
        f"top-1 reference/candidate on PIE "
        f"{pct(sub.pie.top1_reference, 1)}/{pct(sub.pie.top1_candidate, 1)}, "
        f"non-PIE {pct(sub.non_pie.top1_reference, 1)}/"
        f"{pct(sub.non_pie.top1_candidate, 1)}, random subset of equal size "
        f"{pct(sub.random.top1_reference, 1)}/{pct(sub.random.top1_candidate, 1)}",
        f"classes significantly worse than the overall shift: {n_worse} of {len(c.classes)} "
        f"({n_sig} significant either way; {c.class_test} test)"
        + (
            f"; {LINEAGE_NO_FLOORS}"
            if c.lineage == "paired"
            else ""
            if n_floor is None
            else f"; {n_floor} below their seed-noise floor ({noise_share(c)})"
        ),
    ]


def significance(row: ClassRow) -> str:
    """A class's test result in a worst-first table: ``worse`` or ``better`` when
    significant (the test is two-sided: a class can also gain), else ``no``."""
    if not row.significant:
        return "no"
    return "worse" if row.significantly_worse else "better"


def header_facts(report: AuditReport, escape: Callable[[str], str]) -> list[str]:
    """The one-line facts under a report's title (examples, settings, tool), escaped."""
    data, settings, tool = report.data, report.settings, report.tool
    facts = []
    if data is not None:
        facts.append(f"{data.n} examples, {data.num_classes} classes")
    if settings:
        facts.append(
            f"alpha {settings['alpha']} ({escape(str(settings['correction']))}), "
            f"seed {settings['seed']}"
        )
    facts.extend(settings_sources(report, escape))
    if tool:
        facts.append(f"{escape(str(tool['name']))} {escape(str(tool['version']))}")
    return facts


SOURCE_WORDS = {"cli": "flags", "policy": "policy", "pyproject": "pyproject.toml"}
"""How each settings source is named in the reports (``default`` is not named)."""


def settings_sources(report: AuditReport, escape: Callable[[str], str]) -> list[str]:
    """``policy (p.yaml): alpha 0.01, seed 1`` per source other than the defaults, so a
    reader sees what was set and where (``settings.sources``); escaped."""
    settings = report.settings or {}
    sources, files = settings.get("sources") or {}, settings.get("files") or {}
    out = []
    for source, word in SOURCE_WORDS.items():
        names = [n for n, s in sources.items() if s == source and n in settings]
        if not names:
            continue
        values = ", ".join(f"{n} {_setting_value(settings[n])}" for n in names)
        where = files.get(source)
        label = f"{word} ({Path(str(where)).name})" if where and source == "policy" else word
        out.append(escape(f"set by {label}: {values}"))
    return out


def _setting_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_setting_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


LONG_TAIL_HEADER = (
    "score",
    "subset",
    "n",
    "mean flagged",
    "mean rest",
    "Welch p",
    "Cliff's δ",
    "seed n",
    "seed mean",
    "seed p",
    "seed δ",
    "seed δ 5-95%",
    "p beyond seed",
)
"""Columns of the long-tail table: each subset, then its seed-noise counterpart (medians
over the floor splits), the splits' 5th-95th percentile of Cliff's delta and the p of the
subset's delta against theirs (``p_beyond_seed``)."""
LONG_TAIL_CAPTION = (
    "Per-example scores on the flagged examples against the rest (Dam et al.): Welch's "
    "t-test p and Cliff's delta; seed columns: the same subset between two disjoint halves "
    "of the reference population (seed noise alone), medians over the floor splits; seed δ "
    "5-95%: the splits' spread of Cliff's delta; p beyond seed: the subset's delta against the "
    "splits' median, in units of both deltas' sampling error. CIEs: examples changed in at "
    "least one model pair."
)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:z.4g}"


def _delta(x: float | None) -> str:
    return "-" if x is None else f"{x:+z.2f}"


def long_tail_rows(c: Comparison) -> list[tuple[str, ...]]:
    """One row of plain cells per score x subset (:data:`LONG_TAIL_HEADER`); none without scores."""
    rows = []
    for r, s in c.long_tail_pairs():
        seed: tuple[str, ...] = (
            (str(s.n), _num(s.mean_subset), fmt_p(s.p_value), _delta(s.cliffs_delta))
            if s is not None
            else ("-", "-", "-", "-")
        )
        rows.append(
            (
                r.score,
                r.subset,
                str(r.n),
                _num(r.mean_subset),
                _num(r.mean_rest),
                fmt_p(r.p_value),
                _delta(r.cliffs_delta),
                *seed,
                _seed_range(r),
                fmt_p(r.p_beyond_seed),
            )
        )
    return rows


def _seed_range(r: LongTailRow) -> str:
    lo, hi = r.seed_cliffs_delta_q05, r.seed_cliffs_delta_q95
    return "-" if lo is None or hi is None else f"{lo:+z.2f}..{hi:+z.2f}"


# -- one line per candidate ------------------------------------------------------

NOISE_LEAD = "excess over seed floor: "
"""Leads the seed-noise part of a candidate's line (excess of PIE and CIE rates)."""
FAILURES_FIRST: dict[str, int] = {"fail": 0, "error": 1, "pass": 2, "ungated": 3}
"""Order of candidates in the verdict lines: failures, errors, passes, then ungated."""
_GATE_FIRST: dict[str, int] = {"failed": 0, "error": 1, "skipped": 2, "passed": 3}


def gate_number(gate: GateResult, value: float | None) -> str:
    """A gate's value or threshold in its unit (``1.53 pp``, ``4.2%``, ``3``), "-" if none."""
    from compaudit.gates import gate_unit

    return "-" if value is None else gate_unit(gate.name)(value)


@dataclass(frozen=True)
class CandidateVerdict:
    """What one candidate came to, as the first lines of every format say it."""

    candidate: str
    verdict: Verdict
    reasons: tuple[str, ...]
    """Gates that failed (value vs threshold) or could not be evaluated; for a pass,
    how many gates passed; ungated: the headline numbers."""
    noise: tuple[str, ...]
    """Excess over the seed-noise floors (PIE, CIE, classes), where the audit has them."""

    def text(self, name: Callable[[str], str] = str) -> str:
        """``p90: FAIL: top1_drop 2.31 pp > 1.00 pp; over seed noise: PIE +0.70 pp``;
        ``name`` escapes the candidate's name for the medium."""
        line = f"{name(self.candidate)}: {VERDICT_WORD[self.verdict]}: {'; '.join(self.reasons)}"
        return line + (f"; {NOISE_LEAD}{', '.join(self.noise)}" if self.noise else "")


def gate_pair(g: GateResult, value: float, threshold: float) -> tuple[str, str]:
    """Value and threshold in the gate's unit, with more digits when they would read
    the same (``3.0 pp > 3.0 pp`` for a value just over its threshold)."""
    a, b = gate_number(g, value), gate_number(g, threshold)
    unit = next((u for u in (" pp", "%") if a.endswith(u) and b.endswith(u)), None)
    if a != b or unit is None:
        return a, b
    digits = 2
    while digits < 8 and f"{100 * value:z.{digits}f}" == f"{100 * threshold:z.{digits}f}":
        digits += 1
    return f"{100 * value:z.{digits}f}{unit}", f"{100 * threshold:z.{digits}f}{unit}"


def _gate_reason(g: GateResult) -> str | None:
    if g.status == "failed":
        if g.value is None or g.threshold is None:
            return f"{g.name} not evaluable (counted as failed)"
        value, threshold = gate_pair(g, g.value, g.threshold)
        return f"{g.name} {value} > {threshold}"
    if g.status == "error":
        return f"{g.name} not evaluable"
    return None


def _noise(c: Comparison) -> tuple[str, ...]:
    out = []
    if c.pie.floor.excess is not None:
        out.append(f"PIE {signed_pts(c.pie.floor.excess)}")
    if c.cie.floor.excess is not None:
        out.append(f"CIE {signed_pts(c.cie.floor.excess)}")
    beyond = c.classes_beyond_floor
    if beyond is not None:
        out.append(f"{beyond} of {len(c.classes)} classes below theirs")
    return tuple(out)


def _verdict_of(c: Comparison, report: AuditReport) -> Verdict:
    # Reports written before per-candidate verdicts: the run's, when it is gated
    # and has one candidate; otherwise the candidate's own gates decide.
    if c.verdict != "ungated" or report.verdict == "ungated":
        return c.verdict
    from compaudit.gates import decide_verdict

    return decide_verdict([g for g in report.gates if g.candidate == c.candidate], ())


def candidate_verdicts(report: AuditReport) -> list[CandidateVerdict]:
    """One :class:`CandidateVerdict` per comparison, failures first (:data:`FAILURES_FIRST`),
    ties in report order."""
    out = []
    for c in report.comparisons:
        verdict = _verdict_of(c, report)
        gates = gates_failures_first([g for g in report.gates if g.candidate == c.candidate])
        reasons = [r for g in gates if (r := _gate_reason(g)) is not None]
        passed = sum(1 for g in gates if g.status == "passed")
        skipped = sum(1 for g in gates if g.status == "skipped")
        if verdict == "pass" or (passed and reasons):
            noun = "gate" if len(gates) == 1 else "gates"
            reasons.append(f"{passed} of {len(gates)} {noun} passed")
        if skipped:
            reasons.append(f"{skipped} skipped")
        if verdict == "ungated" or not gates:
            n = len(c.significantly_worse_classes)
            reasons = [
                f"top-1 {signed_pts(c.top1_delta)}",
                f"{n} of {len(c.classes)} classes significantly worse",
                f"PIE {pct(c.pie.rate)}",
                *reasons,
            ]
        out.append(CandidateVerdict(c.candidate, verdict, tuple(reasons), _noise(c)))
    return sorted(out, key=lambda v: FAILURES_FIRST[v.verdict])


def gates_failures_first(gates: Sequence[GateResult]) -> list[GateResult]:
    """Failed gates first, then errors, skipped and passed; ties in report order."""
    return sorted(gates, key=lambda g: _GATE_FIRST[g.status])


def comparisons_failures_first(report: AuditReport) -> list[Comparison]:
    """The comparisons in the order of :func:`candidate_verdicts`."""
    rank = {v.candidate: i for i, v in enumerate(candidate_verdicts(report))}
    return sorted(report.comparisons, key=lambda c: rank[c.candidate])
