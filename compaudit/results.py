"""Typed audit results: what :func:`compaudit.audit` found, as frozen dataclasses.

Every object mirrors one object of the ``compaudit.report/v1`` document
(``report.schema.json``) field by field and in the same order, so that
:meth:`Record.to_dict` *is* the report form and :meth:`Record.from_dict`
reads a saved ``report.json`` back (checked: a missing key or a wrong type is
an :class:`~compaudit.errors.InputError` naming where). Gates and reporters
read these objects, never string keys, and the two rules every view shares
are defined here once:

* a class (or subgroup) is *significantly worse* when its test is significant
  and its normalized difference is negative (:attr:`ClassRow.significantly_worse`);
* *worst first* orders the significantly worse first, then by normalized
  difference, untested (None) last (:meth:`Comparison.worst_classes`);
  for subgroups (:meth:`GroupSetResult.worst_groups`): the significantly
  worse first, then testable before untestable (below ``min_support``), then
  by shift difference ascending, ties in report order. Every report format
  lists classes and subgroups in these orders.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from compaudit._record import ERR_SHAPE, OMIT_EMPTY, OMIT_NONE, Record, RowTable
from compaudit.errors import InputError

__all__ = [
    "AuditReport",
    "CieBlock",
    "CieExample",
    "CiePair",
    "ClassRow",
    "Comparison",
    "Compression",
    "DataInfo",
    "FairnessChange",
    "FairnessClass",
    "FairnessDisparity",
    "FairnessGroup",
    "FairnessIncrease",
    "FairnessSet",
    "Floor",
    "FloorsInfo",
    "GateResult",
    "GateStatus",
    "GroupRow",
    "GroupSetResult",
    "InfluencedExample",
    "Influencer",
    "InfluencersBlock",
    "LongTailDecile",
    "LongTailRow",
    "PieBlock",
    "PieExamples",
    "PopulationSummary",
    "Record",
    "Subset",
    "Subsets",
    "Verdict",
]

Verdict = Literal["pass", "fail", "error", "ungated"]
"""``ungated``: no policy was given, so nothing was gated (exit 0, never a PASS)."""
GateStatus = Literal["passed", "failed", "error", "skipped"]


def _lt(x: float | None, y: float) -> bool:
    """``x < y`` for a value that may be missing or not finite (then False)."""
    return x is not None and math.isfinite(x) and x < y


# -- classes and subgroups ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClassRow(Record):
    """One class: recall on both sides, the normalized difference and its test."""

    class_index: int = field(metadata={"key": "class"})
    name: str
    support: int
    recall_reference: float | None
    recall_candidate: float | None
    normalized_recall_difference: float | None
    test: str | None
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    p_worse: float | None = None
    significant: bool
    floor_difference: float | None = None
    """Seed-noise floor of the normalized difference (a low quantile), if any."""
    excess: float | None = None
    p_floor: float | None = None

    @property
    def significantly_worse(self) -> bool:
        """Significant and behind the overall shift: the one rule every view uses."""
        return self.significant and _lt(self.normalized_recall_difference, 0.0)

    @property
    def beyond_floor(self) -> bool:
        """Below its seed-noise floor (False without a floor)."""
        return self.floor_difference is not None and _lt(
            self.normalized_recall_difference, self.floor_difference
        )

    @property
    def label(self) -> str:
        """``3 (Dress)``, or the index alone when the name is the index."""
        i = str(self.class_index)
        return f"{i} ({self.name})" if self.name and self.name != i else i


@dataclass(frozen=True, kw_only=True)
class GroupRow(Record):
    """One subgroup: PIE shares (Hooker et al.), top-1 shift and its test."""

    group: dict[str, Any]
    n: int
    n_non_pie: int
    n_pie: int
    pct_non_pie: float | None
    pct_pie: float | None
    pct_growth: float | None
    top1_reference: float
    top1_candidate: float
    shift_difference: float
    testable: bool
    test: str | None
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    p_worse: float | None = None
    significant: bool
    floor_pct_growth: float | None = None
    excess_pct_growth: float | None = None
    p_pct_growth: float | None = None
    floor_shift_difference: float | None = None
    excess_shift_difference: float | None = None
    p_shift_floor: float | None = None

    @property
    def significantly_worse(self) -> bool:
        """Significant and behind the overall shift (same rule as classes)."""
        return self.significant and _lt(self.shift_difference, 0.0)

    @property
    def label(self) -> str:
        """``sex=Female, race=Black``."""
        return ", ".join(f"{k}={v}" for k, v in self.group.items())


@dataclass(frozen=True, kw_only=True)
class GroupSetResult(Record):
    """The subgroups of one attribute set (its attributes crossed)."""

    attributes: tuple[str, ...]
    subgroups: tuple[GroupRow, ...]

    def worst_groups(self, limit: int | None = None) -> list[GroupRow]:
        """Worst first: significantly worse groups, then testable before untestable,
        then by ``shift_difference`` ascending (not finite last); ties keep report order."""

        def key(row: GroupRow) -> tuple[bool, bool, float]:
            d = row.shift_difference
            return (
                not row.significantly_worse,
                not row.testable,
                d if math.isfinite(d) else math.inf,
            )

        return sorted(self.subgroups, key=key)[:limit]


# -- fairness ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FairnessChange(Record):
    """A fairness number on both sides, its change and the change's bootstrap interval."""

    reference: float | None
    candidate: float | None
    change: float | None
    change_low: float | None = None
    change_high: float | None = None


