"""Assert an error line against its message constant (fairlearn style), for issue 11."""

from __future__ import annotations

import re
import string
from typing import Any

PREFIX = "compaudit: error: "


def message_re(template: str, /, **known: Any) -> re.Pattern[str]:
    """A regex of ``template`` with the ``known`` fields filled in and the others wildcards.

    Fields are formatted as the library formats them (``{limit:,}``, ``{value!r}``),
    so a test asserts the module constant itself rather than a copy of its words.
    """
    out = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if field is None:
            continue
        if field in known:
            value = known[field]
            value = repr(value) if conversion == "r" else value
            out.append(re.escape(format(value, spec or "")))
        else:
            out.append(".+?")
    return re.compile("".join(out))


def assert_error(error_line: str, template: str, /, **known: Any) -> None:
    """``error_line`` is exactly ``compaudit: error: `` plus ``template`` (unknown fields free)."""
    assert error_line.startswith(PREFIX), error_line
    pattern = message_re(template, **known)
    assert pattern.fullmatch(error_line[len(PREFIX) :]), (error_line, pattern.pattern)
