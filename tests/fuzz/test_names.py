"""Hostile names end to end: text is text (issue 11, part 7).

Class names, example ids, attribute names and values, candidate names and
file names come from pull requests. Each case writes real predictions files
holding one hostile string and runs ``compaudit report`` with every format:

* terminal and ``report.md``: no raw control character (no ESC: no screen
  clear, no retitle, no hyperlink), rich markup shown as text, the name shown
  escaped (``\\x1b``); Markdown and GitHub math characters escaped;
* ``junit.xml`` parses, every character of it XML; ``report.html`` escaped,
  with its per-class figure (matplotlib, no mathtext) drawn;
* ``report.json`` keeps the original string exactly: JSON is data, not display.

The CLI's own one-line error messages quote file names: those cases fail
closed with the name shown escaped.
"""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import pytest

from compaudit._text import for_html, for_markdown, for_terminal
from compaudit.cli import decide_exit
from compaudit.population import Population, save_population

from .conftest import Run, fails_closed, run_cli

Where = Literal["class", "id", "attribute", "group", "candidate", "file"]
FORMATS = "terminal,json,md,html,junit"
PNG_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
SVG_CHART = re.compile(r"<svg class='plot(?:-curve)?'.*?</svg>", re.DOTALL)


@dataclass(frozen=True)
class Case:
    """One hostile string and where the predictions put it."""

    where: Where
    text: str


CASES = {
    "class-ansi-clear-screen": Case("class", "\x1b[2J\x1b[H"),
    "class-osc-retitle-terminal": Case("class", "\x1b]0;PWNED\x07"),
    "class-c1-csi": Case("class", "\x9b31mred"),
    "class-nul-del": Case("class", "a\x00b\x7f"),
    "class-bidi-override": Case("class", "\u202egnp.exe"),
    "class-github-math": Case("class", "$x^2$"),
    "id-ansi-clear-screen": Case("id", "\x1b[2J"),
    "attribute-rich-close-tag": Case("attribute", "[/]"),
    "attribute-rich-markup": Case("attribute", "[red]sex"),
    "attribute-osc8-hyperlink": Case("attribute", "\x1b]8;;http://x.test/\x07a"),
    "group-value-ansi-colour": Case("group", "\x1b[31mF"),
    "candidate-mathtext": Case("candidate", "$\\frac{$"),
    "candidate-ansi-clear-screen": Case("candidate", "\x1b[2Jc"),
    "file-name-not-utf8": Case("file", os.fsdecode(b"cand\xff")),
    "file-name-ansi-terminal-reset": Case("file", "cand\x1bc"),  # ESC c: full reset
}


