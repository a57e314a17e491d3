"""``compaudit plugins``: list registered plugins, their hooks, and broken ones.

Exit status: 0 when every plugin loaded; 2 when at least one is broken. The
table is printed either way (broken plugins in red, with their error), so a
CI step can run ``compaudit plugins`` to verify its installation.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from compaudit import plugins
from compaudit.cli import command as cli_command
from compaudit.cli import run_command
from compaudit.errors import ExitStatus

__all__ = ["ERR_BROKEN", "command"]

ERR_BROKEN = "{n} plugin(s) failed to load: {names}; reinstall or uninstall them"


@cli_command("plugins")
def command() -> ExitStatus:
    """List registered plugins (built-in and installed) and the hooks they implement."""

    def body() -> ExitStatus:
        registry = plugins.get_registry()
        table = Table(title="compaudit plugins", title_justify="left")
        for column in ("plugin", "distribution", "version"):
            table.add_column(column, no_wrap=True)
        table.add_column("hooks")
        table.add_column("status", overflow="fold")
        for info in registry.infos:
            status = f"error: {info.error}" if info.error else "built-in" if info.builtin else "ok"
            table.add_row(
                info.name,
                info.distribution,
                info.version,
                "\n".join(info.hooks) or "-",
                status,
                style="red" if info.error else None,
            )
        console = Console()
        if not console.is_terminal:
            # Piped or captured: keep names whole for grep rather than folding at 80.
            console = Console(width=max(console.width, 160))
        console.print(table)
        broken = registry.broken
        if broken:
            names = ", ".join(f"{b.name} ({b.distribution})" for b in broken)
            click.echo(
                f"compaudit: error: {ERR_BROKEN.format(n=len(broken), names=names)}", err=True
            )
            return ExitStatus.ERROR
        return ExitStatus.OK

    return run_command(body)
