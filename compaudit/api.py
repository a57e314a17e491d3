"""The Python front door: audit arrays, lists, pandas objects or predictions files.

:func:`audit` is what a notebook calls::

    >>> import numpy as np, compaudit
    >>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1] * 50)
    >>> report = compaudit.audit(y, {"int8": np.where(np.arange(400) % 9 == 0, 1 - y, y)}, y=y)
    >>> report.verdict
    'ungated'
    >>> round(report.comparisons[0].top1_delta, 4)
    -0.1125

It returns a :class:`Report`: typed comparisons (:mod:`compaudit.results`),
pandas tables (:meth:`Report.to_frame`), an inline HTML view in Jupyter, and
the same files the command line writes (:meth:`Report.write`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit._api_inputs import as_array, refuse_unnamed_list, to_populations
from compaudit.errors import ExitStatus, InputError
from compaudit.population import Population, load_population
from compaudit.results import AuditReport, Comparison, GateResult, Verdict

if TYPE_CHECKING:
    import pandas as pd

    from compaudit.engine import AuditResult
    from compaudit.policy import Policy
    from compaudit.settings import Resolved

__all__ = ["TABLES", "Report", "audit", "check", "load_predictions", "predict"]

TABLES = ("summary", "classes", "groups", "pies", "cies", "gates")
"""Tables :meth:`Report.to_frame` builds."""
ERR_TABLE = "unknown table {table!r}; choose one of {tables}"
ERR_PAIRED_NAMES = "paired: no candidate named {names}; candidates: {known}"
ERR_NO_CANDIDATES = "candidates: give at least one candidate, e.g. {'int8': predictions}"


# -- the result -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Report:
    """What :func:`audit` found: the typed report, and the in-memory result behind it.

    Attributes
    ----------
    document : AuditReport
        The typed ``compaudit.report/v1`` document (:meth:`to_dict` is its JSON form).
    result : compaudit.engine.AuditResult
        Populations, PIE masks and settings the audit ran with.
    images : ndarray or None
        Images per example for the HTML PIE gallery, when known.
    """

    document: AuditReport
    result: AuditResult
    images: np.ndarray | None = None

    @property
    def verdict(self) -> Verdict:
        """``pass``/``fail``/``error``, or ``ungated`` when no policy was given."""
        return self.document.verdict

    @property
    def exit_status(self) -> ExitStatus:
        """The exit code the command line would return for this verdict."""
        from compaudit.gates import exit_status_for

        return exit_status_for(self.verdict)

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        """One typed comparison per candidate, in the order given."""
        return self.document.comparisons

    @property
    def gates(self) -> tuple[GateResult, ...]:
        """Gate results (empty without a policy)."""
        return self.document.gates

    def to_dict(self) -> dict[str, Any]:
        """The ``compaudit.report/v1`` document."""
        return self.document.to_dict()

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as ``report.json`` holds it, validated against the schema; also
        written atomically to ``path`` when given.

        The same text as the JSON writer's (``.write(out, formats=["json"])``):
        the document's outline indented, its tables one line each.
        """
        from compaudit.report.base import validate_report
        from compaudit.report.json_report import document, dumps

        doc = document(self.document)
        validate_report(doc)
        text = dumps(doc)
        if path is not None:
            from compaudit._io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    def to_frame(self, table: str = "classes", *, candidate: str | None = None) -> pd.DataFrame:
        """One table as a pandas DataFrame, a ``candidate`` column first.

        Parameters
        ----------
        table : {"summary", "classes", "groups", "pies", "cies", "gates"}
            ``summary``: one row per candidate; ``classes``/``groups``: the class
            and subgroup rows (groups carry their ``attributes`` set and one
            column per attribute); ``pies``/``cies``: the listed examples;
            ``gates``: the gate results.
        candidate : str, optional
            Only this candidate's rows.
        """
        from compaudit._frames import frame

        if table not in TABLES:
            raise InputError(ERR_TABLE.format(table=table, tables=", ".join(TABLES)))
        comps = [c for c in self.comparisons if candidate is None or c.candidate == candidate]
        if candidate is not None and not comps:
            raise InputError(f"no candidate named {candidate!r}; candidates: {self._names()}")
        return frame(table, comps, self.gates, candidate)

    def _names(self) -> str:
        return ", ".join(c.candidate for c in self.comparisons)

    def write(
        self, out: str | Path, formats: str | Sequence[str] = ("json", "md", "html", "junit")
    ) -> list[Path]:
        """Write report files under ``out``.

        ``formats`` takes the command line's ``--format`` names: a sequence, or one
        string (``"json"``, or ``"json,html"`` as ``--format`` takes it).
        """
        from rich.console import Console

        from compaudit._report_set import write_formats
        from compaudit.pipeline import ERR_UNKNOWN_FORMAT
        from compaudit.plugins import get_registry
        from compaudit.report.base import ReportContext, format_name

        reporters = get_registry().reporters()
        if isinstance(formats, str):  # not letter by letter
            formats = [f for f in (part.strip() for part in formats.split(",")) if f]
        chosen = [format_name(f) for f in formats]
        unknown = [f for f in chosen if f not in reporters]
        if unknown:
            known = ", ".join(sorted(reporters))
            raise InputError(ERR_UNKNOWN_FORMAT.format(fmt=unknown[0], known=known))

        context = ReportContext(console=Console(), result=self.result, images=self.images)
        # The command line's path: the formats are committed into ``out`` as one set.
        return write_formats(self.document, Path(out), chosen, context, reporters)

    def _repr_html_(self) -> str:
        from compaudit._frames import html_summary

        return html_summary(self.document)

    def __repr__(self) -> str:
        names = self._names()
        return f"<compaudit.Report verdict={self.verdict} candidates=[{names}]>"


