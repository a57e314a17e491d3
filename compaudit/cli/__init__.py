"""The ``compaudit`` command line: a thin shell over the library.

Each command parses, makes one library call, renders, and exits with an
:class:`~compaudit.errors.ExitStatus` decided in :func:`run_command`.
Commands live in sibling modules and are added in :func:`build_cli`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from compaudit import __version__
from compaudit.errors import CompauditError, ExitStatus

F = TypeVar("F", bound=Callable[..., Any])

# Modules that define ``command`` (one click command) or ``commands`` (a list).
COMMAND_MODULES: tuple[str, ...] = (
    "compaudit.cli.report",
    "compaudit.cli.predict",
    "compaudit.cli.plugins",
    "compaudit.cli.schema",
    "compaudit.cli.train",
    "compaudit.cli.demo",
)


def fail(message: str) -> ExitStatus:
    """Print an error line to stderr and return the error status."""
    click.echo(f"compaudit: error: {message}", err=True)
    return ExitStatus.ERROR


def run_command(fn: Callable[[], ExitStatus | int | None]) -> None:
    """Run a command body; map library errors to exit code 2 (fail closed)."""
    try:
        status = fn()
    except CompauditError as exc:
        status = fail(str(exc))
    except KeyboardInterrupt:
        click.echo("compaudit: interrupted", err=True)
        status = ExitStatus.ERROR
    sys.exit(int(status if status is not None else ExitStatus.OK))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="compaudit")
def cli() -> None:
    """Audit compressed neural networks against their reference model."""


def build_cli() -> click.Group:
    """Attach built-in commands and plugin commands to the group."""
    for modname in COMMAND_MODULES:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # command not written yet in this checkout
            raise
        for cmd in getattr(module, "commands", None) or [module.command]:
            cli.add_command(cmd)
    from compaudit.plugins import get_registry

    try:
        get_registry().add_commands(cli)
    except CompauditError as exc:
        click.echo(f"compaudit: warning: {exc}", err=True)
    return cli


def main() -> None:
    """Console-script entry point."""
    build_cli()(prog_name="compaudit")
