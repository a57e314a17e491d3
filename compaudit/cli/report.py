"""``compaudit report`` and ``compaudit check``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from compaudit.audit import CORRECTIONS, AuditSettings
from compaudit.cli import run_command
from compaudit.errors import ExitStatus
from compaudit.pipeline import DEFAULT_FORMATS, AuditRequest, Outcome, execute


def _split_csv(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def audit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``report`` and ``check`` (the design's contract)."""
    options = [
        click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path)),
        click.option(
            "--reference",
            "-r",
            metavar="[NAME=]SPEC",
            help="Reference model(s): predictions .npz, model file, glob or directory.",
        ),
        click.option(
            "--candidate",
            "-c",
            "candidates",
            multiple=True,
            metavar="[NAME=]SPEC",
            help="Compressed model(s) to audit; repeat for several.",
        ),
        click.option(
            "--data",
            "-d",
            metavar="SPEC",
            help="Evaluation data (.npz, .csv, image folder, or a built-in such as "
            "digits / fashion-mnist / adult[:split]); "
            "needed when a SPEC is a model.",
        ),
        click.option(
            "--attributes",
            "attributes_csv",
            metavar="CSV",
            type=click.Path(dir_okay=False),
            help="Protected attributes: a CSV with an 'id' column and one column per attribute.",
        ),
        click.option(
            "--subgroups",
            "-g",
            multiple=True,
            metavar="ATTR[,ATTR]",
            help="Attributes to cross in the subgroup table ('label' is the true label). "
            "Default: the policy's subgroup attributes.",
        ),
        click.option(
            "--policy",
            "-p",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Policy file (YAML, TOML or pyproject.toml).",
        ),
        click.option(
            "--out",
            "-o",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("compaudit-report"),
            show_default=True,
            help="Directory for report files.",
        ),
        click.option(
            "--format",
            "-f",
            "formats",
            multiple=True,
            metavar="FMT[,FMT]",
            help="Any of terminal, json, md, markdown, html, junit. "
            f"Default: {','.join(DEFAULT_FORMATS)}.",
        ),
        click.option(
            "--alpha",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=0.05,
            show_default=True,
            help="Significance level (a policy overrides it).",
        ),
        click.option(
            "--correction",
            type=click.Choice(CORRECTIONS),
            default="holm",
            show_default=True,
            help="Multiple-testing correction (a policy overrides it).",
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of every random choice."
        ),
        click.option(
            "--min-support",
            type=click.IntRange(min=1),
            default=30,
            show_default=True,
            help="Smallest subgroup that is tested.",
        ),
        click.option(
            "--paired/--unpaired",
            "paired",
            default=None,
            help="Lineage: candidate member k was made from reference member k (quantized, or "
            "pruned and fine-tuned from its weights); compare member with member. Same K, matched "
            "by member name or order. Default: from a run directory's recipe, or the policy.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=None,
            help="Inference batch size [default: 256; a run directory's recipe eval batch size].",
        ),
        click.option(
            "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
        ),
        click.option(
            "--no-cache", is_flag=True, help="Run every model even when cached predictions exist."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _request(require_policy: bool, **kw: Any) -> AuditRequest:
    formats = [("markdown" if f == "md" else f) for f in _split_csv(kw["formats"])] or list(
        DEFAULT_FORMATS
    )
    return AuditRequest(
        reference=kw["reference"],
        candidates=list(kw["candidates"]),
        run_dir=kw["run_dir"],
        data=kw["data"],
        attributes_csv=kw["attributes_csv"],
        policy=kw["policy"],
        out=kw["out"],
        formats=list(dict.fromkeys(formats)),
        settings=AuditSettings(
            alpha=kw["alpha"],
            correction=kw["correction"],
            seed=kw["seed"],
            min_support=kw["min_support"],
            paired=kw["paired"],
        ),
        subgroup_attributes=_split_csv(kw["subgroups"]),
        require_policy=require_policy,
        cache=not kw["no_cache"],
        batch_size=kw["batch_size"],
        device=kw["device"],
    )


def _done(outcome: Outcome) -> None:
    for path in outcome.written:
        click.echo(f"wrote {path}", err=True)
    gates = outcome.report["gates"]
    if gates:
        # One line for CI logs, whatever formats were chosen.
        failed = [f"{g['name']}[{g.get('candidate')}]" for g in gates if g["passed"] is False]
        unevaluable = [f"{g['name']}[{g.get('candidate')}]" for g in gates if g["passed"] is None]
        line = f"verdict: {outcome.report['verdict']} ({len(gates)} gates"
        if failed:
            line += f"; failed: {', '.join(failed)}"
        if unevaluable:
            line += f"; not evaluable: {', '.join(unevaluable)}"
        click.echo(line + ")", err=True)


@click.command("report")
@audit_options
def report_command(**kw: Any) -> None:
    """Audit candidates against the reference and write the report.

    Give --reference and --candidate (predictions files, models or
    populations), or RUN_DIR, a trainer run directory: its dense variant is
    audited against every other variant on the recipe's evaluation split.

    Exits 0 unless the input is unusable (then 2); a policy's gates are shown,
    not enforced (use `compaudit check` to gate).
    """

    def body() -> ExitStatus:
        outcome = execute(_request(False, **kw))
        _done(outcome)
        return ExitStatus.OK

    run_command(body)


@click.command("check")
@audit_options
@click.option(
    "--exit-zero", is_flag=True, help="Advisory run: report, but exit 0 even when a gate fails."
)
def check_command(exit_zero: bool, **kw: Any) -> None:
    """Gate a release: exit 0 when every gate passes, 1 when one fails, 2 on error."""

    def body() -> ExitStatus:
        outcome = execute(_request(True, **kw))
        _done(outcome)
        if exit_zero and outcome.status == ExitStatus.GATE_FAILED:
            return ExitStatus.OK
        return outcome.status

    run_command(body)


commands = [report_command, check_command]
