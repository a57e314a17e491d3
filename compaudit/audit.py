"""Populations in, findings out: the audit engine's one entry point.

:func:`audit` compares a reference population with one or more candidate
populations on the same examples and returns an :class:`AuditResult`, whose
:meth:`~AuditResult.to_report` is the ``compaudit.report/v1`` document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from compaudit import __version__
from compaudit._comparison import Partition, Side, compare
from compaudit.analysis.stats import Correction
from compaudit.analysis.subgroups import group_codes
from compaudit.errors import InputError
from compaudit.population import Population

__all__ = ["SCHEMA", "AuditResult", "AuditSettings", "Side", "audit"]

SCHEMA = "compaudit.report/v1"
CORRECTIONS = ("holm", "bh", "bonferroni", "none")

ERR_NO_CANDIDATES = "nothing to compare: give at least one candidate (--candidate [NAME=]SPEC)"
ERR_Y_DIFFERS = (
    "{a} and {b} are not predictions on the same examples: their labels 'y' differ at "
    "{count} of {n} positions; predict both on the same data, in the same order"
)
ERR_N_DIFFERS = (
    "{a} has {na} examples but {b} has {nb}; predict both on the same data, in the same order"
)
ERR_IDS_DIFFER = (
    "{a} and {b} list different example ids (or a different order); predict both on the "
    "same data, in the same order"
)
ERR_CLASSES_DIFFER = "{a} has {ca} classes but {b} has {cb}; both must use the same label space"
ERR_EMPTY_CLASS = (
    "{src}: class(es) {classes} have no examples, so their recall cannot be tested; "
    "evaluate on data that contains every class, or set empty_classes='skip'"
)


@dataclass(frozen=True)
class AuditSettings:
    """Statistical settings of an audit.

    Attributes
    ----------
    alpha : float
        Significance level applied to adjusted p-values.
    correction : {"holm", "bh", "bonferroni", "none"}
        Multiple-testing correction, applied per comparison to the family of
        class tests and, separately, to the family of subgroup tests.
    seed : int
        Seed of every random choice (the random subset of the Fig. 3 comparison).
    min_support : int
        Subgroups with fewer examples are reported as not testable.
    attributes : tuple of str
        Attributes to cross for the subgroup table (``"label"`` is the true label).
    empty_classes : {"error", "skip"}
        What to do with classes that have no examples.
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    seed: int = 0
    min_support: int = 30
    attributes: tuple[str, ...] = ()
    empty_classes: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise InputError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.min_support < 1:
            raise InputError(f"min_support must be at least 1, got {self.min_support}")

    def to_dict(self) -> dict[str, Any]:
        """Report form."""
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "seed": self.seed,
            "min_support": self.min_support,
            "attributes": list(self.attributes),
        }


@dataclass(eq=False)
class AuditResult:
    """Everything one audit found; :meth:`to_report` is the JSON document."""

    settings: AuditSettings
    reference: Side
    candidates: list[Side]
    comparisons: list[dict[str, Any]]
    pie_masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """Names of all classes."""
        pop = self.reference.population
        return [pop.class_name(c) for c in range(pop.num_classes)]

    def to_report(
        self,
        *,
        gates: Sequence[Mapping[str, Any]] = (),
        verdict: Literal["pass", "fail", "error"] | None = None,
        errors: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The ``compaudit.report/v1`` document (JSON-serialisable)."""
        if verdict is None:
            # Without a policy nothing is gated; with one, the caller passes the
            # verdict decided by compaudit.gates.decide_verdict.
            if gates:
                raise ValueError("pass the verdict of compaudit.gates.decide_verdict with gates")
            verdict = "error" if errors else "pass"
        pop = self.reference.population
        return {
            "schema": SCHEMA,
            "tool": {"name": "compaudit", "version": __version__},
            "verdict": verdict,
            "settings": self.settings.to_dict(),
            "data": {"n": pop.n, "num_classes": pop.num_classes, "class_names": self.class_names},
            "populations": {s.name: s.to_dict() for s in [self.reference, *self.candidates]},
            "comparisons": self.comparisons,
            "gates": [dict(g) for g in gates],
            "errors": list(errors),
        }


def _check_same_examples(ref: Population, cand: Population) -> None:
    a, b = ref.source, cand.source
    if ref.n != cand.n:
        raise InputError(ERR_N_DIFFERS.format(a=a, na=ref.n, b=b, nb=cand.n))
    if not np.array_equal(ref.y, cand.y):
        count = int((ref.y != cand.y).sum())
        raise InputError(ERR_Y_DIFFERS.format(a=a, b=b, count=count, n=ref.n))
    default = np.arange(ref.n)
    explicit = [not np.array_equal(p.ids, default) for p in (ref, cand)]
    if all(explicit) and not np.array_equal(ref.ids.astype(str), cand.ids.astype(str)):
        raise InputError(ERR_IDS_DIFFER.format(a=a, b=b))
    if ref.num_classes != cand.num_classes:
        raise InputError(
            ERR_CLASSES_DIFFER.format(a=a, ca=ref.num_classes, b=b, cb=cand.num_classes)
        )


def _merged_attributes(ref: Population, candidates: Sequence[Population]) -> Population:
    """Attributes may arrive with any population; the reference's win on conflict."""
    extra: dict[str, np.ndarray] = {}
    for cand in candidates:
        for name, values in cand.attributes.items():
            if name not in ref.attributes and name not in extra:
                extra[name] = values
    return ref.with_attributes(extra) if extra else ref


def audit(
    reference: Population,
    candidates: Mapping[str, Population],
    *,
    reference_name: str = "reference",
    settings: AuditSettings | None = None,
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

    Returns
    -------
    AuditResult
        Populations, one comparison per candidate (in the given order).

    Raises
    ------
    InputError
        When the populations do not describe the same examples, a class is
        empty (unless skipped), or a requested attribute is missing.
    """
    settings = settings or AuditSettings()
    if not candidates:
        raise InputError(ERR_NO_CANDIDATES)
    if reference_name in candidates:
        raise InputError(
            f"candidate name '{reference_name}' is also the reference's name; rename it (NAME=SPEC)"
        )
    for cand in candidates.values():
        _check_same_examples(reference, cand)
    ref_pop = _merged_attributes(reference, list(candidates.values()))
    support = np.bincount(ref_pop.y, minlength=ref_pop.num_classes)
    if settings.empty_classes == "error" and (support == 0).any():
        empty = np.flatnonzero(support == 0)
        listed = ", ".join(ref_pop.class_name(int(i)) for i in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise InputError(ERR_EMPTY_CLASS.format(src=ref_pop.source, classes=listed + more))

    ref_side = Side.of(reference_name, ref_pop)
    y = ref_pop.y.astype(np.intp)
    class_part = Partition.of(y, list(range(ref_pop.num_classes)), ref_side)
    group_part = None
    if settings.attributes:
        codes, keys = group_codes(
            ref_pop.attributes,
            settings.attributes,
            y=y,
            class_names=[ref_pop.class_name(i) for i in range(ref_pop.num_classes)],
            source=ref_pop.source,
        )
        group_part = Partition.of(codes, keys, ref_side)
    sides = [Side.of(name, pop) for name, pop in candidates.items()]
    comparisons: list[dict[str, Any]] = []
    masks: dict[str, np.ndarray] = {}
    for side in sides:
        comp, pie = compare(ref_side, side, settings, class_part, group_part)
        comparisons.append(comp)
        masks[side.name] = pie
    return AuditResult(settings, ref_side, sides, comparisons, masks)
