"""Populations in, findings out: the audit engine's one entry point.

:func:`audit` compares a reference population with one or more candidate
populations on the same examples and returns an :class:`AuditResult`, whose
:meth:`~AuditResult.to_report` is the ``compaudit.report/v1`` document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from compaudit import __version__
from compaudit._comparison import Context, GroupSet, Partition, Side, compare
from compaudit.analysis import score_files
from compaudit.analysis.floors import SeedFloors, seed_floors
from compaudit.analysis.subgroups import LABEL_ATTRIBUTE, group_codes
from compaudit.comparable import check_same_examples
from compaudit.errors import InputError
from compaudit.population import Population
from compaudit.results import AuditReport, Comparison, DataInfo, GateResult, Verdict
from compaudit.settings import CORRECTIONS as CORRECTIONS  # re-exported
from compaudit.settings import AuditSettings  # declared there, with every default

__all__ = ["SCHEMA", "AuditResult", "AuditSettings", "Side", "audit"]

SCHEMA = "compaudit.report/v1"

ERR_NO_CANDIDATES = "nothing to compare: give at least one candidate (--candidate [NAME=]SPEC)"
ERR_PAIRED_K = (
    "{cand}: lineage pairing (--paired) needs one candidate member per reference member, "
    "got {kc} candidate and {kr} reference models; pair a quantized/pruned population with "
    "the population it was made from, or drop --paired"
)
ERR_PAIRED_NAMES = (
    "{cand}: lineage pairing (--paired) matches members by name, but {missing} have no "
    "reference member of the same name; give both sides the same member names or order"
)
WARN_MISSING_ATTRIBUTE = (
    "the data have no attribute {name!r} (available: {available}); add it with "
    "--attributes CSV (an 'id' column plus one column per attribute); subgroup set "
    "{attrs} was not audited"
)
MAX_DEFAULT_ATTRIBUTES = 100
"""Most attributes audited each on its own when no subgroups are named."""
ERR_TOO_MANY_ATTRIBUTES = (
    "{src}: the data carry {n:,} attributes, and without --subgroups each is audited on "
    "its own (at most {limit}); name the protected ones with --subgroups (audit(..., "
    "subgroups=[...]), or the policy's gates.subgroups.attributes)"
)
ERR_EMPTY_CLASS = (
    "{src}: class(es) {classes} have no examples, so their recall cannot be tested; "
    "evaluate on data that contains every class, or set empty_classes='skip'"
)


@dataclass(eq=False)
class AuditResult:
    """Everything one audit found: typed comparisons plus the in-memory inputs.

    :meth:`report` is the typed :class:`~compaudit.results.AuditReport` and
    :meth:`to_report` its ``compaudit.report/v1`` dict.
    """

    settings: AuditSettings
    reference: Side
    candidates: list[Side]
    comparisons: list[Comparison]
    pie_masks: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        """Names of all classes."""
        pop = self.reference.population
        return [pop.class_name(c) for c in range(pop.num_classes)]

    def report(
        self,
        *,
        gates: Sequence[GateResult] = (),
        verdict: Verdict | None = None,
        errors: Sequence[str] = (),
    ) -> AuditReport:
        """The typed report. Without a policy nothing is gated: verdict ``ungated``
        (``error`` with errors); with gates, pass the verdict of
        :func:`compaudit.gates.decide_verdict`."""
        if verdict is None:
            if gates:
                raise ValueError("pass the verdict of compaudit.gates.decide_verdict with gates")
            verdict = "error" if errors else "ungated"
        pop = self.reference.population
        return AuditReport(
            schema=SCHEMA,
            tool={"name": "compaudit", "version": __version__},
            verdict=verdict,
            settings=self.settings.to_dict(),
            data=DataInfo(
                n=pop.n,
                num_classes=pop.num_classes,
                class_names=tuple(self.class_names),
                attributes=tuple(sorted(pop.attributes)),
            ),
            populations={s.name: s.summary() for s in [self.reference, *self.candidates]},
            comparisons=tuple(self.comparisons),
            gates=tuple(gates),
            errors=tuple(errors),
            warnings=tuple(self.warnings),
        )

    def to_report(
        self,
        *,
        gates: Sequence[GateResult | Mapping[str, Any]] = (),
        verdict: Verdict | None = None,
        errors: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The ``compaudit.report/v1`` document (JSON-serialisable)."""
        typed = [g if isinstance(g, GateResult) else GateResult(**g) for g in gates]
        return self.report(gates=typed, verdict=verdict, errors=errors).to_dict()


