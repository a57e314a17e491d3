"""The policy file: what disparate impact a release may carry.

A policy is YAML (``.yaml``/``.yml``), TOML (``.toml``) or the
``[tool.compaudit]`` table of a ``pyproject.toml``. Unknown keys are errors
(a misspelled gate must never be silently ignored); each error names the key,
the file and, where the parser knows it, the line. See
``examples/policies/README.md`` for every key, its default and its meaning,
and :mod:`compaudit.gates` for how each gate is evaluated.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compaudit._yaml import duplicate_keys, line_of
from compaudit.errors import PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SUPPORTED_VERSIONS",
    "CandidateOverride",
    "Correction",
    "EffectivePolicy",
    "Gates",
    "OnUnevaluable",
    "Policy",
    "PolicySettings",
    "SubgroupGates",
    "load_policy",
    "policy_json_schema",
    "required_attributes",
    "settings",
    "unused_overrides",
]

Correction = Literal["holm", "bh", "bonferroni", "none"]
OnUnevaluable = Literal["error", "skip-with-warning", "fail"]
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
DEFAULT_MIN_PIES = 5
DEFAULT_MIN_SUPPORT = 30

# Error messages live here so tests can assert them exactly (fairlearn style).
ERR_NOT_FOUND = "policy file {file} does not exist; check the --policy path"
ERR_SUFFIX = (
    "policy file {file} has an unknown extension {suffix!r}; "
    "write it as .yaml, .yml or .toml (or [tool.compaudit] in pyproject.toml)"
)
ERR_SYNTAX = "{file}: not valid {fmt}: {problem}"
ERR_NO_TOOL_TABLE = "{file} has no [tool.compaudit] table; add one or pass a .yaml/.toml policy"
ERR_NOT_MAPPING = "{file}: the policy must be a mapping of keys (version, gates, ...), got {got}"
ERR_DUPLICATE_KEY = "{file}:{line}: key {key!r} appears twice; keep one"
ERR_NO_VERSION = "{file}: the policy has no 'version'; add 'version: 1' at the top"
ERR_VERSION = (
    "{file}: policy version {version!r} is not supported; this compaudit reads version "
    "{supported}; rewrite the file for version 1 or upgrade compaudit"
)
ERR_INVALID = "invalid policy {file}:\n{problems}"
ERR_UNKNOWN_KEY = "{where}: unknown key {key!r} under {parent}{hint}; allowed keys: {allowed}"
ERR_OVERRIDE_ATTRIBUTES = (
    "subgroup attributes are shared by every candidate; set them once in "
    "gates.subgroups.attributes, not per candidate"
)
ERR_BAD_VALUE = "{where}: {path}: {msg}"


class _Strict(BaseModel):
    """Base of every policy model: unknown keys are errors, no type coercion."""

    # strict: "0.01" (a string) is not a number and 1.5 is not an int. Attribute
    # docstrings become the JSON Schema's descriptions.
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


_Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class SubgroupGates(_Strict):
    """Gates over protected-attribute subgroups (attribute combinations)."""

    attributes: list[str] | None = None
    """Protected attributes whose value combinations form the subgroups."""
    min_support: Annotated[int, Field(ge=1)] = DEFAULT_MIN_SUPPORT
    """Groups with fewer examples are listed as not testable, never as fine."""
    pie_share_growth: Annotated[float, Field(ge=0.0)] | None = None
    """Largest allowed growth (%) of a group's share among PIEs: (pct_pie/pct_non_pie - 1)*100."""
    min_pies: Annotated[int, Field(ge=0)] = DEFAULT_MIN_PIES
    """Groups with fewer PIEs are not judged by ``pie_share_growth``: one PIE more or
    less would move their growth by more than any sensible threshold (listed in the
    gate's detail, never hidden)."""
    accuracy_gap: _Fraction | None = None
    """Largest allowed extra top-1 drop of a group beyond the overall drop."""

    @field_validator("attributes")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("attributes must not repeat")
        return v


class Gates(_Strict):
    """Gate thresholds; a gate left out (or null) is not evaluated."""

    top1_drop: _Fraction | None = None
    """Largest allowed drop in mean top-1 (a fraction, not points)."""
    top5_drop: _Fraction | None = None
    """Largest allowed drop in mean top-5."""
    cie_rate: _Fraction | None = None
    """Largest allowed share of examples whose prediction changed (CIEs)."""
    cie_u_rate: _Fraction | None = None
    """Largest allowed share of examples the reference got right and the candidate wrong."""
    pie_rate: _Fraction | None = None
    """Largest allowed share of examples whose modal prediction changed (PIEs)."""
    significant_classes: Annotated[int, Field(ge=0)] | None = None
    """Most classes allowed to be significantly worse than the overall shift."""
    class_recall_drop: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    """Largest allowed normalized recall drop of any class."""
    class_recall_drop_significant_only: bool = False
    """Take the worst normalized recall drop only among significant classes."""
    subgroups: SubgroupGates | None = None
    """Subgroup gates and the attributes they need."""


