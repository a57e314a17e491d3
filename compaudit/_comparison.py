"""One comparison of a candidate population with the reference, in report form.

:func:`compare` builds the ``comparisons[i]`` object of ``compaudit.report/v1``
from two :class:`Side` objects; the work shared by every candidate (the
reference's correctness, modal predictions and per-group accuracy) is computed
once, in :class:`Side` and :class:`Partition`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit._noise import (
    REASON_LINEAGE_FLOORS,
    REASON_PAIRED_CIE,
    REASON_PAIRED_PIE,
    column_floors,
    floor_block,
    floor_summary,
)
from compaudit.analysis.agreement import (
    TIE_RULE,
    cie,
    cie_examples,
    modal_of_sorted,
    pie_example_test,
    pooled_votes,
    sort_votes,
    subset_top1,
)
from compaudit.analysis.fairness import DISPARITIES, PERMUTATIONS, RATES, fairness_table
from compaudit.analysis.long_tail import LongTailResult, long_tail_comparison, rank_scores
from compaudit.analysis.long_tail_seed import long_tail_splits, seed_position, summarise_splits
from compaudit.analysis.shift import ShiftTable, group_accuracy, group_shift
from compaudit.analysis.subgroups import LABEL_ATTRIBUTE, group_codes, pie_shares
from compaudit.analysis.topline import TopLine, correct_matrix, summarize
from compaudit.population import Population
from compaudit.results import (
    CieBlock,
    CieExample,
    CiePair,
    ClassRow,
    Comparison,
    FairnessChange,
    FairnessClass,
    FairnessDisparity,
    FairnessGroup,
    FairnessIncrease,
    FairnessSet,
    Floor,
    FloorsInfo,
    GroupRow,
    GroupSetResult,
    LongTailDecile,
    LongTailRow,
    PieBlock,
    PieExamples,
    PopulationSummary,
    Subset,
    Subsets,
)

if TYPE_CHECKING:
    from compaudit.analysis.floors import SeedFloors
    from compaudit.settings import AuditSettings

__all__ = ["Context", "GroupSet", "Partition", "Side", "cie_masks", "compare", "seed_masks"]


@dataclass(frozen=True, eq=False)
class Side:
    """A population with what every comparison reuses (computed once)."""

    name: str
    population: Population
    correct: np.ndarray
    topline: TopLine
    modal: np.ndarray
    share: np.ndarray
    sorted_votes: np.ndarray
    """Each example's votes sorted (:func:`sort_votes`): the modal rule's input, kept for
    the pooled votes of every comparison (:meth:`Pooled.votes`)."""

    @classmethod
    def of(cls, name: str, population: Population, *, seed: int = 0) -> Side:
        """Precompute correctness, accuracy and modal predictions (ties broken with ``seed``)."""
        preds = population.predictions
        correct = correct_matrix(preds, population.y)
        votes = sort_votes(preds)
        modal, share = modal_of_sorted(votes, seed=seed)
        top = summarize(population, correct=correct)
        return cls(name, population, correct, top, modal.astype(preds.dtype), share, votes)

    @property
    def summary_correct(self) -> np.ndarray:
        """Per-example correctness as one model (itself, or its modal prediction)."""
        if self.population.k == 1:
            return np.asarray(self.correct[0])
        return np.asarray(self.modal == self.population.y)

    def summary(self) -> PopulationSummary:
        """``populations`` entry of the report."""
        t = self.topline
        return PopulationSummary(
            k=t.k,
            top1=t.top1,
            top1_std=t.top1_std,
            top5=t.top5,
            top5_std=t.top5_std,
            top1_per_model=tuple(float(v) for v in t.top1_per_model),
            source=self.population.source,
            fingerprint=self.population.fingerprint(),
        )


def _num(x: float | np.floating[Any] | None) -> float | None:
    """JSON-safe float: NaN (not computed) and the infinite statistic of a
    zero-variance comparison (its p-value says it all) become None."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _test_fields(t: ShiftTable, i: int) -> dict[str, Any]:
    return {
        "test": t.method[i] or None,
        "statistic": _num(t.statistic[i]),
        "p_value": _num(t.p_value[i]),
        "p_adjusted": _num(t.p_adjusted[i]),
        "p_worse": _num(t.p_worse[i]),
        "significant": bool(t.significant[i]),
    }


