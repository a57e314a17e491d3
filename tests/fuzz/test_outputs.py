"""Outputs that cannot disagree: ``--out`` holds one run's report files, never a mix.

Issue 11, part 4. Every case runs the real CLI twice into the same ``--out``
(a first, complete run, then one that writes fewer formats, fails or is
interrupted) and checks what a reader finds afterwards: the new set, or the
old one byte for byte, with no file from the other, no staging directory and
no temporary; files that are not compaudit's are never touched.
"""

from __future__ import annotations

import errno
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compaudit._io import (
    ERR_WRITE,
    FIX_SPACE,
    SET_FORMAT,
    SET_MARKER,
)
from compaudit.report.html import HTMLReporter
from tests.conftest import gated_predictions

from .conftest import fails_closed, run_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "examples" / "policies" / "digits-demo.yaml"
ALL_FORMATS = "json,md,html,junit"
REPORT_FILES = {"report.json", "report.md", "report.html", "junit.xml"}


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A reference, a candidate that passes ``digits-demo.yaml`` and one that fails it."""
    return gated_predictions(tmp_path_factory.mktemp("gated"), ("ref", "pass", "fail"))


def check_args(gated: dict[str, Path], cand: str, out: Path, formats: str) -> list[str]:
    return [
        "check", "-r", str(gated["ref"]), "-c", f"int8={gated[cand]}",
        "-p", str(DEMO_POLICY), "--paired", "-f", formats, "--out", str(out),
    ]  # fmt: skip


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (hidden ones included) by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def leftovers(out: Path) -> list[str]:
    """Staging directories and temporaries a run left in ``out``."""
    return sorted(
        p.name
        for p in out.iterdir()
        if p.name.startswith(".compaudit-staging-") or ".tmp" in p.name
    )


def verdicts(out: Path) -> dict[str, str]:
    """What each report file in ``out`` says the verdict is (a set must agree)."""
    said: dict[str, str] = {}
    if (out / "report.json").is_file():
        said["report.json"] = json.loads((out / "report.json").read_text())["verdict"]
    if (out / "report.md").is_file():  # "## compaudit: ❌ FAIL"
        heading = (out / "report.md").read_text().splitlines()[0]
        said["report.md"] = heading.split()[-1].lower()
    if (out / "report.html").is_file():  # "<title>compaudit report: FAIL"
        found = re.search(r"<title>compaudit report: (\w+)", (out / "report.html").read_text())
        assert found is not None
        said["report.html"] = found.group(1).lower()
    if (out / "junit.xml").is_file():
        suites = ET.parse(out / "junit.xml").getroot()
        errors, failures = int(suites.get("errors", 0)), int(suites.get("failures", 0))
        said["junit.xml"] = "error" if errors else "fail" if failures else "pass"
    return said


# -- a second run that writes less, fails or stops -----------------------------------------


def _fewer(gated: dict[str, Path], out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_cli(check_args(gated, "pass", out, "json"))
    assert run.code == 0, run.stderr


def _error(gated: dict[str, Path], out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = out.parent / "bad.npz"
    bad.write_bytes(b"not an npz")
    args = check_args(gated, "pass", out, ALL_FORMATS)
    args[args.index("-c") + 1] = f"int8={bad}"
    fails_closed(args, names=str(bad))


CHANGED_RUNS: dict[str, Callable[[dict[str, Path], Path, pytest.MonkeyPatch], None]] = {
    "fewer-formats-leave-no-stale-html-saying-fail": _fewer,
    "error-report-replaces-a-failing-set": _error,
}


@pytest.mark.parametrize("second", list(CHANGED_RUNS), ids=list(CHANGED_RUNS))
def test_second_run_replaces_the_whole_set(
    second: str, gated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    first = run_cli(check_args(gated, "fail", out, ALL_FORMATS))
    assert first.code == 1, first.stderr
    assert set(verdicts(out).values()) == {"fail"}
    CHANGED_RUNS[second](gated, out, monkeypatch)
    said = verdicts(out)
    assert len(set(said.values())) == 1, said  # every file says the same thing
    assert "fail" not in said.values(), said
    marker = json.loads((out / SET_MARKER).read_text())
    assert marker["format"] == SET_FORMAT
    assert set(marker["files"]) == set(said)  # the marker lists exactly the set
    assert leftovers(out) == []


def _interrupt_html(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Any, *args: Any, **kw: Any) -> Path | None:
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM, the same path) while report.html is written

    monkeypatch.setattr(HTMLReporter, "write", interrupted)


def _fill_disk_at_html(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Any, *args: Any, **kw: Any) -> Path | None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(HTMLReporter, "write", full)


def _fail_commit_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three of the four files are in place when the fourth rename fails: all are undone.
    real = os.replace

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        if Path(dst).name == "report.md" and not Path(dst).parent.name.startswith(".compaudit"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(src), None, os.fspath(dst))
        real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)


STOPPED_RUNS = {
    "interrupted-while-writing-html-keeps-old-set": _interrupt_html,
    "disk-full-at-html-keeps-old-set": _fill_disk_at_html,
    "commit-failing-at-the-last-file-keeps-old-set": _fail_commit_midway,
}


@pytest.mark.parametrize("stop", list(STOPPED_RUNS), ids=list(STOPPED_RUNS))
def test_stopped_run_leaves_the_old_set_byte_for_byte(
    stop: str, gated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # report (no error report): a run that cannot finish leaves the old set as it was.
    out = tmp_path / "report"

    def report(cand: str) -> list[str]:
        args = check_args(gated, cand, out, ALL_FORMATS)
        return ["report", *args[1:]]  # the same inputs; report writes no error report

    first = run_cli(report("fail"))
    assert first.code == 0, first.stderr
    before = snapshot(out)
    STOPPED_RUNS[stop](monkeypatch)
    args = report("pass")
    if stop.startswith("interrupted"):
        run = run_cli(args)
        assert run.code == 2
        assert run.stderr.strip().splitlines()[-1] == "compaudit: interrupted"
    elif stop.startswith("disk-full"):
        run = fails_closed(args)
        expected = ERR_WRITE.format(
            path=out / "report.html",
            cause="no space left on device",
            code="ENOSPC",
            fix=FIX_SPACE.format(option="--out"),
        )
        assert run.error_lines == [f"compaudit: error: {expected}"]
    else:
        run = fails_closed(args, names=f"{out / 'report.md'}: input/output error (EIO)")
    assert snapshot(out) == before
    assert leftovers(out) == []


def test_check_whose_html_cannot_be_written_leaves_an_error_set(
    gated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    assert run_cli(check_args(gated, "pass", out, ALL_FORMATS)).code == 0
    _fill_disk_at_html(monkeypatch)
    fails_closed(check_args(gated, "fail", out, ALL_FORMATS), names=str(out / "report.html"))
    # The error report took the set's place: nothing says pass, nothing is half there.
    assert verdicts(out) == {"report.json": "error", "report.md": "error", "junit.xml": "error"}
    assert leftovers(out) == []


# -- what is not compaudit's stays (guards of the new removal: they pass on the old code) ------


def test_files_that_are_not_compaudits_are_kept(gated: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("# my own report, not generated\n")  # a name, not a claim
    (out / "sub").mkdir()
    (out / "sub" / "report.html").write_text("compaudit")
    assert run_cli(check_args(gated, "pass", out, "json")).code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "report.md").read_text() == "# my own report, not generated\n"
    assert (out / "sub" / "report.html").read_text() == "compaudit"


def test_a_hostile_marker_removes_nothing(gated: dict[str, Path], tmp_path: Path) -> None:
    # The marker lies in a directory a pull request may have filled.
    out = tmp_path / "repo" / "report"
    out.mkdir(parents=True)
    victim = tmp_path / "repo" / "setup.py"
    victim.write_text("keep me")
    (out / "notes.txt").write_text("mine")
    os.symlink(victim, out / "link.py")
    files = {"../setup.py": "0" * 64, "notes.txt": "0" * 64, "link.py": "0" * 64, str(victim): ""}
    (out / SET_MARKER).write_text(json.dumps({"format": SET_FORMAT, "files": files}))
    assert run_cli(check_args(gated, "pass", out, "json")).code == 0
    assert victim.read_text() == "keep me"
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "link.py").is_symlink()
