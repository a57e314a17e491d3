"""Loading and validating policy files (YAML, TOML, pyproject.toml)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from compaudit import policy as pol
from compaudit import settings as st
from compaudit.errors import PROBLEM_SEP, PolicyError
from compaudit.policy import Gates, Policy, SubgroupGates, load_policy

FULL_YAML = """\
version: 1
alpha: 0.05
correction: holm
seed: 0
gates:
  top1_drop: 0.01
  top5_drop: 0.01
  cie_rate: 0.05
  cie_u_rate: 0.03
  pie_rate: 0.02
  significant_classes: 0
  class_recall_drop: 0.05
  subgroups:
    attributes: [sex, race]
    min_support: 30
    pie_share_growth: 100
    accuracy_gap: 0.03
candidates:
  int8: {gates: {top1_drop: 0.005}}
"""

FULL_TOML_BODY = """\
version = 1
alpha = 0.05
correction = "holm"
seed = 0

[{p}gates]
top1_drop = 0.01
top5_drop = 0.01
cie_rate = 0.05
cie_u_rate = 0.03
pie_rate = 0.02
significant_classes = 0
class_recall_drop = 0.05

[{p}gates.subgroups]
attributes = ["sex", "race"]
min_support = 30
pie_share_growth = 100
accuracy_gap = 0.03

[{p}candidates.int8.gates]
top1_drop = 0.005
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


EXPECTED = Policy(
    version=1,
    alpha=0.05,
    correction="holm",
    seed=0,
    gates=Gates(
        top1_drop=0.01,
        top5_drop=0.01,
        cie_rate=0.05,
        cie_u_rate=0.03,
        pie_rate=0.02,
        significant_classes=0,
        class_recall_drop=0.05,
        subgroups=SubgroupGates(
            attributes=["sex", "race"], min_support=30, pie_share_growth=100, accuracy_gap=0.03
        ),
    ),
    candidates={"int8": pol.CandidateOverride(gates=Gates(top1_drop=0.005))},
)


def test_yaml_toml_and_pyproject_load_identically(tmp_path: Path) -> None:
    from_yaml = load_policy(write(tmp_path, "p.yaml", FULL_YAML))
    from_yml = load_policy(write(tmp_path, "p.yml", FULL_YAML))
    from_toml = load_policy(write(tmp_path, "p.toml", FULL_TOML_BODY.format(p="")))
    pyproject = '[project]\nname = "x"\n\n[tool.compaudit]\n' + FULL_TOML_BODY.format(
        p="tool.compaudit."
    )
    from_pyproject = load_policy(write(tmp_path, "pyproject.toml", pyproject))
    assert from_yaml == from_yml == from_toml == from_pyproject == EXPECTED
    assert from_yaml.model_dump() == from_pyproject.model_dump()


def test_defaults_of_a_minimal_policy(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", "version: 1\n"))
    assert (p.alpha, p.correction, p.seed, p.on_unevaluable) == (0.05, "holm", 0, "error")
    assert p.gates == Gates()
    assert pol.settings(p) == {
        "alpha": 0.05,
        "correction": "holm",
        "seed": 0,
        "min_support": 30,
        "attributes": [],
        "attribute_sets": [],
        "paired": None,
        "floor_splits": 64,
        "floor_quantile": 0.95,
    }
    assert (p.paired, p.floors) == (None, pol.FloorSettings(n_splits=64, quantile=0.95))
    assert p.gates.class_recall_drop_beyond_floor is False


def test_unknown_key_names_key_file_and_line_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", FULL_YAML.replace("  pie_rate:", "  pie_rat:"))
    allowed = ", ".join(Gates.model_fields)
    assert error_of(path) == pol.ERR_INVALID.format(
        file=path,
        problems=f"{path}:10: unknown key 'pie_rat' under gates (did you mean 'pie_rate'?); "
        f"allowed keys: {allowed}",
    )


def test_unknown_key_in_nested_and_candidate_blocks_yaml(tmp_path: Path) -> None:
    text = FULL_YAML.replace("    min_support:", "    min_suport:").replace(
        "int8: {gates: {top1_drop", "int8: {gates: {top_1_drop"
    )
    msg = error_of(write(tmp_path, "p.yaml", text))
    assert (
        ":15: unknown key 'min_suport' under gates.subgroups (did you mean 'min_support'?)" in msg
    )
    assert ":19: unknown key 'top_1_drop' under candidates.int8.gates" in msg


def test_unknown_key_line_toml_and_pyproject(tmp_path: Path) -> None:
    body = FULL_TOML_BODY.replace("cie_u_rate", "cie_u_rte")
    msg = error_of(write(tmp_path, "p.toml", body.format(p="")))
    assert "p.toml:10: unknown key 'cie_u_rte' under gates (did you mean 'cie_u_rate'?)" in msg
    pyproject = '[project]\nname = "x"\n\n[tool.compaudit]\n' + body.format(p="tool.compaudit.")
    msg = error_of(write(tmp_path, "pyproject.toml", pyproject))
    assert "pyproject.toml:14: unknown key 'cie_u_rte' under gates" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "p.yaml", "version: 1\ngate:\n  top1_drop: 0.01\n"))
    assert ":2: unknown key 'gate' under the top level (did you mean 'gates'?)" in msg


