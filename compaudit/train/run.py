"""Train a recipe into a run directory, resuming where a previous run stopped."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from compaudit._io import WRITE_FAULTS, output_error
from compaudit.data.prep import PREP_FILE, write_prep
from compaudit.errors import CompauditWarning, InputError, ModelError
from compaudit.models.device import check_device
from compaudit.train.base import MemberJob, MemberResult
from compaudit.train.influence import (
    INFLUENCE_JOB,
    consolidate,
    pending_runs,
    record_run,
    subset_size,
)
from compaudit.train.manifest import (
    MANIFEST,
    RunInfo,
    check_compatible,
    load_run,
    member_finished,
    new_manifest,
    read_manifest,
    record_member,
    write_manifest,
)
from compaudit.train.progress import RunProgress
from compaudit.train.recipe import Recipe, load_data, load_recipe
from compaudit.train.registry import executor as get_executor
from compaudit.train.trainer import steps_per_epoch

__all__ = ["TrainingFailedError", "default_run_dir", "load_run", "plan", "train_recipe"]

ERR_NOT_RUN_DIR = (
    "{run}: exists, is not empty and is not a trainer run directory (no {manifest}); "
    "choose another --out"
)
ERR_END_STEP = (
    "recipe '{recipe}', variant '{variant}': prune.end_step = {end} is beyond the {total} "
    "optimizer steps of training ({epochs} epochs x {spe} steps of batch {bs} over {n} "
    "examples); lower end_step or train longer"
)


ERR_WARMUP = (
    "recipe '{recipe}', variant '{variant}': training.warmup_steps = {warmup} is beyond the "
    "{total} optimizer steps of its training; lower warmup_steps or train longer"
)
ERR_FAILED = (
    "{run}: {count} of {total} member(s) failed and were not recorded (the others were; "
    "re-running the command retries only the failed ones): {failures}"
)
ERR_SOURCE_FAILED = "variant '{variant}', member {member}: not made, its source {source} failed"
WARN_SPARSITY = (
    "variant '{variant}', member {member}: achieved {what} {achieved:.4f} differs from the "
    "target {target:.4f} by {points:.1f} points"
)
SPARSITY_TOLERANCE = 0.01
"""Achieved sparsity further than this from the target is warned about (1 point)."""


class TrainingFailedError(ModelError):
    """Members failed on their own account (a non-finite loss or weights).

    Raised once every other member has been trained and recorded; ``failures``
    maps ``(variant, member)`` to each one's message (influence runs under
    ``INFLUENCE_JOB``).
    """

    def __init__(self, message: str, failures: dict[tuple[str, int], str]) -> None:
        super().__init__(message)
        self.failures = failures

    def __reduce__(self) -> tuple[object, ...]:
        return (TrainingFailedError, (str(self), self.failures))


def _warn_sparsity(result: MemberResult) -> None:
    """One warning line when a pruned member's sparsity is off its target by over 1 point."""
    metrics = result.entry.get("metrics", {})
    target = metrics.get("target_sparsity")
    # Structured targets count units; the weight fraction is what unstructured ones count.
    what = "unit sparsity" if "unit_sparsity" in metrics else "sparsity"
    achieved = metrics.get("unit_sparsity", metrics.get("sparsity"))
    if not isinstance(target, float) or not isinstance(achieved, float):
        return
    if abs(achieved - target) > SPARSITY_TOLERANCE:
        warnings.warn(
            WARN_SPARSITY.format(
                variant=result.variant,
                member=result.member,
                what=what,
                achieved=achieved,
                target=target,
                points=abs(achieved - target) * 100,
            ),
            CompauditWarning,
            stacklevel=2,
        )


def default_run_dir(recipe: Recipe) -> Path:
    """``runs/<recipe name>`` under the current directory."""
    return Path("runs") / recipe.name


def _check_schedules(recipe: Recipe, n_train: int) -> None:
    checks = [(v, n_train, "") for v in recipe.variants]
    if recipe.influence is not None:  # its runs train on subsets: fewer steps
        n_sub = subset_size(recipe.influence, n_train)
        checks.append((recipe.variant(recipe.influence.variant), n_sub, " (influence runs)"))
    for v, n, what in checks:
        spe = steps_per_epoch(n, recipe.training.batch_size)
        epochs = v.epochs or recipe.training.epochs
        warmup = recipe.training.warmup_steps
        if v.kind != "quantize" and warmup > spe * epochs:
            # The learning rate would never reach its peak: a schedule that trains nothing.
            raise InputError(
                ERR_WARMUP.format(
                    recipe=recipe.name, variant=v.name + what, warmup=warmup, total=spe * epochs
                )
            )
        if v.prune is None:
            continue
        if v.prune.end_step > spe * epochs:
            raise InputError(
                ERR_END_STEP.format(
                    recipe=recipe.name,
                    variant=v.name + what,
                    end=v.prune.end_step,
                    total=spe * epochs,
                    epochs=epochs,
                    spe=spe,
                    bs=recipe.training.batch_size,
                    n=n,
                )
            )


