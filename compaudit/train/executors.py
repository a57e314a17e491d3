"""Executors: where member jobs run.

* ``local`` (default): one after another in this process.
* ``pool``: a local process pool (``--jobs N``; ``spawn`` start method, so
  workers share nothing with the parent but the job); each worker limits
  torch to ``cpu_count // N`` threads so N workers do not oversubscribe.

A distributed engine plugs in through the ``register_executors`` hook with
an object that has the same ``run`` method (see
:class:`compaudit.train.base.Executor`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import queue
import signal
from collections.abc import Callable, Sequence
from typing import Any

from compaudit.train.base import MemberJob, MemberResult, ProgressEvent, ProgressFn
from compaudit.train.member import run_job

__all__ = ["InProcessExecutor", "ProcessPoolExecutor"]

_POLL_S = 0.1


class InProcessExecutor:
    """Run jobs one by one in the calling process."""

    name = "local"

    def run(
        self,
        jobs: Sequence[MemberJob],
        *,
        workers: int = 1,
        on_result: Callable[[MemberResult], None],
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Run each job and report it before starting the next."""
        for job in jobs:
            on_result(run_job(job, on_progress))


# -- process pool ---------------------------------------------------------------
_QUEUE: Any = None  # the worker's end of the progress queue


def _init_worker(progress_queue: Any) -> None:
    global _QUEUE
    _QUEUE = progress_queue
    # The parent decides what an interrupt does (it stops the workers, then sweeps their
    # temporaries): Ctrl-C reaches every process of the terminal's group, and a worker
    # must not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _put(event: ProgressEvent) -> None:
    if _QUEUE is not None:
        _QUEUE.put(event)


def _run_in_worker(job: MemberJob) -> MemberResult:
    return run_job(job, _put)


class ProcessPoolExecutor:
    """Run jobs in a pool of ``workers`` spawned processes."""

    name = "pool"

    def run(
        self,
        jobs: Sequence[MemberJob],
        *,
        workers: int = 2,
        on_result: Callable[[MemberResult], None],
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Run the jobs concurrently; report each as it finishes.

        On the first failure, jobs not yet started are cancelled, running ones
        are allowed to finish (and are reported), then the error is raised. On
        an interrupt (or a failure to record a result) the workers are
        terminated at once; the caller sweeps the temporaries they leave.
        """
        if not jobs:
            return
        ctx = mp.get_context("spawn")
        progress_queue = ctx.Queue()
        error: BaseException | None = None
        pool = cf.ProcessPoolExecutor(
            max_workers=max(1, min(workers, len(jobs))),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(progress_queue,),
        )
        try:
            pending = {pool.submit(_run_in_worker, job) for job in jobs}
            while pending:
                done, pending = cf.wait(pending, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
                _drain(progress_queue, on_progress)
                for fut in done:
                    if fut.cancelled():
                        continue
                    exc = fut.exception()
                    if exc is not None:
                        if error is None:
                            error = exc
                            for other in pending:
                                other.cancel()
                        continue
                    on_result(fut.result())
            _drain(progress_queue, on_progress)
        except BaseException:
            _stop_workers(pool)  # an interrupt or a failed manifest write: members in
            raise  # progress are abandoned (a re-run makes them), not awaited
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            progress_queue.close()
        if error is not None:
            raise error


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Terminate the pool's processes (SIGTERM: a worker dies at once, mid-write or not)."""
    stop = getattr(pool, "terminate_workers", None)  # Python 3.14
    if stop is not None:
        stop()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


def _drain(progress_queue: Any, on_progress: ProgressFn | None) -> None:
    while True:
        try:
            event = progress_queue.get_nowait()
        except queue.Empty:
            return
        if on_progress is not None:
            on_progress(event)
