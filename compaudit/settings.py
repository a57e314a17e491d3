"""Every audit setting, declared once: its default, type, validator and help.

The command line (``compaudit report``/``check`` options), the policy file
(:mod:`compaudit.policy`), the ``[tool.compaudit]`` table of a
``pyproject.toml`` and :class:`AuditSettings` all read :data:`SETTINGS`, so a
setting has one default and one validator wherever it is given.

Precedence, highest first (:data:`SOURCES`):

1. ``cli``: an explicit command-line flag (or ``AuditRequest.overrides``);
2. ``policy``: a key the ``--policy`` file sets;
3. ``pyproject``: a key of ``[tool.compaudit]`` in the closest
   ``pyproject.toml`` (found from the working directory upward) that has one;
4. ``default``: the default declared here.

:func:`resolve` merges the layers and records where each value came from; the
report writes that as ``settings.sources`` and ``settings.files``.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compaudit.analysis.floors import DEFAULT_SPLITS, MIN_SPLITS
from compaudit.analysis.stats import Correction
from compaudit.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "CORRECTIONS",
    "SETTINGS",
    "SOURCES",
    "AuditSettings",
    "Layer",
    "Resolved",
    "Setting",
    "SettingValueError",
    "Source",
    "find_pyproject",
    "pyproject_layer",
    "resolve",
]

Source = Literal["cli", "policy", "pyproject", "default"]
SOURCES: tuple[Source, ...] = ("cli", "policy", "pyproject", "default")
"""Where a setting can come from, highest precedence first (``cli``: a flag given, or an
argument of :func:`compaudit.audit`)."""
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh", "bonferroni", "none")
PYPROJECT_MAX_BYTES = 1_000_000
"""A ``pyproject.toml`` larger than this is refused unread (a config is never that big)."""

# Error messages (tests assert them exactly, fairlearn style).
ERR_TYPE = "{name} must be {kind}, got {value!r}"
ERR_INTERVAL = "{name} must lie in {interval}, got {value!r}"
ERR_AT_LEAST = "{name} must be at least {low}, got {value!r}"
ERR_AT_MOST = "{name} must be at most {high:,}, got {value!r}"
ERR_CHOICE = "{name} must be one of {choices}, got {value!r}"
ERR_REPEATS = "{name} must not repeat"
ERR_SET_REPEATS = "attribute set {set} names an attribute twice"
ERR_SET_EMPTY = "an attribute set must name at least one attribute"
ERR_SETS_REPEAT = "attribute set {set} is listed twice (the order of attributes does not matter)"
ERR_BOTH_ATTRIBUTE_KEYS = (
    "give either attributes (one set of attributes, crossed) or attribute_sets "
    "(several sets, each crossed on its own), not both"
)
ERR_PYPROJECT_TOO_LARGE = "{file} is {size} bytes; compaudit reads at most {limit} bytes of it"
ERR_PYPROJECT_SYNTAX = "{file}: not valid TOML: {problem}"
ERR_PYPROJECT_NOT_TABLE = "{file}: [tool.compaudit] must be a table, got {got}"
ERR_PYPROJECT_UNKNOWN_KEY = (
    "{file}: unknown key {key!r} in [tool.compaudit]{hint}; valid keys: {valid}"
)
HINT_POLICY_KEY = (
    " (gates and their thresholds are not settings: write them in a policy file, "
    "version: 1 and gates: ..., and pass it with --policy)"
)
# A table with 'version' is read as a whole policy, so it never reaches this hint.
_POLICY_KEYS = ("gates", "candidates", "on_unevaluable", "floors")
_GATE_SUFFIXES = ("_drop", "_rate", "_excess", "_increase", "_classes", "_growth", "_gap")
ERR_PYPROJECT_VALUE = "{file}: [tool.compaudit] {message}"


def _unknown_key_hint(key: str, valid: Sequence[str]) -> str:
    """The closest valid key, or that a policy key is not a setting."""
    if key in _POLICY_KEYS or key.endswith(_GATE_SUFFIXES):
        return HINT_POLICY_KEY
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class SettingValueError(ValueError):
    """A value a setting's validator refuses (the message names the setting)."""


Check = Callable[[Any], None]


