"""Specs and attribute tables that used to audit the wrong thing (issue 11, part 2).

An empty SPEC (``-c 'int8='``, what an unset CI variable gives) audited every
model in the working directory (without ``--data``, the error blamed a missing
``--data`` and named no spec); an attributes CSV with a ``label`` column
silently replaced the true label, and look-alike columns (``sex``, ``Sex``)
gave two attributes a reader takes for one. Each is now a usage error (exit
2, one line naming the spec or the file); each bad attribute table exited 0 before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from compaudit._model_data import ERR_EMPTY_SPEC
from compaudit.data import loading
from tests.fuzz.conftest import fails_closed

N = 600  # examples in good_preds


@pytest.fixture
def workdir(good_preds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding models: what an empty SPEC would pick up."""
    for name in ("ref", "cand"):
        shutil.copy(good_preds[name], tmp_path / f"{name}.npz")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# (id, --reference, --candidate, the spec the error must quote)
SPECS = [
    ("candidate-name-then-nothing", "ref.npz", "int8=", "int8="),
    ("candidate-name-then-blank", "ref.npz", "int8=  ", "int8=  "),
    ("reference-name-then-nothing", "ref=", "cand.npz", "ref="),
    ("candidate-blank", "ref.npz", " ", " "),
    ("reference-empty", "", "cand.npz", ""),  # was "nothing to audit", naming no spec
]


@pytest.mark.parametrize(("ref", "cand", "spec"), [s[1:] for s in SPECS], ids=[s[0] for s in SPECS])
def test_empty_spec_is_a_usage_error(workdir: Path, ref: str, cand: str, spec: str) -> None:
    run = fails_closed(["report", "-r", ref, "-c", cand, "--out", "out"], names=repr(spec))
    name, sep, _ = spec.partition("=")
    after = f" after '{name}='" if sep else ""
    expected = ERR_EMPTY_SPEC.format(text=spec, after=after)
    assert run.error_lines == [f"compaudit: error: {expected}"]


def test_predict_empty_spec_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `compaudit predict "$MODEL"` with MODEL unset ran every model in the working
    # directory (Path("") is ".") and exited 0.
    from compaudit.models.spec import ERR_BLANK_SPEC
    from tests.fuzz.test_models import _export

    _export(tmp_path / "stray.pt2")
    monkeypatch.chdir(tmp_path)
    run = fails_closed(["predict", "", "--data", "digits:test", "--out", "p.npz", "--no-cache"])
    assert run.error_lines == ["compaudit: error: " + ERR_BLANK_SPEC.format(spec="")]
    assert not (tmp_path / "p.npz").exists()


# (id, extra arguments, the option the error must name): each value an unset CI
# variable gives; before, --data/--attributes/--policy "" were dropped silently (report
# exited 0 without subgroups) and a blank RUN_DIR or --out meant the working directory.
BLANKS = [
    ("data-blank", ["--data", ""], "--data"),
    ("attributes-blank", ["--attributes", ""], "--attributes"),
    ("policy-blank", ["--policy", " "], "--policy"),
    ("out-blank", ["--out", ""], "--out"),
    ("example-scores-blank", ["--example-scores", ""], "--example-scores"),
]


@pytest.mark.parametrize("command", ["report", "check"])
@pytest.mark.parametrize(("extra", "option"), [b[1:] for b in BLANKS], ids=[b[0] for b in BLANKS])
def test_blank_option_is_a_usage_error(
    workdir: Path, command: str, extra: list[str], option: str
) -> None:
    from compaudit.cli._params import ERR_BLANK_VALUE

    base = [command, "-r", "ref.npz", "-c", "cand.npz"]
    run = fails_closed([*base, *(["--out", "out"] if option != "--out" else []), *extra])
    assert run.error_lines == ["compaudit: error: " + ERR_BLANK_VALUE.format(option=option)]
    assert sorted(p.name for p in workdir.iterdir()) == ["cand.npz", "ref.npz"]


# (id, command line, the option the error must name): the other commands' paths.
OTHER_BLANKS = [
    ("report-run-dir", ["report", "", "--out", "out"], "RUN_DIR"),
    ("train-recipe", ["train", "", "--out", "run"], "RECIPE"),
    ("train-out", ["train", "recipe.yaml", "--out", ""], "--out"),
    ("predict-out", ["predict", "ref.npz", "--data", "digits:test", "--out", ""], "--out"),
    ("fit-data-out", ["fit-data", "digits:train", "--out", " "], "--out"),
]


