"""The shipped report validator is generated from the packaged schema, and used.

``compaudit/report/_report_validator.py`` is fastjsonschema's code for
``report.schema.json``, written by ``python -m compaudit.report._schema_codegen``.
These tests fail when the schema (or the pinned fastjsonschema) changed without
the file being regenerated, and check that a stale file is never used.
``test_schema_validation.py`` checks what the validator decides, against jsonschema.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from compaudit.report import _schema_codegen as codegen
from compaudit.report import base

REGENERATE = "regenerate it: .venv/bin/python -m compaudit.report._schema_codegen"


def test_the_shipped_validator_is_generated_from_the_packaged_schema() -> None:
    text = codegen.schema_text()
    module = importlib.import_module(codegen.MODULE)
    assert codegen.schema_digest(text) == module.SCHEMA_SHA256, f"stale validator; {REGENERATE}"
    assert codegen.TARGET.read_text("utf-8") == codegen.generate(text), REGENERATE


def test_the_report_path_uses_the_shipped_function() -> None:
    base._compiled_validator.cache_clear()
    try:
        module = importlib.import_module(codegen.MODULE)
        assert base._compiled_validator() is getattr(module, codegen.FUNCTION)
    finally:
        base._compiled_validator.cache_clear()


def test_a_stale_validator_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(codegen.MODULE)
    monkeypatch.setattr(module, "SCHEMA_SHA256", "0" * 64)
    assert codegen.shipped_validator(codegen.schema_text()) is None
    base._compiled_validator.cache_clear()
    try:
        compiled = base._compiled_validator()  # compiled at run time instead
        assert compiled is not getattr(module, codegen.FUNCTION)
        with pytest.raises(Exception, match="must be object"):
            compiled([])
    finally:
        base._compiled_validator.cache_clear()


def test_a_missing_validator_is_compiled_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, codegen.MODULE, None)  # import raises ImportError
    assert codegen.shipped_validator(codegen.schema_text()) is None


def test_errors_carry_only_the_rule_they_broke(doc: dict[str, Any]) -> None:
    import fastjsonschema

    validator = codegen.shipped_validator(codegen.schema_text())
    assert validator is not None
    validator(doc)
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as caught:
        validator({**doc, "schema": "compaudit.report/v0"})
    assert caught.value.rule == "const"
    assert caught.value.rule_definition == "compaudit.report/v1"
    assert caught.value.definition == {"const": "compaudit.report/v1"}