@dataclass(frozen=True, eq=False)
class Partition:
    """A grouping of the examples (classes, or subgroups) and the reference's
    accuracy on it, computed once and reused for every candidate."""

    codes: np.ndarray
    keys: list[Any]
    order: np.ndarray
    ref_accuracy: np.ndarray
    cache: dict[Any, Any] = dataclasses.field(default_factory=dict)
    """Reference-side work shared by every candidate (the fairness tables' memo)."""

    @classmethod
    def of(cls, codes: np.ndarray, keys: list[Any], ref: Side) -> Partition:
        order = np.argsort(codes, kind="stable")
        return cls(codes, keys, order, group_accuracy(ref.correct, codes, len(keys), order=order))


@dataclass(frozen=True, eq=False)
class GroupSet:
    """One set of attributes to cross, its partition and its seed-noise floors."""

    attributes: tuple[str, ...]
    part: Partition
    floors: dict[int, SeedFloors | None]
    """Floors per candidate K (filled by the audit, shared by candidates of one K)."""


@dataclass(frozen=True)
class Context:
    """What :func:`compare` needs besides the two sides."""

    settings: AuditSettings
    class_part: Partition
    group_sets: tuple[GroupSet, ...]
    class_floors: SeedFloors | None
    lineage: bool
    scores: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Per-example scores by name (aligned with the examples) for the long-tail test."""

    @property
    def seed_floors(self) -> SeedFloors | None:
        """The class floors where they apply: none on a lineage pair, which no seed noise
        separates (its floors would come from independently seeded reference members and
        overstate the noise: damage to a class of 50 examples read as noise)."""
        return None if self.lineage else self.class_floors


def _shift(
    ref: Side, cand: Side, part: Partition, testable: np.ndarray, ctx: Context
) -> ShiftTable:
    s = ctx.settings
    return group_shift(
        ref.correct,
        cand.correct,
        part.codes,
        len(part.keys),
        ref_summary=ref.summary_correct,
        cand_summary=cand.summary_correct,
        testable=testable,
        alpha=s.alpha,
        correction=s.correction,
        ref_accuracy=part.ref_accuracy,
        order=part.order,
        seed=s.seed,
        lineage=ctx.lineage,
        ref_top1=ref.topline.top1_per_model,
        cand_top1=cand.topline.top1_per_model,
    )


def _class_rows(ref: Side, cand: Side, ctx: Context) -> tuple[str, tuple[ClassRow, ...]]:
    pop = ref.population
    c = pop.num_classes
    classes = _shift(ref, cand, ctx.class_part, np.ones(c, dtype=bool), ctx)
    floor, exc, p_floor = column_floors(
        ctx.seed_floors, classes.difference, "class_difference", direction="less"
    )
    rows = tuple(
        ClassRow(
            class_index=i,
            name=pop.class_name(i),
            support=support,
            recall_reference=_num(r),
            recall_candidate=_num(cd),
            normalized_recall_difference=_num(d),
            **_test_fields(classes, i),
            floor_difference=floor[i],
            excess=exc[i],
            p_floor=p_floor[i],
        )
        for i, (support, r, cd, d) in enumerate(
            zip(
                classes.support.tolist(),
                classes.acc_reference.tolist(),
                classes.acc_candidate.tolist(),
                classes.difference.tolist(),
                strict=True,
            )
        )
    )
    return classes.test, rows


def _subgroup_rows(
    ref: Side, cand: Side, pie: np.ndarray, gs: GroupSet, ctx: Context
) -> GroupSetResult:
    codes, keys = gs.part.codes, gs.part.keys
    g = len(keys)
    shares = pie_shares(codes, g, pie)
    shift = _shift(ref, cand, gs.part, shares["n"] >= ctx.settings.min_support, ctx)
    floors = None if ctx.lineage else gs.floors.get(cand.population.k)
    growth = np.asarray(shares["pct_growth"], dtype=float)
    f_g, e_g, p_g = column_floors(floors, growth, "group_pct_growth", direction="greater")
    f_s, e_s, p_s = column_floors(
        floors,
        np.asarray(shift.difference, dtype=float),
        "group_shift_difference",
        direction="less",
    )
    rows = tuple(
        GroupRow(
            group=keys[i],
            n=int(shares["n"][i]),
            n_non_pie=int(shares["n_non_pie"][i]),
            n_pie=int(shares["n_pie"][i]),
            pct_non_pie=_num(shares["pct_non_pie"][i]),
            pct_pie=_num(shares["pct_pie"][i]),
            pct_growth=_num(shares["pct_growth"][i]),
            top1_reference=float(shift.acc_reference[i]),
            top1_candidate=float(shift.acc_candidate[i]),
            shift_difference=float(shift.difference[i]),
            testable=bool(shift.testable[i]),
            **_test_fields(shift, i),
            floor_pct_growth=f_g[i],
            excess_pct_growth=e_g[i],
            p_pct_growth=p_g[i],
            floor_shift_difference=f_s[i],
            excess_shift_difference=e_s[i],
            p_shift_floor=p_s[i],
        )
        for i in range(g)
    )
    return GroupSetResult(attributes=tuple(gs.attributes), subgroups=rows)


PIE_EXAMPLE_TEST = (
    "Fisher's exact test on the votes for the pooled modal label, Benjamini-Hochberg "
    "over the examples that can reach alpha"
)


class Pooled:
    """One comparison's pooled votes (:func:`pooled_votes`), merged on first use: the PIE
    test reads the pooled modal label from them and the CIE block the pair agreement."""

    def __init__(self, ref: Side, cand: Side) -> None:
        self._sides = (ref, cand)

    @functools.cached_property
    def votes(self) -> tuple[np.ndarray, np.ndarray]:
        """The pooled sorted votes ``[Kr + Kc, N]`` and the agreeing pairs ``[N]``."""
        ref, cand = self._sides
        return pooled_votes(ref.sorted_votes, cand.sorted_votes)


def _pie_block(ref: Side, cand: Side, pie: np.ndarray, ctx: Context, pooled: Pooled) -> PieBlock:
    pop = ref.population
    pie_idx = np.flatnonzero(pie)
    y = ctx.class_part.codes
    testable = pop.k >= 2 and cand.population.k >= 2
    if testable and pie_idx.size:
        p_raw, p_adj = pie_example_test(
            pop.predictions,
            cand.population.predictions,
            ref.modal,
            cand.modal,
            pie,
            alpha=ctx.settings.alpha,
            seed=ctx.settings.seed,
            pooled_sorted=pooled.votes[0],
        )
    else:
        p_raw = p_adj = np.full(pie_idx.size, np.nan)
    beyond = np.where(np.isnan(p_adj), False, p_adj <= ctx.settings.alpha)
    # Column-wise tolist() is far cheaper than indexing numpy per PIE.
    columns = (
        pop.ids[pie_idx].tolist(),
        y[pie_idx].tolist(),
        ref.modal[pie_idx].tolist(),
        cand.modal[pie_idx].tolist(),
        ref.share[pie_idx].tolist(),
        cand.share[pie_idx].tolist(),
        [_num(v) for v in p_raw.tolist()],
        [_num(v) for v in p_adj.tolist()],
        beyond.tolist(),
    )
    examples = PieExamples(dict(zip(PieExamples.COLUMNS, columns, strict=True)))
    rate = len(pie_idx) / pop.n
    return PieBlock(
        count=len(pie_idx),
        rate=rate,
        tie_rule=TIE_RULE,
        # Seed floors measure independently seeded members: a child made from its own
        # parent has no seed noise to exceed (as for the paired CIEs): none on lineage.
        floor=Floor(**floor_block(ctx.seed_floors, rate, "pie_rate")),
        floor_note=REASON_PAIRED_PIE if ctx.lineage else None,
        n_beyond_noise=int(beyond.sum()) if testable else None,
        example_test=PIE_EXAMPLE_TEST if testable else None,
        examples=examples,
    )


def _cie_block(ref: Side, cand: Side, ctx: Context, pooled: Pooled) -> CieBlock:
    y = ctx.class_part.codes
    rp, cp = ref.population.predictions, cand.population.predictions
    over_pairs = not ctx.lineage and rp.shape[0] * cp.shape[0] > 1  # the mean over all pairs
    res = cie(
        rp,
        cp,
        y,
        ref_correct=ref.correct,
        cand_correct=cand.correct,
        paired=ctx.lineage,
        agreement=pooled.votes[1] if over_pairs else None,
    )
    counts = res.to_dict()
    pairs = counts.pop("pairs", None)
    block = CieBlock(
        **counts,
        pairs=tuple(CiePair(**p) for p in pairs) if pairs is not None else None,
        floor=Floor()
        if res.basis == "paired"
        else Floor(**floor_block(ctx.class_floors, res.rate, "cie_rate")),
        floor_note=REASON_PAIRED_CIE if res.basis == "paired" else None,
    )
    if res.basis == "mean-over-pairs":
        # Retrained populations without lineage have no CIE of their own, only an
        # expected disagreement between random pairs: nothing to list per example.
        return block
    rows, total = cie_examples(
        rp,
        cp,
        y,
        ref.population.ids,
        paired=ctx.lineage,
        cap=ctx.settings.examples_cap,
        seed=ctx.settings.seed,
        modal_reference=ref.modal,
        modal_candidate=cand.modal,
    )
    return dataclasses.replace(
        block, examples=tuple(CieExample(**r) for r in rows), examples_total=total
    )


def cie_masks(
    ref_predictions: np.ndarray, cand_predictions: np.ndarray, y: np.ndarray, *, paired: bool
) -> dict[str, np.ndarray]:
    """Per-example CIE masks for the long-tail test, by :func:`cie_examples`' rule:
    an example is a CIE when it changed in at least one model pair (the single pair;
    member k with member k under lineage; any reference x candidate pair without),
    CIE-U when in at least one pair the reference is right and the candidate wrong,
    CIE-C when in at least one pair the reverse."""
    r_ok, c_ok = ref_predictions == y[None, :], cand_predictions == y[None, :]
    if paired or (ref_predictions.shape[0] == 1 and cand_predictions.shape[0] == 1):
        return {
            "cie": (ref_predictions != cand_predictions).any(axis=0),
            "cie_u": (r_ok & ~c_ok).any(axis=0),
            "cie_c": (~r_ok & c_ok).any(axis=0),
        }
    first = ref_predictions[0]
    same = (ref_predictions == first).all(axis=0) & (cand_predictions == first).all(axis=0)
    return {
        "cie": ~same,
        "cie_u": r_ok.any(axis=0) & (~c_ok).any(axis=0),
        "cie_c": (~r_ok).any(axis=0) & c_ok.any(axis=0),
    }


def seed_masks(
    ref: Population, floors: SeedFloors | None, *, paired: bool
) -> dict[str, np.ndarray]:
    """Seed-noise counterparts of the long-tail subsets, one row per floor split
    (``[S, N]`` bool each): the split's two disjoint halves A and B of the reference
    population (sized like the candidate), PIEs as the floors compute them and CIEs by
    :func:`cie_masks` (member with member under lineage). Empty without floors (fewer
    than 3 reference members)."""
    pies = floors._pies if floors is not None and floors.available else None
    if floors is None or pies is None or floors.splits.shape[0] == 0:
        return {}
    s_count = floors.splits.shape[0]
    pie = np.zeros((s_count, pies.n), dtype=bool)
    pie[:, pies.examples] = pies.pie
    out = {"pie_seed": pie, **{f"{k}_seed": np.zeros_like(pie) for k in ("cie", "cie_u", "cie_c")}}
    preds = ref.predictions
    for s, (a, b) in enumerate(floors.splits):
        for k, v in cie_masks(preds[a], preds[b], ref.y, paired=paired).items():
            out[f"{k}_seed"][s] = v
    return out


def _long_tail_row(name: str, subset: str, res: LongTailResult, **extra: Any) -> LongTailRow:
    fields = res.to_dict()
    deciles = tuple(LongTailDecile(**d) for d in fields.pop("deciles"))
    return LongTailRow(score=name, subset=subset, **fields, deciles=deciles, **extra)


def _long_tail(ref: Side, cand: Side, pie: np.ndarray, ctx: Context) -> tuple[LongTailRow, ...]:
    """Each score on each subset (``pie``, ``cie``, ...), each beside where its Cliff's
    delta falls among the floor splits', then the seed rows summarising all splits
    (:mod:`compaudit.analysis.long_tail_seed`)."""
    if not ctx.scores:
        return ()
    rp, cp = ref.population.predictions, cand.population.predictions
    masks = {"pie": pie, **cie_masks(rp, cp, ref.population.y, paired=ctx.lineage)}
    seed = seed_masks(ref.population, ctx.class_floors, paired=ctx.lineage)
    rows: list[LongTailRow] = []
    for name, values in ctx.scores.items():
        ranked = rank_scores(values)  # once per score: every mask below is O(N)
        splits = {k: long_tail_splits(ranked, v) for k, v in seed.items()}
        for subset, mask in masks.items():
            res = long_tail_comparison(ranked, mask)
            stats = splits.get(f"{subset}_seed")
            pos = (
                seed_position(res.cliffs_delta, res.n, stats, ranked) if stats is not None else None
            )
            rows.append(
                _long_tail_row(
                    name,
                    subset,
                    res,
                    seed_splits=None if pos is None else pos.splits,
                    seed_cliffs_delta_q05=None if pos is None else _num(pos.delta_q05),
                    seed_cliffs_delta_q95=None if pos is None else _num(pos.delta_q95),
                    p_beyond_seed=None if pos is None else _num(pos.p_beyond_seed),
                )
            )
        for subset, stats in splits.items():
            rows.append(
                _long_tail_row(name, subset, summarise_splits(stats), n_splits=stats.n_splits)
            )
    return tuple(rows)


def compare(ref: Side, cand: Side, ctx: Context) -> tuple[Comparison, np.ndarray]:
    """One candidate's :class:`~compaudit.results.Comparison`, and the PIE mask."""
    settings = ctx.settings
    pie = ref.modal != cand.modal
    pooled = Pooled(ref, cand)
    class_test, class_rows = _class_rows(ref, cand, ctx)
    sets = tuple(_subgroup_rows(ref, cand, pie, gs, ctx) for gs in ctx.group_sets)
    t_r, t_c = ref.topline, cand.topline
    subsets = {
        k: Subset(n=v.n, top1_reference=v.top1_reference, top1_candidate=v.top1_candidate)
        for k, v in subset_top1(ref.correct, cand.correct, pie, seed=settings.seed).items()
    }
    comparison = Comparison(
        reference=ref.name,
        candidate=cand.name,
        lineage="paired" if ctx.lineage else "none",
        top1_delta=t_c.top1 - t_r.top1,
        top5_delta=t_c.top5 - t_r.top5 if t_c.top5 is not None and t_r.top5 is not None else None,
        class_test=class_test,
        floors=FloorsInfo(
            **floor_summary(ctx.seed_floors, REASON_LINEAGE_FLOORS if ctx.lineage else None)
        ),
        cie=_cie_block(ref, cand, ctx, pooled),
        pie=_pie_block(ref, cand, pie, ctx, pooled),
        subsets=Subsets(**subsets, seed=settings.seed),
        classes=class_rows,
        subgroup_attributes=sets[0].attributes if sets else (),
        subgroups=sets[0].subgroups if sets else (),
        subgroup_sets=sets,
        long_tail=_long_tail(ref, cand, pie, ctx),
        fairness=_fairness(ref, cand, ctx),
    )
    return comparison, pie


