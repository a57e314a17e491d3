"""``compaudit report`` and ``compaudit check``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from compaudit._text import for_terminal
from compaudit.cli import command as cli_command
from compaudit.cli import fail, is_quiet, run_command
from compaudit.cli._params import NON_BLANK, NonBlankPath
from compaudit.errors import ExitStatus
from compaudit.models.base import TRUST_MODEL_CODE_HELP
from compaudit.pipeline import DEFAULT_FORMATS, AuditRequest, Outcome, execute
from compaudit.report.base import format_name
from compaudit.settings import SETTINGS, Setting, SettingValueError


def _split_csv(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def setting_option(setting: Setting) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The command-line flag of ``setting``: its help, type and validator, default None.

    None (an empty tuple for ``--subgroups``) means "not given": the policy,
    ``pyproject.toml`` or the setting's default then decides.
    """

    def validate(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if isinstance(value, tuple):  # --subgroups ATTR[,ATTR], repeatable
            value = tuple(_split_csv(value)) or None
        if value is None:
            return None
        try:
            setting.validate(value)
        except SettingValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    help_text = setting.help
    if setting.default is not None and not isinstance(setting.default, tuple):
        help_text += f" [default: {setting.default}]"
    kw: dict[str, Any] = {"default": None, "callback": validate, "help": help_text}
    if isinstance(setting.default, tuple):
        kw.update(multiple=True, metavar="ATTR[,ATTR]")
    elif setting.choices is not None:
        kw["type"] = click.Choice(setting.choices)
    elif isinstance(setting.default, bool) or setting.default is None:
        pass  # a --flag/--no-flag pair
    elif isinstance(setting.default, float):
        kw["type"] = click.FLOAT
    else:
        kw["type"] = click.INT
    return click.option(*setting.cli, setting.dest, **kw)


def audit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``report`` and ``check`` (the design's contract)."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.argument(
            "run_dir", required=False, type=NonBlankPath(file_okay=False, path_type=Path)
        ),
        click.option(
            "--reference",
            "-r",
            metavar="[NAME=]SPEC[@KEY=V]",
            help="Reference model(s): predictions .npz, model file, glob or directory.",
        ),
        click.option(
            "--candidate",
            "-c",
            "candidates",
            multiple=True,
            metavar="[NAME=]SPEC[@KEY=V]",
            help="Compressed model(s) to audit; repeat for several. A trailing "
            "@sparsity=0.9,bits=8 (keys: sparsity, bits, file_size, parameters) places it on "
            "the compression curve; without it, what the model files show is measured.",
        ),
        click.option(
            "--data",
            "-d",
            type=NON_BLANK,
            metavar="SPEC",
            help="Evaluation data (.npz, .csv, image folder, or a built-in such as "
            "digits / fashion-mnist / adult[:split]); "
            "needed when a SPEC is a model.",
        ),
        click.option(
            "--attributes",
            "attributes_csv",
            metavar="CSV",
            type=NonBlankPath(dir_okay=False),
            help="Protected attributes: a CSV with an 'id' column and one column per attribute.",
        ),
        click.option(
            "--example-scores",
            "example_scores",
            multiple=True,
            type=NON_BLANK,
            metavar="NAME=FILE",
            help="Per-example scores (C-score, memorization...): a CSV with 'id' and one score "
            "column, or an .npz with 'ids' and 'scores'; each is tested on the PIEs and CIEs "
            "against the rest (long tail). Repeat for several.",
        ),
        click.option(
            "--policy",
            "-p",
            metavar="FILE",
            type=NonBlankPath(dir_okay=False),
            help="Policy file (YAML, TOML or pyproject.toml). Settings: an explicit flag beats "
            "the policy, which beats [tool.compaudit] in the closest pyproject.toml.",
        ),
        click.option(
            "--out",
            "-o",
            type=NonBlankPath(file_okay=False, path_type=Path),
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
        *(setting_option(s) for s in SETTINGS if s.cli),
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
        click.option("--trust-model-code", is_flag=True, help=TRUST_MODEL_CODE_HELP),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _request(require_policy: bool, **kw: Any) -> AuditRequest:
    formats = [format_name(f) for f in _split_csv(kw["formats"])] or list(DEFAULT_FORMATS)
    return AuditRequest(
        reference=kw["reference"],
        candidates=list(kw["candidates"]),
        run_dir=kw["run_dir"],
        data=kw["data"],
        attributes_csv=kw["attributes_csv"],
        example_scores=list(kw["example_scores"]),
        policy=kw["policy"],
        out=kw["out"],
        formats=list(dict.fromkeys(formats)),
        # Only the flags given: the policy, pyproject.toml and defaults fill the rest.
        overrides={s.name: kw[s.dest] for s in SETTINGS if s.cli and kw[s.dest] is not None},
        pyproject_from=Path.cwd(),
        require_policy=require_policy,
        error_report=require_policy,  # check: CI still gets report.json, report.md, junit.xml
        cache=not kw["no_cache"],
        batch_size=kw["batch_size"],
        device=kw["device"],
        trust_model_code=kw["trust_model_code"],
    )


def _done(outcome: Outcome) -> None:
    for path in () if is_quiet() else outcome.written:
        click.echo(f"wrote {for_terminal(str(path))}", err=True)
    gates = outcome.document.gates
    if gates:
        # One line for CI logs, whatever formats were chosen.
        failed = [f"{g.name}[{for_terminal(str(g.candidate))}]" for g in gates if g.passed is False]
        unevaluable = [
            f"{g.name}[{for_terminal(str(g.candidate))}]" for g in gates if g.passed is None
        ]
        noun = "gate" if len(gates) == 1 else "gates"
        line = f"verdict: {outcome.document.verdict} ({len(gates)} {noun}"
        if failed:
            line += f"; failed: {', '.join(failed)}"
        if unevaluable:
            line += f"; not evaluable: {', '.join(unevaluable)}"
        click.echo(wrap_line(line + ")"), err=True)


FINAL_WIDTH = 80


def wrap_line(text: str, width: int = FINAL_WIDTH) -> str:
    """``text`` wrapped at ``width`` columns between words, continuation lines indented;
    a gate name longer than a line is kept whole rather than cut."""
    return textwrap.fill(
        text, width=width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
    )


@cli_command("report")
@audit_options
def report_command(**kw: Any) -> ExitStatus:
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

    return run_command(body)


@cli_command("check")
@audit_options
@click.option(
    "--exit-zero",
    is_flag=True,
    help="Advisory run: report, but exit 0 even when a gate fails (errors still exit 2).",
)
def check_command(exit_zero: bool, **kw: Any) -> ExitStatus:
    """Gate a release: exit 0 when every gate passes, 1 when one fails, 2 on error.

    --exit-zero turns only 1 into 0: an unusable input, or a gate that cannot
    be evaluated (also one on_unevaluable: fail counts as failed), still exits 2,
    and so does a run that evaluated no gate at all.
    On an error, --out still gets report.json (verdict error, the message in
    errors), report.md and junit.xml (one error case), and the Markdown goes
    to $GITHUB_STEP_SUMMARY when it is set, so CI shows why.
    """

    def body() -> ExitStatus:
        from compaudit.gates import advisory_exit_status, check_error

        outcome = execute(_request(True, **kw))
        _done(outcome)
        # An error verdict (or, advisory, an unevaluable gate counted as failed) exits 2
        # with one error line naming the policy, like any other unusable input.
        problem = check_error(outcome.document, advisory=exit_zero)
        if problem is not None:
            return fail(f"{kw['policy']}: {problem}")
        return advisory_exit_status(outcome.document) if exit_zero else outcome.status

    return run_command(body)


commands = [report_command, check_command]