@dataclass(frozen=True, kw_only=True)
class FairnessDisparity(FairnessChange):
    """A between-group disparity of one positive class, with its seed-noise floor."""

    floor: float | None = None
    """Seed-noise floor of the change (a high quantile), if any."""
    excess: float | None = None
    p_floor: float | None = None


@dataclass(frozen=True, kw_only=True)
class FairnessGroup(Record):
    """One group's rates for one positive class (one-vs-rest in multi-class tasks)."""

    group: dict[str, Any]
    n: int
    n_positive: int
    judged: bool
    """Counted in the disparities (``n >= min_support``)."""
    tpr: FairnessChange
    fpr: FairnessChange
    fnr: FairnessChange
    selection_rate: FairnessChange

    @property
    def label(self) -> str:
        """``sex=Female, race=Black``."""
        return ", ".join(f"{k}={v}" for k, v in self.group.items())


@dataclass(frozen=True, kw_only=True)
class FairnessClass(Record):
    """The groups' rates and the disparities for one positive class."""

    class_index: int = field(metadata={"key": "class"})
    name: str
    demographic_parity_difference: FairnessDisparity
    equalized_odds_difference: FairnessDisparity
    groups: tuple[FairnessGroup, ...]


@dataclass(frozen=True, kw_only=True)
class FairnessIncrease(Record):
    """The largest increase of a disparity over the positive classes (what its gate
    judges), against the seed-noise floor of that largest increase."""

    value: float | None
    class_index: int | None = field(default=None, metadata={"key": "class"})
    floor: float | None = None
    excess: float | None = None
    p_value: float | None = None


@dataclass(frozen=True, kw_only=True)
class FairnessSet(Record):
    """Fairness metrics of one attribute set (one attribute: marginal groups; several
    crossed: intersections); see :mod:`compaudit.analysis.fairness`."""

    attributes: tuple[str, ...]
    kind: Literal["marginal", "intersection"]
    task: Literal["binary", "one-vs-rest"]
    min_support: int
    bootstrap: dict[str, Any]
    demographic_parity_difference: FairnessChange
    """Worst (largest) over the positive classes."""
    equalized_odds_difference: FairnessChange
    demographic_parity_difference_increase: FairnessIncrease
    equalized_odds_difference_increase: FairnessIncrease
    classes: tuple[FairnessClass, ...]
    """Every positive class, or (more than 20) the 20 whose disparities rose most."""
    n_classes: int = 0
    """Positive classes judged (all enter the summaries and the gates)."""
    floor_note: str | None = field(default=None, metadata=OMIT_NONE)
    """Why the set has no seed-noise floor although the reference gives floors (too few
    member relabellings: lineage with K <= 4, or 3 + 3 members)."""

    @property
    def label(self) -> str:
        """``sex, race``."""
        return ", ".join(self.attributes)


# -- PIE and CIE ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Floor(Record):
    """A rate beside its seed-noise floor: ``excess = value - rate``."""

    rate: float | None = None
    excess: float | None = None
    p_value: float | None = None


@dataclass(frozen=True, kw_only=True)
class FloorsInfo(Record):
    """How the comparison's seed-noise floors were estimated, or why there are none."""

    available: bool
    reason: str | None
    method: str
    k_split: int | None = field(default=None, metadata=OMIT_NONE)
    n_splits: int | None = field(default=None, metadata=OMIT_NONE)
    quantile: float | None = field(default=None, metadata=OMIT_NONE)
    sized_to_candidate: bool | None = field(default=None, metadata=OMIT_NONE)


