"""Parameter types that refuse a blank value.

An unset CI variable turns ``--data "$DATA"`` into ``--data ""``. Left alone,
click drops a blank string option silently (the audit runs without the data's
attributes) and turns a blank path into ``Path("")``, the working directory (a
blank RUN_DIR audits ``.``, a blank ``--out`` writes into it). These types
refuse both with one error line, exit 2.
"""

from __future__ import annotations

from typing import Any

import click

from compaudit.errors import InputError

__all__ = ["ERR_BLANK_VALUE", "NON_BLANK", "NonBlankPath"]

ERR_BLANK_VALUE = (
    "{option} is empty (is a CI variable unset?): a blank value would be dropped or mean the "
    "working directory; give a value or leave {option} out"
)


def _refuse_blank(value: Any, param: click.Parameter | None) -> None:
    if isinstance(value, str) and not value.strip():
        if isinstance(param, click.Argument):
            option = param.human_readable_name
        else:
            option = param.opts[0] if param is not None and param.opts else "a value"
        raise InputError(ERR_BLANK_VALUE.format(option=option))


class NonBlankPath(click.Path):
    """:class:`click.Path` that refuses a blank value instead of meaning ``.``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse a blank value, then convert as :class:`click.Path` does."""
        _refuse_blank(value, param)
        return super().convert(value, param, ctx)


class _NonBlankString(click.types.StringParamType):
    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        _refuse_blank(value, param)
        return super().convert(value, param, ctx)


NON_BLANK = _NonBlankString()
"""A string type that refuses a blank value (``--data ""``)."""
