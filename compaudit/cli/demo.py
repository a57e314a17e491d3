"""``compaudit demo``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from compaudit.cli import command as cli_command
from compaudit.cli import run_command
from compaudit.errors import ExitStatus


@cli_command("demo")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("compaudit-demo"),
    show_default=True,
    help="Directory for the trained run and the reports (re-running resumes).",
)
@click.option(
    "--dataset",
    type=click.Choice(["digits", "fashion-mnist"]),
    default="digits",
    show_default=True,
    help="digits: small and fast; fashion-mnist: the larger real case (needs the data files).",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def command(out: Path, dataset: str, jobs: int, device: str) -> ExitStatus:
    """Train a small real population (dense, two pruning levels, int8) and audit it."""
    from compaudit.demo import demo_exit_status, run_demo

    def body() -> ExitStatus:
        start = time.perf_counter()
        result = run_demo(out, dataset=dataset, jobs=jobs, device=device)  # type: ignore[arg-type]
        took = time.perf_counter() - start
        click.echo(
            f"\ndemo finished in {took:.0f} s: verdict {result.outcome.document.verdict}.\n"
            f"  run:     {result.run_dir}\n"
            f"  reports: {result.report_dir}/ (open {result.report_dir / 'report.html'})",
            err=True,
        )
        return demo_exit_status(result.outcome)

    return run_command(body)
