"""The policy file: what disparate impact a release may carry.

A policy is YAML (``.yaml``/``.yml``), TOML (``.toml``) or the
``[tool.compaudit]`` table of a ``pyproject.toml``. Unknown keys are errors
(a misspelled gate must never be silently ignored); each error names the key,
the file and, where the parser knows it, the line. See
``examples/policies/README.md`` for every key, its default and its meaning,
and :mod:`compaudit.gates` for how each gate is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from compaudit import settings as _s
from compaudit._policy_files import (
    ERR_BAD_VALUE,
    ERR_DUPLICATE_KEY,
    ERR_NO_TOOL_TABLE,
    ERR_NOT_FOUND,
    ERR_NOT_MAPPING,
    ERR_SUFFIX,
    ERR_SYNTAX,
    ERR_UNKNOWN_KEY,
    Loc,
    describe,
    read_policy_data,
)
from compaudit.errors import PROBLEM_SEP, PolicyError
from compaudit.settings import (
    ERR_BOTH_ATTRIBUTE_KEYS,
    ERR_SET_EMPTY,
    ERR_SET_REPEATS,
    ERR_SETS_REPEAT,
    Layer,
    Setting,
    Source,
)

__all__ = [
    "ERR_BAD_VALUE",
    "ERR_BOTH_ATTRIBUTE_KEYS",
    "ERR_DUPLICATE_KEY",
    "ERR_MIN_PIES",
    "ERR_NOT_FOUND",
    "ERR_NOT_MAPPING",
    "ERR_NO_TOOL_TABLE",
    "ERR_SCORE_ENTRY",
    "ERR_SETS_REPEAT",
    "ERR_SET_EMPTY",
    "ERR_SET_REPEATS",
    "ERR_SUFFIX",
    "ERR_SYNTAX",
    "ERR_UNFAILABLE",
    "ERR_UNKNOWN_KEY",
    "ERR_WEAKER_OVERRIDE",
    "MAX_FRACTION",
    "MAX_MIN_PIES",
    "SUPPORTED_VERSIONS",
    "CandidateOverride",
    "Correction",
    "EffectivePolicy",
    "FloorSettings",
    "Gates",
    "OnUnevaluable",
    "Policy",
    "PolicySettings",
    "SubgroupGates",
    "attribute_sets",
    "example_score_files",
    "load_policy",
    "policy_json_schema",
    "policy_layer",
    "required_attributes",
    "settings",
    "unused_overrides",
    "with_settings",
]

Correction = Literal["holm", "bh", "bonferroni", "none"]
OnUnevaluable = Literal["error", "skip-with-warning", "fail"]
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
DEFAULT_MIN_PIES = 5
# The audit settings a policy may set take default and validator from compaudit.settings.
DEFAULT_MIN_SUPPORT: int = _s.MIN_SUPPORT.default
DEFAULT_FLOOR_SPLITS: int = _s.FLOOR_SPLITS.default
DEFAULT_FLOOR_QUANTILE: float = _s.FLOOR_QUANTILE.default

# Error messages live here (those of reading a file in compaudit._policy_files,
# re-exported) so tests can assert them exactly (fairlearn style).
ERR_NO_VERSION = "{file}: the policy has no 'version'; add 'version: 1' at the top"
ERR_VERSION = (
    "{file}: policy version {version!r} is not supported; this compaudit reads version "
    "{supported}; rewrite the file for version 1 or upgrade compaudit"
)
ERR_INVALID = "invalid policy {file}: {problems}"
"""One line: the problems joined by :data:`compaudit.errors.PROBLEM_SEP`."""
ERR_UNFAILABLE = (
    "a threshold of {value!r} can never fail: {why}; use a value below {limit:g}, "
    "or null to switch the gate off"
)
WHY_FRACTION = "no rate, excess or top-k drop exceeds 1 (100%)"
WHY_BEYOND_OVERALL = (
    "an extra drop beyond the overall change reaches 1 (100 points) only when the model "
    "improves overall while the whole {what} goes from right to wrong"
)
ERR_MIN_PIES = (
    "min_pies {value!r} is beyond any sane bound ({limit}): groups with fewer PIEs are never "
    "judged on growth, so the growth gates could never fail; at {limit} PIEs one PIE more "
    "or less moves a growth by about {step:g}%, so lower it (default {default})"
)
ERR_WEAKER_OVERRIDE = (
    "candidates.{name}.on_unevaluable {mode!r} is weaker than the policy's {base!r}: it would "
    "let {name}'s unevaluable gates {effect}; add 'allow_weaker_on_unevaluable: true' to "
    "candidates.{name} if that is meant, or remove the override"
)
ERR_OVERRIDE_ATTRIBUTES = (
    "subgroup attributes are shared by every candidate; set them once in "
    "gates.subgroups.attributes (or attribute_sets), not per candidate"
)
ERR_SCORE_ENTRY = (
    "example_scores entry {name!r}: {path!r} must be a score name (no '=') and a non-empty "
    "path to its file, e.g. 'cscore: scores/cscores.csv'"
)
# ERR_BOTH_ATTRIBUTE_KEYS, ERR_SET_EMPTY, ERR_SET_REPEATS and ERR_SETS_REPEAT come from
# compaudit.settings (the validators every source shares).


def _checked(setting: Setting) -> Any:
    """Pydantic metadata running ``setting``'s validator (None passes: key left unset)."""

    def check(value: Any) -> Any:
        return value if value is None else setting.pydantic_check(value)

    return AfterValidator(check)