def _merged_attributes(ref: Population, candidates: Sequence[Population]) -> Population:
    """Attributes may arrive with any population; the reference's win on conflict."""
    extra: dict[str, np.ndarray] = {}
    for cand in candidates:
        for name, values in cand.attributes.items():
            if name not in ref.attributes and name not in extra:
                extra[name] = values
    return ref.with_attributes(extra) if extra else ref


def _attribute_sets(settings: AuditSettings, pop: Population) -> tuple[tuple[str, ...], ...]:
    """The sets asked for, else every carried attribute on its own (marginal groups)."""
    if settings.attribute_sets:
        return settings.attribute_sets
    if settings.attributes:
        return (settings.attributes,)
    if len(pop.attributes) > MAX_DEFAULT_ATTRIBUTES:
        # Each is a subgroup set with floors and fairness nulls: thousands of columns
        # (a table's metadata, or a hostile file) would run for hours.
        raise InputError(
            ERR_TOO_MANY_ATTRIBUTES.format(
                src=pop.source, n=len(pop.attributes), limit=MAX_DEFAULT_ATTRIBUTES
            )
        )
    return tuple((name,) for name in sorted(pop.attributes))


def _lineage_order(ref: Population, cand: Population, name: str) -> np.ndarray:
    """Candidate member order that pairs member k with reference member k."""
    if ref.k != cand.k:
        raise InputError(ERR_PAIRED_K.format(cand=name, kc=cand.k, kr=ref.k))
    ref_names, cand_names = ref.meta.get("members"), cand.meta.get("members")
    if (
        isinstance(ref_names, list)
        and isinstance(cand_names, list)
        and len(ref_names) == ref.k
        and len(cand_names) == cand.k
        and len(set(ref_names)) == ref.k
        and set(cand_names) & set(ref_names)
    ):
        missing = [n for n in cand_names if n not in ref_names]
        if missing:
            raise InputError(ERR_PAIRED_NAMES.format(cand=name, missing=missing[:3]))
        where = {n: i for i, n in enumerate(cand_names)}
        return np.asarray([where[n] for n in ref_names], dtype=np.intp)
    return np.arange(cand.k)


def _reorder(pop: Population, order: np.ndarray) -> Population:
    if np.array_equal(order, np.arange(pop.k)):
        return pop
    import dataclasses

    meta = dict(pop.meta)
    for key in ("members", "model_fingerprints"):
        if isinstance(meta.get(key), list):
            meta[key] = [meta[key][i] for i in order]
    topk = pop.topk[order] if pop.topk is not None else None
    return dataclasses.replace(pop, predictions=pop.predictions[order], topk=topk, meta=meta)


