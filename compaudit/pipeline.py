"""From command-line inputs to a written report: the one call ``report`` and ``check`` make.

:func:`execute` loads the populations (predictions files or models run on
``--data``), joins attributes, runs the audit with the policy's settings,
evaluates the gates, decides the verdict and writes every chosen format.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.markup import escape

from compaudit.audit import AuditResult, AuditSettings, audit
from compaudit.errors import ExitStatus, InputError
from compaudit.population import Population
from compaudit.report.base import ReportContext

if TYPE_CHECKING:
    from compaudit.data.base import Dataset

__all__ = ["AuditRequest", "Outcome", "execute", "parse_named_spec"]

DEFAULT_FORMATS = ("terminal", "json")
ERR_DUPLICATE_NAME = "two candidates are named '{name}'; name them apart with NAME=SPEC"
ERR_NO_INPUTS = (
    "nothing to audit: give --reference and at least one --candidate, or a trainer run directory"
)
ERR_RUN_AND_SPECS = (
    "give either a run directory or --reference/--candidate, not both "
    "(a run directory audits its dense variant against every other variant)"
)
ERR_UNKNOWN_FORMAT = "unknown format '{fmt}'; installed formats: {known}"


def parse_named_spec(text: str, default_name: str | None = None) -> tuple[str, str]:
    """Split ``[NAME=]SPEC`` into ``(name, spec)``.

    A ``NAME=`` prefix is recognised only when NAME has no path separator and
    the whole text is not an existing path. Without a name, the file stem (or
    directory name) is used, or ``default_name`` when given.
    """
    if "=" in text and not Path(text).exists():
        name, spec = text.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            return name, spec
    if default_name is not None:
        return default_name, text
    p = Path(text.rstrip("/"))
    stem = p.name
    for suffix in (".npz", ".onnx", ".pt2", ".pt", ".ckpt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem or text, text


@dataclass
class AuditRequest:
    """Everything ``report``/``check`` were asked to do (parsed CLI options)."""

    reference: str | None = None
    candidates: Sequence[str] = ()
    run_dir: Path | None = None
    data: str | None = None
    attributes_csv: str | None = None
    policy: str | None = None
    out: Path | None = Path("compaudit-report")
    formats: Sequence[str] = DEFAULT_FORMATS
    settings: AuditSettings = field(default_factory=AuditSettings)
    subgroup_attributes: Sequence[str] = ()
    require_policy: bool = False
    cache: bool = True
    batch_size: int | None = None
    """Inference batch size; None: the runner's default (256), or for a run
    directory the recipe's eval batch size (dynamic-quantized models scale
    activations per batch, so this keeps the report equal to the manifest)."""
    device: str = "cpu"
    console: Console | None = None


@dataclass
class Outcome:
    """What came out: the report document, the in-memory result, the exit status."""

    report: dict[str, Any]
    result: AuditResult
    status: ExitStatus
    written: list[Path]


def _load_side(spec: str, name: str, dataset: Dataset | None, request: AuditRequest) -> Population:
    # A predictions file, or models run on the data (checked against it either way).
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import load_population_spec

    settings = RunnerSettings(batch_size=request.batch_size or 256, device=request.device)
    return load_population_spec(
        spec, dataset=dataset, settings=settings, cache=request.cache, name=name
    )


def _load_dataset(spec: str) -> Dataset:
    from compaudit.data.loading import load_dataset

    dataset: Dataset = load_dataset(spec)
    return dataset


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
) -> tuple[str, Population, dict[str, Population], Dataset, dict[str, bool]]:
    """The trainer's run: its dense variant against every other variant, on its eval split."""
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population
    from compaudit.train.manifest import load_run

    assert request.run_dir is not None
    if request.reference or request.candidates:
        raise InputError(ERR_RUN_AND_SPECS)
    info = load_run(request.run_dir)
    dataset = _load_dataset(request.data or info.eval_data)
    batch_size = request.batch_size or info.recipe.training.eval_batch_size
    settings = RunnerSettings(batch_size=batch_size, device=request.device)

    def predict(variant: str) -> Population:
        paths = [str(p) for p in info.variants[variant].paths]
        return predict_population(
            paths, dataset, settings=settings, cache=request.cache, name=variant
        )

    candidates = {name: predict(name) for name in info.candidates}
    if not candidates:
        raise InputError(f"{request.run_dir}: the run has no variant besides '{info.reference}'")
    lineage = {name: _lineage(info.variants, name, info.reference) for name in candidates}
    return info.reference, predict(info.reference), candidates, dataset, lineage


