"""compaudit._text: every user-made string made safe for the medium it is shown in."""

from __future__ import annotations

import html
import io
import re
import unicodedata
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compaudit._text import (
    FILENAME_MAX,
    for_filename,
    for_html,
    for_markdown,
    for_plot,
    for_terminal,
    for_xml,
)
from compaudit.study import figure_filename

# Any code point, surrogates included (a non-UTF-8 file name decodes to U+DC80-U+DCFF).
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=60)
HOSTILE = st.text(
    st.sampled_from(list("\x1b\x07\x00\n\r\t\x7f\x9b\u202e\u2066\udcff\ud800$[/]`|<>&'\"\\aé_ .-")),
    max_size=40,
)
TEXT = st.one_of(ANY_TEXT, HOSTILE)

BIDI_AND_INVISIBLE = set("\u061c\u200b\u200e\u200f\u2028\u2029\ufeff") | {
    chr(c) for c in [*range(0x202A, 0x202F), *range(0x2060, 0x206A), 0xFFF9, 0xFFFA, 0xFFFB]
}
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def unsafe(s: str) -> list[str]:
    """Characters that must never reach a terminal, raw."""
    return [
        ch
        for ch in s
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
        or ch in BIDI_AND_INVISIBLE
        or ch in "\ufffe\uffff"
    ]


# -- for_terminal ---------------------------------------------------------------------------
@given(TEXT)
def test_terminal_text_has_no_control_character_and_is_one_line(s: str) -> None:
    out = for_terminal(s)
    assert unsafe(out) == []
    assert "\x1b" not in out
    assert len(out.splitlines()) <= 1
    out.encode("utf-8")  # no lone surrogate left: every stream can write it


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf")), max_size=40))
def test_plain_text_is_left_alone(s: str) -> None:
    assert for_terminal(s) == s


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("\x1b[2J\x1b[H", r"\x1b[2J\x1b[H", id="ansi-clear-screen"),
        pytest.param("\x1b]0;PWNED\x07", r"\x1b]0;PWNED\x07", id="osc-retitle"),
        pytest.param("\x9b31m", r"\x9b31m", id="c1-csi"),
        pytest.param("a\nb\tc\r", r"a\nb\tc\r", id="newline-tab-cr"),
        pytest.param("\x00\x7f", r"\x00\x7f", id="nul-del"),
        pytest.param("\u202egnp.exe", r"\u202egnp.exe", id="bidi-override"),
        pytest.param("cand\udcff", r"cand\xff", id="non-utf8-byte"),
        pytest.param("\ud800", r"\ud800", id="lone-surrogate"),
        pytest.param("[/]$\\frac{$ Δ 猫 👩\u200d💻", "[/]$\\frac{$ Δ 猫 👩\u200d💻", id="plain"),
    ],
)
def test_terminal_escapes(raw: str, shown: str) -> None:
    assert for_terminal(raw) == shown


def test_rich_prints_a_hostile_name_as_text() -> None:
    from rich.console import Console
    from rich.text import Text

    buf = io.StringIO()
    Console(file=buf, width=80, force_terminal=False).print(Text(for_terminal("[/]\x1b[2J")))
    assert buf.getvalue() == "[/]\\x1b[2J\n"


# -- the other media ------------------------------------------------------------------------
@given(TEXT)
def test_markdown_escapes_every_markup_character(s: str) -> None:
    out = for_markdown(s)
    assert unsafe(out) == []
    assert "\n" not in out
    # Each special character is preceded by an odd number of backslashes.
    assert re.search(r"(?:^|[^\\])(?:\\\\)*[`*_\[\]<>|~&$#!]", out) is None, out


@given(TEXT)
def test_markdown_code_is_a_code_span_or_escaped_text(s: str) -> None:
    out = for_markdown(s, code=True)
    assert unsafe(out) == []
    assert "\n" not in out
    if out.startswith("`"):
        inner = out[1:-1]
        assert out.endswith("`")
        assert not {"`", "|", "$"} & set(inner)
    else:
        assert out == for_markdown(s)