STALE_TEMPORARIES = (
    f".{MANIFEST}.*.tmp",
    "*/.member-*.tmp",
    "*/member-*-inferred.onnx",
    "influence/.run-*.tmp",
    "influence/.runs.npz.*.tmp",
)
"""Left by writes that were cut short: atomic writes' temporaries, and the shape-inferred
copy ONNX Runtime's static quantizer writes beside its source (never a member's file)."""


def _remove_stale_temporaries(run_dir: Path) -> None:
    # Temporary files of writes that an interrupt, a SIGKILL or a full disk cut short.
    with contextlib.suppress(OSError):  # a run directory that cannot be listed has none
        for pattern in STALE_TEMPORARIES:
            for path in run_dir.glob(pattern):
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _reported_writes(run_dir: Path) -> Iterator[None]:
    """Leave no temporary behind, and turn a failed write into its one-line error.

    Pool workers stopped by an interrupt cannot clean up after themselves: the
    run directory is swept here once they are gone.
    """
    try:
        yield
    except BaseException as exc:
        _remove_stale_temporaries(run_dir)
        if isinstance(exc, OSError) and exc.errno in WRITE_FAULTS:
            raise output_error(exc, exc.filename or run_dir, option="--out") from exc
        raise


def plan(recipe: Recipe, run_dir: Path, manifest: dict[str, object]) -> list[list[tuple[str, int]]]:
    """Pending ``(variant, member)`` pairs in waves; a wave depends only on earlier ones.

    A member is pending when it is not finished, or when the member it
    derives from is pending (its source will be re-made, so it must be too).
    """
    variants = manifest.get("variants", {})
    assert isinstance(variants, dict)
    depth: dict[str, int] = {}
    pending: set[tuple[str, int]] = set()
    for v in recipe.order():
        depth[v.name] = 0 if v.from_ is None else depth[v.from_] + 1
        entries = variants.get(v.name, {}).get("members", {})
        for i in range(recipe.k):
            stale = v.from_ is not None and (v.from_, i) in pending
            if stale or not member_finished(run_dir, entries.get(str(i))):
                pending.add((v.name, i))
    waves: list[list[tuple[str, int]]] = [[] for _ in range(max(depth.values()) + 1)]
    for v in recipe.variants:
        waves[depth[v.name]] += [(v.name, i) for i in range(recipe.k) if (v.name, i) in pending]
    return [w for w in waves if w]