@dataclass(frozen=True)
class Setting:
    """One audit setting, as every source reads it.

    Attributes
    ----------
    name : str
        The ``AuditSettings`` field, the ``pyproject.toml`` key and the report key.
    default : Any
        Value when no source gives one.
    kind : str
        The type in words (help text, README, error messages).
    help : str
        One sentence for ``--help`` and the documentation.
    check : callable
        Raises :class:`SettingValueError` for a value of the wrong type or range.
    choices : tuple of str, optional
        The allowed values of a string setting.
    cli : tuple of str
        Click declarations of the command-line flag; empty: no flag.
    cli_dest : str, optional
        Click parameter name, when it is not ``name``.
    policy : tuple of str, optional
        Key path of the setting in a policy file; None: a policy cannot set it.
    pyproject : bool
        Whether ``[tool.compaudit]`` may set it.
    json_schema : mapping
        Extra JSON Schema keywords (bounds) for the policy's schema.
    """

    name: str
    default: Any
    kind: str
    help: str
    check: Check
    choices: tuple[str, ...] | None = None
    cli: tuple[str, ...] = ()
    cli_dest: str | None = None
    policy: tuple[str, ...] | None = None
    pyproject: bool = True
    json_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        """Name of the click parameter holding the flag's value."""
        return self.cli_dest or self.name

    def validate(self, value: Any) -> None:
        """Raise :class:`SettingValueError` unless ``value`` is valid for this setting."""
        self.check(value)

    def pydantic_check(self, value: Any) -> Any:
        """The validator as a pydantic ``AfterValidator`` (returns ``value`` unchanged)."""
        self.check(value)
        return value


# -- validators ---------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(
    name: str, *, low: float, high: float | None, low_open: bool, high_open: bool = True
) -> Check:
    interval = (
        f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if high is not None
        else None
    )

    def check(value: Any) -> None:
        if not _is_number(value) or not math.isfinite(value):
            raise SettingValueError(ERR_TYPE.format(name=name, kind="a finite number", value=value))
        below = value <= low if low_open else value < low
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            if interval is None:
                raise SettingValueError(ERR_AT_LEAST.format(name=name, low=low, value=value))
            raise SettingValueError(ERR_INTERVAL.format(name=name, interval=interval, value=value))

    return check


def _integer(name: str, *, low: int, high: int | None = None) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingValueError(ERR_TYPE.format(name=name, kind="an integer", value=value))
        if value < low:
            raise SettingValueError(ERR_AT_LEAST.format(name=name, low=low, value=value))
        if high is not None and value > high:
            raise SettingValueError(ERR_AT_MOST.format(name=name, high=high, value=value))

    return check


