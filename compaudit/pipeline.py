"""From command-line inputs to a written report: the one call ``report`` and ``check`` make.

:func:`execute` loads the populations (predictions files or models run on
``--data``), joins attributes, runs the audit with the policy's settings,
evaluates the gates, decides the verdict and writes every chosen format,
as one set under ``out`` (:func:`compaudit._io.file_set`: the previous run's
set is replaced whole, or left as it was if the run fails or is interrupted).
Warnings go through :mod:`warnings` (:class:`~compaudit.errors.CompauditWarning`),
never straight to the terminal; the CLI renders them. With
``AuditRequest.error_report`` a failed run still leaves an error report.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from compaudit._compression import run_compression, spec_compression, split_spec, with_compression
from compaudit._model_data import _load_dataset, load_data_for_model, parse_named_spec
from compaudit._report_set import ERROR_FORMATS, write_error_report, write_formats
from compaudit.engine import AuditResult, AuditSettings, audit
from compaudit.errors import CompauditError, CompauditWarning, ExitStatus, InputError
from compaudit.population import Population
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport, Compression

if TYPE_CHECKING:
    from compaudit._influencers import RunInfluence
    from compaudit.data.base import Dataset
    from compaudit.policy import Policy
    from compaudit.settings import Resolved

__all__ = [
    "AuditRequest",
    "Outcome",
    "execute",
]

_log = logging.getLogger(__name__)

DEFAULT_FORMATS = ("terminal", "json")
WARN_UNUSED_OVERRIDE = "policy override '{name}' matches no candidate"
ERR_DUPLICATE_NAME = "two candidates are named '{name}'; name them apart with NAME=SPEC"
ERR_NO_INPUTS = (
    "nothing to audit: give --reference and at least one --candidate, or a trainer run directory"
)
ERR_RUN_AND_SPECS = (
    "give either a run directory or --reference/--candidate, not both "
    "(a run directory audits its dense variant against every other variant)"
)
ERR_ATTRIBUTE_TWICE = (
    "{csv}: attribute {name!r} is also carried by {src}; drop the column or the "
    "predictions file's attr_{name} so each attribute has one source"
)
WARN_INFLUENCE_DATA = (
    "{run}: its influence runs were measured on other examples than this audit's, so "
    "no mean_influence score was added; audit the run on its own eval split (or on its "
    "training split, --data with the run's train spec, for memorization)"
)
WARN_SHARED_SEEDS = (
    "{run}: {cand}'s members were trained from the same seeds as {ref}'s (member k: the "
    "same initialisation and data order), so the two populations are not independent: "
    "the seed-noise floors, measured between independently seeded members, overstate what "
    "separates them, and the unpaired tests lose power; give the variant its own seed "
    "in the recipe (variants: - name: {cand} ... seed: 1000) for independent populations, "
    "or compare member with member (--paired)"
)
WARN_INFLUENCE_UNDEFINED = (
    "{run}: {name} is undefined for {count} audited example(s) (each trained on by every "
    "influence run or by none), so it was not added as a score; raise influence.runs"
)
ERR_NEED_POLICY = (
    "check needs a policy: pass --policy FILE (`compaudit init` writes a starter "
    ".compaudit.yaml from one of the policies shipped with compaudit; see compaudit init --help)"
)
ERR_UNKNOWN_FORMAT = "unknown format '{fmt}'; installed formats: {known}"


@dataclass
class AuditRequest:
    """Everything ``report``/``check`` were asked to do (parsed CLI options)."""

    reference: str | None = None
    candidates: Sequence[str] = ()
    run_dir: Path | None = None
    data: str | None = None
    attributes_csv: str | None = None
    example_scores: Sequence[str] = ()
    """``NAME=FILE`` per-example score files (``--example-scores``), joined by example id."""
    policy: str | None = None
    out: Path | None = Path("compaudit-report")
    formats: Sequence[str] = DEFAULT_FORMATS
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Explicit settings by name (:data:`compaudit.settings.SETTINGS`): the command-line
    flags given. They win over the policy, ``pyproject.toml`` and the defaults."""
    settings: AuditSettings | None = None
    """A library caller's settings: each field that differs from its default counts as
    explicit (like ``overrides``); the others fall through to the policy and pyproject."""
    pyproject_from: Path | None = None
    """Look for ``[tool.compaudit]`` in the closest ``pyproject.toml`` at or above this
    directory (the CLI passes the working directory); None: no pyproject layer."""
    require_policy: bool = False
    cache: bool = True
    batch_size: int | None = None
    """Inference batch size; None: the runner's default (256), or for a run
    directory the recipe's eval batch size (dynamic-quantized models scale
    activations per batch, so this keeps the report equal to the manifest)."""
    device: str = "cpu"
    trust_model_code: bool = False
    """Let model formats that are code (TorchScript, ``module:factory``) run
    (``--trust-model-code``); without it their loaders refuse them."""
    console: Console | None = None
    error_report: bool = False
    """On an error, still write report.json (verdict ``error``, the message in
    ``errors``), report.md and junit.xml under ``out``, and append the Markdown
    to ``$GITHUB_STEP_SUMMARY`` when it is set, then raise (``check`` sets it). A run
    whose verdict is ``error`` (a gate that could not be evaluated) writes those three
    formats too, beside the ones asked for."""