def _bounds(setting: Setting) -> Any:
    """The setting's bounds in the policy's JSON Schema."""
    return Field(json_schema_extra=dict(setting.json_schema))


class _Strict(BaseModel):
    """Base of every policy model: unknown keys are errors, no type coercion."""

    # strict: "0.01" (a string) is not a number and 1.5 is not an int. Attribute
    # docstrings become the JSON Schema's descriptions.
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


# A gate whose threshold no value can exceed can never fail: refused at load time.
MAX_FRACTION = 1.0
"""Thresholds of rates, excesses and drops must be below this (a fraction: 100%)."""
MAX_MIN_PIES = 1000
"""The largest ``subgroups.min_pies``: one PIE moves a growth by about 100/min_pies %."""
# Strength of on_unevaluable: an override may not go lower unless it says so explicitly.
_STRENGTH: dict[str, int] = {"skip-with-warning": 0, "fail": 1, "error": 2}
_EFFECT = {"skip-with-warning": "be skipped", "fail": "count as failed instead of erroring"}


def _below(limit: float, why: str) -> Any:
    """Pydantic metadata refusing thresholds ``>= limit``, with the reason they never fail."""

    def check(value: float) -> float:
        if value >= limit:
            raise ValueError(ERR_UNFAILABLE.format(value=value, why=why, limit=limit))
        return value

    return AfterValidator(check)


def _sane_min_pies(value: int) -> int:
    if value > MAX_MIN_PIES:
        raise ValueError(
            ERR_MIN_PIES.format(
                value=value, limit=MAX_MIN_PIES, step=100 / MAX_MIN_PIES, default=DEFAULT_MIN_PIES
            )
        )
    return value


_Fraction = Annotated[
    float,
    Field(ge=0.0, json_schema_extra={"exclusiveMaximum": MAX_FRACTION}),
    _below(MAX_FRACTION, WHY_FRACTION),
]
"""A rate, excess or top-k drop threshold: in [0, 1); 1 or more could never fail."""
# Drops beyond the overall change (of a class, of a group): also in [0, 1).
_ClassDrop = Annotated[
    float,
    Field(ge=0.0, json_schema_extra={"exclusiveMaximum": MAX_FRACTION}),
    _below(MAX_FRACTION, WHY_BEYOND_OVERALL.format(what="class")),
]
_GroupGap = Annotated[
    float,
    Field(ge=0.0, json_schema_extra={"exclusiveMaximum": MAX_FRACTION}),
    _below(MAX_FRACTION, WHY_BEYOND_OVERALL.format(what="group")),
]


