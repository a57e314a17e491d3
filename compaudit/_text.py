"""User-supplied text, made safe for each medium it is shown in.

Names (classes, example ids, attributes, candidates, file names) come from
files in pull requests and are hostile: an ESC sequence in a class name can
clear or retitle the reviewer's terminal, ``[/]`` is rich markup, ``$...$``
is matplotlib mathtext, a non-UTF-8 file name cannot be encoded, a 3,000
character name is no file name. Every string a user made goes through one
function of this module before it is shown, one function per medium:

* :func:`for_terminal`: control characters (C0, C1, DEL, so every ESC-based
  ANSI/OSC sequence), bidirectional and invisible format characters, line
  separators, lone surrogates and non-characters are shown escaped
  (``\\x1b``, ``\\u202e``); bytes of a non-UTF-8 file name (surrogate-escaped
  by Python) are shown as ``\\xff``. The result is one line. Every other
  medium starts from it, so every medium shows the same escapes.
* :func:`for_markdown`, :func:`for_html`, :func:`for_xml`, :func:`for_plot`:
  that, plus the medium's own escaping.
* :func:`for_filename`: a short, portable file name (a readable prefix and a
  hash of the whole name when the name is not one already).

Display only: ``report.json`` is data and keeps every string exactly.
"""

from __future__ import annotations

import hashlib
import html
import re

__all__ = [
    "FILENAME_MAX",
    "for_filename",
    "for_html",
    "for_markdown",
    "for_plot",
    "for_terminal",
    "for_xml",
]

FILENAME_MAX = 64
"""Default longest :func:`for_filename` result (characters, all ASCII): far below
the 255 bytes of common file systems, so a prefix and a suffix still fit."""

# Shown escaped everywhere: C0 and C1 control characters and DEL; the Arabic
# letter mark, zero-width space, LRM/RLM, line and paragraph separators, bidi
# embeddings, overrides and isolates (U+202A-E, U+2066-9: "Trojan source"),
# invisible operators, the BOM, interlinear annotations; surrogates (a lone
# one cannot be encoded; U+DC80-DCFF are the bytes of a non-UTF-8 file name);
# and the non-characters U+FFFE, U+FFFF (not XML). ZWJ/ZWNJ (U+200C-D) are
# kept: emoji and several scripts need them.
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069"
    r"\ud800-\udfff\ufeff\ufff9-\ufffb\ufffe\uffff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Markdown (GitHub-flavoured): inline markup, links, HTML, tables, and math ($).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$#!])")

_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))]
)
_HASH_CHARS = 10  # hex digits of the file-name hash: 40 bits


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """``text`` as one line of plain printable text, unsafe characters escaped.

    Parameters
    ----------
    text : object
        Anything; shown as ``str(text)``.

    Returns
    -------
    str
        The text with every control, format, separator and surrogate
        character written as a Python-style escape (``\\x1b``, ``\\n``,
        ``\\u202e``; an undecodable file-name byte as ``\\xff``). Text with
        none of those is returned unchanged. No markup is escaped: give the
        result to rich as a ``rich.text.Text``, never as a markup string.
    """
    s = str(text)
    return s if _UNSAFE.search(s) is None else _UNSAFE.sub(_escape, s)


def for_markdown(text: object, *, code: bool = False) -> str:
    """``text`` for a Markdown paragraph, list item, heading or table cell.

    Parameters
    ----------
    text : object
        Anything; shown as ``str(text)``.
    code : bool
        Show it as inline code (a name), unless it holds a backtick, a ``|``
        (which a table would take as a cell border) or a ``$`` (GitHub math
        sits next to code spans): then as escaped text.

    Returns
    -------
    str
        One line (:func:`for_terminal`, runs of whitespace collapsed) with
        every character Markdown, HTML, GitHub math (``$``) or a table would
        interpret backslash-escaped.
    """
    s = " ".join(for_terminal(text).split())
    if code and s and not {"`", "|", "$"} & set(s):
        return f"`{s}`"
    return _MD_SPECIAL.sub(r"\\\1", s)


def for_html(text: object) -> str:
    """``text`` for HTML text or a quoted attribute value: :func:`for_terminal`, then
    ``& < > " '`` as character references."""
    return html.escape(for_terminal(text), quote=True)


def for_xml(text: object) -> str:
    """``text`` made of characters XML 1.0 allows, for an ElementTree text or attribute.

    :func:`for_terminal` leaves only characters XML can carry (it escapes every
    C0 control character, lone surrogates and U+FFFE/U+FFFF); ElementTree then
    escapes the markup (``&``, ``<``, quotes) itself, so this does not.
    """
    return for_terminal(text)


def for_plot(text: object, *, max_chars: int | None = None) -> str:
    """``text`` for a matplotlib text drawn with mathtext on (the default).

    Parameters
    ----------
    text : object
        Anything; shown as ``str(text)``.
    max_chars : int, optional
        Longest label; a longer one is cut and ends with ``…``.

    Returns
    -------
    str
        :func:`for_terminal` (FreeType cannot draw a surrogate, and has no
        glyph for a control character), cut to ``max_chars``, with every
        ``$`` escaped: a ``$`` pair would switch matplotlib to mathtext, and
        ``$\\frac{$`` makes it raise. Matplotlib shows ``\\$`` as ``$``.
    """
    s = for_terminal(text)
    if max_chars is not None and len(s) > max_chars:
        s = s[: max(max_chars - 1, 0)] + "…"
    return s.replace("$", r"\$")


def for_filename(text: object, *, max_len: int = FILENAME_MAX) -> str:
    """A short portable file name (no directory) for a name a user chose.

    Parameters
    ----------
    text : object
        The name (a candidate, a class...); ``str(text)`` is used.
    max_len : int
        Longest result, at least 12.

    Returns
    -------
    str
        ``text`` itself when it is already a safe name: ASCII letters, digits,
        ``.``, ``_`` and ``-`` only, at most ``max_len`` long, not starting
        with ``.`` or ``-`` (hidden files, options), not ending with ``.``
        and not a Windows device name (``CON``, ``NUL``...). Otherwise a
        readable prefix (unsafe runs as ``_``) and ``-`` with 10 hex digits
        of the SHA-256 of the whole name: distinct names give distinct file
        names (up to a 40-bit hash collision), also after the cut.

    Raises
    ------
    ValueError
        When ``max_len`` is below 12 (no room for the hash).
    """
    if max_len < _HASH_CHARS + 2:
        raise ValueError(f"max_len must be at least {_HASH_CHARS + 2}, got {max_len}")
    raw = str(text)
    stem = raw.split(".", 1)[0].upper()
    if (
        raw
        and len(raw) <= max_len
        and _FILE_UNSAFE.search(raw) is None
        and raw[0] not in ".-"
        and not raw.endswith(".")
        and stem not in _WINDOWS_RESERVED
    ):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    prefix = _FILE_UNSAFE.sub("_", raw).lstrip(".-")
    if prefix.split(".", 1)[0].upper() in _WINDOWS_RESERVED:  # "CON.x-<hash>" is still CON
        prefix = "_" + prefix
    prefix = prefix[: max_len - _HASH_CHARS - 1].rstrip(".")
    return f"{prefix}-{digest}" if prefix else digest
