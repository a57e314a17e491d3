"""The Python front door: ``compaudit.audit`` on what a notebook holds."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compaudit
from compaudit import _api_inputs as api_inputs
from compaudit import api
from compaudit.errors import ExitStatus, InputError
from compaudit.population import Population, save_population
from compaudit.report.base import validate_report

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "examples" / "policies"


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    """A 3-class task: 5 reference models, 5 candidates that lose class 2 more often."""
    rng = np.random.default_rng(7)
    n = 1200
    y = rng.integers(0, 3, n)
    ref = np.where(rng.random((5, n)) < 0.92, y, (y + 1) % 3)
    worse = np.where(y == 2, 0.70, 0.92)
    cand = np.where(rng.random((5, n)) < worse, y, (y + 1) % 3)
    return {"y": y, "ref": ref, "cand": cand, "sex": rng.choice(["F", "M"], n)}


def test_public_names_resolve_and_are_documented() -> None:
    for name in compaudit.__all__:
        value = getattr(compaudit, name)
        if name != "__version__":
            assert value.__doc__, name
    assert set(compaudit.__all__) <= set(dir(compaudit))
    with pytest.raises(AttributeError):
        compaudit.no_such_name  # noqa: B018


def test_import_compaudit_is_cheap() -> None:
    # The front door loads lazily: importing the package pulls in no numerics.
    code = (
        "import sys, compaudit; "
        "print(sorted(m for m in ('numpy', 'scipy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_notebook_session_in_three_lines(arrays: dict[str, np.ndarray]) -> None:
    report = compaudit.audit(arrays["ref"], {"int8": arrays["cand"]}, y=arrays["y"])
    classes = report.to_frame("classes")
    assert report.verdict == "ungated"
    assert report.exit_status is ExitStatus.OK
    assert list(classes["candidate"].unique()) == ["int8"]
    assert classes.loc[classes["class"] == 2, "significantly_worse"].item()
    assert "int8" in report._repr_html_()
    assert "not gated" in report._repr_html_()
    validate_report(report.to_dict())
    doc = json.loads(report.to_json())
    assert [line.split(":")[:2] for line in doc.pop("summary")] == [["int8", " NOT GATED"]]
    assert doc == report.to_dict()


def test_every_table_is_a_frame(arrays: dict[str, np.ndarray]) -> None:
    report = compaudit.audit(
        arrays["ref"],
        {"int8": arrays["cand"], "same": arrays["ref"]},
        y=arrays["y"],
        attributes=pd.DataFrame({"sex": arrays["sex"]}),
        policy=POLICIES / "strict-release.yaml",
    )
    for table in api.TABLES:
        df = report.to_frame(table)
        assert isinstance(df, pd.DataFrame), table
        assert "candidate" in df.columns, table
    summary = report.to_frame("summary")
    assert list(summary["candidate"]) == ["int8", "same"]
    groups = report.to_frame("groups", candidate="int8")
    assert set(groups["sex"]) == {"F", "M"}
    assert len(report.to_frame("pies", candidate="int8")) == report.comparisons[0].pie.count
    with pytest.raises(InputError, match="unknown table"):
        report.to_frame("nope")
    with pytest.raises(InputError, match="no candidate named"):
        report.to_frame("classes", candidate="fp16")


def test_an_empty_table_has_the_columns_of_a_full_one(arrays: dict[str, np.ndarray]) -> None:
    """Before: an empty groups/pies/cies table had only a ``candidate`` column."""
    from compaudit._frames import frame

    reports = [
        compaudit.audit(
            ref,
            {"int8": cand},
            y=arrays["y"],
            attributes={"sex": arrays["sex"]},
            policy=POLICIES / "strict-release.yaml",
        )
        for ref, cand in ((arrays["ref"], arrays["cand"]), (arrays["ref"][0], arrays["cand"][0]))
    ]
    for table in api.TABLES:
        empty = list(frame(table, [], [], None).columns)
        fulls = [frame(table, r.comparisons, r.gates, None) for r in reports]
        assert any(len(f) for f in fulls), table  # the comparison below compares something
        for full in (f for f in fulls if len(f)):
            shown = [c for c in full.columns if c != "sex"]  # a group's attribute values
            if table == "cies":  # the counts of the other CIE basis are left out of rows
                assert set(shown) <= set(empty), (shown, empty)
                assert empty[0] == "candidate"
            else:
                assert shown == empty, table


def test_policy_gates_and_exit_status(arrays: dict[str, np.ndarray]) -> None:
    failing = compaudit.check(
        arrays["ref"],
        {"int8": arrays["cand"]},
        y=arrays["y"],
        policy=POLICIES / "strict-release.yaml",
    )
    assert failing.verdict == "fail"
    assert failing.exit_status is ExitStatus.GATE_FAILED
    assert any(g.status == "failed" for g in failing.gates)
    # An argument beats the policy, and the report says where each value came from.
    loose = compaudit.audit(
        arrays["ref"],
        {"int8": arrays["cand"]},
        y=arrays["y"],
        policy=POLICIES / "strict-release.yaml",
        alpha=0.2,
    )
    assert loose.to_dict()["settings"]["alpha"] == 0.2
    assert loose.to_dict()["settings"]["sources"]["alpha"] == "cli"


def test_string_labels_with_and_without_class_names(arrays: dict[str, np.ndarray]) -> None:
    names = np.array(["cat", "dog", "eel"])
    y, ref, cand = names[arrays["y"]], names[arrays["ref"]], names[arrays["cand"]]
    by_strings = compaudit.audit(ref, {"int8": cand}, y=y)
    by_index = compaudit.audit(arrays["ref"], {"int8": arrays["cand"]}, y=arrays["y"])
    assert by_strings.document.class_names == ["cat", "dog", "eel"]
    a, b = by_strings.comparisons[0], by_index.comparisons[0]
    assert [c.p_value for c in a.classes] == [c.p_value for c in b.classes]
    # class_names fixes the order; ints are then indices into it.
    order = ["eel", "dog", "cat"]
    mixed = compaudit.audit(ref, {"int8": cand}, y=y, class_names=order)
    assert [c.name for c in mixed.comparisons[0].classes] == order
    with pytest.raises(InputError) as exc:
        compaudit.audit(ref, {"int8": cand}, y=y, class_names=["cat", "dog"])
    assert str(exc.value).startswith("y: label 'eel' is not one of class_names")
    with pytest.raises(InputError, match="strings and ints"):
        compaudit.audit(ref, {"int8": arrays["cand"]}, y=y)


def test_pandas_inputs_and_member_names(arrays: dict[str, np.ndarray]) -> None:
    y = pd.Series(arrays["y"])
    ref = pd.DataFrame(arrays["ref"].T, columns=[f"seed{i}" for i in range(5)])
    cand = pd.DataFrame(arrays["cand"].T, columns=[f"seed{i}" for i in range(5)])
    report = compaudit.audit(ref, {"int8": cand}, y=y, paired=True)
    plain = compaudit.audit(arrays["ref"], {"int8": arrays["cand"]}, y=arrays["y"], paired=True)
    assert report.comparisons[0].lineage == "paired"
    assert report.comparisons[0].top1_delta == plain.comparisons[0].top1_delta
    one = compaudit.audit(arrays["ref"][0], arrays["cand"][0], y=arrays["y"])
    assert one.comparisons[0].candidate == "candidate"
    assert one.comparisons[0].cie.basis == "single-pair"


def test_attributes_never_shadow_the_label(arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(InputError) as exc:
        compaudit.audit(
            arrays["ref"],
            {"int8": arrays["cand"]},
            y=arrays["y"],
            attributes={"label": arrays["y"]},
        )
    assert str(exc.value) == api_inputs.ERR_LABEL_ATTRIBUTE


def test_arrays_need_labels(arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(InputError) as exc:
        compaudit.audit(arrays["ref"], {"int8": arrays["cand"]})
    assert str(exc.value) == api_inputs.ERR_NEED_Y.format(name="reference")


def test_predictions_files_and_writing(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    ref_path, cand_path = tmp_path / "ref.npz", tmp_path / "int8.npz"
    save_population(Population.create(arrays["ref"], arrays["y"]), ref_path)
    save_population(Population.create(arrays["cand"], arrays["y"]), cand_path)
    loaded = compaudit.load_predictions(ref_path)
    assert loaded.k == 5
    assert loaded.n == arrays["y"].size
    report = compaudit.audit(ref_path, {"int8": cand_path})
    written = report.write(tmp_path / "out", formats=["json", "markdown", "html", "junit"])
    assert sorted(p.name for p in written) == [
        "junit.xml",
        "report.html",
        "report.json",
        "report.md",
    ]
    text = (tmp_path / "out" / "report.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["comparisons"][0]["top1_delta"] == report.comparisons[0].top1_delta
    assert report.to_json() == text  # one serialiser: the API's JSON is report.json
    assert report.to_json(tmp_path / "again.json") == text
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == text
    assert "not gated" in (tmp_path / "out" / "report.md").read_text().lower()
    with pytest.raises(InputError, match="unknown format 'pdf'"):
        report.write(tmp_path / "out", formats=["pdf"])
    # One string is one format (or --format's comma list), never read letter by letter.
    assert [p.name for p in report.write(tmp_path / "one", formats="json")] == ["report.json"]
    both = report.write(tmp_path / "two", formats="json, md")
    assert [p.name for p in both] == ["report.json", "report.md"]


def test_a_list_of_candidates_asks_for_names(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    """Before: ``[cand]`` was read as one 3-D array and refused for its shape, and a
    list of predictions files as string labels."""
    files = []
    for name in ("a", "b"):
        files.append(tmp_path / f"{name}.npz")
        save_population(Population.create(arrays["cand"], arrays["y"]), files[-1])
    pops = [Population.create(arrays["cand"], arrays["y"])] * 2
    for unnamed in (
        [arrays["cand"]],
        (arrays["cand"], arrays["ref"]),
        files,
        [str(f) for f in files],
        pops,
    ):
        with pytest.raises(InputError) as exc:
            compaudit.audit(arrays["ref"], unnamed, y=arrays["y"])
        assert str(exc.value) == api_inputs.ERR_CANDIDATE_LIST.format(n=len(unnamed))
    # One [K, N] candidate, as for the reference: a nested list of ints, a list or tuple
    # of 1-D members (arrays or Series), one model's ints or numpy ints.
    cand = arrays["cand"]
    for one in (
        cand.tolist(),
        [cand[0], cand[1]],
        (cand[0], cand[1]),
        [pd.Series(cand[0]), pd.Series(cand[1])],
        cand[0].tolist(),
        list(cand[0]),
    ):
        report = compaudit.audit(arrays["ref"], one, y=arrays["y"])
        assert [c.candidate for c in report.comparisons] == ["candidate"]
        want_k = 1 if np.ndim(one) == 1 else len(one)
        assert report.document.populations["candidate"].k == want_k
    # A list of string labels is one model too (the first label is not a file).
    names = np.array(["cat", "dog", "emu"])
    labels = compaudit.audit(names[arrays["ref"][0]], list(names[cand[0]]), y=names[arrays["y"]])
    assert [c.candidate for c in labels.comparisons] == ["candidate"]


def test_module_docstring_example_runs() -> None:
    failures, tried = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0


def test_readme_notebook_session_runs() -> None:
    failures, tried = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert tried >= 5
    assert failures == 0


def test_lineage_per_candidate(arrays: dict[str, np.ndarray]) -> None:
    # A quantized child of the reference beside a population retrained from scratch.
    report = compaudit.audit(
        arrays["ref"],
        {"int8": arrays["ref"], "p50": arrays["cand"]},
        y=arrays["y"],
        paired={"int8": True},
    )
    assert [c.lineage for c in report.comparisons] == ["paired", "none"]
    assert report.comparisons[0].cie.basis == "paired"
    assert report.comparisons[0].cie.rate == 0.0
    with pytest.raises(InputError) as exc:
        compaudit.audit(
            arrays["ref"], {"int8": arrays["ref"]}, y=arrays["y"], paired={"fp16": True}
        )
    assert str(exc.value) == api.ERR_PAIRED_NAMES.format(names="fp16", known="int8")