NO_FLOORS: dict[str, Any] = {
    "available": False,
    "reason": "the report has no seed-noise floors (written before they existed)",
    "method": "disjoint-splits",
}

PIE_COLUMNS = (
    "id",
    "label",
    "modal_reference",
    "modal_candidate",
    "share_reference",
    "share_candidate",
    "p_value",
    "p_adjusted",
    "beyond_noise",
)


@dataclass(frozen=True)
class PieExamples(RowTable):
    """Every PIE as columns (one list per field of ``pie.examples``): there can be
    hundreds of thousands, so rows are built only when asked for."""

    columns: Mapping[str, Sequence[Any]]
    COLUMNS: ClassVar[tuple[str, ...]] = PIE_COLUMNS

    def __len__(self) -> int:
        return len(self.columns["id"]) if self.columns else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_list())

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.columns.items()}

    def to_list(self) -> list[dict[str, Any]]:
        """The report's list of rows."""
        keys = list(self.columns)
        return [
            dict(zip(keys, row, strict=True)) for row in zip(*self.columns.values(), strict=True)
        ]

    @classmethod
    def from_list(cls, rows: Any, where: str = "pie.examples") -> PieExamples:
        """Columns from the report's rows (keys of the first row; all rows alike)."""
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise InputError(ERR_SHAPE.format(where=where, problem="expected a list of objects"))
        keys = [k for k in PIE_COLUMNS if rows and k in rows[0]]
        try:
            return cls({k: [r[k] for r in rows] for k in keys})
        except KeyError as exc:
            raise InputError(ERR_SHAPE.format(where=where, problem=f"missing key {exc}")) from None


@dataclass(frozen=True, kw_only=True)
class PieBlock(Record):
    """Pruning Identified Exemplars: examples whose modal prediction changed."""

    count: int
    rate: float
    tie_rule: str
    floor: Floor = field(default_factory=Floor)
    floor_note: str | None = field(default=None, metadata=OMIT_NONE)
    """Why a lineage-paired comparison has no seed floor (its PIEs count what changed)."""
    n_beyond_noise: int | None = None
    example_test: str | None = None
    examples: PieExamples = field(default_factory=lambda: PieExamples({}))


@dataclass(frozen=True, kw_only=True)
class CiePair(Record):
    """The CIEs of one (parent, child) pair of a lineage-paired comparison."""

    count: float
    rate: float
    cie_u: float
    cie_c: float


@dataclass(frozen=True, kw_only=True)
class CieExample(Record):
    """One listed CIE; the counts depend on the basis (see :func:`cie_examples`)."""

    id: Any
    label: int
    prediction_reference: int
    prediction_candidate: int
    kind: Literal["U", "C", "both-wrong"]
    n_pairs: int | None = field(default=None, metadata=OMIT_NONE)
    n_u: int | None = field(default=None, metadata=OMIT_NONE)
    n_c: int | None = field(default=None, metadata=OMIT_NONE)
    pair_rate: float | None = field(default=None, metadata=OMIT_NONE)
    pair_rate_u: float | None = field(default=None, metadata=OMIT_NONE)
    pair_rate_c: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class CieBlock(Record):
    """Compression Impacted Exemplars (Dam et al.): examples the two sides classify apart."""

    basis: Literal["single-pair", "paired", "mean-over-pairs"]
    count: float
    rate: float
    cie_u: float
    cie_c: float
    cie_u_rate: float
    cie_c_rate: float
    both_wrong_different: float
    pairs: tuple[CiePair, ...] | None = field(default=None, metadata=OMIT_NONE)
    floor: Floor = field(default_factory=Floor)
    floor_note: str | None = field(default=None, metadata=OMIT_NONE)
    examples: tuple[CieExample, ...] = ()
    examples_total: int | None = None


@dataclass(frozen=True, kw_only=True)
class Subset(Record):
    """Mean top-1 of both sides on one subset of the examples (Fig. 3)."""

    n: int
    top1_reference: float | None
    top1_candidate: float | None


@dataclass(frozen=True, kw_only=True)
class Subsets(Record):
    """Top-1 on the PIEs, the non-PIEs and a random subset of the PIEs' size."""

    pie: Subset
    non_pie: Subset
    random: Subset
    seed: int


@dataclass(frozen=True, kw_only=True)
class LongTailDecile(Record):
    """Share of flagged examples in one score decile (1 = lowest scores)."""

    decile: int
    share_flagged: float | None
    base_rate: float | None


