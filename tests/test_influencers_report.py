"""``compaudit report RUN_DIR``: the flagged examples' top influencers (issue 15).

A tiny trained run (digits, one dense and one pruned member, eight influence
runs) whose influence runs file is then replaced by a planted one: one PIE is
right in a run exactly when one training example was in it, so that example's
influence on it is 1 and every other one's is below (no other training
example has the same pattern of runs). The report must list it first, through
the command line, in report.json, the HTML gallery and the Markdown.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import compaudit.analysis.influence as influence_module
from compaudit._influencers import INFLUENCERS_K, flagged_examples
from compaudit._io import sha256_file
from compaudit.analysis.influence import InfluenceRuns, save_runs
from compaudit.cli import build_cli
from compaudit.data.loading import load_dataset
from compaudit.report.base import validate_report
from compaudit.results import AuditReport
from compaudit.train import load_run, train_recipe
from compaudit.train.manifest import INFLUENCE_RUNS, read_manifest, write_manifest
from compaudit.train.recipe import recipe_from_dict
from tests.train.conftest import TINY, tiny_dict

RUNS = 8
PLANTED_TRAIN = 37  # the training example the planted PIE depends on


def _recipe() -> dict[str, Any]:
    prune = {"sparsity": 0.5, "begin_step": 2, "end_step": 14, "frequency": 4}
    return tiny_dict(
        k=1,
        training={**TINY["training"], "epochs": 1},
        variants=[TINY["variants"][0], {**TINY["variants"][1], "prune": prune}],
        influence={"runs": RUNS, "subset_fraction": 0.5, "seed": 0, "variant": "dense"},
    )


def _report(run: Path, out: Path, *formats: str) -> dict[str, Any]:
    args = ["report", str(run), "--out", str(out)]
    for fmt in formats:
        args += ["--format", fmt]
    res = CliRunner().invoke(build_cli(), args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads((out / "report.json").read_text("utf-8"))
    return data


def _plant(run: Path, planted_test: int, n_train: int, n_test: int) -> None:
    """Replace the run's influence runs with bits in which test example ``planted_test``
    is right exactly in the runs that trained on :data:`PLANTED_TRAIN`."""
    rng = np.random.default_rng(15)
    in_run = rng.random((RUNS, n_train)) < 0.5
    pattern = in_run[:, PLANTED_TRAIN]
    same = np.flatnonzero((in_run == pattern[:, None]).all(axis=0))
    in_run[0, same[same != PLANTED_TRAIN]] ^= True  # no other column has its pattern
    test_correct = rng.random((RUNS, n_test)) < 0.5
    test_correct[:, planted_test] = pattern
    train_correct = rng.random((RUNS, n_train)) < 0.9
    save_runs(run / INFLUENCE_RUNS, InfluenceRuns(in_run, train_correct, test_correct))
    manifest = read_manifest(run)
    assert manifest is not None
    manifest["influence"]["sha256"] = sha256_file(run / INFLUENCE_RUNS)
    write_manifest(run, manifest)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run, the planted PIE's id and index, and the report of the planted run."""
    root = tmp_path_factory.mktemp("influencers")
    run = root / "run"
    train_recipe(recipe_from_dict(_recipe()), run, progress=False)
    first = AuditReport.from_dict(_report(run, root / "first", "json"))
    pies = first.comparisons[0].pie.examples
    assert len(pies) >= 10  # the pruned member forgets some examples
    info = load_run(run)
    eval_ids = [str(v) for v in load_dataset(info.eval_data).ids.tolist()]
    # The first PIE the gallery shows (flagged_examples lists them in its order).
    pie_id = flagged_examples(first.comparisons[0], cap=200)[0][0]
    t = eval_ids.index(str(pie_id))
    data = info.manifest["data"]
    _plant(run, t, data["train_n"], data["eval_n"])
    out = root / "out"
    report = _report(run, out, "json", "html", "markdown")
    return {"run": run, "out": out, "report": report, "pie_id": pie_id, "info": info}


def test_the_planted_training_example_is_listed_first(planted: dict[str, Any]) -> None:
    report = planted["report"]
    validate_report(report)
    block = report["comparisons"][0]["influencers"]
    assert block["k"] == INFLUENCERS_K
    assert block["n_runs"] == RUNS
    assert block["train_data"] == planted["info"].train_data
    entry = next(e for e in block["examples"] if e["id"] == planted["pie_id"])
    assert "pie" in entry["flagged_as"]
    top = entry["influencers"]
    assert len(top) == INFLUENCERS_K
    assert top[0]["train_index"] == PLANTED_TRAIN
    assert top[0]["influence"] == 1.0  # right in every run with it, wrong in every one without
    assert top[0]["se"] == 0.0
    assert all(inf["influence"] < 1.0 for inf in top[1:])
    assert [inf["influence"] for inf in top] == sorted(
        (inf["influence"] for inf in top), reverse=True
    )
    train = load_dataset(planted["info"].train_data, fit=True)
    assert top[0]["train_id"] == train.ids[PLANTED_TRAIN].item()
    assert top[0]["label"] == int(train.y[PLANTED_TRAIN])