class SubgroupGates(_Strict):
    """Gates over protected-attribute subgroups (attribute combinations)."""

    attributes: Annotated[list[str] | None, _checked(_s.ATTRIBUTES)] = None
    """Protected attributes whose value combinations form the subgroups (one set)."""
    attribute_sets: Annotated[list[list[str]] | None, _checked(_s.ATTRIBUTE_SETS)] = None
    """Several attribute sets, each crossed on its own and gated on its own (for example
    ``[[sex], [race], [sex, race]]``); not together with ``attributes``."""
    min_support: Annotated[int, _checked(_s.MIN_SUPPORT), _bounds(_s.MIN_SUPPORT)] = (
        DEFAULT_MIN_SUPPORT
    )
    """Groups with fewer examples are listed as not testable, never as fine."""
    require_significance: bool = True
    """Judge only groups whose top-1 shift is significantly worse than the overall shift
    (the audit's subgroup test, after the policy's correction): ``significant`` and a
    negative ``shift_difference``. False judges every testable group on its size alone."""
    pie_share_growth: Annotated[float, Field(ge=0.0)] | None = None
    """Largest allowed growth (%) of a group's share among PIEs: (pct_pie/pct_non_pie - 1)*100."""
    pie_share_growth_excess: Annotated[float, Field(ge=0.0)] | None = None
    """Largest allowed PIE share growth beyond its seed-noise floor, in percentage points of
    growth (``excess_pct_growth``: growth minus the growth seed noise alone gives)."""
    min_pies: Annotated[
        int,
        Field(ge=0, json_schema_extra={"maximum": MAX_MIN_PIES}),
        AfterValidator(_sane_min_pies),
    ] = DEFAULT_MIN_PIES
    """Groups with fewer PIEs are not judged by ``pie_share_growth``: one PIE more or
    less would move their growth by more than any sensible threshold (listed in the
    gate's detail, never hidden). At most 1000; with no group to judge, the growth
    gates are unevaluable, never passed."""
    accuracy_gap: _GroupGap | None = None
    """Largest allowed extra top-1 drop of a group beyond the overall drop (below 1)."""

    @model_validator(mode="after")
    def _one_way_to_name_sets(self) -> SubgroupGates:
        if self.attributes and self.attribute_sets:
            raise ValueError(ERR_BOTH_ATTRIBUTE_KEYS)
        return self

    def sets(self) -> list[list[str]]:
        """The attribute sets the gates judge: ``attribute_sets``, else ``[attributes]``."""
        if self.attribute_sets:
            return [list(a) for a in self.attribute_sets]
        return [list(self.attributes)] if self.attributes else []


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
    pie_rate_excess: _Fraction | None = None
    """Largest allowed PIE rate beyond its seed-noise floor (``pie.floor.excess``, a
    fraction: 0.01 is one percentage point); unevaluable without a floor."""
    cie_rate_excess: _Fraction | None = None
    """Largest allowed CIE rate beyond its seed-noise floor (``cie.floor.excess``);
    unevaluable without a floor, and on the paired basis (gate ``cie_rate`` there)."""
    significant_classes: Annotated[int, Field(ge=0)] | None = None
    """Most classes allowed to be significantly worse than the overall shift."""
    class_recall_drop: _ClassDrop | None = None
    """Largest allowed normalized recall drop of any class (below 1)."""
    class_recall_drop_significant_only: bool = False
    """Take the worst normalized recall drop only among significant classes."""
    class_recall_drop_beyond_floor: bool = False
    """Take the worst normalized recall drop only among classes beyond their seed-noise
    floor (``normalized_recall_difference < floor_difference``); unevaluable without floors."""
    subgroups: SubgroupGates | None = None
    """Subgroup gates and the attributes they need."""
    demographic_parity_difference_increase: _Fraction | None = None
    """Largest allowed increase of the demographic-parity difference (per fairness set,
    worst positive class; a fraction: 0.01 is one point). Fails only beyond both this
    and the seed-noise floor where the reference population gives one."""
    equalized_odds_difference_increase: _Fraction | None = None
    """Largest allowed increase of the equalized-odds difference (as above)."""


class CandidateOverride(_Strict):
    """Per-candidate settings, deep-merged over the policy's base settings."""

    gates: Gates | None = None
    """Gate keys to replace for this candidate (null switches a gate off)."""
    on_unevaluable: OnUnevaluable | None = None
    """Replaces the policy's on_unevaluable for this candidate; a weaker one
    (``error`` > ``fail`` > ``skip-with-warning``) only with ``allow_weaker_on_unevaluable``."""
    allow_weaker_on_unevaluable: bool = False
    """Let this candidate's ``on_unevaluable`` be weaker than the policy's (a base
    ``error`` must not be silenced by a per-candidate ``skip-with-warning`` by accident)."""

    @field_validator("gates")
    @classmethod
    def _shared_attributes(cls, v: Gates | None) -> Gates | None:
        # The audit computes one subgroup table for all candidates, so the
        # attributes cannot differ per candidate (min_support and thresholds can).
        sets = {"attributes", "attribute_sets"}
        if v is not None and v.subgroups is not None and sets & v.subgroups.model_fields_set:
            raise ValueError(ERR_OVERRIDE_ATTRIBUTES)
        return v


