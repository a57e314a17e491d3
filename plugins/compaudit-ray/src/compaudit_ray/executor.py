"""The driver side: submit member jobs as Ray tasks, relay progress, write results.

Each job is one Ray task that asks for ``threads`` CPUs (1 when unset) and,
for a member trained on CUDA, one GPU. The task returns the member's manifest
entry and the bytes of its files; the driver checks each file against the
sha256 its entry records, writes it into the run directory atomically and
only then reports the result, so the run directory is only ever written by
the driver and workers need no shared file system.

Retries: a task whose worker process or node dies is retried by Ray
(``max_retries``); an exception raised by the job itself (a bad recipe, a
non-finite loss) is not (``retry_exceptions=False``): it would fail again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from compaudit._io import atomic_write_bytes
from compaudit.errors import CompauditError
from compaudit.train.base import MemberJob, MemberResult, ProgressEvent, ProgressFn
from compaudit.train.influence import INFLUENCE_JOB
from compaudit.train.member import member_stem
from compaudit.train.recipe import load_data, recipe_from_dict
from compaudit_ray._task import Shipped, entry_files, run_member

__all__ = [
    "ERR_BAD_PATH",
    "ERR_HASH",
    "ERR_NO_GPU",
    "ERR_WORKER_LOST",
    "RayExecutor",
    "RayExecutorError",
    "task_resources",
]

ADDRESS_ENV = "RAY_ADDRESS"
"""Where ``ray.init`` connects (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``): Ray's variable."""

ERR_WORKER_LOST = (
    "member {job}: the Ray worker running it was lost {tries} times ({why}); "
    "re-run the same command to resume, or raise the cluster's memory"
)
ERR_HASH = (
    "member {job}: {path} arrived from the Ray worker with sha256 {got}, but its entry "
    "records {want}; re-run the same command to resume"
)
ERR_NO_GPU = (
    "member {job} is trained on CUDA and asks Ray for a GPU, but the cluster has none; "
    "train with --device cpu, or add GPU nodes to the cluster"
)
ERR_BAD_PATH = "member {job}: the Ray worker returned a file outside the run directory: {path}"

_POLL_S = 0.1
DEFAULT_MAX_RETRIES = 3


class RayExecutorError(CompauditError):
    """A member the cluster could not finish (its worker kept dying, a file arrived damaged)."""


def task_resources(job: MemberJob) -> dict[str, float]:
    """Ray resources of ``job``: ``num_cpus`` (its threads, 1 when unset) and ``num_gpus``.

    A member trained on CUDA asks for one GPU; quantized members are made on
    CPU (:mod:`compaudit.train.member`) and ask for none.
    """
    gpus = 0.0
    if job.device == "cuda":
        recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
        name = (
            recipe.influence.variant
            if job.variant == INFLUENCE_JOB and recipe.influence
            else job.variant
        )
        gpus = 0.0 if recipe.variant(name).kind == "quantize" else 1.0
    return {"num_cpus": float(job.threads or 1), "num_gpus": gpus}


def _inputs(job: MemberJob) -> dict[str, bytes]:
    """The files ``job`` reads: the member of its ``from`` variant (checkpoint and ONNX)."""
    if job.variant == INFLUENCE_JOB:
        return {}
    recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
    source = recipe.variant(job.variant).from_
    if source is None:
        return {}
    out: dict[str, bytes] = {}
    for suffix in (".ckpt", ".onnx"):
        path = member_stem(job.run_dir, source, job.member).with_suffix(suffix)
        if path.is_file():
            out[path.relative_to(job.run_dir).as_posix()] = path.read_bytes()
    return out


def _fingerprints(job: MemberJob) -> tuple[str, str]:
    recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
    train, evalset = load_data(recipe)  # cached: the run layer loaded them already
    return train.fingerprint(), evalset.fingerprint()


class _Relay:
    """Forward workers' progress once per job: a retried task starts again from 0,
    and a member counts as ended only when the driver has recorded it."""

    def __init__(self, on_progress: ProgressFn | None) -> None:
        self.on_progress = on_progress
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if self.on_progress is None or event.kind == "end":
            return
        if event.kind == "start":
            if event.job not in self.total:
                self.total[event.job] = event.total
                self.done[event.job] = 0
                self.on_progress(event)
            return
        if event.done > self.done.get(event.job, 0):
            self.done[event.job] = event.done
            self.on_progress(event)

    def end(self, job: str) -> None:
        if self.on_progress is not None:
            total = self.total.get(job, self.done.get(job, 0))
            self.on_progress(ProgressEvent("end", job, total, total))