def _unsafe(text: str) -> list[str]:
    """Characters that must not reach a terminal or a document raw (newlines may)."""
    return sorted(
        {
            ch
            for ch in text
            if ch != "\n"
            and (unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u202a\u202b\u202c\u202d\u202e")
        }
    )


def _strings(obj: Any) -> Iterator[str]:
    """Every string (keys too) of a JSON document."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _write(case: Case, directory: Path) -> tuple[Path, str]:
    """Reference and candidate predictions holding ``case.text``; the candidate argument."""
    rng = np.random.default_rng(7)
    n, c, k = 600, 4, 3
    y = rng.integers(0, c, n)
    ref = np.where(rng.random((k, n)) < 0.9, y, (y + 1) % c)
    cand = np.where(rng.random((k, n)) < 0.75, y, (y + 1) % c)
    text = case.text
    names = [text if case.where == "class" else "a", "b", "c", "d"]
    ids = np.array([f"{text}{i}" if case.where == "id" else f"e{i}" for i in range(n)])
    attr = text if case.where == "attribute" else "sex"
    value = text if case.where == "group" else "M"
    attrs = {attr: np.where(rng.random(n) < 0.5, value, "F2")}
    directory.mkdir()
    save_population(
        Population.create(ref, y, class_names=names, ids=ids, attributes=attrs),
        directory / "ref.npz",
    )
    stem = text if case.where == "file" else "cand"
    cand_path = directory / f"{stem}.npz"
    save_population(Population.create(cand, y, class_names=names, ids=ids), cand_path)
    arg = f"{text}={cand_path}" if case.where == "candidate" else str(cand_path)
    return directory / "ref.npz", arg


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def reported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Case, Run, Path]:
    """One hostile case through ``compaudit report`` with every format (run once per case)."""
    case = CASES[request.param]
    work = tmp_path_factory.mktemp("names")
    ref, cand = _write(case, work / "preds")
    run = run_cli(["report", "-r", str(ref), "-c", cand, "-f", FORMATS, "-o", str(work / "out")])
    assert run.code == 0, (run.stdout[-2000:], run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr
    assert "internal error" not in run.stderr, run.stderr
    return case, run, work / "out"


def test_terminal_shows_the_name_as_escaped_text(reported: tuple[Case, Run, Path]) -> None:
    case, run, _ = reported
    assert _unsafe(run.stdout) == []
    assert _unsafe(run.stderr) == []
    shown = for_terminal(case.text)
    if case.where == "attribute":  # titles: shown whole, as text, never as markup
        assert f"Worst groups ({shown})" in run.stdout
    elif case.where in ("candidate", "file"):
        assert f"{shown} vs reference" in run.stdout


def test_markdown_escapes_the_name(reported: tuple[Case, Run, Path]) -> None:
    case, _, out = reported
    md = (out / "report.md").read_text("utf-8")
    assert _unsafe(md) == []
    assert re.search(r"(?<!\\)\$", md) is None  # no GitHub math
    if case.where != "id":  # ids are not in the Markdown summary
        shown = for_markdown(case.text)
        assert shown in md or for_markdown(case.text, code=True) in md


def test_junit_is_valid_xml(reported: tuple[Case, Run, Path]) -> None:
    _, _, out = reported
    body = (out / "junit.xml").read_bytes()
    root = ET.fromstring(body)  # raises on a character XML cannot carry
    texts = [root.text or "", *(v for e in root.iter() for v in (e.text or "", *e.attrib.values()))]
    assert _unsafe("".join(texts)) == []


def test_html_is_escaped_and_draws_its_figures(reported: tuple[Case, Run, Path]) -> None:
    case, _, out = reported
    page = (out / "report.html").read_text("utf-8")
    assert _unsafe(page) == []
    assert for_html(case.text) in page
    # The class charts and the curve are inline SVG: each must still parse as XML
    # (a name that broke out of its text would not) and carry the candidate's chart.
    charts = SVG_CHART.findall(page)
    assert charts
    for svg in charts:
        ET.fromstring(svg)
    pngs = PNG_URI.findall(page)  # thumbnails and decile figures, where there are any
    assert all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)


def test_json_keeps_the_original_string(reported: tuple[Case, Run, Path]) -> None:
    case, _, out = reported
    doc = json.loads((out / "report.json").read_text("utf-8"))
    assert any(case.text in s for s in _strings(doc))


# -- the CLI's one-line messages -----------------------------------------------------------
MESSAGE_CASES = {
    "missing-file-ansi-clear-screen": ["-c", "\x1b[2J.npz"],
    "missing-file-osc-retitle": ["-c", "\x1b]0;PWNED\x07.npz"],
    "missing-file-not-utf8": ["-c", os.fsdecode(b"\xff\xfe.npz")],
    "unknown-format-ansi": ["-c", "{cand}", "-f", "\x1b[2J"],
}


@pytest.mark.parametrize("extra", list(MESSAGE_CASES.values()), ids=list(MESSAGE_CASES))
def test_error_lines_show_names_escaped(
    extra: list[str], good_preds: dict[str, Path], tmp_path: Path
) -> None:
    args = [a.replace("{cand}", str(good_preds["cand"])) for a in extra]
    hostile = next(a for a in args if _unsafe(a))
    run = fails_closed(
        ["report", "-r", str(good_preds["ref"]), *args, "-o", str(tmp_path / "out")],
        names=for_terminal(hostile),
    )
    assert _unsafe(run.stderr) == []
    assert _unsafe(run.stdout) == []


POLICY_NEEDING_NOPE = """\
version: 1
gates:
  subgroups:
    attributes: [nope]
    pie_share_growth: 50
"""


def test_a_warning_shows_attribute_names_escaped(tmp_path: Path) -> None:
    # The missing-attribute warning lists the attributes the data have: hostile ones.
    ref, cand = _write(Case("attribute", "\x1b]0;PWNED\x07"), tmp_path / "preds")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_NEEDING_NOPE, "utf-8")
    args = [str(a) for a in ("-r", ref, "-c", cand, "-p", policy, "-o", tmp_path / "out")]
    run = run_cli(["report", *args, "-f", "json"])
    assert "compaudit: warning:" in run.stderr
    assert r"\x1b]0;PWNED\x07" in run.stderr
    assert _unsafe(run.stderr) == []


def test_a_click_error_shows_its_message_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    # Click quotes the arguments it names, but a plugin's own UsageError may not.
    def plugin_command() -> None:
        raise click.UsageError("no model named \x1b]0;PWNED\x07")

    assert decide_exit(plugin_command, argv=[], prog="compaudit") == 2
    err = capsys.readouterr().err
    assert r"no model named \x1b]0;PWNED\x07" in err
    assert _unsafe(err) == []