LONG_TAIL_SUBSETS = (
    "pie",
    "cie",
    "cie_u",
    "cie_c",
    "pie_seed",
    "cie_seed",
    "cie_u_seed",
    "cie_c_seed",
)
"""Subsets of the long-tail test; ``*_seed`` are the seed-noise counterparts."""


@dataclass(frozen=True, kw_only=True)
class LongTailRow(Record):
    """A per-example score on one flagged subset against the rest (Dam et al.):
    :func:`compaudit.analysis.long_tail.long_tail_comparison` in report form."""

    score: str
    subset: str
    n: int
    mean_subset: float | None
    mean_rest: float | None
    statistic: float | None
    p_value: float | None
    mann_whitney_p: float | None
    cohens_d: float | None
    cliffs_delta: float | None
    deciles: tuple[LongTailDecile, ...] = ()
    n_splits: int | None = field(default=None, metadata=OMIT_NONE)
    """Seed rows only: the floor splits summarised (each statistic is its median over
    the splits where it is defined, ``n`` the lower median, decile shares the means)."""
    seed_splits: int | None = None
    """Compression rows: floor splits with a defined Cliff's delta (None without floors
    and on seed rows)."""
    seed_cliffs_delta_q05: float | None = None
    """5th percentile of the splits' Cliff's deltas for this score and subset."""
    seed_cliffs_delta_q95: float | None = None
    """95th percentile of the same."""
    p_beyond_seed: float | None = None
    """Two-sided p of this row's Cliff's delta against the splits' median delta, in units
    of both deltas' null standard errors (:mod:`compaudit.analysis.long_tail_seed`)."""

    @property
    def is_seed(self) -> bool:
        """A seed-noise row (two disjoint halves of the reference population)."""
        return self.subset.endswith("_seed")


@dataclass(frozen=True, kw_only=True)
class Influencer(Record):
    """One training example among a flagged example's most influential (Feldman-Zhang
    influence estimate from the run directory's influence runs)."""

    train_index: int
    """Row of the training split (the runs' column)."""
    train_id: Any
    label: int
    """Its true label in the training split."""
    influence: float | None
    """``I[t, j]``: correctness on the flagged example over runs that trained on it minus
    over runs that did not; None when not estimable (always or never in a run)."""
    se: float | None


@dataclass(frozen=True, kw_only=True)
class InfluencedExample(Record):
    """A flagged example (listed PIE and/or CIE) and its top influencers, best first."""

    id: Any
    flagged_as: tuple[Literal["pie", "cie"], ...]
    influencers: tuple[Influencer, ...]


@dataclass(frozen=True, kw_only=True)
class InfluencersBlock(Record):
    """What the flagged examples had memorized: the ``comparisons[i].influencers`` object,
    present only for a trainer run directory with influence runs on the audited split."""

    k: int
    n_runs: int
    n_train: int
    train_data: str
    """Data spec of the training split the influencers come from (``digits:train``)."""
    examples: tuple[InfluencedExample, ...]

    def by_id(self) -> dict[str, InfluencedExample]:
        """The examples keyed by ``str(id)`` (ids join report lists as strings)."""
        return {str(e.id): e for e in self.examples}


# -- one comparison, the whole report ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Comparison(Record):
    """One candidate against the reference: the ``comparisons[i]`` object."""

    reference: str
    candidate: str
    verdict: Verdict = "ungated"
    """This candidate's own verdict (:func:`compaudit.gates.judge`); ``ungated`` in
    reports written before it existed and without a policy."""
    lineage: Literal["paired", "none"] = "none"
    top1_delta: float
    top5_delta: float | None
    class_test: str
    floors: FloorsInfo = field(default_factory=lambda: FloorsInfo(**NO_FLOORS))
    """Reports written before seed-noise floors have none."""
    cie: CieBlock
    pie: PieBlock
    subsets: Subsets
    classes: tuple[ClassRow, ...]
    subgroup_attributes: tuple[str, ...]
    """The first attribute set (kept for readers of the first schema version)."""
    subgroups: tuple[GroupRow, ...]
    """The first set's subgroups (same reason)."""
    subgroup_sets: tuple[GroupSetResult, ...] = ()
    long_tail: tuple[LongTailRow, ...] = field(default=(), metadata=OMIT_EMPTY)
    """Per-example scores on PIEs and CIEs against the rest (empty without scores)."""
    fairness: tuple[FairnessSet, ...] = field(default=(), metadata=OMIT_EMPTY)
    """Per-group fairness metrics per attribute set (empty without protected attributes)."""
    influencers: InfluencersBlock | None = field(default=None, metadata=OMIT_NONE)
    """Top influencers of the listed PIEs and CIEs (None without influence runs)."""

    def long_tail_pairs(self) -> list[tuple[LongTailRow, LongTailRow | None]]:
        """Each compression row with its seed-noise row (None when there is none)."""
        seed = {(r.score, r.subset): r for r in self.long_tail if r.is_seed}
        return [
            (r, seed.get((r.score, f"{r.subset}_seed"))) for r in self.long_tail if not r.is_seed
        ]

    def worst_classes(self, limit: int | None = None) -> list[ClassRow]:
        """Significantly worse classes first, then the rest, worst first (untested last)."""

        def key(row: ClassRow) -> tuple[bool, float]:
            d = row.normalized_recall_difference
            return (not row.significantly_worse, math.inf if d is None else d)

        return sorted(self.classes, key=key)[:limit]

    @property
    def significantly_worse_classes(self) -> list[ClassRow]:
        """Classes whose recall fell significantly behind the overall shift."""
        return [c for c in self.classes if c.significantly_worse]

    @property
    def classes_beyond_floor(self) -> int | None:
        """How many classes lie beyond their seed-noise floor (None without floors)."""
        if all(c.floor_difference is None for c in self.classes):
            return None
        return sum(1 for c in self.classes if c.excess is not None and c.excess > 0)