class _Sink:
    """A Ray actor that holds progress events until the driver drains them."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def put(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def drain(self) -> list[ProgressEvent]:
        out, self.events = self.events, []
        return out


class RayExecutor:
    """Run member jobs as Ray tasks on the cluster at ``address`` (see module docstring).

    Parameters
    ----------
    address : str, optional
        Passed to ``ray.init`` when this process is not connected yet:
        ``auto`` (a cluster started on this machine with ``ray start``),
        ``HOST:PORT`` or ``ray://HOST:PORT``. Default: the ``RAY_ADDRESS``
        environment variable, else a local Ray instance on this machine.
    max_retries : int
        Times Ray re-runs a task whose worker died.
    """

    name = "ray"

    def __init__(
        self, *, address: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES
    ) -> None:
        self.address = address
        self.max_retries = max_retries

    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        address = self.address or os.environ.get(ADDRESS_ENV) or None
        # Workers' output would tear the progress bars; failures come back as exceptions.
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )

    def run(
        self,
        jobs: Sequence[MemberJob],
        *,
        workers: int = 1,
        on_result: Callable[[MemberResult], None],
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Run every job on the cluster; write and report each as it finishes.

        ``workers`` (``--jobs``) is not a limit here: the cluster's free CPUs
        and GPUs decide how many run at once. When a job fails, the others
        still run and are reported, then the first error is raised (the job's
        own exception, or :class:`RayExecutorError` when its worker kept dying).
        On an interrupt, or when a result cannot be recorded, every task is
        cancelled at once.
        """
        if not jobs:
            return
        import ray

        self._connect()
        needs = [(job, task_resources(job)) for job in jobs]
        gpu_job = next((job for job, res in needs if res["num_gpus"] > 0), None)
        cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        if gpu_job is not None and not cluster.get("GPU", 0):
            # Ray would wait for a GPU forever (an infeasible task): say so now.
            raise RayExecutorError(ERR_NO_GPU.format(job=gpu_job.key))
        remote = ray.remote(run_member)
        sink: Any = ray.remote(num_cpus=0)(_Sink).remote()
        relay = _Relay(on_progress)
        pending: dict[Any, MemberJob] = {}
        error: BaseException | None = None
        try:
            for job, res in needs:
                threads = job.threads or int(res["num_cpus"])
                ref = remote.options(
                    name=f"compaudit:{job.key}",
                    max_retries=self.max_retries,
                    retry_exceptions=False,
                    **res,
                ).remote(
                    # The task uses exactly the CPUs it reserved.
                    MemberJob(
                        job.run_dir, job.recipe, job.variant, job.member, job.device, threads
                    ),
                    _inputs(job),
                    _fingerprints(job),
                    sink,
                )
                pending[ref] = job
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
                _drain(ray, sink, relay)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        shipped: Shipped = ray.get(ref)
                    except Exception as exc:  # mapped below, raised after the others
                        if error is None:
                            error = self._failure(exc, job)
                        continue
                    _drain(ray, sink, relay)
                    _write(Path(job.run_dir), job, shipped)
                    relay.end(job.key)
                    on_result(shipped.result)
            _drain(ray, sink, relay)
        except BaseException:
            for ref in pending:  # an interrupt or a failed manifest write: stop the cluster's work
                ray.cancel(ref, force=True)
            raise
        finally:
            ray.kill(sink)
        if error is not None:
            raise error

    def _failure(self, exc: Exception, job: MemberJob) -> BaseException:
        """The job's own exception, or :class:`RayExecutorError` for a lost worker."""
        import ray.exceptions as rex

        if isinstance(exc, rex.RayTaskError):
            cause = exc.cause
            return cause if isinstance(cause, BaseException) else exc
        why = type(exc).__name__
        lost = RayExecutorError(
            ERR_WORKER_LOST.format(job=job.key, tries=self.max_retries + 1, why=why)
        )
        lost.__cause__ = exc
        return lost


def _drain(ray: Any, sink: Any, relay: _Relay) -> None:
    for event in ray.get(sink.drain.remote()):
        relay(event)


def _write(run_dir: Path, job: MemberJob, shipped: Shipped) -> None:
    """Write the task's files into ``run_dir`` atomically, each checked against its entry."""
    for rel, want in entry_files(shipped.result).items():
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or rel not in shipped.files:
            raise RayExecutorError(ERR_BAD_PATH.format(job=job.key, path=rel))
        data = shipped.files[rel]
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise RayExecutorError(ERR_HASH.format(job=job.key, path=rel, got=got, want=want))
        atomic_write_bytes(run_dir / rel, data)
