"""What the flagged examples had memorized: the top influencers of listed PIEs and CIEs.

When ``compaudit report RUN_DIR`` audits the run's own eval split (the
condition under which the run's influence runs also give the
``mean_influence`` score) and the run has finished its influence runs, each
comparison gets an ``influencers`` block: for its PIEs (most confident flips
first, as the gallery orders them, at most ``examples_cap``) and its listed
CIEs (already capped at ``examples_cap``), the :data:`INFLUENCERS_K` training
examples with the largest Feldman-Zhang influence estimate on it, with the
estimate's standard error. The flagged examples of all comparisons are
pooled, so each is computed once, by
:func:`compaudit.analysis.influence.top_influencers` (blockwise: the
``|T| x |S|`` influence matrix is never formed).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from compaudit.errors import CompauditError, CompauditWarning
from compaudit.results import (
    AuditReport,
    Comparison,
    InfluencedExample,
    Influencer,
    InfluencersBlock,
)

if TYPE_CHECKING:
    from compaudit.analysis.influence import InfluenceRuns
    from compaudit.data.base import Dataset
    from compaudit.population import Population
    from compaudit.train.manifest import RunInfo

__all__ = ["INFLUENCERS_K", "RunInfluence", "flagged_examples", "run_influence", "with_influencers"]

INFLUENCERS_K = 5
"""Influencers listed per flagged example (the gallery shows them all)."""

WARN_TRAIN_DATA = (
    "{run}: no influencers listed: the training split {spec} {problem}; the influence "
    "runs index the training split the run was trained on (re-train, or restore the data)"
)

Flag = Literal["pie", "cie"]


@dataclass(frozen=True)
class RunInfluence:
    """A run directory's finished influence runs and which of its splits the audit is on.

    Read once per command: the scores (``mean_influence`` on the eval split,
    ``memorization`` on the training split) and the influencer lists share it.
    """

    run_dir: Path
    info: RunInfo
    split: Literal["eval", "train"] | None
    """The run's split the audited examples are (by fingerprint), or None: other data."""

    @functools.cached_property
    def runs(self) -> InfluenceRuns:
        """The influence runs, loaded on first use."""
        from compaudit.analysis.influence import load_runs

        assert self.info.influence is not None  # run_influence returns None otherwise
        return load_runs(self.info.influence)


def run_influence(run_dir: Path, dataset: Dataset) -> RunInfluence | None:
    """The run's influence runs for auditing ``dataset``, or None when it has none."""
    from compaudit.train.manifest import load_run

    info = load_run(run_dir)
    if info.influence is None:
        return None
    data, fingerprint = info.manifest.get("data", {}), dataset.fingerprint()
    split: Literal["eval", "train"] | None = (
        "eval"
        if fingerprint == data.get("eval_fingerprint")
        else "train"
        if fingerprint == data.get("train_fingerprint")
        else None
    )
    return RunInfluence(run_dir=run_dir, info=info, split=split)