def _choice(name: str, choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> None:
        if value not in choices or not isinstance(value, str):
            raise SettingValueError(ERR_CHOICE.format(name=name, choices=choices, value=value))

    return check


def _names(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SettingValueError(
            ERR_TYPE.format(name=name, kind="a list of attribute names", value=value)
        )
    if not all(isinstance(v, str) and v for v in value):
        raise SettingValueError(
            ERR_TYPE.format(name=name, kind="a list of attribute names", value=value)
        )
    return list(value)


def _check_attributes(value: Any) -> None:
    names = _names("attributes", value)
    if len(set(names)) != len(names):
        raise SettingValueError(ERR_REPEATS.format(name="attributes"))


def _check_attribute_sets(value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SettingValueError(
            ERR_TYPE.format(name="attribute_sets", kind="a list of attribute lists", value=value)
        )
    seen: set[frozenset[str]] = set()
    for attrs in value:
        names = _names("attribute_sets", attrs)
        shown = "[" + ", ".join(names) + "]"
        if not names:
            raise SettingValueError(ERR_SET_EMPTY)
        if len(set(names)) != len(names):
            raise SettingValueError(ERR_SET_REPEATS.format(set=shown))
        if frozenset(names) in seen:
            raise SettingValueError(ERR_SETS_REPEAT.format(set=shown))
        seen.add(frozenset(names))


def _check_paired(value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise SettingValueError(
            ERR_TYPE.format(name="paired", kind="true, false or null", value=value)
        )


# -- the settings ---------------------------------------------------------------

ALPHA = Setting(
    "alpha",
    0.05,
    "number in (0, 1)",
    "Significance level applied to adjusted p-values.",
    _number("alpha", low=0.0, high=1.0, low_open=True),
    cli=("--alpha",),
    policy=("alpha",),
    json_schema={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
)
CORRECTION = Setting(
    "correction",
    "holm",
    "one of " + ", ".join(CORRECTIONS),
    "Multiple-testing correction over the class tests (and, apart, the subgroup tests).",
    _choice("correction", CORRECTIONS),
    choices=CORRECTIONS,
    cli=("--correction",),
    policy=("correction",),
)
SEED = Setting(
    "seed",
    0,
    "integer >= 0",
    "Seed of every random choice.",
    _integer("seed", low=0),
    cli=("--seed",),
    policy=("seed",),
    json_schema={"minimum": 0},
)
MIN_SUPPORT = Setting(
    "min_support",
    30,
    "integer >= 1",
    "Smallest subgroup that is tested; smaller ones are listed as not testable.",
    _integer("min_support", low=1),
    cli=("--min-support",),
    policy=("gates", "subgroups", "min_support"),
    json_schema={"minimum": 1},
)
ATTRIBUTES = Setting(
    "attributes",
    (),
    "list of attribute names",
    "Attributes to cross in the subgroup table ('label' is the true label); "
    "default: every attribute the data carry, each on its own.",
    _check_attributes,
    cli=("--subgroups", "-g"),
    cli_dest="subgroups",
    policy=("gates", "subgroups", "attributes"),
)
ATTRIBUTE_SETS = Setting(
    "attribute_sets",
    (),
    "list of attribute lists",
    "Several attribute sets, each crossed on its own (not together with attributes).",
    _check_attribute_sets,
    policy=("gates", "subgroups", "attribute_sets"),
)
PAIRED = Setting(
    "paired",
    None,
    "true, false or null",
    "Lineage: candidate member k was made from reference member k; compare member with "
    "member (same K, matched by member name or order). Default: from a run directory's recipe.",
    _check_paired,
    cli=("--paired/--unpaired",),
    policy=("paired",),
)
MAX_SPLITS = 10_000
"""Most floor splits: p-values to 1e-4; memory and time grow with splits x examples."""
FLOOR_SPLITS = Setting(
    "floor_splits",
    DEFAULT_SPLITS,
    f"integer in [{MIN_SPLITS}, {MAX_SPLITS}]",
    "Disjoint splits of the reference population that estimate seed-noise floors.",
    _integer("floor_splits", low=MIN_SPLITS, high=MAX_SPLITS),
    cli=("--floor-splits",),
    policy=("floors", "n_splits"),
    json_schema={"minimum": MIN_SPLITS, "maximum": MAX_SPLITS},
)
FLOOR_QUANTILE = Setting(
    "floor_quantile",
    0.95,
    "number in [0.5, 1)",
    "Quantile of the seed-noise null reported as the floor.",
    _number("floor_quantile", low=0.5, high=1.0, low_open=False),
    cli=("--floor-quantile",),
    policy=("floors", "quantile"),
    json_schema={"minimum": 0.5, "exclusiveMaximum": 1},
)
EXAMPLES_CAP = Setting(
    "examples_cap",
    200,
    "integer >= 0",
    "Most changed examples (CIEs) listed per comparison; the total is always given.",
    _integer("examples_cap", low=0),
    cli=("--examples-cap",),
)
EMPTY_CLASSES = Setting(
    "empty_classes",
    "error",
    "error or skip",
    "Classes without examples: an input error, or skipped (their recall is not tested).",
    _choice("empty_classes", ("error", "skip")),
    choices=("error", "skip"),
    cli=("--empty-classes",),
)
MISSING_ATTRIBUTES = Setting(
    "missing_attributes",
    "error",
    "error or warn",
    "An attribute set naming an attribute the data lack: an input error, or (sets a policy "
    "names) a warning, the set's gates then being unevaluable. Not set by hand.",
    _choice("missing_attributes", ("error", "warn")),
    choices=("error", "warn"),
    pyproject=False,
)

SETTINGS: tuple[Setting, ...] = (
    ALPHA,
    CORRECTION,
    SEED,
    MIN_SUPPORT,
    ATTRIBUTES,
    ATTRIBUTE_SETS,
    PAIRED,
    FLOOR_SPLITS,
    FLOOR_QUANTILE,
    EXAMPLES_CAP,
    EMPTY_CLASSES,
    MISSING_ATTRIBUTES,
)
"""Every audit setting, in report order."""
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SUBGROUP_SETTINGS = ("attributes", "attribute_sets")
"""Given together: the source that names either names both (the other is empty)."""


@dataclass(frozen=True)
class AuditSettings:
    """Statistical settings of an audit (defaults and validators: :data:`SETTINGS`).

    Attributes
    ----------
    alpha : float
        Significance level applied to adjusted p-values.
    correction : {"holm", "bh", "bonferroni", "none"}
        Multiple-testing correction, applied per comparison to the family of
        class tests and, separately, to the family of subgroup tests.
    seed : int
        Seed of every random choice (the random subset of the Fig. 3 comparison).
    min_support : int
        Subgroups with fewer examples are reported as not testable.
    attributes : tuple of str
        Attributes to cross for the subgroup table (``"label"`` is the true label).
    empty_classes : {"error", "skip"}
        What to do with classes that have no examples.
    attribute_sets : tuple of tuple of str
        Several attribute sets, each crossed on its own (e.g. ``(("sex",), ("race",),
        ("sex", "race"))``). When neither this nor ``attributes`` is given, every
        attribute the data carry is audited on its own (marginal groups).
    paired : bool or None
        Lineage pairing: candidate member k was made from reference member k
        (post-training quantization, pruning fine-tuned from its weights). True
        asserts it for every candidate (same K, matched by member name when both
        sides name their members, else by order); None takes it from the caller
        (a trainer run directory knows it); False never pairs.
    floor_splits : int
        Disjoint splits of the reference population that estimate seed-noise floors.
    floor_quantile : float
        Quantile of the seed-noise null reported as the floor (0.95: the 95th
        percentile in the bad direction).
    examples_cap : int
        Most CIE examples listed per comparison (the total is always given).
    missing_attributes : {"error", "warn"}
        An attribute set naming an attribute the data lack: an input error, or
        (a policy's sets) a warning while the sets that exist are audited.

    Raises
    ------
    InputError
        A value its setting's validator refuses.
    """

    alpha: float = ALPHA.default
    correction: Correction = CORRECTION.default
    seed: int = SEED.default
    min_support: int = MIN_SUPPORT.default
    attributes: tuple[str, ...] = ATTRIBUTES.default
    empty_classes: Literal["error", "skip"] = EMPTY_CLASSES.default
    attribute_sets: tuple[tuple[str, ...], ...] = ATTRIBUTE_SETS.default
    paired: bool | None = PAIRED.default
    floor_splits: int = FLOOR_SPLITS.default
    floor_quantile: float = FLOOR_QUANTILE.default
    examples_cap: int = EXAMPLES_CAP.default
    missing_attributes: Literal["error", "warn"] = MISSING_ATTRIBUTES.default

    def __post_init__(self) -> None:
        for setting in SETTINGS:
            try:
                setting.validate(getattr(self, setting.name))
            except SettingValueError as exc:
                raise InputError(str(exc)) from None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> AuditSettings:
        """Settings from plain values (lists as read from a file become tuples)."""
        kw = dict(values)
        if "attributes" in kw:
            kw["attributes"] = tuple(kw["attributes"])
        if "attribute_sets" in kw:
            kw["attribute_sets"] = tuple(tuple(a) for a in kw["attribute_sets"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Report form."""
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "seed": self.seed,
            "min_support": self.min_support,
            "attributes": list(self.attributes),
            "attribute_sets": [list(a) for a in self.attribute_sets],
            "paired": self.paired,
            "floor_splits": self.floor_splits,
            "floor_quantile": self.floor_quantile,
        }


# -- sources and their merge --------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """The settings one source gives (only the keys it sets)."""

    source: Source
    values: Mapping[str, Any]
    file: Path | None = None


@dataclass(frozen=True)
class Resolved:
    """Merged settings and where each came from."""

    settings: AuditSettings
    sources: dict[str, Source]
    files: dict[str, str | None]

    def to_report(self) -> dict[str, Any]:
        """The report's ``settings`` object: every value, ``sources`` and ``files``."""
        out = self.settings.to_dict()
        for setting in SETTINGS:
            value = getattr(self.settings, setting.name)
            if setting.name not in out:
                out[setting.name] = list(value) if isinstance(value, tuple) else value
        out["sources"] = {s.name: self.sources[s.name] for s in SETTINGS}
        out["files"] = dict(self.files)
        return out


def resolve(*layers: Layer) -> Resolved:
    """Merge layers by :data:`SOURCES` precedence (the order given does not matter).

    ``attributes`` and ``attribute_sets`` are taken together from the highest
    source that sets either. ``missing_attributes`` is ``"warn"`` exactly when
    the subgroup sets come from the policy (its gates then turn unevaluable).

    Raises
    ------
    InputError
        A value its setting's validator refuses.
    """
    ordered = sorted(layers, key=lambda layer: SOURCES.index(layer.source))
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for setting in SETTINGS:
        if setting.name in SUBGROUP_SETTINGS:
            continue
        layer = next((lay for lay in ordered if setting.name in lay.values), None)
        if layer is not None:
            values[setting.name] = layer.values[setting.name]
        sources[setting.name] = layer.source if layer is not None else "default"
    group = next((lay for lay in ordered if set(SUBGROUP_SETTINGS) & set(lay.values)), None)
    for name in SUBGROUP_SETTINGS:
        if group is not None:
            values[name] = group.values.get(name, BY_NAME[name].default)
        sources[name] = group.source if group is not None else "default"
    if sources["attributes"] == "policy":
        values["missing_attributes"], sources["missing_attributes"] = "warn", "policy"
    files: dict[str, str | None] = {"policy": None, "pyproject": None}
    for layer in ordered:
        if layer.file is not None and layer.source in files:
            files[layer.source] = str(layer.file)
    return Resolved(AuditSettings.from_values(values), sources, files)


# -- pyproject.toml ---------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > PYPROJECT_MAX_BYTES:
        raise InputError(
            ERR_PYPROJECT_TOO_LARGE.format(file=path, size=size, limit=PYPROJECT_MAX_BYTES)
        )
    try:
        with path.open("rb") as fh:
            return tomllib.loads(fh.read(PYPROJECT_MAX_BYTES + 1).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(ERR_PYPROJECT_SYNTAX.format(file=path, problem=exc)) from None


def find_pyproject(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The closest ``pyproject.toml`` at or above ``start`` with a ``[tool.compaudit]`` table.

    Returns
    -------
    tuple of (Path, dict) or None
        The file and its table; None when no such file exists.

    Raises
    ------
    InputError
        A ``pyproject.toml`` on the way is too large or not valid TOML, or its
        ``tool.compaudit`` is not a table.
    """
    for directory in (start.resolve(), *start.resolve().parents):
        path = directory / "pyproject.toml"
        if not path.is_file():
            continue
        tool = _read_toml(path).get("tool")
        if not isinstance(tool, dict) or "compaudit" not in tool:
            continue
        table = tool["compaudit"]
        if not isinstance(table, dict):
            raise InputError(ERR_PYPROJECT_NOT_TABLE.format(file=path, got=type(table).__name__))
        return path, table
    return None


def pyproject_layer(path: Path, table: Mapping[str, Any]) -> Layer:
    """The settings of a ``[tool.compaudit]`` table, each checked by its validator.

    A table with a ``version`` key is a whole policy (what ``--policy
    pyproject.toml`` reads): it is validated as one, and the settings it sets
    are this layer; its gates apply only when ``--policy`` names the file.

    Raises
    ------
    InputError
        An unknown key (the message lists the valid ones), a bad value, or both
        ``attributes`` and ``attribute_sets``.
    PolicyError
        A policy-form table that is not a valid policy.
    """
    if "version" in table:
        from compaudit.policy import load_policy, policy_layer

        return policy_layer(load_policy(path), path, source="pyproject")
    valid = [s.name for s in SETTINGS if s.pyproject]
    for key, value in table.items():
        if key not in valid:
            raise InputError(
                ERR_PYPROJECT_UNKNOWN_KEY.format(
                    file=path, key=key, hint=_unknown_key_hint(key, valid), valid=", ".join(valid)
                )
            )
        try:
            BY_NAME[key].validate(value)
        except SettingValueError as exc:
            raise InputError(ERR_PYPROJECT_VALUE.format(file=path, message=exc)) from None
    if all(table.get(name) for name in SUBGROUP_SETTINGS):
        raise InputError(ERR_PYPROJECT_VALUE.format(file=path, message=ERR_BOTH_ATTRIBUTE_KEYS))
    return Layer("pyproject", dict(table), path)