@pytest.mark.parametrize(
    ("args", "option"), [b[1:] for b in OTHER_BLANKS], ids=[b[0] for b in OTHER_BLANKS]
)
def test_blank_path_is_a_usage_error(workdir: Path, args: list[str], option: str) -> None:
    from compaudit.cli._params import ERR_BLANK_VALUE

    run = fails_closed(args)
    assert run.error_lines == ["compaudit: error: " + ERR_BLANK_VALUE.format(option=option)]
    assert sorted(p.name for p in workdir.iterdir()) == ["cand.npz", "ref.npz"]


def write_attributes(path: Path, columns: dict[str, list[str]]) -> Path:
    names = ["id", *columns]
    rows = [",".join([str(i), *(col[i % len(col)] for col in columns.values())]) for i in range(N)]
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


LABEL_ERROR = loading.ERR_ATTR_LABEL
COLLIDE_ERROR = loading.ERR_ATTR_COLLIDE
# (id, columns, expected message with {path})
CSVS = [
    (
        "label-column-shadows-true-label",
        {"label": ["0", "1"]},
        LABEL_ERROR.format(path="{path}", column="label"),
    ),
    (
        "label-column-in-other-case",
        {"sex": ["F", "M"], "Label": ["0", "1"]},
        LABEL_ERROR.format(path="{path}", column="Label"),
    ),
    (
        "columns-equal-ignoring-case",
        {"sex": ["F", "M"], "Sex": ["M", "F"]},
        COLLIDE_ERROR.format(path="{path}", first="sex", second="Sex"),
    ),
    (
        "columns-equal-after-nfkc",
        {"sex": ["F", "M"], "\uff53\uff45\uff58": ["M", "F"]},  # fullwidth 'sex'
        COLLIDE_ERROR.format(path="{path}", first="sex", second="\uff53\uff45\uff58"),
    ),
]


@pytest.mark.parametrize(("columns", "message"), [c[1:] for c in CSVS], ids=[c[0] for c in CSVS])
def test_colliding_attribute_columns_are_errors(
    good_preds: dict[str, Path], tmp_path: Path, columns: dict[str, list[str]], message: str
) -> None:
    csv = write_attributes(tmp_path / "attrs.csv", columns)
    args = ["report", "-r", str(good_preds["ref"]), "-c", str(good_preds["cand"])]
    args += ["--attributes", str(csv), "--out", str(tmp_path / "out"), "-f", "json"]
    run = fails_closed(args, names=str(csv))
    assert run.error_lines == ["compaudit: error: " + message.format(path=csv)]


def test_distinct_attribute_columns_still_load(tmp_path: Path) -> None:
    csv = write_attributes(tmp_path / "a.csv", {"sex": ["F", "M"], "labelled": ["y", "n"]})
    got = loading.read_attributes_csv(csv, np.arange(N))
    assert sorted(got) == ["labelled", "sex"]


def test_an_attribute_from_two_sources_is_an_error(
    good_preds: dict[str, Path], tmp_path: Path
) -> None:
    # The predictions file carries attr_sex; an --attributes CSV with 'sex' used to
    # replace it silently (exit 0). Two sources for one attribute: refuse.
    from compaudit.pipeline import ERR_ATTRIBUTE_TWICE
    from compaudit.population import Population, load_population, save_population

    ref = load_population(good_preds["ref"])
    sexes = np.where(np.arange(N) % 2 == 0, "F", "M")
    carried = tmp_path / "ref-sex.npz"
    save_population(Population.create(ref.predictions, ref.y, attributes={"sex": sexes}), carried)
    csv = write_attributes(tmp_path / "attrs.csv", {"sex": ["M", "F"]})
    run = fails_closed(
        [
            "report",
            "-r",
            carried,
            "-c",
            good_preds["cand"],
            "--attributes",
            csv,
            "--out",
            tmp_path / "o",
        ],
        names="attrs.csv",
    )
    expected = ERR_ATTRIBUTE_TWICE.format(csv=csv, name="sex", src=str(carried))
    assert run.error_lines == [f"compaudit: error: {expected}"]


@pytest.mark.parametrize("command", ["report", "check"])
def test_negative_seed_is_a_usage_error(
    good_preds: dict[str, Path], tmp_path: Path, command: str
) -> None:
    # --seed -1 reached numpy's default_rng and ended in a traceback (exit 1).
    from compaudit.settings import ERR_AT_LEAST
    from tests.fuzz.conftest import run_cli

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ngates: {top1_drop: 0.5}\n")
    args = [command, "-r", str(good_preds["ref"]), "-c", str(good_preds["cand"]), "-p", str(policy)]
    run = run_cli([*args, "--seed", "-1", "--out", str(tmp_path / "out"), "-f", "json"])
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    message = ERR_AT_LEAST.format(name="seed", low=0, value=-1)
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '--seed': {message}"]
    assert not (tmp_path / "out").exists()  # refused before anything ran