def _settings_from_policy(request: AuditRequest) -> tuple[AuditSettings, Any]:
    settings = request.settings
    if request.policy is None:
        if request.require_policy:
            raise InputError("check needs a policy: pass --policy FILE (see examples/policies/)")
        attrs = tuple(request.subgroup_attributes)
        if attrs and attrs != settings.attributes:
            settings = dataclasses.replace(settings, attributes=attrs)
        return settings, None
    from compaudit.policy import load_policy
    from compaudit.policy import settings as policy_settings

    policy = load_policy(request.policy)
    wanted = policy_settings(policy)
    extra: dict[str, Any] = dict(wanted)
    cli_attrs = tuple(request.subgroup_attributes)
    sets = () if cli_attrs else tuple(tuple(a) for a in extra.get("attribute_sets", ()))
    settings = AuditSettings(
        alpha=wanted["alpha"],
        correction=wanted["correction"],
        seed=wanted["seed"],
        min_support=wanted["min_support"],
        attributes=cli_attrs or tuple(wanted["attributes"]),
        attribute_sets=sets,
        empty_classes=settings.empty_classes,
        # An explicit --paired/--unpaired wins over the policy's key.
        paired=settings.paired if settings.paired is not None else extra.get("paired"),
        floor_splits=int(extra.get("floor_splits", settings.floor_splits)),
        floor_quantile=float(extra.get("floor_quantile", settings.floor_quantile)),
    )
    return settings, policy


def execute(request: AuditRequest) -> Outcome:
    """Load, audit, gate and report. Raises ``CompauditError`` on unusable input."""
    from compaudit.plugins import get_registry

    reporters = get_registry().reporters()
    for fmt in request.formats:
        if fmt not in reporters:
            raise InputError(ERR_UNKNOWN_FORMAT.format(fmt=fmt, known=", ".join(sorted(reporters))))
    settings, policy = _settings_from_policy(request)
    console = request.console or Console()

    candidates: dict[str, Population] = {}
    dataset: Dataset | None
    lineage: dict[str, bool] = {}
    if request.run_dir is not None:
        ref_name, reference, candidates, dataset, lineage = _load_run_dir(request)
    else:
        if not request.reference or not request.candidates:
            raise InputError(ERR_NO_INPUTS)
        dataset = _load_dataset(request.data) if request.data else None
        ref_name, ref_spec = parse_named_spec(request.reference, default_name="reference")
        reference = _load_side(ref_spec, ref_name, dataset, request)
        for text in request.candidates:
            name, spec = parse_named_spec(text)
            if name in candidates:
                raise InputError(ERR_DUPLICATE_NAME.format(name=name))
            candidates[name] = _load_side(spec, name, dataset, request)

    if request.attributes_csv:
        from compaudit.data.loading import read_attributes_csv

        reference = reference.with_attributes(
            read_attributes_csv(request.attributes_csv, reference.ids)
        )
    if policy is not None and not request.subgroup_attributes:
        # A policy attribute the data lack: the sets that exist are still audited,
        # the missing one is named in a warning and its gates are unevaluable (an
        # error unless the policy's on_unevaluable says otherwise). Never a silent pass.
        settings = dataclasses.replace(settings, missing_attributes="warn")
    result = audit(
        reference, candidates, reference_name=ref_name, settings=settings, lineage=lineage
    )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")

    gates: list[dict[str, Any]] = []
    verdict: Literal["pass", "fail", "error"] = "pass"
    status = ExitStatus.OK
    if policy is not None:
        from compaudit.gates import decide_verdict, evaluate_gates, exit_status_for
        from compaudit.policy import unused_overrides

        for name in unused_overrides(policy, list(candidates)):
            console.print(f"[yellow]warning:[/] policy override '{name}' matches no candidate")
        draft = result.to_report()
        gate_results = evaluate_gates(draft, policy)
        gates = [g.to_dict() for g in gate_results]
        verdict = decide_verdict(gate_results, [])
        status = exit_status_for(verdict)
    report = result.to_report(gates=gates, verdict=verdict)

    images = None
    if dataset is not None and dataset.images is not None and dataset.n == reference.n:
        images = dataset.images
    context = ReportContext(
        console=console,
        result=result,
        images=images,
        sources={
            "reference": request.reference or str(request.run_dir),
            "data": request.data or "",
            "policy": request.policy or "",
        },
    )
    written: list[Path] = []
    if request.out is not None:
        request.out.mkdir(parents=True, exist_ok=True)
    for fmt in request.formats:
        path = reporters[fmt].write(report, out_dir=request.out, context=context)
        if path is not None:
            written.append(path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and "markdown" in reporters:
        reporters["markdown"].append_step_summary(report, Path(summary), context=context)
    return Outcome(report, result, status, written)
