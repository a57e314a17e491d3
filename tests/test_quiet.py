"""A quiet library: warnings and logs instead of prints, progress bars that obey ``-q``.

Library code never writes to stdout or stderr itself: it warns
(:class:`~compaudit.errors.CompauditWarning`) or logs (logger ``compaudit``),
and the CLI renders both, or nothing under ``-q``. Every progress bar asks
:func:`compaudit._io.progress_enabled`.
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rich.console
import rich.progress
from click.testing import CliRunner

from compaudit import _io, cli
from compaudit.cache import WARN_CORRUPT, PredictionCache
from compaudit.data import _common, lookup
from compaudit.errors import CompauditWarning
from compaudit.models import inference
from compaudit.models.base import Prediction
from compaudit.population import Population, save_population
from compaudit.train.progress import RunProgress

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compaudit"
KEY = "ab" + "0" * 62

# Where writing to the terminal is the job: the command line (and ``python -m``).
CONSOLE_MODULES = ("cli/", "__main__.py")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger_level() -> Iterator[logging.Logger]:
    """The ``compaudit`` logger, its level restored afterwards."""
    logger = logging.getLogger(_io.LOGGER)
    saved = logger.level
    yield logger
    logger.setLevel(saved)


@pytest.fixture(scope="module")
def preds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n, classes, k = 600, 5, 3
    y = rng.integers(0, classes, n)
    d = tmp_path_factory.mktemp("preds")
    paths = {}
    for name, error in (("ref", 0.05), ("cand", 0.08)):
        wrong = rng.random((k, n)) < error
        noise = (y[None, :] + rng.integers(1, classes, (k, n))) % classes
        paths[name] = d / f"{name}.npz"
        save_population(
            Population.create(predictions=np.where(wrong, noise, y[None, :]), y=y), paths[name]
        )
    return paths


# -- the CLI ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_report_writes_nothing_to_stderr(
    preds: dict[str, Path], tmp_path: Path, where: str
) -> None:
    args = ["report", "-r", str(preds["ref"]), "-c", f"cand={preds['cand']}"]
    args += ["--out", str(tmp_path), "--format", "terminal,json,md"]
    loud = CliRunner().invoke(cli.build_cli(), args)
    assert loud.exit_code == 0, loud.output
    assert "wrote " in loud.stderr  # stderr is captured: -q is what silences it
    quiet_args = ["-q", *args] if where == "before" else [*args, "-q"]
    res = CliRunner().invoke(cli.build_cli(), quiet_args)
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert "cand" in res.stdout  # the result still shows
    assert (tmp_path / "report.json").is_file()


def _damaged_cache(directory: Path) -> PredictionCache:
    store = PredictionCache(directory)
    path = store.put(KEY, Prediction(topk=np.zeros((4, 2), int), probs=np.ones((4, 2))))
    assert path is not None
    path.write_bytes(b"not an npz")
    return store


def _cache_command(directory: Path) -> Any:
    @cli.command("read-cache")
    def read_cache() -> None:
        assert _damaged_cache(directory).get(KEY) is None

    return read_cache


def test_cache_warning_goes_through_warnings_and_the_cli_renders_it(tmp_path: Path) -> None:
    with pytest.warns(CompauditWarning) as record:
        assert _damaged_cache(tmp_path / "lib").get(KEY) is None
    [warning] = record
    path = PredictionCache(tmp_path / "lib").path(KEY)
    assert str(warning.message).startswith(WARN_CORRUPT.format(path=path, reason="X")[:40])

    res = CliRunner().invoke(_cache_command(tmp_path / "cli"), [])
    assert res.exit_code == 0, res.output
    [line] = res.stderr.splitlines()
    assert line.startswith("compaudit: warning: prediction cache entry ")
    assert line.endswith("; deleted it, recomputing")
    assert res.stdout == ""

    res = CliRunner().invoke(_cache_command(tmp_path / "quiet"), ["-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert res.stdout == ""


def test_library_code_does_not_print() -> None:
    """No ``print``, ``sys.stdout/stderr.write`` or ``click.echo`` outside the CLI."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(CONSOLE_MODULES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in {"print", "click.echo", "sys.stderr.write", "sys.stdout.write"}:
                found.append(f"{rel}:{node.lineno}: {name}")
    assert found == []


# -- progress bars -----------------------------------------------------------------------


def test_progress_enabled_follows_the_logger_and_the_terminal(
    logger_level: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", _Tty())
    logger_level.setLevel(logging.INFO)
    assert _io.progress_enabled()
    logger_level.setLevel(logging.ERROR)  # what -q sets
    assert not _io.progress_enabled()
    assert not _io.progress_enabled(terminal=False)
    logger_level.setLevel(logging.DEBUG)  # -v
    assert _io.progress_enabled()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not _io.progress_enabled()
    assert _io.progress_enabled(terminal=False)
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, closed stderr
    assert not _io.progress_enabled()


def test_every_progress_bar_is_off_when_quiet(
    logger_level: logging.Logger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stderr", _Tty())
    logger_level.setLevel(logging.ERROR)
    assert inference._progress(10**7).disable
    assert not RunProgress(10, 2, enabled=True).enabled

    def no_bar(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a progress bar was made")

    monkeypatch.setattr(_common, "Progress", no_bar)
    items = list(range(_common.PROGRESS_MIN_ITEMS + 1))
    assert list(_common.progress(items, total=len(items), description="x")) == items

    made: list[bool] = []
    real = rich.progress.Progress

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs["disable"])
        return real(*args, **kwargs)

    content = b"x" * 1000
    remote = lookup.Remote(
        "f.bin", "https://example.invalid/f", hashlib.sha256(content).hexdigest()
    )
    monkeypatch.setattr(lookup, "Progress", spy)
    monkeypatch.setattr(lookup, "_urlopen", lambda url, timeout: io.BytesIO(content))
    assert lookup.download(remote, tmp_path).read_bytes() == content
    assert made == [True]

    logger_level.setLevel(logging.INFO)
    assert RunProgress(10, 2, enabled=True).enabled
    assert not RunProgress(10, 2, enabled=False).enabled


@pytest.mark.parametrize("terminal", [False, True])
def test_training_into_a_log_prints_a_line_per_finished_member(
    logger_level: logging.Logger, terminal: bool
) -> None:
    """CI logs get no live bar: without a line per member a long run is silent until it
    ends (and a no-output timeout kills it); a terminal gets the bar alone."""
    from compaudit.train.base import ProgressEvent

    logger_level.setLevel(logging.INFO)
    buf = io.StringIO()
    console = rich.console.Console(file=buf, force_terminal=terminal, width=100)
    with RunProgress(4, 2, console=console) as bars:
        for job in ("dense/0", "dense/1"):
            bars.on_progress(ProgressEvent("start", job, total=2))
            bars.on_progress(ProgressEvent("epoch", job, done=2, total=2))
            bars.on_progress(ProgressEvent("end", job, done=2, total=2))
    lines = [line for line in buf.getvalue().splitlines() if line.startswith("finished")]
    if terminal:
        assert lines == []
    else:
        assert [line.split(" s)")[0].rsplit(",", 1)[0] for line in lines] == [
            "finished dense/0 (1/2 members",
            "finished dense/1 (2/2 members",
        ]