class CandidateOverride(_Strict):
    """Per-candidate settings, deep-merged over the policy's base settings."""

    gates: Gates | None = None
    """Gate keys to replace for this candidate (null switches a gate off)."""
    on_unevaluable: OnUnevaluable | None = None
    """Replaces the policy's on_unevaluable for this candidate."""

    @field_validator("gates")
    @classmethod
    def _shared_attributes(cls, v: Gates | None) -> Gates | None:
        # The audit computes one subgroup table for all candidates, so the
        # attributes cannot differ per candidate (min_support and thresholds can).
        if (
            v is not None
            and v.subgroups is not None
            and "attributes" in v.subgroups.model_fields_set
        ):
            raise ValueError(ERR_OVERRIDE_ATTRIBUTES)
        return v


class Policy(_Strict):
    """A whole policy file (version 1)."""

    version: Literal[1]
    """Policy file format version; only 1 exists."""
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    """Significance level of the class and subgroup tests."""
    correction: Correction = "holm"
    """Multiple-testing correction over classes (and groups)."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seed of every random choice in the audit."""
    on_unevaluable: OnUnevaluable = "error"
    """A gate that cannot be evaluated: 'error' (exit 2), 'fail' or 'skip-with-warning'."""
    gates: Gates = Field(default_factory=Gates)
    """Gate thresholds."""
    candidates: dict[str, CandidateOverride] = Field(default_factory=dict)
    """Overrides by candidate name."""

    def for_candidate(self, name: str | None) -> EffectivePolicy:
        """Resolve the gates that apply to candidate ``name``.

        The candidate's ``gates`` are deep-merged over the base gates: keys it
        sets (``null`` included, which switches a gate off) replace the base
        value, nested ``subgroups`` keys are merged one by one.
        """
        override = self.candidates.get(name) if name is not None else None
        gates = self.gates
        on_unevaluable = self.on_unevaluable
        if override is not None:
            if override.gates is not None:
                merged = _deep_merge(
                    self.gates.model_dump(exclude_unset=True),
                    override.gates.model_dump(exclude_unset=True),
                )
                gates = Gates.model_validate(merged)
            if override.on_unevaluable is not None:
                on_unevaluable = override.on_unevaluable
        return EffectivePolicy(
            candidate=name,
            gates=gates,
            on_unevaluable=on_unevaluable,
            alpha=self.alpha,
            correction=self.correction,
            seed=self.seed,
        )


@dataclass(frozen=True)
class EffectivePolicy:
    """The settings and resolved gates for one candidate."""

    candidate: str | None
    gates: Gates
    on_unevaluable: OnUnevaluable
    alpha: float
    correction: Correction
    seed: int


class PolicySettings(TypedDict):
    """What the audit must compute for the gates; the report's ``settings`` object."""

    alpha: float
    correction: Correction
    seed: int
    min_support: int
    attributes: list[str]


def settings(policy: Policy) -> PolicySettings:
    """Statistical settings the audit must use so that the gates can be evaluated."""
    sub = policy.gates.subgroups
    return PolicySettings(
        alpha=policy.alpha,
        correction=policy.correction,
        seed=policy.seed,
        min_support=sub.min_support if sub is not None else DEFAULT_MIN_SUPPORT,
        attributes=required_attributes(policy),
    )


def required_attributes(policy: Policy) -> list[str]:
    """Protected attributes the audit's subgroup analysis must use (shared by all candidates).

    Empty when the policy names none; the audit then computes no subgroups and
    any configured subgroup gate is unevaluable.
    """
    sub = policy.gates.subgroups
    return list(sub.attributes) if sub is not None and sub.attributes else []


