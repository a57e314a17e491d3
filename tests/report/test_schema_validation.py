"""``validate_report``: the compiled validator agrees with jsonschema's full validation.

The compiled validator (fastjsonschema) decides in the report path; jsonschema
(Draft 2020-12) stays the reference here. Both must accept the fixed report and
reject each broken copy, and a rejection carries jsonschema's first error.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from compaudit.errors import InputError
from compaudit.report.base import SCHEMA_FILE, _compiled_validator, report_schema, validate_report

# Keywords whose meaning is the same in draft-07 (what fastjsonschema implements
# for a 2020-12 schema) and in 2020-12. A schema keyword outside this set (say
# prefixItems, unevaluatedProperties or $dynamicRef) could make the two disagree.
SHARED_KEYWORDS = {
    "$schema", "$id", "$ref", "title", "description", "type", "enum", "const",
    "properties", "required", "additionalProperties", "patternProperties", "items",
    "minItems", "maxItems", "uniqueItems", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern",
    "minProperties", "maxProperties", "anyOf", "allOf", "oneOf", "not",
}  # fmt: skip
CONTAINERS = {"properties", "patternProperties", "$defs", "definitions"}


def _keywords(schema: Any) -> set[str]:
    """Every keyword used in ``schema`` (names under ``properties`` are not keywords)."""
    found: set[str] = set()
    if isinstance(schema, list):
        for item in schema:
            found |= _keywords(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            children = value.values() if key in CONTAINERS and isinstance(value, dict) else [value]
            for child in children:
                found |= _keywords(child)
    return found


def _jsonschema_ok(report: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(report_schema()).is_valid(report))


def _fast_ok(report: Any) -> bool:
    try:
        _compiled_validator()(report)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_schema_uses_only_keywords_both_validators_share() -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "2020-12" in schema["$schema"]
    assert _keywords(schema) <= SHARED_KEYWORDS, _keywords(schema) - SHARED_KEYWORDS


def test_both_accept_the_fixed_report(doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(doc))  # as written to report.json
    assert _jsonschema_ok(doc)
    assert _fast_ok(doc)
    before = copy.deepcopy(doc)
    validate_report(doc)
    assert doc == before, "validation must not change the report (no schema defaults written)"


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "wrong schema id": _set(("schema",), "compaudit.report/v0"),
    "unknown verdict": _set(("verdict",), "maybe"),
    "missing comparisons": _drop(("comparisons",)),
    "string count": _set(("comparisons", 0, "pie", "count"), "12"),
    "boolean count": _set(("comparisons", 0, "pie", "count"), True),
    "fractional count": _set(("comparisons", 0, "pie", "count"), 1.5),
    "comparisons not a list": _set(("comparisons",), {}),
    "populations not an object": _set(("populations",), []),
    "class row not an object": _set(("comparisons", 0, "classes", 0), 3),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_both_reject_broken_reports(doc: dict[str, Any], name: str) -> None:
    doc = json.loads(json.dumps(doc))
    BROKEN[name](doc)
    assert not _jsonschema_ok(doc)
    assert not _fast_ok(doc)
    with pytest.raises(InputError, match=f"^report does not follow {SCHEMA_FILE} at "):
        validate_report(doc)


def test_rejection_names_jsonschemas_first_error_in_path_order(doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(doc))
    doc["comparisons"][1]["pie"]["count"] = "x"
    doc["comparisons"][0]["cie"]["count"] = "y"
    with pytest.raises(InputError) as info:
        validate_report(doc)
    assert str(info.value) == (
        f"report does not follow {SCHEMA_FILE} at comparisons/0/cie/count: "
        "'y' is not of type 'number'"
    )


def test_the_compiled_validator_is_built_once() -> None:
    assert _compiled_validator() is _compiled_validator()