# -- entry points -------------------------------------------------------------------


def audit(
    reference: Any,
    candidates: Mapping[str, Any] | Any,
    *,
    y: Any = None,
    attributes: Any = None,
    class_names: Sequence[Any] | None = None,
    ids: Any = None,
    policy: str | Path | Policy | None = None,
    alpha: float | None = None,
    correction: str | None = None,
    seed: int | None = None,
    min_support: int | None = None,
    paired: bool | Mapping[str, bool] | None = None,
    subgroups: Sequence[str] | None = None,
    reference_name: str = "reference",
    example_scores: Mapping[str, Any] | None = None,
    compression: Mapping[str, Mapping[str, float]] | None = None,
) -> Report:
    """Audit compressed models against their reference.

    Parameters
    ----------
    reference : array-like, Population, or path
        Predicted labels of the reference model(s): ``[N]`` for one model,
        ``[K, N]`` (or a DataFrame with one column per model) for a population;
        ints, or strings mapped through ``class_names``. A ``Population`` or a
        predictions ``.npz`` path carries its labels.
    candidates : mapping of name to the same, or one of them
        The compressed model(s) on the same examples. One unnamed candidate is
        named ``candidate``; a list of populations or predictions files has no
        names, and is refused (a list of 1-D arrays is one ``[K, N]`` population).
    y : array-like, optional
        True labels (needed for arrays).
    attributes : DataFrame or mapping of name to array-like, optional
        Protected attributes, one value per example; each is audited on its own
        unless ``subgroups`` or the policy names sets.
    class_names : sequence, optional
        Class names in index order; with string labels, they define the order.
    ids : array-like, optional
        Example ids.
    policy : path or Policy, optional
        Gates to evaluate; without one the verdict is ``ungated``.
    alpha, correction, seed, min_support, paired, subgroups
        Settings; an argument given here beats the policy, which beats the
        defaults (:mod:`compaudit.settings`). ``paired`` (lineage: candidate
        member k was made from reference member k) is True/False for every
        candidate, or a mapping per candidate name (``{"int8": True}``: a
        quantized child of the reference beside a pruned population retrained
        from scratch), as a trainer run directory's ``from:`` chains say.
    reference_name : str
        The reference's name in the report.
    example_scores : mapping of name to path or array-like, optional
        Per-example scores (a C-score, memorization, mean influence): an array
        in the examples' order, or a score file joined by example id (a CSV
        with ``id`` and one score column, or an ``.npz`` with ``ids`` and
        ``scores``; :func:`compaudit.analysis.long_tail.read_scores`). Every
        comparison then tests each score on its PIEs, CIEs, CIE-U and CIE-C
        against the rest, beside the same subsets under seed noise
        (``comparisons[i].long_tail``).
    compression : mapping of name to mapping, optional
        Compression metadata per population (reference or candidate), e.g.
        ``{"p90": {"sparsity": 0.9}, "int8": {"bits": 8}}``; keys ``sparsity``,
        ``bits``, ``file_size`` (bytes), ``parameters``. It places them on the
        compression curve (``populations[name].compression``).

    Returns
    -------
    Report
    """
    from compaudit.analysis.long_tail import read_scores
    from compaudit.engine import audit as run_audit
    from compaudit.settings import Layer, resolve

    if not isinstance(candidates, Mapping):
        refuse_unnamed_list(candidates)
        candidates = {"candidate": candidates}
    if not candidates:
        raise InputError(ERR_NO_CANDIDATES)
    ref, cands = to_populations(
        reference, candidates, y=y, class_names=class_names, ids=ids, attributes=attributes
    )
    given = {
        "alpha": alpha,
        "correction": correction,
        "seed": seed,
        "min_support": min_support,
        "paired": paired if not isinstance(paired, Mapping) else None,
        "attributes": tuple(subgroups) if subgroups is not None else None,
    }
    layers = [Layer("cli", {k: v for k, v in given.items() if v is not None})]
    pol = _policy(policy)
    if pol is not None:
        from compaudit.policy import policy_layer

        layers.append(policy_layer(pol, Path(policy) if isinstance(policy, str | Path) else None))
    resolved = resolve(*layers)
    lineage = None
    if isinstance(paired, Mapping):
        unknown = sorted(set(paired) - set(cands))
        if unknown:
            raise InputError(
                ERR_PAIRED_NAMES.format(names=", ".join(unknown), known=", ".join(cands))
            )
        lineage = {name: bool(paired.get(name, False)) for name in cands}
    scores = {
        str(name): read_scores(v, ref.ids) if isinstance(v, str | Path) else as_array(v)
        for name, v in (example_scores or {}).items()
    }
    result = run_audit(
        ref,
        cands,
        reference_name=reference_name,
        settings=resolved.settings,
        lineage=lineage,
        example_scores=scores,
    )
    report = _judge(result, pol, resolved)
    if compression:
        report = Report(_with_levels(report.document, compression), result)
    return report


