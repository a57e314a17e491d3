"""``compaudit init``: a starter policy and CI workflow, from the shipped examples.

Writes ``.compaudit.yaml`` (one of the example policies that ship in the
wheel, ``strict-release`` unless ``--policy`` names another) and
``.github/workflows/compaudit.yml`` (``examples/github/release-gate.yml``: the
reusable gate workflow called on the models). Nothing is overwritten without
``--force``: when either file exists, neither is written (exit 2, naming the
file and the fix).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from compaudit._io import atomic_write_text
from compaudit.cli import command as cli_command
from compaudit.cli import fail, is_quiet, run_command
from compaudit.errors import ExitStatus

__all__ = ["ERR_EXISTS", "POLICIES", "POLICY_FILE", "WORKFLOW_FILE", "command", "starter_files"]

POLICIES = ("strict-release", "advisory", "fairness-review", "digits-demo")
"""The example policies shipped in the wheel (``compaudit/examples/policies``)."""
POLICY_FILE = ".compaudit.yaml"
WORKFLOW_FILE = ".github/workflows/compaudit.yml"
ERR_EXISTS = "{path} exists; pass --force to overwrite it, or move it away"
ERR_NOT_DIR = "{path} is not a directory; give the repository's root"


def starter_files(policy: str = "strict-release") -> dict[str, str]:
    """The files ``init`` writes, by path relative to the repository root.

    Parameters
    ----------
    policy : str
        One of :data:`POLICIES`.

    Returns
    -------
    dict of str to str
        :data:`POLICY_FILE` and :data:`WORKFLOW_FILE` with their text.
    """
    examples = resources.files("compaudit") / "examples"
    return {
        POLICY_FILE: (examples / "policies" / f"{policy}.yaml").read_text("utf-8"),
        WORKFLOW_FILE: (examples / "github" / "release-gate.yml").read_text("utf-8"),
    }


@cli_command("init")
@click.argument(
    "directory", type=click.Path(file_okay=True, path_type=Path), default=Path(), required=False
)
@click.option(
    "--policy",
    "policy",
    type=click.Choice(POLICIES),
    default="strict-release",
    show_default=True,
    help="Which example policy to start from.",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def command(directory: Path, policy: str, force: bool) -> ExitStatus:
    """Write a starter policy (.compaudit.yaml) and CI workflow into a repository."""

    def body() -> ExitStatus:
        if directory.exists() and not directory.is_dir():
            return fail(ERR_NOT_DIR.format(path=directory))
        files = {directory / rel: text for rel, text in starter_files(policy).items()}
        # Check every target before writing any: a refusal leaves nothing half done.
        for path in files:
            if not force and (path.exists() or path.is_symlink()):
                return fail(ERR_EXISTS.format(path=path))
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            if not is_quiet():
                click.echo(f"wrote {path}", err=True)
        if not is_quiet():
            policy_file, workflow = directory / POLICY_FILE, directory / WORKFLOW_FILE
            click.echo(
                f"next: point {policy_file} and {workflow} at your models and data, "
                f"then run compaudit check --policy {policy_file} ...",
                err=True,
            )
        return ExitStatus.OK

    return run_command(body)
