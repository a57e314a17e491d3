"""The README's "File formats" examples run as written, in order, in one folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from compaudit.cli import build_cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## File formats\n", 1)[1].split("\n## ", 1)[0]
    return [(m[0], m[1]) for m in re.findall(r"```(python|bash|json)\n(.*?)```", section, re.S)]


def test_the_section_has_examples_of_every_format() -> None:
    kinds = [k for k, _ in _blocks()]
    assert kinds.count("python") >= 6
    assert kinds.count("bash") >= 2
    text = README.read_text(encoding="utf-8").split("\n## File formats\n", 1)[1]
    for heading in ("Predictions `.npz`", "Data `.npz`", "CSV tables", "Image folders"):
        assert f"### {heading}" in text
    for heading in ("Attributes CSV", "Prep files", "Subsets"):
        assert f"### {heading}" in text


def test_file_format_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_formats"}
    ran = 0
    for kind, code in _blocks():
        if kind == "python":
            exec(compile(code, f"{README}:File formats", "exec"), namespace)
            ran += 1
        elif kind == "bash":
            for line in code.splitlines():
                if line.startswith("compaudit "):
                    res = CliRunner().invoke(build_cli(), shlex.split(line)[1:])
                    assert res.exit_code == 0, (line, res.output)
                    ran += 1
    assert ran >= 8
    assert (tmp_path / "out" / "report.json").is_file()
    assert (tmp_path / "prep.json").is_file()