ERR_COMPRESSION_NAME = "compression: no population named {names}; populations: {known}"


def _with_levels(document: AuditReport, given: Mapping[str, Mapping[str, float]]) -> AuditReport:
    from compaudit._compression import given_values, merge, with_compression

    unknown = sorted(set(map(str, given)) - set(document.populations))
    if unknown:
        raise InputError(
            ERR_COMPRESSION_NAME.format(
                names=", ".join(unknown), known=", ".join(document.populations)
            )
        )
    levels = {
        str(n): merge(("given", given_values(f"compression[{n!r}]", v))) for n, v in given.items()
    }
    return with_compression(document, levels)


def _policy(policy: str | Path | Policy | None) -> Policy | None:
    if policy is None:
        return None
    if isinstance(policy, str | Path):
        from compaudit.policy import load_policy

        return load_policy(policy)
    return policy


def _judge(result: AuditResult, policy: Policy | None, resolved: Resolved) -> Report:
    """Gates and verdict (``ungated`` without a policy): the command line's path."""
    from compaudit.gates import judge

    return Report(judge(result, policy, settings_report=resolved.to_report()), result)


def check(
    reference: Any,
    candidates: Mapping[str, Any] | Any,
    *,
    policy: str | Path | Policy,
    **kwargs: Any,
) -> Report:
    """:func:`audit` with a policy required: the CI gate from Python.

    ``report.exit_status`` is what ``compaudit check`` would exit with.
    """
    if policy is None:
        raise InputError(
            "check needs a policy: pass policy='policy.yaml' (`compaudit init` writes a starter "
            ".compaudit.yaml from one of the policies shipped with compaudit)"
        )
    return audit(reference, candidates, policy=policy, **kwargs)


def load_predictions(path: str | Path) -> Population:
    """Read a predictions ``.npz`` (``compaudit predict`` writes them); checked on load."""
    return load_population(path)


def predict(
    model: str | Sequence[str],
    data: str,
    *,
    batch_size: int = 256,
    device: str = "cpu",
    cache: bool = True,
    trust_model_code: bool = False,
) -> Population:
    """Run model file(s) on a dataset spec and return their predictions.

    Parameters
    ----------
    model : str or sequence of str
        Model spec(s): ``.onnx``/``.pt2``/checkpoint paths or globs, as on the
        command line (``--candidate``).
    data : str
        Dataset spec (``digits``, ``fashion-mnist:test``, ``table.csv?label=y``...).
        When the (first) model carries its preprocessing (a trainer run dir,
        checkpoint or ONNX export), the data get exactly that one.
    batch_size, device, cache
        Inference batch size, ``"cpu"`` or ``"cuda"``, and whether to use the
        prediction cache.
    trust_model_code : bool
        Let model formats that are code run: TorchScript (``.pt``/``.pth``) and
        ``module:factory``. Without it they raise ``ModelError``; ONNX, ``.pt2``
        and checkpoints are loaded as data either way.
    """
    from compaudit._model_data import load_data_for_model
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population

    settings = RunnerSettings(
        batch_size=batch_size, device=device, trust_model_code=trust_model_code
    )
    first = model if isinstance(model, str) else next(iter(model), None)
    dataset = load_data_for_model(data, first)
    return predict_population(model, dataset, settings=settings, cache=cache)