@dataclass
class Outcome:
    """What came out: the typed report, the in-memory result, the exit status."""

    document: AuditReport
    result: AuditResult
    status: ExitStatus
    written: list[Path]

    @functools.cached_property
    def report(self) -> dict[str, Any]:
        """The ``compaudit.report/v1`` dict (built on first use: it is large)."""
        return self.document.to_dict()


def _load_side(spec: str, name: str, dataset: Dataset | None, request: AuditRequest) -> Population:
    # A predictions file, or models run on the data (checked against it either way).
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import load_population_spec

    settings = RunnerSettings(
        batch_size=request.batch_size or 256,
        device=request.device,
        trust_model_code=request.trust_model_code,
    )
    return load_population_spec(
        spec, dataset=dataset, settings=settings, cache=request.cache, name=name
    )


def _lineage(variants: dict[str, Any], name: str, reference: str) -> bool:
    """Whether a variant derives, through its ``from`` chain, from the reference variant."""
    seen: set[str] = set()
    while name in variants and name not in seen:
        seen.add(name)
        source = variants[name].source
        if source == reference:
            return True
        if source is None:
            return False
        name = source
    return False


def _load_run_dir(
    request: AuditRequest,
    levels: dict[str, Compression | None] | None = None,
    *,
    paired: bool | None = None,
    notes: list[str] | None = None,
) -> tuple[str, Population, dict[str, Population], Dataset, dict[str, bool]]:
    """The trainer's run: its dense variant against every other variant, on its eval split;
    ``levels``, when given, gets each variant's compression metadata. Unless ``paired``
    (the setting) is true, a variant trained from the reference's seeds without lineage
    gets a warning in ``notes``."""
    notes = notes if notes is not None else []
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population
    from compaudit.train.manifest import load_run

    assert request.run_dir is not None
    if request.reference or request.candidates:
        raise InputError(ERR_RUN_AND_SPECS)
    info = load_run(request.run_dir)
    dataset = _load_dataset(request.data or info.eval_data, run_dir=info.run_dir)
    batch_size = request.batch_size or info.recipe.training.eval_batch_size
    settings = RunnerSettings(
        batch_size=batch_size, device=request.device, trust_model_code=request.trust_model_code
    )
    # The ONNX exports beside the checkpoints run 3-5x faster; one stands in for
    # its checkpoint only where the trainer verified it (MemberInfo.verified_file):
    # on CPU, on the run's own eval split, at the trainer's batch size. Elsewhere,
    # and for members without a verified export (dynamic-quantized torch models
    # have none), the canonical file is run, as the manifest's metrics were.
    verified = (
        request.device == "cpu"
        and batch_size == info.recipe.training.eval_batch_size
        and dataset.fingerprint() == info.manifest.get("data", {}).get("eval_fingerprint")
    )

    def predict(variant: str) -> Population:
        members = info.variants[variant].members
        paths = [str(m.verified_file() if verified else m.path) for m in members]
        return predict_population(
            paths, dataset, settings=settings, cache=request.cache, name=variant
        )

    candidates = {name: predict(name) for name in info.candidates}
    if not candidates:
        raise InputError(f"{request.run_dir}: the run has no variant besides '{info.reference}'")
    lineage = {name: _lineage(info.variants, name, info.reference) for name in candidates}
    if paired is not True:
        ref_seeds = {m.index: m.seed for m in info.variants[info.reference].members}
        for name in candidates:
            seeds = {m.index: m.seed for m in info.variants[name].members}
            if not lineage[name] and any(ref_seeds.get(i) == s for i, s in seeds.items()):
                notes.append(
                    WARN_SHARED_SEEDS.format(run=request.run_dir, cand=name, ref=info.reference)
                )
    if levels is not None:
        levels.update(run_compression(info))
    return info.reference, predict(info.reference), candidates, dataset, lineage


