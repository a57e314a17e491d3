"""The report schema's validator as Python source, generated once and shipped.

Compiling ``report.schema.json`` with ``fastjsonschema`` at run time costs about
0.3 s of CPU in every process that writes a report (code generation, then
``compile()`` of half a megabyte of source): more than validating a 50,000-example
report. So the generated source is shipped as
``compaudit/report/_report_validator.py``, a module like any other (its bytecode
is cached beside it, as trusted as the rest of the package), never a file in the
user's cache directory, which a restored CI cache could have written.

The module records the SHA-256 of the schema it was generated from;
:func:`shipped_validator` uses it only when that matches the packaged schema, and
otherwise the caller compiles the schema at run time, so a stale file costs time,
never correctness. ``tests/report/test_schema_codegen.py`` fails when the file is
stale. Regenerate after editing the schema::

    .venv/bin/python -m compaudit.report._schema_codegen
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_FILE = "report.schema.json"
MODULE = "compaudit.report._report_validator"
TARGET = Path(__file__).with_name("_report_validator.py")
FUNCTION = "validate_report_schema_json"
HEADER = '''"""GENERATED from {schema} by ``python -m compaudit.report._schema_codegen``.

Do not edit. fastjsonschema {version}, ``use_default=False``; each error names only
the rule it broke. See :mod:`compaudit.report._schema_codegen`.
"""
# ruff: noqa
# mypy: ignore-errors
SCHEMA_SHA256 = "{digest}"
'''


def schema_text() -> str:
    """The packaged ``report.schema.json``, as text."""
    return resources.files("compaudit.report").joinpath(SCHEMA_FILE).read_text("utf-8")


def schema_digest(text: str) -> str:
    """SHA-256 of the schema's UTF-8 bytes, as hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generate(text: str) -> str:
    """The validator module's source for the schema ``text``.

    fastjsonschema writes the whole schema into every ``raise`` it generates (860 kB
    of source for this one); here each carries only the rule that failed, which is
    all its message uses.
    """
    import fastjsonschema
    from fastjsonschema.draft2019 import CodeGeneratorDraft2019
    from fastjsonschema.ref_resolver import RefResolver

    class _OneRule(CodeGeneratorDraft2019):
        def exc(self, msg: str, *args: Any, append_to_msg: Any = None, rule: Any = None) -> None:
            full = self._definition
            if isinstance(full, dict):
                self._definition = {rule: full[rule]} if rule in full else {}
            try:
                super().exc(msg, *args, append_to_msg=append_to_msg, rule=rule)  # type: ignore[no-untyped-call]
            finally:
                self._definition = full

    schema = json.loads(text)
    resolver = RefResolver.from_schema(schema, handlers={}, store={})
    generator = _OneRule(schema, resolver=resolver, use_default=False)  # type: ignore[no-untyped-call]
    header = HEADER.format(
        schema=SCHEMA_FILE, version=fastjsonschema.VERSION, digest=schema_digest(text)
    )
    body: str = generator.global_state_code + "\n" + generator.func_code
    return header + body


def shipped_validator(text: str) -> Callable[[Any], Any] | None:
    """The shipped validator when it was generated from ``text``; None when stale or absent."""
    try:
        module = importlib.import_module(MODULE)
    except ImportError:
        return None
    if getattr(module, "SCHEMA_SHA256", None) != schema_digest(text):
        return None
    function: Callable[[Any], Any] = getattr(module, FUNCTION)
    return function


def main() -> Path:
    """Write ``_report_validator.py`` for the packaged schema (atomically); return its path.

    Silent, like all library code (``tests/test_quiet.py``); ``git diff`` shows the change.
    """
    from compaudit._io import atomic_write_text

    atomic_write_text(TARGET, generate(schema_text()))
    return TARGET


if __name__ == "__main__":
    main()