def unused_overrides(policy: Policy, candidates: list[str]) -> list[str]:
    """Override names that match none of ``candidates`` (likely typos; warn about them)."""
    return sorted(set(policy.candidates) - set(candidates))


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of the policy file (what ``compaudit schema policy`` prints)."""
    schema = Policy.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://compaudit.dev/schemas/policy-v1.json",
        **schema,
        "title": "compaudit policy (version 1)",
    }


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# -- loading -----------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file.

    Parameters
    ----------
    path
        A ``.yaml``/``.yml`` or ``.toml`` policy, or a ``pyproject.toml``
        whose ``[tool.compaudit]`` table is the policy.

    Returns
    -------
    Policy
        The validated policy.

    Raises
    ------
    PolicyError
        The file is missing, unparsable, of an unsupported version, or has an
        unknown key or a wrong value (the message names key, file and line).
    """
    file = Path(path)
    if not file.is_file():
        raise PolicyError(ERR_NOT_FOUND.format(file=file))
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(ERR_SYNTAX.format(file=file, fmt="UTF-8 text", problem=exc)) from None
    suffix = file.suffix.lower()
    lines: _YamlLines | _TomlLines
    if suffix in (".yaml", ".yml"):
        data, lines = _parse_yaml(text, file)
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(ERR_SYNTAX.format(file=file, fmt="TOML", problem=exc)) from None
        pyproject = file.name == "pyproject.toml"
        if pyproject:
            tool = data.get("tool")
            data = tool.get("compaudit") if isinstance(tool, dict) else None
            if data is None:
                raise PolicyError(ERR_NO_TOOL_TABLE.format(file=file))
        lines = _TomlLines(text, ("tool", "compaudit") if pyproject else ())
    else:
        raise PolicyError(ERR_SUFFIX.format(file=file, suffix=file.suffix))
    if not isinstance(data, dict):
        raise PolicyError(ERR_NOT_MAPPING.format(file=file, got=type(data).__name__))
    if "version" not in data:
        raise PolicyError(ERR_NO_VERSION.format(file=file))
    version = data["version"]
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise PolicyError(ERR_VERSION.format(file=file, version=version, supported=supported))
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, file, lines) for err in exc.errors()]
        raise PolicyError(ERR_INVALID.format(file=file, problems="\n".join(problems))) from None


Loc = tuple[int | str, ...]


class _YamlLines:
    """Map a pydantic error location to a 1-based line through yaml node marks."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line(self, loc: Loc) -> int | None:
        return line_of(self.root, loc) if self.root is not None else None


class _TomlLines:
    """Best-effort line of a key in TOML text: find each path part in order."""

    def __init__(self, text: str, prefix: tuple[str, ...]) -> None:
        # Drop comments (roughly: a '#' outside quotes is rare in policy values).
        self.lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
        self.prefix = prefix

    def line(self, loc: Loc) -> int | None:
        start, found = 0, None
        for part in (*self.prefix, *loc):
            if not isinstance(part, str):
                continue
            pat = re.compile(rf"(^|[\s.{{,\[])[\"']?{re.escape(part)}[\"']?\s*(=|\]|\.)")
            for i in range(start, len(self.lines)):
                if pat.search(self.lines[i]):
                    start = found = i
                    break
            else:
                break
        return None if found is None else found + 1


def _parse_yaml(text: str, file: Path) -> tuple[Any, _YamlLines]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_duplicates(root, file)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(ERR_SYNTAX.format(file=file, fmt="YAML", problem=exc)) from None
    return data, _YamlLines(root)


def _check_duplicates(node: yaml.Node | None, file: Path) -> None:
    # safe_load keeps the last of two equal keys silently; a policy must not.
    if node is None:
        return
    for path, line in duplicate_keys(node)[:1]:
        raise PolicyError(ERR_DUPLICATE_KEY.format(file=file, line=line, key=path[-1]))


def _describe(err: Any, file: Path, lines: _YamlLines | _TomlLines) -> str:
    loc: Loc = tuple(err["loc"])
    line = lines.line(loc)
    where = f"{file}:{line}" if line is not None else str(file)
    path = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        key, parent = str(loc[-1]), ".".join(str(p) for p in loc[:-1]) or "the top level"
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ERR_UNKNOWN_KEY.format(
            where=where, key=key, parent=parent, hint=hint, allowed=", ".join(allowed)
        )
    msg = err["msg"]
    if not isinstance(err.get("input"), dict | list):
        msg += f" (got {err.get('input')!r})"
    return ERR_BAD_VALUE.format(where=where, path=path, msg=msg)


def _allowed_keys(parent: Loc) -> list[str]:
    """Field names of the model at ``parent`` (a path into :class:`Policy`)."""
    model: Any = Policy
    for part in parent:
        if model is Policy and part == "candidates":
            model = dict  # the next part is a candidate name: any is allowed
        elif model is dict:
            model = CandidateOverride
        else:
            model = {"gates": Gates, "subgroups": SubgroupGates}.get(str(part))
            if model is None:
                return []
    return [] if model is dict else list(model.model_fields)
