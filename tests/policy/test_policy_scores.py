"""Per-example scores named by the policy (``example_scores``), beside ``--example-scores``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import compaudit
from compaudit.cli import build_cli
from compaudit.errors import PolicyError
from compaudit.policy import example_score_files, load_policy
from compaudit.population import Population, save_population
from compaudit.report.base import validate_report

N, C, K = 300, 4, 3


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, C, N)

    def members() -> np.ndarray:
        wrong = rng.random((K, N)) < 0.2
        return np.where(wrong, (y[None, :] + rng.integers(1, C, (K, N))) % C, y[None, :])

    ref, cand = members(), members()
    ids = np.arange(N) + 100
    d = tmp_path_factory.mktemp("policy-scores")
    save_population(Population.create(ref, y, ids=ids), d / "ref.npz")
    save_population(Population.create(cand, y, ids=ids), d / "pruned.npz")
    return {"dir": d, "y": y, "ref": ref, "cand": cand, "ids": ids}


def _csv(path: Path, ids: np.ndarray, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{i},{v!r}\n" for i, v in zip(ids.tolist(), values.tolist(), strict=True))
    path.write_text("id,score\n" + rows)
    return path


def _policy(path: Path, scores: dict[str, str]) -> Path:
    body = "".join(f"  {name}: {file}\n" for name, file in scores.items())
    path.write_text("version: 1\nexample_scores:\n" + body)
    return path


def _report(case: dict[str, object], out: Path, *extra: str) -> Result:
    d = case["dir"]
    assert isinstance(d, Path)
    args = ["report", "-r", str(d / "ref.npz"), "-c", f"pruned={d / 'pruned.npz'}"]
    return CliRunner().invoke(build_cli(), [*args, "--out", str(out), "-f", "json", *extra])


def _long_tail(out: Path) -> list[dict[str, object]]:
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    rows = doc["comparisons"][0].get("long_tail", [])
    assert isinstance(rows, list)
    return rows


def _api_rows(case: dict[str, object], scores: dict[str, np.ndarray]) -> list[dict[str, object]]:
    rep = compaudit.audit(
        case["ref"], {"pruned": case["cand"]}, y=case["y"], ids=case["ids"], example_scores=scores
    )
    rows = json.loads(json.dumps(rep.document.to_dict()))["comparisons"][0]["long_tail"]
    assert isinstance(rows, list)
    return rows


def test_policy_paths_are_relative_to_the_policy_file(tmp_path: Path) -> None:
    pol = tmp_path / "ci" / "policy.yaml"
    pol.parent.mkdir()
    _policy(pol, {"cscore": "scores/c.csv", "loss": str(tmp_path / "abs.npz")})
    files = example_score_files(load_policy(pol), pol)
    assert files == {"cscore": pol.parent / "scores" / "c.csv", "loss": tmp_path / "abs.npz"}


@pytest.mark.parametrize(
    "entry", ["{cscore: ''}", "{'': a.csv}", "{cscore: 3}", "[a.csv]"], ids=str
)
def test_bad_example_scores_entries_are_policy_errors(tmp_path: Path, entry: str) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(f"version: 1\nexample_scores: {entry}\n")
    with pytest.raises(PolicyError, match="example_scores"):
        load_policy(pol)


def test_policy_only_scores_appear_in_the_report(case: dict[str, object], tmp_path: Path) -> None:
    score = np.random.default_rng(4).random(N)
    ids = case["ids"]
    assert isinstance(ids, np.ndarray)
    _csv(tmp_path / "scores" / "c.csv", ids[::-1], score[::-1])  # any order: joined by id
    pol = _policy(tmp_path / "policy.yaml", {"cscore": "scores/c.csv"})
    res = _report(case, tmp_path / "out", "--policy", str(pol))
    assert res.exit_code == 0, res.output
    rows = _long_tail(tmp_path / "out")
    assert {r["score"] for r in rows} == {"cscore"}
    assert rows == _api_rows(case, {"cscore": score})


def test_the_command_line_beats_the_policy_entry_of_the_same_name(
    case: dict[str, object], tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    from_policy, from_cli, other = rng.random(N), rng.random(N), rng.random(N)
    ids = case["ids"]
    assert isinstance(ids, np.ndarray)
    _csv(tmp_path / "p.csv", ids, from_policy)
    _csv(tmp_path / "o.csv", ids, other)
    cli = _csv(tmp_path / "cli.csv", ids, from_cli)
    pol = _policy(tmp_path / "policy.yaml", {"cscore": "p.csv", "other": "o.csv"})
    out = tmp_path / "out"
    res = _report(case, out, "--policy", str(pol), "--example-scores", f"cscore={cli}")
    assert res.exit_code == 0, res.output
    rows = _long_tail(out)
    want = _api_rows(case, {"cscore": from_cli, "other": other})
    assert rows == want
    assert rows != _api_rows(case, {"cscore": from_policy, "other": other})


@pytest.mark.parametrize("broken", ["missing", "malformed"])
def test_a_bad_score_file_in_the_policy_exits_2_naming_the_policy(
    case: dict[str, object], tmp_path: Path, broken: str
) -> None:
    if broken == "malformed":
        (tmp_path / "c.csv").write_text("id,score\n100,high\n")
    pol = _policy(tmp_path / "release-policy.yaml", {"cscore": "c.csv"})
    res = _report(case, tmp_path / "out", "--policy", str(pol))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "release-policy.yaml" in text
    assert "example_scores.cscore" in text
    assert ("no such score file" if broken == "missing" else "non-numeric") in text