@given(TEXT)
def test_html_is_escaped_and_reads_back_as_the_terminal_text(s: str) -> None:
    out = for_html(s)
    assert not set("<>\"'") & set(out)
    assert unsafe(out) == []
    assert html.unescape(out) == for_terminal(s)


@given(TEXT)
def test_xml_text_is_valid_and_round_trips(s: str) -> None:
    out = for_xml(s)
    assert XML_CHAR.fullmatch(out)
    root = ET.Element("case", name=out)
    root.text = out
    back = ET.fromstring(ET.tostring(root, encoding="utf-8"))
    assert back.get("name") == out
    assert (back.text or "") == out


@given(TEXT, st.one_of(st.none(), st.integers(1, 30)))
def test_plot_labels_have_no_unescaped_dollar(s: str, cap: int | None) -> None:
    out = for_plot(s, max_chars=cap)
    assert unsafe(out) == []
    assert re.search(r"(?<!\\)\$", out) is None
    if cap is not None:
        assert len(out.replace(r"\$", "$")) <= cap


@pytest.mark.parametrize("name", ["$\\frac{$", "a $x$ b", "\x1b[2J", "c\udcff", "x" * 3000])
def test_matplotlib_draws_every_hostile_label(name: str) -> None:
    from types import SimpleNamespace

    from compaudit.report._plot import class_plot_png

    # The plot reads these three fields of a ClassRow.
    rows = [
        SimpleNamespace(name=name, normalized_recall_difference=-0.05, significant=True),
        SimpleNamespace(name="b", normalized_recall_difference=0.01, significant=False),
    ]
    png = class_plot_png(rows, title=f"{name} vs {name}")  # type: ignore[arg-type]
    assert png.startswith(b"\x89PNG")


# -- file names -------------------------------------------------------------------------------
@given(TEXT)
def test_filename_is_a_short_portable_name(s: str) -> None:
    out = for_filename(s)
    assert FILE_NAME.fullmatch(out), out
    assert len(out) <= FILENAME_MAX
    assert not out.endswith(".")
    assert out.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}


@given(st.lists(TEXT, min_size=2, max_size=30, unique=True))
@settings(max_examples=200)
def test_distinct_names_get_distinct_file_names(names: list[str]) -> None:
    assert len({for_filename(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        pytest.param("int8", None, id="safe-kept"),
        pytest.param("prune-50.v2", None, id="safe-with-dots"),
        pytest.param("a/b", "a_b-", id="slash"),
        pytest.param("../../etc/passwd", "_.._etc_passwd-", id="traversal"),
        pytest.param(".hidden", "hidden-", id="hidden"),
        pytest.param("-rf", "rf-", id="option-like"),
        pytest.param("CON", "_CON-", id="windows-device"),
        pytest.param("", "", id="empty"),
    ],
)
def test_filename_examples(name: str, prefix: str | None) -> None:
    """A safe name is kept (``prefix`` None); any other is a prefix and a 10-digit hash."""
    out = for_filename(name)
    if prefix is None:
        assert out == name
    else:
        assert out.startswith(prefix)
        assert re.fullmatch(r"[0-9a-f]{10}", out[len(prefix) :])


def test_a_3000_character_name_is_cut_and_hashed() -> None:
    a, b = for_filename("x" * 3000), for_filename("x" * 2999 + "y")
    assert len(a) == FILENAME_MAX
    assert a.startswith("x" * 40)
    assert a != b
    assert figure_filename("classes", "x" * 3000) == f"classes-{a}.png"
    assert figure_filename("classes", "int8") == "classes-int8.png"


def test_filename_needs_room_for_the_hash() -> None:
    with pytest.raises(ValueError, match="at least 12"):
        for_filename("x", max_len=5)