@pytest.mark.parametrize("version", ["2", "0", "'1'", "1.0", "true"])
def test_unsupported_version_rejected(tmp_path: Path, version: str) -> None:
    path = write(tmp_path, "p.yaml", f"version: {version}\n")
    shown = {"2": 2, "0": 0, "'1'": "1", "1.0": 1.0, "true": True}[version]
    assert error_of(path) == pol.ERR_VERSION.format(file=path, version=shown, supported="1")


def test_missing_version_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "gates: {top1_drop: 0.01}\n")
    assert error_of(path) == pol.ERR_NO_VERSION.format(file=path)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alpha: '0.05'", "alpha: Input should be a valid number (got '0.05')"),
        # Ranges: the validators every source shares (compaudit.settings), exactly.
        (
            "alpha: 1.5",
            "alpha: " + st.ERR_INTERVAL.format(name="alpha", interval="(0, 1)", value=1.5),
        ),
        ("seed: 1.5", "seed: Input should be a valid integer (got 1.5)"),
        ("correction: fdr", "correction: Input should be 'holm', 'bh', 'bonferroni' or 'none'"),
        ("on_unevaluable: skip", "on_unevaluable: Input should be 'error', 'skip-with-warning'"),
        (
            "gates: {top1_drop: -0.01}",
            "gates.top1_drop: Input should be greater than or equal to 0",
        ),
        ("gates: {cie_rate: yes}", "gates.cie_rate: Input should be a valid number (got True)"),
        ("gates: {significant_classes: 0.5}", "gates.significant_classes: Input should be a valid"),
        ("gates: {top1_drop: .nan}", "gates.top1_drop: Input should be a finite number"),
        ("gates: {subgroups: {attributes: sex}}", "gates.subgroups.attributes: Input should be"),
        ("gates: {subgroups: {attributes: [sex, sex]}}", "attributes must not repeat"),
        (
            "gates: {subgroups: {min_support: 0}}",
            "gates.subgroups.min_support: "
            + st.ERR_AT_LEAST.format(name="min_support", low=1, value=0),
        ),
    ],
)
def test_wrong_types_and_ranges_rejected(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, "p.yaml", f"version: 1\n{line}\n")
    msg = error_of(path)
    assert msg.startswith(f"invalid policy {path}: {path}:2: ")
    assert expected in msg


def test_every_problem_is_listed(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "p.yaml", "version: 1\nalpha: 2\ngates: {top1_dorp: 1}\n"))
    # One line (the CLI would show a newline escaped, as "\\n"), one part per problem.
    assert "\n" not in msg
    first, second = msg.split(PROBLEM_SEP)
    assert first.endswith(":2: alpha: alpha must lie in (0, 1), got 2.0")
    assert ":3: unknown key 'top1_dorp'" in second


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "gates:\n  top1_drop: [0.01\n",
            "not valid YAML: while parsing a flow sequence (line 2, column 14): expected ',' or "
            "']', but got '<stream end>' (line 3, column 1)",
        ),
        (
            'gates:\n  x: "abc\n',
            "not valid YAML: while scanning a quoted scalar (line 2, column 6): found unexpected "
            "end of stream (line 3, column 1)",
        ),
        ("gates:\n\ttop1_drop: 0.1\n", "found character '\\t' that cannot start any token"),
        ("a: &a [*a]\n", "not valid YAML: a recursive alias"),
        # PyYAML's constructors raise ValueError / AttributeError here: an internal error before.
        ("gates:\n  top1_drop: !!int x\n", "a tagged value cannot be read (ValueError: "),
        ("seed: !!timestamp nope\n", "a tagged value cannot be read (AttributeError: "),
        # Untagged, but beyond Python's int digits limit: was called "a tagged value".
        ("seed: " + "9" * 5000 + "\n", "an integer of more than 4,300 digits"),
    ],
)
def test_yaml_syntax_errors_are_one_line_with_where(
    tmp_path: Path, text: str, expected: str
) -> None:
    """PyYAML's message spans lines (a caret under the quoted text); ours names the spot."""
    msg = error_of(write(tmp_path, "p.yaml", text))
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path}/p.yaml: not valid YAML: ")
    assert expected in msg