def _fairness_partitions(
    ref: Side, ctx: Context
) -> list[tuple[tuple[str, ...], np.ndarray, list[Any]]]:
    """Attribute sets for the fairness metrics: every audited set without the label, and
    the marginal (one-attribute) sets of each intersection, marginals first."""
    memo = ctx.class_part.cache
    if "fairness_sets" in memo:
        return memo["fairness_sets"]  # type: ignore[no-any-return]
    pop = ref.population
    known = {tuple(gs.attributes): gs.part for gs in ctx.group_sets}
    wanted: list[tuple[str, ...]] = []
    for attrs in known:
        if LABEL_ATTRIBUTE in attrs:
            continue  # grouping by the true label makes one-vs-rest rates degenerate
        wanted.extend((a,) for a in attrs if (a,) not in wanted)
        if len(attrs) > 1 and attrs not in wanted:
            wanted.append(attrs)
    out = []
    for attrs in wanted:
        part = known.get(attrs)
        if part is not None:
            out.append((attrs, part.codes, part.keys))
            continue
        names = [pop.class_name(i) for i in range(pop.num_classes)]
        codes, keys = group_codes(
            pop.attributes, attrs, y=pop.y.astype(np.intp), class_names=names, source=pop.source
        )
        out.append((attrs, codes, keys))
    memo["fairness_sets"] = out
    return out


