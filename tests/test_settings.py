"""One settings path: every setting through every source, through the real CLI.

Each run writes ``report.json``; its ``settings`` object must hold the value
and the source (``settings.sources``) that the precedence explicit flag >
policy file > ``[tool.compaudit]`` in ``pyproject.toml`` > default gives.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from compaudit import settings as st
from compaudit.cli import build_cli
from compaudit.engine import AuditSettings
from compaudit.population import save_population
from compaudit.report.base import validate_report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "policies"

# The value each source gives, in the report's form. A source that cannot set a
# setting leaves it out (a policy has no examples_cap or empty_classes; no flag
# names attribute_sets; TOML has no null, so pyproject's paired is a bool).
DEFAULTS: dict[str, Any] = {
    "alpha": 0.05,
    "correction": "holm",
    "seed": 0,
    "min_support": 30,
    "attributes": [],
    "attribute_sets": [],
    "paired": None,
    "floor_splits": 64,
    "floor_quantile": 0.95,
    "examples_cap": 200,
    "empty_classes": "error",
    "missing_attributes": "error",
}
GIVEN: dict[str, dict[str, Any]] = {
    "pyproject": {
        "alpha": 0.1,
        "correction": "bh",
        "seed": 1,
        "min_support": 20,
        "attributes": ["age"],
        "paired": False,
        "floor_splits": 5,
        "floor_quantile": 0.9,
        "examples_cap": 50,
        "empty_classes": "skip",
    },
    "policy": {
        "alpha": 0.15,
        "correction": "bonferroni",
        "seed": 2,
        "min_support": 25,
        "attribute_sets": [["sex"], ["age"]],
        "paired": True,
        "floor_splits": 4,
        "floor_quantile": 0.8,
    },
    "cli": {
        "alpha": 0.2,
        "correction": "none",
        "seed": 3,
        "min_support": 10,
        "attributes": ["sex"],
        "paired": False,
        "floor_splits": 3,
        "floor_quantile": 0.6,
        "examples_cap": 7,
        "empty_classes": "skip",
    },
}
# The subgroup sets travel together: the source naming either names both. A
# policy's report form lists the union of its sets as ``attributes``.
SUBGROUPS: dict[str, tuple[list[str], list[list[str]]]] = {
    "pyproject": (["age"], []),
    "policy": (["sex", "age"], [["sex"], ["age"]]),
    "cli": (["sex"], []),
    "default": ([], []),
}
FLAGS = {
    "alpha": "--alpha",
    "correction": "--correction",
    "seed": "--seed",
    "min_support": "--min-support",
    "floor_splits": "--floor-splits",
    "floor_quantile": "--floor-quantile",
    "examples_cap": "--examples-cap",
    "empty_classes": "--empty-classes",
}
SOURCES = ("cli", "policy", "pyproject")


def test_every_setting_is_declared_once_and_tested() -> None:
    names = [s.name for s in st.SETTINGS]
    assert names == list(DEFAULTS)
    assert {s.name: s.default for s in st.SETTINGS} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in DEFAULTS.items()
    }
    import dataclasses

    assert [f.name for f in dataclasses.fields(AuditSettings)] == [
        "alpha",
        "correction",
        "seed",
        "min_support",
        "attributes",
        "empty_classes",
        "attribute_sets",
        "paired",
        "floor_splits",
        "floor_quantile",
        "examples_cap",
        "missing_attributes",
    ]
    assert set(names) == {f.name for f in dataclasses.fields(AuditSettings)}
    for source, given in GIVEN.items():
        assert set(given) <= set(names), source
    assert {s.name for s in st.SETTINGS if s.cli} == set(FLAGS) | {"attributes", "paired"}
    assert {s.name for s in st.SETTINGS if s.policy} == set(GIVEN["policy"]) | {"attributes"}


# -- helpers ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, small_case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding predictions (reference carries sex and age)."""
    root = tmp_path / "project"
    root.mkdir()
    save_population(small_case["reference"], root / "ref.npz")
    save_population(small_case["candidate"], root / "cand.npz")
    monkeypatch.chdir(root)
    return root


def toml_value(value: Any) -> str:
    return json.dumps(value)  # bools, numbers, strings and lists read the same in TOML