def flagged_examples(comparison: Comparison, cap: int) -> list[tuple[Any, tuple[Flag, ...]]]:
    """A comparison's flagged examples: ``(id, what flagged it)``, each id once.

    PIEs first, most confident flips first (:func:`compaudit.report._common.gallery_order`,
    the gallery's order) and at most ``cap`` of them, then the listed CIEs not
    already there (the report lists at most ``cap``). Ids are joined as strings,
    as the gallery joins them.
    """
    from compaudit.report._common import gallery_order

    pies = comparison.pie.examples
    ids = pies.columns.get("id", ())
    found: dict[str, tuple[Any, list[Flag]]] = {}
    for i in gallery_order(pies)[: max(cap, 0)]:
        found[str(ids[i])] = (ids[i], ["pie"])
    for e in comparison.cie.examples:
        found.setdefault(str(e.id), (e.id, []))[1].append("cie")
    return [(value, tuple(flags)) for value, flags in found.values()]


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def with_influencers(
    document: AuditReport,
    influence: RunInfluence | None,
    reference: Population,
    *,
    cap: int,
    k: int = INFLUENCERS_K,
) -> tuple[AuditReport, Dataset | None]:
    """``document`` with each comparison's ``influencers``, and the training split.

    Parameters
    ----------
    document : AuditReport
        The judged report of the run directory's variants.
    influence : RunInfluence or None
        The run's influence runs (:func:`run_influence`); influencers are listed
        only when the audit is on the run's eval split.
    reference : Population
        The reference population (its ``ids`` join the report's example ids).
    cap : int
        ``examples_cap``: most PIEs per comparison (CIE lists are capped already).
    k : int
        Influencers per flagged example.

    Returns
    -------
    (AuditReport, Dataset or None)
        The report (unchanged without finished influence runs on these
        examples) and the training split the influencers index (for the
        gallery's thumbnails), or None when there are none.

    Warns
    -----
    CompauditWarning
        The training split cannot be loaded or is not the one the run was
        trained on: no influencers are listed.
    """
    from compaudit.analysis.influence import top_influencers

    if influence is None or influence.split != "eval":
        return document, None  # _run_scores already warned about other examples
    info, runs, run_dir = influence.info, influence.runs, influence.run_dir
    data = info.manifest.get("data", {})
    if runs.n_test != reference.n:
        return document, None
    flagged = [flagged_examples(c, cap) for c in document.comparisons]
    if not any(flagged):
        return document, None
    train = _training_split(info.train_data, data.get("train_fingerprint"), runs.n_train, run_dir)
    if train is None:
        return document, None
    position = {str(v): i for i, v in enumerate(reference.ids.tolist())}
    wanted = sorted({position[str(v)] for rows in flagged for v, _ in rows if str(v) in position})
    top = top_influencers(runs, np.asarray(wanted, dtype=np.int64), k=k)
    train_ids, train_y = train.ids.tolist(), train.y.tolist()
    lists: dict[int, tuple[Influencer, ...]] = {}
    for row, t in enumerate(wanted):
        lists[t] = tuple(
            Influencer(
                train_index=int(j),
                train_id=train_ids[j],
                label=int(train_y[j]),
                influence=_num(v),
                se=_num(s),
            )
            for j, v, s in zip(
                top.train_indices[row].tolist(),
                top.influence[row].tolist(),
                top.se[row].tolist(),
                strict=True,
            )
        )
    comparisons = tuple(
        dataclasses.replace(c, influencers=_block(rows, position, lists, k, runs, info.train_data))
        for c, rows in zip(document.comparisons, flagged, strict=True)
    )
    return dataclasses.replace(document, comparisons=comparisons), train


def _block(
    rows: Sequence[tuple[Any, tuple[Flag, ...]]],
    position: dict[str, int],
    lists: dict[int, tuple[Influencer, ...]],
    k: int,
    runs: InfluenceRuns,
    train_data: str,
) -> InfluencersBlock | None:
    if not rows:
        return None
    examples = tuple(
        InfluencedExample(id=value, flagged_as=flags, influencers=lists[i])
        for value, flags in rows
        if (i := position.get(str(value))) is not None
    )
    return InfluencersBlock(
        k=k,
        n_runs=runs.n_runs,
        n_train=int(runs.n_train or 0),
        train_data=train_data,
        examples=examples,
    )


def _training_split(
    spec: str, fingerprint: Any, n_train: int | None, run_dir: Path
) -> Dataset | None:
    """The run's training split as the trainer loaded it (preprocessing fitted on it),
    or None (with a warning) when it cannot be loaded or is not the one trained on."""
    from compaudit.data.loading import load_dataset

    try:
        train = load_dataset(spec, fit=True)
    except CompauditError as err:
        problem = f"could not be loaded ({err})"
    else:
        if train.fingerprint() == fingerprint and train.n == n_train:
            return train
        problem = "differs from the one the run was trained on (fingerprint changed)"
    warnings.warn(
        WARN_TRAIN_DATA.format(run=run_dir, spec=spec, problem=problem),
        CompauditWarning,
        stacklevel=4,
    )
    return None