def _resolve_settings(request: AuditRequest) -> tuple[Resolved, Policy | None]:
    """The one settings path: explicit > policy > pyproject.toml > defaults."""
    from compaudit.settings import SETTINGS, Layer, find_pyproject, pyproject_layer, resolve

    explicit = dict(request.overrides)
    if request.settings is not None:
        for setting in SETTINGS:
            value = getattr(request.settings, setting.name)
            if value != setting.default:
                explicit.setdefault(setting.name, value)
    layers = [Layer("cli", explicit)]
    policy = None
    if request.policy is not None:
        from compaudit.policy import load_policy, policy_layer

        policy = load_policy(request.policy)
        layers.append(policy_layer(policy, Path(request.policy)))
    elif request.require_policy:
        raise InputError(ERR_NEED_POLICY)
    if request.pyproject_from is not None:
        found = find_pyproject(request.pyproject_from)
        if found is not None:
            layers.append(pyproject_layer(*found))
    return resolve(*layers), policy


def _settings_from_policy(request: AuditRequest) -> tuple[AuditSettings, Policy | None]:
    """The settings ``request`` audits with, and its policy (see :func:`_resolve_settings`)."""
    resolved, policy = _resolve_settings(request)
    return resolved.settings, policy


def execute(request: AuditRequest) -> Outcome:
    """Load, audit, gate and report.

    Parameters
    ----------
    request : AuditRequest
        The parsed inputs, settings and output formats.

    Returns
    -------
    Outcome
        The report, the audit result, the exit status and the files written.

    Raises
    ------
    CompauditError
        Unusable input (any other exception is a bug). With
        ``request.error_report`` the error report is written first (see
        :func:`write_error_report`), so CI shows why the run failed.

    Warns
    -----
    CompauditWarning
        Each of the audit's warnings, and policy overrides that match no candidate.
    """
    partial: dict[str, Any] = {}
    try:
        return _execute(request, partial)
    except Exception as exc:
        if request.error_report:
            typed = partial.get("report")
            write_error_report(
                request.out,
                exc,
                typed.to_dict() if typed is not None else None,
                settings=_error_settings(request),
                console=request.console,
            )
        raise


def _error_settings(request: AuditRequest) -> dict[str, Any]:
    """The settings of an error report: resolved as far as they can be.

    When the policy is what failed, the settings are resolved without it
    (``files.policy`` is then null); the defaults when even that fails.
    """
    for req in (request, dataclasses.replace(request, policy=None, require_policy=False)):
        try:
            resolved, _ = _resolve_settings(req)
            return dict(resolved.to_report())
        except Exception as err:
            _log.debug("settings of the error report: %s: %s", type(err).__name__, err)
    try:
        return AuditSettings().to_dict()
    except Exception:
        return {}


