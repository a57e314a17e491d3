"""``compaudit demo``: train a small real population and audit it end to end.

The recipes and the policy used here are package data, so the demo works from
an installed wheel; ``examples/recipes/`` and ``examples/policies/`` hold the
same files for people to read and copy (a test keeps them identical).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from rich.console import Console

from compaudit.errors import ExitStatus
from compaudit.pipeline import AuditRequest, Outcome, execute

DemoDataset = Literal["digits", "fashion-mnist"]
RECIPES: dict[str, str] = {"digits": "digits-demo.yaml", "fashion-mnist": "fashion-mnist.yaml"}
POLICY = "digits-demo-policy.yaml"
FORMATS = ("terminal", "json", "markdown", "html")


def demo_file(name: str) -> Path:
    """Path of a packaged demo file (recipe or policy)."""
    return Path(str(resources.files("compaudit.demo").joinpath(name)))


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things and what the audit said."""

    run_dir: Path
    report_dir: Path
    outcome: Outcome


def run_demo(
    out: Path,
    *,
    dataset: DemoDataset = "digits",
    jobs: int = 1,
    device: str = "auto",
    console: Console | None = None,
) -> DemoResult:
    """Train the demo recipe into ``out/run`` (resuming) and audit it into ``out/report``.

    Parameters
    ----------
    out : Path
        Directory for the run and the reports.
    dataset : {"digits", "fashion-mnist"}
        The small digits case (about a minute on 2 cores) or the larger one.
    jobs : int
        Members trained at once.
    device : {"auto", "cpu", "cuda"}
        Training device.
    console : rich Console, optional
        Where the terminal report goes.
    """
    from compaudit.train.run import train_recipe

    run_dir, report_dir = out / "run", out / "report"
    train_recipe(demo_file(RECIPES[dataset]), run_dir, jobs=jobs, device=device, progress=True)
    outcome = execute(
        AuditRequest(
            run_dir=run_dir,
            policy=str(demo_file(POLICY)),
            out=report_dir,
            formats=FORMATS,
            require_policy=True,
            console=console,
        )
    )
    return DemoResult(run_dir, report_dir, outcome)


def demo_exit_status(outcome: Outcome) -> ExitStatus:
    """The demo succeeded if the audit ran, whatever the gates said."""
    return ExitStatus.ERROR if outcome.status == ExitStatus.ERROR else ExitStatus.OK