class FloorSettings(_Strict):
    """How the audit estimates seed-noise floors from the reference population."""

    n_splits: Annotated[int, _checked(_s.FLOOR_SPLITS), _bounds(_s.FLOOR_SPLITS)] = (
        DEFAULT_FLOOR_SPLITS
    )
    """Disjoint splits of the reference population (each a seed-only comparison)."""
    quantile: Annotated[float, _checked(_s.FLOOR_QUANTILE), _bounds(_s.FLOOR_QUANTILE)] = (
        DEFAULT_FLOOR_QUANTILE
    )
    """Quantile of the seed-noise null reported as the floor (0.95: the 95th percentile
    in the bad direction)."""


class Policy(_Strict):
    """A whole policy file (version 1)."""

    version: Literal[1]
    """Policy file format version; only 1 exists."""
    alpha: Annotated[float, _checked(_s.ALPHA), _bounds(_s.ALPHA)] = _s.ALPHA.default
    """Significance level of the class and subgroup tests."""
    correction: Annotated[Correction, _checked(_s.CORRECTION)] = _s.CORRECTION.default
    """Multiple-testing correction over classes (and groups)."""
    seed: Annotated[int, _checked(_s.SEED), _bounds(_s.SEED)] = _s.SEED.default
    """Seed of every random choice in the audit."""
    on_unevaluable: OnUnevaluable = "error"
    """A gate that cannot be evaluated: 'error' (exit 2), 'fail' or 'skip-with-warning'."""
    paired: Annotated[bool | None, _checked(_s.PAIRED)] = _s.PAIRED.default
    """Lineage pairing: candidate member k was made from reference member k (true), never
    pair (false), or take it from the input (null: a trainer run directory knows it)."""
    floors: FloorSettings = Field(default_factory=FloorSettings)
    """Seed-noise floor estimation."""
    gates: Gates = Field(default_factory=Gates)
    """Gate thresholds."""
    candidates: dict[str, CandidateOverride] = Field(default_factory=dict)
    """Overrides by candidate name."""
    example_scores: dict[str, str] = Field(default_factory=dict)
    """Per-example score files by score name (a CSV with an 'id' column and one score
    column, or an .npz with 'ids' and 'scores'), paths relative to the policy file; each
    becomes a long-tail score. --example-scores NAME=FILE replaces the entry of that name."""

    @field_validator("example_scores")
    @classmethod
    def _score_entries(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not name.strip() or "=" in name or not path.strip():
                raise ValueError(ERR_SCORE_ENTRY.format(name=name, path=path))
        return v

    @field_validator("candidates")
    @classmethod
    def _no_silent_weakening(
        cls, v: dict[str, CandidateOverride], info: ValidationInfo
    ) -> dict[str, CandidateOverride]:
        base = info.data.get("on_unevaluable")
        if base is None:  # on_unevaluable itself was invalid: reported on its own
            return v
        for name, over in v.items():
            mode = over.on_unevaluable
            weaker = mode is not None and _STRENGTH[mode] < _STRENGTH[base]
            if weaker and not over.allow_weaker_on_unevaluable:
                assert mode is not None
                raise ValueError(
                    ERR_WEAKER_OVERRIDE.format(
                        name=name, mode=mode, base=base, effect=_EFFECT[mode]
                    )
                )
        return v

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
    """What the audit must compute for the gates (names as in ``AuditSettings``)."""

    alpha: float
    correction: Correction
    seed: int
    min_support: int
    attributes: list[str]
    """Union of every attribute the subgroup gates need (for availability checks)."""
    attribute_sets: list[list[str]]
    """The subgroup sets to audit, each crossed on its own (empty: the audit's default)."""
    paired: bool | None
    floor_splits: int
    floor_quantile: float


def settings(policy: Policy) -> PolicySettings:
    """Statistical settings the audit must use so that the gates can be evaluated."""
    sub = policy.gates.subgroups
    return PolicySettings(
        alpha=policy.alpha,
        correction=policy.correction,
        seed=policy.seed,
        min_support=sub.min_support if sub is not None else DEFAULT_MIN_SUPPORT,
        attributes=required_attributes(policy),
        attribute_sets=attribute_sets(policy),
        paired=policy.paired,
        floor_splits=policy.floors.n_splits,
        floor_quantile=policy.floors.quantile,
    )


def policy_layer(policy: Policy, file: Path | None = None, *, source: Source = "policy") -> Layer:
    """The audit settings ``policy`` sets itself (keys left out fall through to lower sources).

    Each :data:`compaudit.settings.SETTINGS` entry with a policy key path is
    taken when every key on that path was written in the file. The subgroup
    sets come as in :func:`settings`: ``attributes`` is the union of
    ``attribute_sets``.
    """
    values: dict[str, Any] = {}
    for setting in _s.SETTINGS:
        if setting.policy is None or setting.name in _s.SUBGROUP_SETTINGS:
            continue
        node: Any = policy
        for part in setting.policy:
            if node is None or part not in node.model_fields_set:
                break
            node = getattr(node, part)
        else:
            values[setting.name] = node
    if attribute_sets(policy):
        values["attributes"] = required_attributes(policy)
        values["attribute_sets"] = attribute_sets(policy)
    return Layer(source, values, file)


def with_settings(policy: Policy, audit_settings: _s.AuditSettings) -> Policy:
    """``policy`` with its audit settings replaced by the values the audit runs with.

    An explicit ``--min-support`` (or ``--alpha``...) over a policy then judges
    the gates with the same value the audit used. Subgroup attribute sets and
    per-candidate overrides are left as the policy wrote them.
    """
    out = policy
    for setting in _s.SETTINGS:
        if setting.policy is None or setting.name in _s.SUBGROUP_SETTINGS:
            continue
        out = _replace(out, setting.policy, getattr(audit_settings, setting.name))
    return out


def _replace(model: Any, path: tuple[str, ...], value: Any) -> Any:
    head, rest = path[0], path[1:]
    current = getattr(model, head)
    if not rest:
        return model if current == value else model.model_copy(update={head: value})
    if current is None:
        return model  # e.g. min_support without a subgroups table: nothing to judge
    child = _replace(current, rest, value)
    return model if child is current else model.model_copy(update={head: child})


def attribute_sets(policy: Policy) -> list[list[str]]:
    """The subgroup sets the policy's gates judge, each crossed on its own (may be empty)."""
    sub = policy.gates.subgroups
    return sub.sets() if sub is not None else []


def required_attributes(policy: Policy) -> list[str]:
    """Protected attributes the audit's subgroup analysis must use (shared by all candidates).

    The union of :func:`attribute_sets`, in order of first appearance. Empty when
    the policy names none; any configured subgroup gate is then unevaluable.
    """
    return list(dict.fromkeys(a for attrs in attribute_sets(policy) for a in attrs))


def unused_overrides(policy: Policy, candidates: list[str]) -> list[str]:
    """Override names that match none of ``candidates`` (likely typos; warn about them)."""
    return sorted(set(policy.candidates) - set(candidates))


def example_score_files(policy: Policy, file: str | Path) -> dict[str, Path]:
    """The policy's ``example_scores``, each path resolved against the policy's folder
    (an absolute path stays as written)."""
    base = Path(file).parent
    return {name: base / Path(path) for name, path in policy.example_scores.items()}


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of the policy file (what ``compaudit schema policy`` prints)."""
    schema = Policy.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "policy.schema.json",
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
    file, data, lines = read_policy_data(path)
    if "version" not in data:
        raise PolicyError(ERR_NO_VERSION.format(file=file))
    version = data["version"]
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise PolicyError(ERR_VERSION.format(file=file, version=version, supported=supported))
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = [describe(err, file, lines, _allowed_keys) for err in exc.errors()]
        message = ERR_INVALID.format(file=file, problems=PROBLEM_SEP.join(problems))
        raise PolicyError(message) from None


def _allowed_keys(parent: Loc) -> list[str]:
    """Field names of the model at ``parent`` (a path into :class:`Policy`)."""
    model: Any = Policy
    for part in parent:
        if model is Policy and part == "candidates":
            model = dict  # the next part is a candidate name: any is allowed
        elif model is dict:
            model = CandidateOverride
        else:
            model = {"gates": Gates, "subgroups": SubgroupGates, "floors": FloorSettings}.get(
                str(part)
            )
            if model is None:
                return []
    return [] if model is dict else list(model.model_fields)