def audit(
    reference: Population,
    candidates: Mapping[str, Population],
    *,
    reference_name: str = "reference",
    settings: AuditSettings | None = None,
    lineage: Mapping[str, bool] | None = None,
    example_scores: Mapping[str, np.ndarray] | None = None,
) -> AuditResult:
    """Audit candidate populations against a reference population.

    Parameters
    ----------
    reference : Population
        The uncompressed model(s).
    candidates : mapping of str to Population
        Compressed model(s) by name, predicted on the same examples.
    reference_name : str
        Name of the reference in the report.
    settings : AuditSettings, optional
        Statistical settings; defaults to :class:`AuditSettings()`.
    lineage : mapping of str to bool, optional
        Per candidate, whether its member k was made from reference member k
        (a trainer run directory knows this from ``from:``). ``settings.paired``
        True pairs every candidate, False none.
    example_scores : mapping of str to ndarray, optional
        Per-example scores by name (e.g. ``cscore``, memorization), each of
        shape ``(N,)`` in the examples' order (join files by id with
        :func:`compaudit.analysis.long_tail.read_scores`). Each comparison then
        tests them on its PIEs and CIEs against the rest
        (:attr:`~compaudit.results.Comparison.long_tail`).

    Returns
    -------
    AuditResult
        Populations, one comparison per candidate (in the given order), each
        value beside its seed-noise floor where the reference population has one.

    Raises
    ------
    InputError
        When the populations do not describe the same examples, a class is
        empty (unless skipped), a requested attribute is missing, or lineage
        pairing is asked for populations that cannot be paired.
    """
    settings = settings or AuditSettings()
    if not candidates:
        raise InputError(ERR_NO_CANDIDATES)
    if reference_name in candidates:
        raise InputError(
            f"candidate name '{reference_name}' is also the reference's name; rename it (NAME=SPEC)"
        )
    for cand in candidates.values():
        check_same_examples(reference, cand)
    paired = {
        name: bool(settings.paired)
        if settings.paired is not None
        else bool((lineage or {}).get(name, False))
        for name in candidates
    }
    cands = {
        name: _reorder(pop, _lineage_order(reference, pop, name)) if paired[name] else pop
        for name, pop in candidates.items()
    }
    ref_pop = _merged_attributes(reference, list(cands.values()))
    support = np.bincount(ref_pop.y, minlength=ref_pop.num_classes)
    if settings.empty_classes == "error" and (support == 0).any():
        empty = np.flatnonzero(support == 0)
        listed = ", ".join(ref_pop.class_name(int(i)) for i in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise InputError(ERR_EMPTY_CLASS.format(src=ref_pop.source, classes=listed + more))

    # One BLAS thread: the audit's products are small, and numpy's OpenBLAS threads
    # spin between them (0.7 s of CPU in a five-candidate report on 2 cores, and
    # slower in wall time too); the caller's setting is restored on return.
    with threadpool_limits(limits=1, user_api="blas"):
        scores = _scores(example_scores, ref_pop.n)
        ref_side = Side.of(reference_name, ref_pop, seed=settings.seed)
        y = ref_pop.y.astype(np.intp)
        class_names = [ref_pop.class_name(i) for i in range(ref_pop.num_classes)]
        class_part = Partition.of(y, list(range(ref_pop.num_classes)), ref_side)
        warnings: list[str] = []
        group_sets: list[GroupSet] = []
        for attrs in _attribute_sets(settings, ref_pop):
            available = sorted({*ref_pop.attributes, LABEL_ATTRIBUTE})
            absent = [a for a in attrs if a not in available]
            if absent and settings.missing_attributes == "warn":
                warnings.append(
                    WARN_MISSING_ATTRIBUTE.format(
                        name=absent[0], available=", ".join(available), attrs=list(attrs)
                    )
                )
                continue
            codes, keys = group_codes(
                ref_pop.attributes, attrs, y=y, class_names=class_names, source=ref_pop.source
            )
            group_sets.append(GroupSet(attrs, Partition.of(codes, keys, ref_side), {}))

        sides = [Side.of(name, pop, seed=settings.seed) for name, pop in cands.items()]
        class_floors: dict[int, SeedFloors] = {}
        for k in sorted({s.population.k for s in sides}):
            floors = class_floors[k] = _floors(ref_pop, y, k, settings)
            for gs in group_sets:
                # Each split's PIEs are reused: only the group nulls are recomputed.
                gs.floors[k] = floors.regroup(gs.part.codes, len(gs.part.keys))
        comparisons: list[Comparison] = []
        masks: dict[str, np.ndarray] = {}
        for side in sides:
            ctx = Context(
                settings=settings,
                class_part=class_part,
                group_sets=tuple(group_sets),
                class_floors=class_floors[side.population.k],
                lineage=paired[side.name],
                scores=scores,
            )
            comp, pie = compare(ref_side, side, ctx)
            comparisons.append(comp)
            masks[side.name] = pie
        return AuditResult(settings, ref_side, sides, comparisons, masks, warnings)


ERR_SCORES = (
    "example score {name!r}: expected one finite number per audited example (shape ({n},)), "
    "got {problem}; join a score file by id with compaudit.analysis.long_tail.read_scores"
)


MAX_SCORE = score_files.MAX_SCORE
"""Largest per-example score magnitude (the score files' reader's bound, which names the
file there)."""


def _scores(scores: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, values in (scores or {}).items():
        arr = np.asarray(values)
        if arr.shape != (n,):
            raise InputError(ERR_SCORES.format(name=name, n=n, problem=f"shape {arr.shape}"))
        if arr.dtype.kind not in "biuf":
            raise InputError(ERR_SCORES.format(name=name, n=n, problem=f"dtype {arr.dtype}"))
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            problem = f"{int((~np.isfinite(arr)).sum())} NaN or infinite value(s)"
            raise InputError(ERR_SCORES.format(name=name, n=n, problem=problem))
        if arr.size and float(np.abs(arr).max()) > MAX_SCORE:
            # Means and variances of 1e308s overflow to inf (report.json cannot hold it).
            problem = f"a value of magnitude {float(np.abs(arr).max()):.3g} (at most {MAX_SCORE:g})"
            raise InputError(ERR_SCORES.format(name=name, n=n, problem=problem))
        out[str(name)] = arr
    return out


def _floors(ref: Population, y: np.ndarray, k: int, settings: AuditSettings) -> SeedFloors:
    """Seed-noise floors from the reference population alone, for candidates of K = ``k``."""
    return seed_floors(
        ref.predictions,
        y,
        k_candidate=k,
        class_codes=y,
        n_classes=ref.num_classes,
        n_splits=settings.floor_splits,
        seed=settings.seed,
        quantile=settings.floor_quantile,
    )