COMPRESSION_KEYS = ("sparsity", "bits", "file_size", "parameters")
"""The compression metadata a population may carry (``NAME=SPEC@sparsity=0.9``)."""


@dataclass(frozen=True, kw_only=True)
class Compression(Record):
    """How compressed a population is: its place on the compression curve.

    ``sparsity`` is the fraction of weights that are zero, ``bits`` the weight
    precision, ``file_size`` the mean model file size in bytes and
    ``parameters`` the mean parameter count (zeros included); ``sources`` says
    per key where it came from (``given`` on the command line, ``manifest`` of
    the trainer's run, ``measured`` from the model file).
    """

    sparsity: float | None = None
    bits: int | None = None
    file_size: int | None = None
    parameters: int | None = None
    method: str | None = field(default=None, metadata=OMIT_NONE)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PopulationSummary(Record):
    """One population's accuracy: the ``populations[name]`` object."""

    k: int
    top1: float
    top1_std: float | None
    top5: float | None
    top5_std: float | None = None
    top1_per_model: tuple[float, ...] = ()
    source: str = ""
    fingerprint: str = ""
    compression: Compression | None = field(default=None, metadata=OMIT_NONE)
    """Compression metadata, when known (reports before it existed have none)."""


@dataclass(frozen=True, kw_only=True)
class DataInfo(Record):
    """The examples audited."""

    n: int
    num_classes: int
    class_names: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GateResult(Record):
    """The outcome of one gate for one candidate comparison.

    ``passed`` is None when the gate could not be evaluated (``status`` then
    says whether that is an ``error`` or was ``skipped``; with
    ``on_unevaluable: fail`` it is False and ``status`` is ``failed``).
    """

    name: str
    candidate: str | None
    value: float | None
    threshold: float | None
    passed: bool | None
    detail: str
    status: GateStatus

    def __post_init__(self) -> None:
        expected = {"passed": True, "failed": False, "error": None, "skipped": None}
        if self.passed is not expected[self.status]:
            raise ValueError(f"GateResult status {self.status!r} with passed={self.passed!r}")


@dataclass(frozen=True, kw_only=True)
class AuditReport(Record):
    """The whole ``compaudit.report/v1`` document, typed."""

    schema: str
    verdict: Verdict
    populations: dict[str, PopulationSummary]
    comparisons: tuple[Comparison, ...]
    gates: tuple[GateResult, ...] = ()
    tool: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    data: DataInfo | None = field(default=None, metadata=OMIT_NONE)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    _ORDER: ClassVar[tuple[str, ...]] = (
        "schema",
        "tool",
        "verdict",
        "settings",
        "data",
        "populations",
        "comparisons",
        "gates",
        "errors",
        "warnings",
    )

    def to_dict(self) -> dict[str, Any]:
        """The ``compaudit.report/v1`` document, keys in the schema's order."""
        out = super().to_dict()
        return {k: out[k] for k in self._ORDER if k in out}

    def comparison(self, candidate: str) -> Comparison:
        """The comparison of one candidate, by name."""
        for c in self.comparisons:
            if c.candidate == candidate:
                return c
        raise KeyError(candidate)

    @property
    def class_names(self) -> list[str]:
        """Names of all classes (empty when the report has no ``data`` block)."""
        return list(self.data.class_names) if self.data is not None else []