def test_duplicate_yaml_key_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "version: 1\ngates:\n  top1_drop: 0.01\n  top1_drop: 0.5\n")
    assert error_of(path) == pol.ERR_DUPLICATE_KEY.format(file=path, line=4, key="top1_drop")


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error_of(missing) == pol.ERR_NOT_FOUND.format(file=missing)
    json_file = write(tmp_path, "p.json", "{}")
    assert error_of(json_file) == pol.ERR_SUFFIX.format(file=json_file, suffix=".json")
    assert error_of(write(tmp_path, "bad.yaml", "version: [1\n")).startswith(
        f"{tmp_path}/bad.yaml: not valid YAML"
    )
    assert error_of(write(tmp_path, "bad.toml", "version = \n")).startswith(
        f"{tmp_path}/bad.toml: not valid TOML"
    )
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert error_of(binary).startswith(f"{binary}: not valid UTF-8 text")
    listed = write(tmp_path, "list.yaml", "- 1\n")
    assert error_of(listed) == pol.ERR_NOT_MAPPING.format(file=listed, got="list")
    empty = write(tmp_path, "empty.yaml", "")
    assert error_of(empty) == pol.ERR_NOT_MAPPING.format(file=empty, got="NoneType")
    no_table = write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n')
    assert error_of(no_table) == pol.ERR_NO_TOOL_TABLE.format(file=no_table)


def test_candidate_overrides_deep_merge(tmp_path: Path) -> None:
    text = """\
    version: 1
    on_unevaluable: error
    gates:
      top1_drop: 0.01
      cie_rate: 0.05
      class_recall_drop_significant_only: true
      subgroups: {attributes: [sex], min_support: 30, accuracy_gap: 0.03, pie_share_growth: 50}
    candidates:
      int8:
        gates: {top1_drop: 0.005, subgroups: {accuracy_gap: 0.01}}
      pruned:
        on_unevaluable: fail
        allow_weaker_on_unevaluable: true
        gates: {cie_rate: null, pie_rate: 0.1}
    """
    p = load_policy(write(tmp_path, "p.yaml", text))
    base, int8, pruned = (
        p.for_candidate("other"),
        p.for_candidate("int8"),
        p.for_candidate("pruned"),
    )
    assert (base.gates, base.candidate) == (p.gates, "other")
    assert (int8.gates.top1_drop, int8.gates.cie_rate) == (0.005, 0.05)
    assert int8.gates.class_recall_drop_significant_only is True
    assert int8.gates.subgroups == SubgroupGates(
        attributes=["sex"], min_support=30, accuracy_gap=0.01, pie_share_growth=50
    )
    assert int8.on_unevaluable == "error"
    # null switches a gate off; a new key adds one; on_unevaluable is per candidate too.
    assert (pruned.gates.cie_rate, pruned.gates.pie_rate, pruned.gates.top1_drop) == (
        None,
        0.1,
        0.01,
    )
    assert pruned.on_unevaluable == "fail"
    assert p.for_candidate(None).gates == p.gates
    assert pol.unused_overrides(p, ["int8", "fp16"]) == ["pruned"]


def test_per_candidate_attributes_rejected(tmp_path: Path) -> None:
    text = """\
    version: 1
    gates: {subgroups: {attributes: [sex]}}
    candidates:
      int8:
        gates:
          subgroups: {attributes: [race]}
    """
    msg = error_of(write(tmp_path, "p.yaml", text))
    assert ":5: candidates.int8.gates: " + pol.ERR_OVERRIDE_ATTRIBUTES in msg