def test_influences_equal_the_definition(planted: dict[str, Any]) -> None:
    """Every listed estimate equals the Feldman-Zhang definition computed directly from
    the planted bits: mean correctness over runs with j minus over runs without."""
    runs = influence_module.load_runs(planted["run"] / INFLUENCE_RUNS).unpack()
    eval_ids = [str(v) for v in load_dataset(planted["info"].eval_data).ids.tolist()]
    block = planted["report"]["comparisons"][0]["influencers"]
    for entry in block["examples"][:20]:
        t = eval_ids.index(str(entry["id"]))
        for inf in entry["influencers"]:
            j = inf["train_index"]
            inside = runs.in_run[:, j]
            want = runs.test_correct[inside, t].mean() - runs.test_correct[~inside, t].mean()
            assert inf["influence"] == pytest.approx(want, abs=1e-12)


def test_flagged_examples_are_the_pies_and_listed_cies(planted: dict[str, Any]) -> None:
    c = planted["report"]["comparisons"][0]
    assert c["pie"]["count"] <= planted["report"]["settings"]["examples_cap"]  # none cut
    pie_ids = {str(e["id"]) for e in c["pie"]["examples"]}
    cie_ids = {str(e["id"]) for e in c["cie"]["examples"]}
    listed = [str(e["id"]) for e in c["influencers"]["examples"]]
    assert len(listed) == len(set(listed))  # each once
    assert set(listed) == pie_ids | cie_ids
    for e in c["influencers"]["examples"]:
        key = str(e["id"])
        assert ("pie" in e["flagged_as"]) == (key in pie_ids)
        assert ("cie" in e["flagged_as"]) == (key in cie_ids)


def test_pies_are_capped_most_confident_first(planted: dict[str, Any]) -> None:
    """With cap 3: the gallery's first three PIEs, then every listed CIE not among them."""
    c = AuditReport.from_dict(planted["report"]).comparisons[0]
    pies = c.pie.examples
    shares = [
        (-pies[i]["share_candidate"], -pies[i]["share_reference"], i) for i in range(len(pies))
    ]
    first3 = [pies[i]["id"] for *_, i in sorted(shares)[:3]]
    rows = flagged_examples(c, cap=3)
    assert [v for v, _ in rows[:3]] == first3
    rest = [e.id for e in c.cie.examples if e.id not in first3]
    assert [v for v, _ in rows[3:]] == rest
    assert all(flags == ("cie",) for _, flags in rows[3:])


def test_each_flagged_example_is_computed_once(
    planted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[np.ndarray] = []
    original = influence_module.top_influencers

    def counting(runs: Any, test_indices: Any, **kwargs: Any) -> Any:
        calls.append(np.asarray(test_indices))
        return original(runs, test_indices, **kwargs)

    monkeypatch.setattr(influence_module, "top_influencers", counting)
    report = _report(planted["run"], tmp_path / "again", "json")
    assert len(calls) == 1
    assert len(np.unique(calls[0])) == len(calls[0])
    listed = {str(e["id"]) for e in report["comparisons"][0]["influencers"]["examples"]}
    assert len(calls[0]) == len(listed)
    assert report["comparisons"] == planted["report"]["comparisons"]  # deterministic


def test_the_gallery_shows_what_each_pie_had_memorized(planted: dict[str, Any]) -> None:
    html = (planted["out"] / "report.html").read_text("utf-8")
    train = load_dataset(planted["info"].train_data, fit=True)
    assert train.images is not None
    cards = re.findall(r"<figure class='pie [^']*'>(.*?)</figure>", html, flags=re.S)
    assert cards
    card = next(c for c in cards if f"<div class='id'>#{planted['pie_id']}</div>" in c)
    minis = re.findall(r"<img class='mini[^']*' src='([^']+)' alt='([^']*)'>", card)
    assert len(minis) == INFLUENCERS_K
    # The first thumbnail is the planted training example's image, with its label.
    uri, alt = minis[0]
    planted_id = train.ids[PLANTED_TRAIN].item()
    assert alt.startswith(f"training example {planted_id}: ")
    assert "influence +1.00 ± 0.00" in alt
    raw = base64.b64decode(uri.split(",", 1)[1])
    shown = np.asarray(Image.open(io.BytesIO(raw)))
    np.testing.assert_array_equal(shown, train.images[PLANTED_TRAIN])  # 8x8: not resized
    assert "<div class='mhead'>memorized</div>" in card
    assert f"from {RUNS} runs" in html


def test_markdown_lists_the_first_pies_influencers(planted: dict[str, Any]) -> None:
    md = (planted["out"] / "report.md").read_text("utf-8")
    assert "#### What the first PIEs had memorized" in md
    train = load_dataset(planted["info"].train_data, fit=True)
    row = next(line for line in md.splitlines() if line.startswith(f"| `{planted['pie_id']}` |"))
    assert f"#{train.ids[PLANTED_TRAIN].item()} " in row.split("|")[3].split(",")[0]
    assert "+1.00" in row.split("|")[3].split(",")[0]


def test_no_influence_runs_no_key(planted: dict[str, Any], tmp_path: Path) -> None:
    """The same run audited on other examples (a subset of its eval split): the runs do
    not apply, so no influencers (and no mean_influence score)."""
    res = CliRunner().invoke(
        build_cli(),
        ["report", str(planted["run"]), "--data", "digits:test?subset=0.5&seed=1", "--out",
         str(tmp_path / "o"), "--format", "json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text("utf-8"))
    assert all("influencers" not in c for c in report["comparisons"])