ERR_SCORES_SPEC = (
    "--example-scores {spec!r}: expected NAME=FILE (e.g. cscore=cscores.csv), a name for "
    "the score and a CSV ('id' + one score column) or an .npz ('ids', 'scores')"
)
ERR_SCORES_TWICE = "--example-scores: the score name {name!r} is given twice; name each score once"
ERR_POLICY_SCORES = "{policy}: example_scores.{name}: {problem}"


def _run_scores(
    influence: RunInfluence | None, reference: Population, given: Mapping[str, Any]
) -> dict[str, Any]:
    """A run directory's influence runs as a score of the audited examples, when the run
    has finished them: on its eval split ``mean_influence`` (Dam et al.'s Algorithm 1),
    on its training split (``--data`` the run's train spec) ``memorization`` (Feldman
    and Zhang). A name the caller gives itself (``--example-scores``) is left alone."""
    if influence is None:
        return {}
    run_dir = influence.run_dir
    name = {"eval": "mean_influence", "train": "memorization", None: None}[influence.split]
    if name in given:
        return {}
    if name is None:
        warnings.warn(WARN_INFLUENCE_DATA.format(run=run_dir), CompauditWarning, stacklevel=3)
        return {}
    from compaudit.analysis.influence import mean_influence, memorization

    runs = influence.runs
    value = (mean_influence(runs) if name == "mean_influence" else memorization(runs)).value
    if value.shape != (reference.n,):
        warnings.warn(WARN_INFLUENCE_DATA.format(run=run_dir), CompauditWarning, stacklevel=3)
        return {}
    undefined = int((~np.isfinite(value)).sum())
    if undefined:  # an example in every run, or in none: too few runs for it
        warnings.warn(
            WARN_INFLUENCE_UNDEFINED.format(run=run_dir, name=name, count=undefined),
            CompauditWarning,
            stacklevel=3,
        )
        return {}
    return {name: value}