def write_pyproject(path: Path, values: dict[str, Any]) -> Path:
    lines = ['[project]\nname = "x"\n\n[tool.compaudit]']
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_policy(path: Path, values: dict[str, Any]) -> Path:
    doc: dict[str, Any] = {"version": 1}
    for key, value in values.items():
        where = doc
        *parents, leaf = st.BY_NAME[key].policy or ()
        for part in parents:
            where = where.setdefault(part, {})
        where[leaf] = value
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def cli_args(values: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        if key == "attributes":
            args += ["--subgroups", ",".join(value)]
        elif key == "paired":
            args.append("--paired" if value else "--unpaired")
        else:
            args += [FLAGS[key], str(value)]
    return args


def run(root: Path, *extra: str, command: str = "report", code: int = 0) -> dict[str, Any]:
    """Run the CLI in ``root`` on its predictions; the report's ``settings``."""
    out = root / "out"
    args = [command, "-r", "ref.npz", "-c", "cand.npz", "--out", str(out), "-f", "json", *extra]
    res = CliRunner().invoke(build_cli(), args, catch_exceptions=False)
    assert res.exit_code == code, res.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    validate_report(report)
    settings: dict[str, Any] = report["settings"]
    return settings


def run_with(
    root: Path, layers: dict[str, dict[str, Any]], command: str = "report", code: int = 0
) -> Any:
    extra: list[str] = []
    if "pyproject" in layers:
        write_pyproject(root / "pyproject.toml", layers["pyproject"])
    if "policy" in layers:
        extra += ["--policy", str(write_policy(root / "policy.yaml", layers["policy"]))]
    extra += cli_args(layers.get("cli", {}))
    return run(root, *extra, command=command, code=code)


def expected(layers: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Values and sources by the documented precedence, computed independently."""
    values, sources = dict(DEFAULTS), dict.fromkeys(DEFAULTS, "default")
    order = [s for s in SOURCES if s in layers]
    for name in DEFAULTS:
        if name in ("attributes", "attribute_sets", "missing_attributes"):
            continue
        source = next((s for s in order if name in layers[s]), None)
        if source is not None:
            values[name], sources[name] = layers[source][name], source
    group = next((s for s in order if {"attributes", "attribute_sets"} & set(layers[s])), "default")
    values["attributes"], values["attribute_sets"] = SUBGROUPS[group]
    sources["attributes"] = sources["attribute_sets"] = group
    if group == "policy":
        values["missing_attributes"], sources["missing_attributes"] = "warn", "policy"
    return values, sources


def assert_settings(got: dict[str, Any], layers: dict[str, dict[str, Any]], root: Path) -> None:
    values, sources = expected(layers)
    assert {k: got[k] for k in values} == values
    assert got["sources"] == sources
    policy = str(root / "policy.yaml") if "policy" in layers else None
    pyproject = str((root / "pyproject.toml").resolve()) if "pyproject" in layers else None
    assert got["files"] == {"policy": policy, "pyproject": pyproject}


# -- every setting through every source, and each pair's precedence ---------------


@pytest.mark.parametrize("source", ["default", *SOURCES])
def test_every_setting_through_each_source(project: Path, source: str) -> None:
    layers = {} if source == "default" else {source: GIVEN[source]}
    assert_settings(run_with(project, layers), layers, project)


@pytest.mark.parametrize(("high", "low"), list(itertools.combinations(SOURCES, 2)))
def test_precedence_between_each_pair(project: Path, high: str, low: str) -> None:
    layers = {high: GIVEN[high], low: GIVEN[low]}
    got = run_with(project, layers)
    assert_settings(got, layers, project)
    for name in set(GIVEN[high]) & set(GIVEN[low]):
        assert got["sources"][name] == high, name


def test_all_three_sources_and_check_uses_the_same_path(project: Path) -> None:
    layers = {s: GIVEN[s] for s in SOURCES}
    # The policy sets no gate, so check evaluates none: exit 2 (issue 11), settings reported.
    assert_settings(run_with(project, layers, command="check", code=2), layers, project)


@pytest.mark.parametrize("name", [n for n in DEFAULTS if n in GIVEN["pyproject"]])
@pytest.mark.parametrize("source", SOURCES)
def test_one_setting_from_one_source(project: Path, name: str, source: str) -> None:
    if name not in GIVEN[source]:
        pytest.skip(f"{source} cannot set {name}")
    layers = {source: {name: GIVEN[source][name]}}
    assert_settings(run_with(project, layers), layers, project)


def test_attribute_sets_from_pyproject_and_attributes_from_policy(project: Path) -> None:
    write_pyproject(project / "pyproject.toml", {"attribute_sets": [["age"], ["sex", "age"]]})
    got = run(project)
    assert (got["attributes"], got["attribute_sets"]) == ([], [["age"], ["sex", "age"]])
    assert got["sources"]["attribute_sets"] == got["sources"]["attributes"] == "pyproject"
    policy = write_policy(project / "policy.yaml", {"attributes": ["sex"]})
    got = run(project, "--policy", str(policy))
    assert (got["attributes"], got["attribute_sets"]) == (["sex"], [["sex"]])
    assert got["sources"]["attribute_sets"] == "policy"
    got = run(project, "--policy", str(policy), "-g", "age")  # an explicit flag replaces both
    assert (got["attributes"], got["attribute_sets"]) == (["age"], [])
    assert got["sources"]["attribute_sets"] == "cli"


# -- the regression of issue 10 ------------------------------------------------------


def test_explicit_alpha_beats_the_policy(project: Path) -> None:
    """`--alpha 0.2` with a policy that says 0.05 used to run at 0.05."""
    policy = EXAMPLES / "digits-demo.yaml"
    assert yaml.safe_load(policy.read_text())["alpha"] == 0.05
    got = run(project, "--policy", str(policy), "--alpha", "0.2")
    assert got["alpha"] == 0.2
    assert got["sources"]["alpha"] == "cli"
    assert got["sources"]["correction"] == "policy"
    assert got["files"]["policy"] == str(policy)
    # And with `check`: the explicit seed and min_support are the ones audited and gated.
    gate = write_policy(project / "gate.yaml", {"alpha": 0.05})
    doc = yaml.safe_load(gate.read_text())
    doc["gates"] = {"top1_drop": 0.9, "subgroups": {"attributes": ["sex"], "accuracy_gap": 0.9}}
    gate.write_text(yaml.safe_dump(doc))
    got = run(
        project,
        "--policy",
        str(gate),
        "--alpha",
        "0.2",
        "--seed",
        "5",
        "--min-support",
        "3",
        command="check",
    )
    assert (got["alpha"], got["seed"], got["min_support"]) == (0.2, 5, 3)
    assert {got["sources"][k] for k in ("alpha", "seed", "min_support")} == {"cli"}


# -- pyproject discovery and its errors -----------------------------------------------


def test_closest_pyproject_with_a_table_wins(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(project / "pyproject.toml", {"alpha": 0.1})
    sub = project / "pkg" / "deeper"
    sub.mkdir(parents=True)
    (project / "pkg" / "pyproject.toml").write_text('[project]\nname = "inner"\n')  # no table
    for name in ("ref.npz", "cand.npz"):
        (sub / name).write_bytes((project / name).read_bytes())
    monkeypatch.chdir(sub)
    got = run(sub)
    assert (got["alpha"], got["sources"]["alpha"]) == (0.1, "pyproject")
    assert got["files"]["pyproject"] == str((project / "pyproject.toml").resolve())
    write_pyproject(project / "pkg" / "pyproject.toml", {"alpha": 0.3})
    assert run(sub)["alpha"] == 0.3


def test_policy_form_pyproject_table_gives_its_settings(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        "[tool.compaudit]\nversion = 1\nalpha = 0.02\n[tool.compaudit.floors]\nn_splits = 8\n"
    )
    got = run(project)
    assert (got["alpha"], got["floor_splits"]) == (0.02, 8)
    assert got["sources"]["alpha"] == got["sources"]["floor_splits"] == "pyproject"
    assert got["sources"]["seed"] == "default"


def error_line(root: Path, *extra: str) -> str:
    args = ["report", "-r", "ref.npz", "-c", "cand.npz", "--out", str(root / "out"), *extra]
    res = CliRunner().invoke(build_cli(), args, catch_exceptions=False)
    assert res.exit_code == 2, res.output
    line: str = res.output.strip()
    return line


def test_unknown_pyproject_key_is_one_line_naming_file_key_and_valid_keys(project: Path) -> None:
    path = write_pyproject(project / "pyproject.toml", {"alpah": 0.1})
    valid = ", ".join(s.name for s in st.SETTINGS if s.pyproject)
    message = st.ERR_PYPROJECT_UNKNOWN_KEY.format(
        file=path.resolve(), key="alpah", hint=" (did you mean 'alpha'?)", valid=valid
    )
    assert error_line(project) == f"compaudit: error: {message}"
    assert "\n" not in message


@pytest.mark.parametrize("key", ["top1_drop", "gates", "pie_rate_excess"])
def test_a_policy_key_in_pyproject_says_gates_belong_in_a_policy(project: Path, key: str) -> None:
    write_pyproject(project / "pyproject.toml", {key: 0.01})
    line = error_line(project)
    assert f"unknown key {key!r} in [tool.compaudit]{st.HINT_POLICY_KEY}; valid keys:" in line


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alpha": 1.5}, st.ERR_INTERVAL.format(name="alpha", interval="(0, 1)", value=1.5)),
        ({"alpha": "0.1"}, st.ERR_TYPE.format(name="alpha", kind="a finite number", value="0.1")),
        ({"seed": True}, st.ERR_TYPE.format(name="seed", kind="an integer", value=True)),
        ({"min_support": 0}, st.ERR_AT_LEAST.format(name="min_support", low=1, value=0)),
        (  # bounded: memory and time grow with splits x examples (10^9 took 4 GB)
            {"floor_splits": 10**9},
            st.ERR_AT_MOST.format(name="floor_splits", high=st.MAX_SPLITS, value=10**9),
        ),
        (
            {"correction": "fdr"},
            st.ERR_CHOICE.format(name="correction", choices=st.CORRECTIONS, value="fdr"),
        ),
        ({"attributes": ["sex", "sex"]}, st.ERR_REPEATS.format(name="attributes")),
        ({"attribute_sets": [[]]}, st.ERR_SET_EMPTY),
        ({"attributes": ["sex"], "attribute_sets": [["age"]]}, st.ERR_BOTH_ATTRIBUTE_KEYS),
    ],
)
def test_bad_pyproject_value_uses_the_shared_validator(
    project: Path, values: dict[str, Any], message: str
) -> None:
    path = write_pyproject(project / "pyproject.toml", values)
    expected_line = st.ERR_PYPROJECT_VALUE.format(file=path.resolve(), message=message)
    assert error_line(project) == f"compaudit: error: {expected_line}"


def test_the_same_validator_guards_flags_policy_and_audit_settings(project: Path) -> None:
    message = st.ERR_INTERVAL.format(name="alpha", interval="(0, 1)", value=1.5)
    res = CliRunner().invoke(build_cli(), ["report", "--alpha", "1.5"])
    assert res.exit_code == 2
    assert message in res.output
    policy = write_policy(project / "p.yaml", {"alpha": 1.5})
    assert message in error_line(project, "--policy", str(policy))
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\), got 1\.5"):
        AuditSettings(alpha=1.5)
    too_many = st.ERR_AT_MOST.format(name="floor_splits", high=st.MAX_SPLITS, value=10**9)
    res = CliRunner().invoke(build_cli(), ["report", "--floor-splits", str(10**9)])
    assert res.exit_code == 2
    assert too_many in res.output
    policy = write_policy(project / "q.yaml", {"floor_splits": 10**9})
    assert too_many in error_line(project, "--policy", str(policy))
    with pytest.raises(ValueError, match="floor_splits must be at most 10,000"):
        AuditSettings(floor_splits=10**9)


def test_huge_or_broken_pyproject_is_refused(project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_text("# pad\n" * (st.PYPROJECT_MAX_BYTES // 6 + 1))
    size = path.stat().st_size
    message = st.ERR_PYPROJECT_TOO_LARGE.format(
        file=path.resolve(), size=size, limit=st.PYPROJECT_MAX_BYTES
    )
    assert error_line(project) == f"compaudit: error: {message}"
    path.write_text("[tool.compaudit\n")
    assert error_line(project).startswith(f"compaudit: error: {path.resolve()}: not valid TOML")
    path.write_text("[tool]\ncompaudit = 3\n")
    message = st.ERR_PYPROJECT_NOT_TABLE.format(file=path.resolve(), got="int")
    assert error_line(project) == f"compaudit: error: {message}"
