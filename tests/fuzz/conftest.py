"""The hostile-input harness: run the real CLI on one bad input and check it failed closed.

Every case of the fuzz suite ends the same way (issue 11): exit 2, no
traceback, one ``compaudit: error: ...`` line that names the file, and, for
faults, nothing a user made lost. :func:`fails_closed` asserts that in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit.cli import build_cli
from compaudit.population import Population, save_population


@dataclass(frozen=True)
class Run:
    """What one CLI run left behind."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("compaudit: error:")]


def run_cli(args: Sequence[str], *, cwd: Path | None = None) -> Run:
    """The real command line in-process (click's runner), stdout and stderr apart."""
    runner = CliRunner()
    if cwd is None:
        res = runner.invoke(build_cli(), [str(a) for a in args], catch_exceptions=True)
    else:
        with runner.isolated_filesystem(temp_dir=cwd):
            res = runner.invoke(build_cli(), [str(a) for a in args], catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"uncaught {type(res.exception).__name__}: {res.exception}")
    return Run(res.exit_code, res.stdout, res.stderr)


def fails_closed(args: Sequence[str], *, names: str | None = None, cwd: Path | None = None) -> Run:
    """Assert exit 2, no traceback, exactly one error line (naming ``names`` if given)."""
    run = run_cli(args, cwd=cwd)
    assert run.code == 2, (run.code, run.stdout[-2000:], run.stderr[-2000:])
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-2000:]
    assert "internal error" not in run.stderr, run.stderr[-2000:]
    assert len(run.error_lines) == 1, run.stderr[-2000:]
    if names is not None:
        assert names in run.error_lines[0], run.error_lines[0]
    return run


@pytest.fixture(scope="session")
def good_preds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid reference and candidate (K = 3, N = 600, 4 classes) to spoil one thing at a time."""
    rng = np.random.default_rng(11)
    n, c, k = 600, 4, 3
    y = rng.integers(0, c, n)
    ref = np.where(rng.random((k, n)) < 0.9, y, (y + 1) % c)
    cand = np.where(rng.random((k, n)) < 0.88, y, (y + 1) % c)
    d = tmp_path_factory.mktemp("good")
    out = {"ref": d / "ref.npz", "cand": d / "cand.npz"}
    save_population(Population.create(ref, y), out["ref"])
    save_population(Population.create(cand, y), out["cand"])
    return out
