"""One BLAS thread for the audit: the CLI's default, the user's choice kept, restored after.

Extra OpenBLAS threads only spin on the audit's small products (about 0.5 s of CPU in
the ImageNet-scale ``compaudit report`` on 2 cores): the command runs numpy's and
scipy's OpenBLAS with one thread unless ``OPENBLAS_NUM_THREADS`` is set, and
``audit()`` limits BLAS to one thread while it runs and restores the caller's setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from compaudit import engine
from compaudit.cli import BLAS_THREADS_VAR
from compaudit.population import Population

# What the CLI's main() does first, then numpy's BLAS thread count, in a fresh interpreter.
_PROBE = """
import json, os
from compaudit.cli import _one_blas_thread
_one_blas_thread()
import numpy
from threadpoolctl import threadpool_info
blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({"env": os.environ.get(%r), "threads": blas}))
"""


def _probe(env_value: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in (BLAS_THREADS_VAR, "OMP_NUM_THREADS")}
    if env_value is not None:
        env[BLAS_THREADS_VAR] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _PROBE % BLAS_THREADS_VAR],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_cli_runs_blas_on_one_thread_by_default() -> None:
    seen = _probe(None)
    assert seen["env"] == "1"
    assert seen["threads"] == [1]


def test_the_users_thread_count_is_kept() -> None:
    seen = _probe("2")
    assert seen["env"] == "2"
    assert seen["threads"] == [2]


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def test_audit_runs_on_one_blas_thread_and_restores_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    ref = Population.create(np.where(rng.random((4, 200)) < 0.8, y, 0), y)
    cand = Population.create(np.where(rng.random((4, 200)) < 0.7, y, 0), y)
    seen: list[list[int]] = []
    compare = engine.compare

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(_blas_threads())
        return compare(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "compare", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        engine.audit(ref, {"cand": cand})
        after = _blas_threads()
    assert seen
    assert all(threads == [1] * len(threads) for threads in seen)
    assert after == before
