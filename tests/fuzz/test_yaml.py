"""Hostile policy files: bounded parsing (issue 11, part 6).

A policy comes from a pull request. Its YAML is parsed with limits on size,
nesting and alias expansion, and the duplicate-key check walks the node
graph once (not every expansion of every alias). Each case here ran for
minutes, raised RecursionError (an internal error) or parsed a file far too
big on the code before the fix; each now exits 2 with one line naming the
policy file, asserted against its message constant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compaudit import _policy_files, _yaml
from tests.fuzz._expect import assert_error
from tests.fuzz.conftest import fails_closed

GOOD = "version: 1\ngates:\n  top1_drop: 0.5\n"


def laughs(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs': each anchor a list of ``width`` aliases of the one before."""
    text = "lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels + 1):
        text += f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * width) + "]\n"
    return text


def merge_laughs(levels: int = 12) -> str:
    """The same bomb through merge keys, which PyYAML flattens by copying."""
    text = "m0: &m0 {a: 1, b: 2}\n"
    for i in range(1, levels + 1):
        text += f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 9) + "]}\n"
    return text


def alias_chain(links: int = 30, depth: int = 40) -> str:
    """Anchors nested ``depth`` deep, each inside the next: shallow text, deep expansion."""
    text = "x0: &x0 " + "[" * depth + "]" * depth + "\n"
    for i in range(1, links + 1):
        text += f"x{i}: &x{i} " + "[" * depth + f"*x{i - 1}" + "]" * depth + "\n"
    return text


# A limit's message, then where in the file: "... (line 3, column 7)".
SYNTAX = _policy_files.ERR_SYNTAX.replace("{problem}", _yaml.ERR_AT)
EXPANDED = _yaml.ERR_EXPANDED.format(limit=_yaml.MAX_EXPANDED)
DEPTH = _yaml.ERR_DEPTH.format(limit=_yaml.MAX_DEPTH)

# (id, file name, text, template, known fields): each hung, crashed or over-read before.
CASES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("billion-laughs", "p.yaml", GOOD + laughs(), SYNTAX, {"fmt": "YAML", "problem": EXPANDED}),
    (
        "billion-laughs-through-merge-keys",
        "p.yaml",
        GOOD + merge_laughs(),
        SYNTAX,
        {"fmt": "YAML", "problem": EXPANDED},
    ),
    (
        "recursive-alias-in-a-list",
        "p.yaml",
        GOOD + "loop: &a [1, *a]\n",
        SYNTAX,
        {"fmt": "YAML", "problem": _yaml.ERR_RECURSIVE},
    ),
    (
        "recursive-alias-in-a-mapping",
        "p.yaml",
        GOOD + "loop: &a {next: *a}\n",
        SYNTAX,
        {"fmt": "YAML", "problem": _yaml.ERR_RECURSIVE},
    ),
    (
        "20000-nested-flow-lists",
        "p.yaml",
        GOOD + "deep: " + "[" * 20_000 + "]" * 20_000 + "\n",
        SYNTAX,
        {"fmt": "YAML", "problem": DEPTH},
    ),
    (
        "1000-nested-block-mappings",
        "p.yaml",
        GOOD + "".join(" " * i + "k:\n" for i in range(1000)),
        SYNTAX,
        {"fmt": "YAML", "problem": DEPTH},
    ),
    (
        "alias-chain-1200-deep-once-expanded",
        "p.yaml",
        GOOD + alias_chain(),
        SYNTAX,
        {"fmt": "YAML", "problem": DEPTH},
    ),
    (
        "2-MiB-policy-file",
        "p.yaml",
        GOOD + ("# padding\n" * 210_000),
        _policy_files.ERR_LIMIT,
        {"problem": _yaml.ERR_TOO_LARGE.format(limit=_yaml.MAX_BYTES, kind="policy")},
    ),
    (
        "toml-20000-nested-arrays",
        "p.toml",
        "version = 1\ndeep = " + "[" * 20_000 + "]" * 20_000 + "\n",
        _policy_files.ERR_SYNTAX,
        {"fmt": "TOML", "problem": _policy_files.ERR_TOML_DEPTH},
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "template", "known"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_policy_fails_closed(
    good_preds: dict[str, Path],
    tmp_path: Path,
    name: str,
    text: str,
    template: str,
    known: dict[str, Any],
) -> None:
    policy = tmp_path / name
    policy.write_text(text, encoding="utf-8")
    args = ["check", "-r", good_preds["ref"], "-c", good_preds["cand"], "-p", policy]
    args += ["-o", tmp_path / "out", "-f", "json"]
    run = fails_closed([str(a) for a in args], names=str(policy))
    assert_error(run.error_lines[0], template, file=str(policy), **known)


def test_aliases_merges_and_duplicates_still_work() -> None:
    doc = _yaml.load("a: &x {b: 1}\nc: *x\nd: {<<: *x, b: 2}\ne: {f: 1, f: 2}\n")
    assert doc.data == {"a": {"b": 1}, "c": {"b": 1}, "d": {"b": 2}, "e": {"f": 2}}
    # An override after a merge is no duplicate; a repeated key is, reported once.
    assert doc.duplicates == [(("e", "f"), 4)]


def test_an_aliased_duplicate_is_reported_once() -> None:
    doc = _yaml.load("a: &x {k: 1, k: 2}\nb: [*x, *x, *x]\n")
    assert doc.duplicates == [(("a", "k"), 1)]