def _example_scores(
    specs: Sequence[str],
    ids: Any,
    policy: Policy | None = None,
    policy_file: str | None = None,
) -> dict[str, Any]:
    """Each ``NAME=FILE`` read and joined to the audit's example ids, then the policy's
    ``example_scores`` (paths relative to the policy file) for the names the command
    line does not give: a flag beats the policy entry of the same name."""
    files: dict[str, str | Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise InputError(ERR_SCORES_SPEC.format(spec=spec))
        if name in files:
            raise InputError(ERR_SCORES_TWICE.format(name=name))
        files[name] = path
    from_policy: set[str] = set()
    if policy is not None and policy.example_scores and policy_file is not None:
        from compaudit.policy import example_score_files

        for name, resolved in example_score_files(policy, policy_file).items():
            if name not in files:
                files[name] = resolved
                from_policy.add(name)
    if not files:
        return {}
    from compaudit.analysis.long_tail import read_scores

    out: dict[str, Any] = {}
    for name, file in files.items():
        try:
            out[name] = read_scores(file, ids)
        except CompauditError as exc:
            if name not in from_policy:
                raise
            # The policy named the file: say where, so the fix lands in the right file.
            raise type(exc)(
                ERR_POLICY_SCORES.format(policy=policy_file, name=name, problem=exc)
            ) from None
    return out


def _execute(request: AuditRequest, partial: dict[str, Any]) -> Outcome:
    from compaudit.plugins import get_registry

    reporters = get_registry().reporters()
    for fmt in request.formats:
        if fmt not in reporters:
            raise InputError(ERR_UNKNOWN_FORMAT.format(fmt=fmt, known=", ".join(sorted(reporters))))
    resolved, policy = _resolve_settings(request)
    settings = resolved.settings
    console = request.console or Console()

    candidates: dict[str, Population] = {}
    dataset: Dataset | None
    lineage: dict[str, bool] = {}
    compression: dict[str, Compression | None] = {}
    notes: list[str] = []  # the pipeline's own warnings, reported with the audit's
    if request.run_dir is not None:
        ref_name, reference, candidates, dataset, lineage = _load_run_dir(
            request, compression, paired=settings.paired, notes=notes
        )
    else:
        if request.reference is None or not request.candidates:  # "" is an empty SPEC
            raise InputError(ERR_NO_INPUTS)
        ref_text, given = split_spec(request.reference)  # SPEC@sparsity=0: the tail off first
        dataset = load_data_for_model(request.data, ref_text) if request.data else None
        ref_name, ref_spec = parse_named_spec(ref_text, default_name="reference")
        reference = _load_side(ref_spec, ref_name, dataset, request)
        compression[ref_name] = spec_compression(ref_spec, given)
        for text in request.candidates:
            text, given = split_spec(text)
            name, spec = parse_named_spec(text)
            if name in candidates:
                raise InputError(ERR_DUPLICATE_NAME.format(name=name))
            candidates[name] = _load_side(spec, name, dataset, request)
            compression[name] = spec_compression(spec, given)

    if request.attributes_csv:
        from compaudit.data.loading import read_attributes_csv

        extra = read_attributes_csv(request.attributes_csv, reference.ids)
        carried = sorted(set(extra) & set(reference.attributes))
        if carried:
            # Two sources for one attribute: refuse rather than pick one silently.
            raise InputError(
                ERR_ATTRIBUTE_TWICE.format(
                    csv=request.attributes_csv, name=carried[0], src=reference.source
                )
            )
        reference = reference.with_attributes(extra)
    # A policy attribute the data lack: the sets that exist are still audited, the
    # missing one is named in a warning and its gates are unevaluable (an error unless
    # the policy's on_unevaluable says otherwise); resolve() sets missing_attributes.
    scores = _example_scores(request.example_scores, reference.ids, policy, request.policy)
    influence = None  # the run's influence runs, read once for the scores and influencers
    if request.run_dir is not None and dataset is not None:
        from compaudit._influencers import run_influence

        influence = run_influence(request.run_dir, dataset)
        scores.update(_run_scores(influence, reference, scores))
    result = audit(
        reference,
        candidates,
        reference_name=ref_name,
        settings=settings,
        lineage=lineage,
        example_scores=scores,
    )
    if policy is not None:
        from compaudit.policy import unused_overrides

        notes += [
            WARN_UNUSED_OVERRIDE.format(name=n) for n in unused_overrides(policy, [*candidates])
        ]
    result.warnings[:0] = notes  # in every format, not only on stderr
    for warning in result.warnings:
        warnings.warn(warning, CompauditWarning, stacklevel=3)

    from compaudit.gates import exit_status_for, judge

    # Reporters get the typed report; ``settings``: every value, its source and the files.
    typed = with_compression(
        judge(result, policy, settings_report=resolved.to_report()), compression
    )
    train = None  # the training split, when the report lists influencers from it
    if influence is not None:
        from compaudit._influencers import with_influencers

        typed, train = with_influencers(typed, influence, reference, cap=settings.examples_cap)
    status = exit_status_for(typed.verdict)
    partial["report"] = typed  # what an error report keeps if writing fails

    images = None
    if dataset is not None and dataset.images is not None and dataset.n == reference.n:
        images = dataset.images
    context = ReportContext(
        console=console,
        result=result,
        images=images,
        train_images=None if train is None else train.images,
        sources={
            "reference": request.reference or str(request.run_dir),
            "data": request.data or "",
            "policy": request.policy or "",
        },
    )
    formats = list(request.formats)
    if request.error_report and status is ExitStatus.ERROR and request.out is not None:
        # An unevaluable gate fails the run as an input error does: CI reviewers get the
        # same report.json, report.md and junit.xml, whatever --format asked for.
        formats += [f for f in ERROR_FORMATS if f not in formats and f in reporters]
    written = write_formats(typed, request.out, formats, context, reporters)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and "markdown" in reporters:
        reporters["markdown"].append_step_summary(typed, Path(summary), context=context)
    return Outcome(typed, result, status, written)