def _fairness(ref: Side, cand: Side, ctx: Context) -> tuple[FairnessSet, ...]:
    """Per-group TPR, FPR, FNR, selection rate and the disparities of every fairness set."""
    pop, s = ref.population, ctx.settings
    floors = ctx.class_floors
    # A floor where the reference population gives one (K >= 3), as for the other gates.
    permutations = PERMUTATIONS if floors is not None and floors.available else 0
    sets = []
    memo = ctx.class_part.cache
    for attrs, codes, keys in _fairness_partitions(ref, ctx):
        t = fairness_table(
            pop.predictions,
            cand.population.predictions,
            pop.y,
            codes,
            len(keys),
            num_classes=pop.num_classes,
            min_support=s.min_support,
            paired=ctx.lineage,
            permutations=permutations,
            quantile=s.floor_quantile,
            seed=s.seed,
            cache=memo.setdefault(("fairness", attrs), {}),
        )

        def change(ref_v: Any, cand_v: Any, low: Any, high: Any) -> dict[str, Any]:
            r, c = _num(ref_v), _num(cand_v)
            return {
                "reference": r,
                "candidate": c,
                "change": c - r if r is not None and c is not None else None,
                "change_low": _num(low),
                "change_high": _num(high),
            }

        classes = []
        for j in _reported_classes(t):
            cls = int(t.classes[j])
            groups = tuple(
                FairnessGroup(
                    group=keys[i],
                    n=int(t.n[i]),
                    n_positive=int(t.n_positive[i, j]),
                    judged=bool(t.judged[i]),
                    **{k: FairnessChange(**change(*(a[i, j] for a in t.rates[k]))) for k in RATES},
                )
                for i in range(len(keys))
            )
            disp = {
                k: FairnessDisparity(
                    **change(d.reference[j], d.candidate[j], d.low[j], d.high[j]),
                    floor=_num(d.floor[j]),
                    excess=_num(d.excess[j]),
                    p_floor=_num(d.p_floor[j]),
                )
                for k, d in t.disparities.items()
            }
            classes.append(
                FairnessClass(class_index=cls, name=pop.class_name(cls), groups=groups, **disp)
            )
        worst = {
            k: FairnessChange(
                **change(d.worst_reference, d.worst_candidate, d.worst_low, d.worst_high)
            )
            for k, d in t.disparities.items()
        }
        increase = {
            f"{k}_increase": FairnessIncrease(
                value=_num(d.increase),
                class_index=int(t.classes[d.increase_class]) if d.increase_class >= 0 else None,
                floor=_num(d.increase_floor),
                excess=_num(d.increase_excess),
                p_value=_num(d.increase_p),
            )
            for k, d in t.disparities.items()
        }
        sets.append(
            FairnessSet(
                attributes=attrs,
                kind="marginal" if len(attrs) == 1 else "intersection",
                task="binary" if pop.num_classes == 2 else "one-vs-rest",
                min_support=s.min_support,
                bootstrap={
                    "replicates": t.replicates,
                    "level": t.level,
                    "seed": t.seed,
                    "resampled": t.resampled,
                },
                demographic_parity_difference=worst[DISPARITIES[0]],
                equalized_odds_difference=worst[DISPARITIES[1]],
                demographic_parity_difference_increase=increase[f"{DISPARITIES[0]}_increase"],
                equalized_odds_difference_increase=increase[f"{DISPARITIES[1]}_increase"],
                classes=tuple(classes),
                n_classes=int(t.classes.size),
                floor_note=t.floor_note,
            )
        )
    return tuple(sets)


FAIRNESS_CLASSES_SHOWN = 20
"""Positive classes listed per fairness set (all of them enter the summaries and gates)."""


def _reported_classes(t: Any) -> list[int]:
    """Indices of the classes listed: all for up to :data:`FAIRNESS_CLASSES_SHOWN`, else
    those with the largest rise of either disparity first (a report of 1,000 classes x
    groups x sets x candidates would be megabytes of rows nobody reads)."""
    n = int(t.classes.size)
    if n <= FAIRNESS_CLASSES_SHOWN:
        return list(range(n))
    rise = np.fmax.reduce(
        [np.nan_to_num(d.candidate - d.reference, nan=-np.inf) for d in t.disparities.values()]
    )
    return [int(j) for j in np.argsort(-rise, kind="stable")[:FAIRNESS_CLASSES_SHOWN]]
