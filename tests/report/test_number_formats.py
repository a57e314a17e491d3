"""Numbers in reports never read "-0": a value that rounds to zero is written unsigned-zero.

A difference of equal rates is often -0.0 or -1e-17 in floating point (``0.0 - x`` vs
``-x``, sums in another order); "-0.0 pp" beside "+0.0 pp" reads as a change.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from compaudit import _gates_common as gc
from compaudit.report import _common

FORMATTERS: dict[str, Callable[[float], str]] = {
    "report pct": _common.pct,
    "report signed_pts": _common.signed_pts,
    "report fmt_value": _common.fmt_value,
    "report pct_points": _common.pct_points,
    "gate pct": gc.pct,
    "gate pp": gc.pp,
    "gate signed_pp": gc.signed_pp,
    "gate growth": gc.growth,
    "gate growth_pp": gc.growth_pp,
}


CASES = [(name, x) for name in sorted(FORMATTERS) for x in (-0.0, 0.0, -1e-17)]


# fmt_value writes significant digits, not decimals: -1e-17 is written as such.
@pytest.mark.parametrize(("name", "x"), [c for c in CASES if c != ("report fmt_value", -1e-17)])
def test_zero_is_never_negative(name: str, x: float) -> None:
    text = FORMATTERS[name](x)
    assert not text.lstrip().startswith("-"), (name, x, text)
    assert "0" in text


@pytest.mark.parametrize("name", sorted(FORMATTERS))
def test_a_real_negative_keeps_its_sign(name: str) -> None:
    assert FORMATTERS[name](-0.25).startswith("-"), name
