"""``compaudit fit-data TRAIN_SPEC --out prep.json``: fit preprocessing on training data."""

from __future__ import annotations

from pathlib import Path

import click

from compaudit.cli import command as cli_command
from compaudit.cli import is_quiet, run_command
from compaudit.cli._params import NonBlankPath
from compaudit.errors import ExitStatus

__all__ = ["command"]


@cli_command("fit-data")
@click.argument("train_spec")
@click.option(
    "--out",
    required=True,
    type=NonBlankPath(dir_okay=False, path_type=Path),
    help="Prep file to write (JSON), applied with ?prep=FILE on a data spec.",
)
def command(train_spec: str, out: Path) -> ExitStatus:
    """Fit the preprocessing of TRAIN_SPEC (the model's training data) into a prep file.

    For models trained outside compaudit: the CSV encoding (means, scales,
    categories) or image preparation fitted on the training data, to apply
    to evaluation data with ?prep=FILE.
    """

    def body() -> ExitStatus:
        from compaudit._io import output_error
        from compaudit.data.loading import load_dataset
        from compaudit.data.prep import write_prep

        dataset = load_dataset(train_spec, fit=True)
        try:
            write_prep(out, dataset.preprocessing, fitted_on=train_spec)
        except OSError as exc:
            raise output_error(exc, out, option="--out") from exc
        if not is_quiet():
            width = int(dataset.x.shape[1]) if dataset.x.ndim == 2 else None
            shape = f"{width} features" if width is not None else f"inputs {dataset.x.shape[1:]}"
            click.echo(f"wrote {out}: preprocessing fitted on {dataset.n} examples ({shape})")
            click.echo(f"apply it with: --data 'EVAL_SPEC?prep={out}'")
        return ExitStatus.OK

    return run_command(body)
