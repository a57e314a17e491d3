"""``compaudit train RECIPE``: train the populations a recipe describes."""

from __future__ import annotations

import os
from pathlib import Path

import click

from compaudit.cli import command as cli_command
from compaudit.cli import is_quiet, run_command
from compaudit.cli._params import NonBlankPath
from compaudit.errors import ExitStatus

__all__ = ["command"]


@cli_command("train")
@click.argument("recipe", type=NonBlankPath(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=NonBlankPath(file_okay=False, path_type=Path),
    default=None,
    help="Run directory (default: runs/<recipe name>). Re-running resumes it.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Members trained at once (more than 1 uses a local process pool).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to train; auto uses CUDA when present.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads per member (default: 1 for small models, else torch's choice; "
    "CPU count / jobs in a pool).",
)
@click.option(
    "--executor",
    default=None,
    help="Where members run: local, pool, or a plugin's executor such as ray "
    "(pip install ./plugins/compaudit-ray). Default: local, pool with --jobs > 1.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="auto|HOST:PORT",
    help="Ray cluster to run on (implies --executor ray; default: $RAY_ADDRESS, "
    "else a local Ray instance).",
)
def command(
    recipe: Path,
    out_dir: Path | None,
    jobs: int,
    device: str,
    threads: int | None,
    executor: str | None,
    ray_address: str | None,
) -> ExitStatus:
    """Train dense, pruned and quantized populations from a RECIPE (YAML).

    Writes one checkpoint (and ONNX export) per member plus a manifest to the
    run directory; audit it with `compaudit report RUN_DIR`.
    """

    if ray_address is not None:
        if executor not in (None, "ray"):
            raise click.UsageError(f"--ray-address needs --executor ray, not --executor {executor}")
        executor = "ray"
        # Ray's own variable: ray.init reads it, and so do the workers this process starts.
        os.environ["RAY_ADDRESS"] = ray_address

    def body() -> ExitStatus:
        from rich.console import Console

        from compaudit.train import train_recipe
        from compaudit.train.progress import summary_table

        info = train_recipe(
            recipe,
            out_dir,
            jobs=jobs,
            device=device,
            progress=not is_quiet(),
            threads=threads,
            executor=executor,
        )
        Console().print(summary_table(info))
        # Plain echo: a path must never be wrapped (people copy the command).
        click.echo(f"run directory: {info.run_dir}")
        click.echo(f"audit it with: compaudit report {info.run_dir}")
        return ExitStatus.OK

    return run_command(body)