def train_recipe(
    recipe: Recipe | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    jobs: int = 1,
    device: str = "auto",
    progress: bool = True,
    executor: str | None = None,
    threads: int | None = None,
) -> RunInfo:
    """Train every member of every variant of ``recipe`` into ``out_dir``.

    Re-running with the same recipe and directory resumes: finished members
    (manifest entry present, files hash-matching) are skipped, and so are
    finished influence runs (recipe section ``influence``, see
    :mod:`compaudit.train.influence`); those are trained after the members,
    through the same executor, then consolidated into ``influence/runs.npz``. Adding
    variants or raising ``k`` also resumes; any other change is an error
    naming the changed variant (train into a new directory instead).

    Parameters
    ----------
    recipe : Recipe or path
        A recipe or its YAML file.
    out_dir : path, optional
        The run directory; default ``runs/<recipe name>``.
    jobs : int
        Members trained at once; more than 1 uses the process pool.
    device : {"auto", "cpu", "cuda"}
        Where to train (``auto``: CUDA when present). Quantized members are
        always made and evaluated on CPU.
    progress : bool
        Show rich progress bars.
    executor : str, optional
        Executor name from the registry (default ``local``, or ``pool`` when
        ``jobs > 1``).
    threads : int, optional
        Torch threads per member job. Default: in process, 1 when a training
        step is small (under ``trainer.SMALL_STEP_MACS``), else torch's own
        choice (every core); in a pool, ``cpu_count // jobs``. On the idle
        2-core machine 2 members side by side at 1 thread each took 0.66-0.73x
        the time of one after another at 2 threads: use ``jobs`` = cores for
        populations whose members take more than a few seconds.

    Returns
    -------
    RunInfo
        The finished run (what ``compaudit report RUN_DIR`` reads).

    Raises
    ------
    TrainingFailedError
        Some members diverged (a non-finite loss or weights; each named with
        its step and the likely fix), or derive from one that did. Raised after
        every other member was trained and recorded; the failed ones are not,
        so re-running retries them.
    OutputError
        A file of the run could not be written (a full or read-only disk, a
        file size limit): named, with the cause. Members already recorded
        are kept and nothing half-written is left; re-running resumes.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
    dev = check_device(device, subject=f"recipe '{recipe.name}'", allow_auto=True)
    train, evalset = load_data(recipe)
    _check_schedules(recipe, train.n)
    data = {
        "train": recipe.dataset.spec(recipe.dataset.train),
        "eval": recipe.dataset.spec(recipe.dataset.eval),
        "train_n": train.n,
        "eval_n": evalset.n,
        "train_fingerprint": train.fingerprint(),
        "eval_fingerprint": evalset.fingerprint(),
    }
    try:
        manifest = read_manifest(run_dir)
        foreign = run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir()))
    except OSError as exc:  # --out itself is unusable (a name too long, say)
        raise output_error(exc, run_dir, option="--out") from exc
    if manifest is None and foreign:
        raise InputError(ERR_NOT_RUN_DIR.format(run=run_dir, manifest=MANIFEST))
    _remove_stale_temporaries(run_dir)
    if manifest is None:
        manifest = new_manifest(recipe, data)
    else:
        check_compatible(run_dir, manifest, recipe, data)
        manifest["recipe"] = recipe.to_dict()
        manifest["reference"] = recipe.reference_variant
    # Every write below checks its result; one that fails (a full disk, a read-only
    # one) ends the run with exit 2 naming the file, and a re-run resumes from there.
    with _reported_writes(run_dir):
        write_manifest(run_dir, manifest)
        # The preprocessing fitted on train, which `compaudit report RUN_DIR` applies to
        # the eval data (and any --data), so audits see what the trainer evaluated.
        write_prep(
            run_dir / PREP_FILE,
            train.preprocessing,
            fitted_on=recipe.dataset.spec(recipe.dataset.train),
        )

        waves: list[list[tuple[str, int]]] = plan(recipe, run_dir, manifest)
        influence_runs = pending_runs(recipe, run_dir, manifest)
        if influence_runs:  # independent of the members: one more wave
            waves.append([(INFLUENCE_JOB, r) for r in influence_runs])
        if threads is None and jobs > 1:
            threads = max(1, (os.cpu_count() or 1) // jobs)
        runner = get_executor(executor or ("pool" if jobs > 1 else "local"))
        recipe_dict = recipe.to_dict()

        def units(variant: str) -> int:
            if variant == INFLUENCE_JOB:
                assert recipe.influence is not None
                variant = recipe.influence.variant
            v = recipe.variant(variant)
            return 1 if v.kind == "quantize" else v.epochs or recipe.training.epochs

        total_units = sum(units(v) for wave in waves for v, _ in wave)
        total_members = sum(len(w) for w in waves)

        failed: dict[tuple[str, int], str] = {}

        def on_result(result: MemberResult) -> None:
            if result.error is not None:  # diverged: not recorded, so a re-run retries it
                failed[(result.variant, result.member)] = result.error
            elif result.variant == INFLUENCE_JOB:
                record_run(run_dir, manifest, recipe, result.entry)
            else:
                _warn_sparsity(result)
                record_member(run_dir, manifest, recipe, result.variant, result.entry)

        with RunProgress(total_units, total_members, enabled=progress) as bars:
            for wave in waves:
                member_jobs = []
                for v, i in wave:
                    source = None if v == INFLUENCE_JOB else recipe.variant(v).from_
                    if source is not None and (source, i) in failed:
                        failed[(v, i)] = ERR_SOURCE_FAILED.format(
                            variant=v, member=i, source=f"{source}/{i}"
                        )
                        continue
                    member_jobs.append(MemberJob(str(run_dir), recipe_dict, v, i, dev, threads))
                runner.run(
                    member_jobs,
                    workers=jobs,
                    on_result=on_result,
                    on_progress=bars.on_progress if progress else None,
                )
        consolidate(run_dir, manifest, recipe)
    if failed:
        raise TrainingFailedError(
            ERR_FAILED.format(
                run=run_dir,
                count=len(failed),
                total=total_members,
                failures=" | ".join(failed.values()),
            ),
            dict(failed),
        )
    return load_run(run_dir)
