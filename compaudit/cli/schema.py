"""``compaudit schema {policy,report}``: print a JSON Schema.

Editors and CI validate policy files and reports with these (for example
``check-jsonschema --schemafile <(compaudit schema report) out/report.json``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import click

from compaudit.cli import command as cli_command
from compaudit.cli import run_command
from compaudit.errors import ExitStatus
from compaudit.policy import policy_json_schema

__all__ = ["command", "report_json_schema"]


def report_json_schema() -> dict[str, Any]:
    """The ``compaudit.report/v1`` JSON Schema shipped with the package."""
    text = (resources.files("compaudit") / "report" / "report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


_SCHEMAS = {"policy": policy_json_schema, "report": report_json_schema}


@cli_command("schema")
@click.argument("name", type=click.Choice(sorted(_SCHEMAS)))
def command(name: str) -> ExitStatus:
    """Print the JSON Schema of a policy file or of report.json."""

    def body() -> ExitStatus:
        click.echo(json.dumps(_SCHEMAS[name](), indent=2))
        return ExitStatus.OK

    return run_command(body)