def test_settings_and_required_attributes(tmp_path: Path) -> None:
    p = load_policy(
        write(tmp_path, "p.yaml", FULL_YAML.replace("holm", "bh").replace("seed: 0", "seed: 7"))
    )
    assert pol.required_attributes(p) == ["sex", "race"]
    assert pol.settings(p) == {
        "alpha": 0.05,
        "correction": "bh",
        "seed": 7,
        "min_support": 30,
        "attributes": ["sex", "race"],
        "attribute_sets": [["sex", "race"]],
        "paired": None,
        "floor_splits": 64,
        "floor_quantile": 0.95,
    }


def test_json_schema_describes_every_key() -> None:
    schema = pol.policy_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Policy.model_fields)
    gates = schema["$defs"]["Gates"]
    assert gates["additionalProperties"] is False
    assert gates["properties"]["top1_drop"]["description"].startswith("Largest allowed drop")


NOISE_YAML = """\
version: 1
paired: true
floors: {n_splits: 32, quantile: 0.9}
gates:
  pie_rate_excess: 0.01
  cie_rate_excess: 0.02
  class_recall_drop: 0.03
  class_recall_drop_beyond_floor: true
  subgroups:
    attribute_sets: [[sex], [race], [race, sex], [label, sex]]
    require_significance: false
    pie_share_growth_excess: 25
"""


def test_noise_floor_keys_and_attribute_sets(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", NOISE_YAML))
    assert (p.paired, p.floors.n_splits, p.floors.quantile) == (True, 32, 0.9)
    gates = p.gates
    assert (gates.pie_rate_excess, gates.cie_rate_excess) == (0.01, 0.02)
    assert gates.class_recall_drop_beyond_floor is True
    assert gates.subgroups is not None
    assert gates.subgroups.require_significance is False
    assert gates.subgroups.pie_share_growth_excess == 25
    sets = [["sex"], ["race"], ["race", "sex"], ["label", "sex"]]
    assert pol.attribute_sets(p) == sets
    assert pol.required_attributes(p) == ["sex", "race", "label"]  # the union, first seen first
    wanted = pol.settings(p)
    assert (wanted["attribute_sets"], wanted["attributes"]) == (sets, ["sex", "race", "label"])
    assert (wanted["paired"], wanted["floor_splits"], wanted["floor_quantile"]) == (True, 32, 0.9)
    # The same in TOML.
    toml = """\
    version = 1
    paired = true
    [floors]
    n_splits = 32
    quantile = 0.9
    [gates]
    pie_rate_excess = 0.01
    cie_rate_excess = 0.02
    class_recall_drop = 0.03
    class_recall_drop_beyond_floor = true
    [gates.subgroups]
    attribute_sets = [["sex"], ["race"], ["race", "sex"], ["label", "sex"]]
    require_significance = false
    pie_share_growth_excess = 25
    """
    assert load_policy(write(tmp_path, "p.toml", toml)) == p


def test_subgroups_default_to_requiring_significance() -> None:
    assert SubgroupGates().require_significance is True
    assert SubgroupGates(attributes=["sex"]).sets() == [["sex"]]
    assert SubgroupGates().sets() == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "gates: {subgroups: {attributes: [sex], attribute_sets: [[race]]}}",
            "gates.subgroups: " + pol.ERR_BOTH_ATTRIBUTE_KEYS,
        ),
        (
            "gates: {subgroups: {attribute_sets: [[sex, race], [race, sex]]}}",
            pol.ERR_SETS_REPEAT.format(set="[race, sex]"),
        ),
        ("gates: {subgroups: {attribute_sets: [[sex, sex]]}}", "[sex, sex] names an attribute"),
        ("gates: {subgroups: {attribute_sets: [[]]}}", pol.ERR_SET_EMPTY),
        ("gates: {subgroups: {attribute_sets: [sex]}}", "gates.subgroups.attribute_sets.0"),
        ("paired: 'yes'", "paired: Input should be a valid boolean (got 'yes')"),
        (
            "floors: {quantile: 1.0}",
            "floors.quantile: "
            + st.ERR_INTERVAL.format(name="floor_quantile", interval="[0.5, 1)", value=1.0),
        ),
        (
            "floors: {quantile: 0.4}",
            "floors.quantile: "
            + st.ERR_INTERVAL.format(name="floor_quantile", interval="[0.5, 1)", value=0.4),
        ),
        (
            "floors: {n_splits: 2}",
            "floors.n_splits: " + st.ERR_AT_LEAST.format(name="floor_splits", low=3, value=2),
        ),
        ("gates: {pie_rate_excess: -0.01}", "gates.pie_rate_excess: Input should be greater"),
        (
            "gates: {cie_rate_excess: 2}",
            "gates.cie_rate_excess: "
            + pol.ERR_UNFAILABLE.format(value=2.0, why=pol.WHY_FRACTION, limit=1.0),
        ),
        ("gates: {class_recall_drop_beyond_floor: 1}", "Input should be a valid boolean"),
        ("gates: {subgroups: {require_significance: 'no'}}", "valid boolean (got 'no')"),
    ],
)
def test_new_keys_reject_bad_values(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, "p.yaml", f"version: 1\n{line}\n")
    msg = error_of(path)
    assert msg.startswith(f"invalid policy {path}: {path}:2: ")
    assert expected in msg


