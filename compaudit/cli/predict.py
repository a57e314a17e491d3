"""``compaudit predict``: run models on a dataset and save their predictions (.npz)."""

from __future__ import annotations

from pathlib import Path

import click

from compaudit.cli import command as cli_command
from compaudit.cli import run_command
from compaudit.cli._params import NonBlankPath
from compaudit.errors import ExitStatus
from compaudit.models.base import TRUST_MODEL_CODE_HELP

__all__ = ["command"]


@cli_command("predict")
@click.argument("spec", nargs=-1, required=True)
@click.option("--data", "data", required=True, help="Dataset spec, e.g. digits:test or data.npz.")
@click.option(
    "--out",
    required=True,
    type=NonBlankPath(dir_okay=False, path_type=Path),
    help="Predictions file to write (.npz).",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State dict for a module:factory SPEC.",
)
@click.option("--name", default=None, help="Population name recorded in the file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the prediction cache.")
@click.option("--trust-model-code", is_flag=True, help=TRUST_MODEL_CODE_HELP)
@click.option(
    "--outputs-probabilities",
    is_flag=True,
    help="The models output probabilities already (no softmax).",
)
def command(
    spec: tuple[str, ...],
    data: str,
    out: Path,
    weights: Path | None,
    name: str | None,
    batch_size: int,
    top_k: int,
    device: str,
    no_cache: bool,
    outputs_probabilities: bool,
    trust_model_code: bool,
) -> ExitStatus:
    """Run the models in SPEC (files, globs, directories, module:factory) on --data.

    Writes K models x N examples of top-k predictions to --out, with the
    dataset's labels, ids, classes and attributes, for `compaudit report`.
    """

    def body() -> ExitStatus:
        from compaudit._io import output_error
        from compaudit._model_data import load_data_for_model
        from compaudit.models.base import RunnerSettings
        from compaudit.population import save_population
        from compaudit.predictions import predict_population

        dataset = load_data_for_model(data, spec[0] if spec else None)
        settings = RunnerSettings(
            batch_size=batch_size,
            k=top_k,
            device=device,
            outputs_probabilities=outputs_probabilities,
            trust_model_code=trust_model_code,
        )
        population = predict_population(
            list(spec),
            dataset,
            settings=settings,
            cache=not no_cache,
            name=name,
            options={"weights": str(weights)} if weights is not None else None,
        )
        try:
            save_population(population, out)  # atomic: a full disk leaves no torn --out
        except OSError as exc:
            raise output_error(exc, out, option="--out") from exc
        top1 = (population.predictions == population.y[None, :]).mean(axis=1)
        click.echo(
            f"wrote {out}: {population.k} model(s) x {population.n} examples of {dataset.name} "
            f"(top-{population.topk.shape[2] if population.topk is not None else 1})"
        )
        for member, acc in zip(population.meta["members"], top1, strict=True):
            click.echo(f"  {member}: top-1 {acc:.4f}")
        return ExitStatus.OK

    return run_command(body)