def test_unknown_key_under_floors_is_named(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "p.yaml", "version: 1\nfloors:\n  n_split: 10\n"))
    assert ":3: unknown key 'n_split' under floors (did you mean 'n_splits'?); " in msg
    assert msg.endswith("allowed keys: n_splits, quantile")


def test_per_candidate_attribute_sets_rejected(tmp_path: Path) -> None:
    text = """\
    version: 1
    gates: {subgroups: {attribute_sets: [[sex]]}}
    candidates:
      int8:
        gates:
          subgroups: {attribute_sets: [[race]], require_significance: false}
    """
    msg = error_of(write(tmp_path, "p.yaml", text))
    assert "candidates.int8.gates: " + pol.ERR_OVERRIDE_ATTRIBUTES in msg


def test_override_merges_the_new_subgroup_keys(tmp_path: Path) -> None:
    text = """\
    version: 1
    gates:
      pie_rate_excess: 0.01
      subgroups: {attribute_sets: [[sex], [race]], accuracy_gap: 0.02}
    candidates:
      int8:
        gates:
          pie_rate_excess: null
          cie_rate: 0.01
          subgroups: {require_significance: false}
    """
    p = load_policy(write(tmp_path, "p.yaml", text))
    int8 = p.for_candidate("int8").gates
    assert (int8.pie_rate_excess, int8.cie_rate) == (None, 0.01)
    assert int8.subgroups is not None
    assert int8.subgroups.sets() == [["sex"], ["race"]]
    assert (int8.subgroups.require_significance, int8.subgroups.accuracy_gap) == (False, 0.02)


def test_policy_layer_holds_only_the_keys_the_file_sets(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "version: 1\nalpha: 0.01\nfloors: {quantile: 0.9}\n")
    layer = pol.policy_layer(load_policy(path), path)
    assert (layer.source, layer.file) == ("policy", path)
    assert layer.values == {"alpha": 0.01, "floor_quantile": 0.9}
    p = load_policy(write(tmp_path, "q.yaml", NOISE_YAML))
    values = pol.policy_layer(p).values
    assert values["attribute_sets"] == pol.attribute_sets(p)
    assert values["attributes"] == pol.required_attributes(p)
    assert (values["paired"], values["floor_splits"]) == (True, 32)


def test_with_settings_replaces_the_policy_values_the_audit_overrode(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", FULL_YAML))
    same = pol.with_settings(p, st.AuditSettings.from_values(pol.policy_layer(p).values))
    assert same == p
    over = pol.with_settings(p, st.AuditSettings(alpha=0.2, min_support=5, floor_splits=8))
    assert (over.alpha, over.floors.n_splits) == (0.2, 8)
    assert over.gates.subgroups is not None
    assert over.gates.subgroups.min_support == 5
    assert over.gates.subgroups.attributes == ["sex", "race"]  # the sets stay the policy's
    assert over.for_candidate("int8").gates.top1_drop == 0.005
    without = load_policy(write(tmp_path, "g.yaml", "version: 1\ngates: {top1_drop: 0.1}\n"))
    assert pol.with_settings(without, st.AuditSettings(min_support=5)).gates.subgroups is None


def test_policy_schema_keeps_the_shared_bounds() -> None:
    schema = pol.policy_json_schema()
    assert schema["properties"]["alpha"]["exclusiveMinimum"] == 0
    assert schema["properties"]["alpha"]["exclusiveMaximum"] == 1
    floors = schema["$defs"]["FloorSettings"]["properties"]
    assert floors["n_splits"]["minimum"] == st.FLOOR_SPLITS.json_schema["minimum"]
    assert floors["quantile"]["minimum"] == 0.5
