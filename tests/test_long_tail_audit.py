"""The long-tail test in every comparison (Dam et al.): per-example scores on PIEs and
CIEs against the rest, beside the same subsets under seed noise (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import compaudit
from compaudit.analysis._modal import modal_predictions
from compaudit.analysis.floors import seed_floors
from compaudit.analysis.long_tail import long_tail_comparison
from compaudit.cli import build_cli
from compaudit.population import Population, save_population
from compaudit.report.base import validate_report
from compaudit.results import AuditReport, Comparison, LongTailRow

N, C, K = 2000, 10, 6


@pytest.fixture(scope="module")
def case() -> dict[str, np.ndarray]:
    """Reference and candidate populations with i.i.d. member noise; the candidate
    forgets the examples of the top score decile (PIEs planted on the long tail)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    score = rng.random(N)

    def members(error: np.ndarray) -> np.ndarray:
        wrong = rng.random((K, N)) < error[None, :]
        noise = (y[None, :] + rng.integers(1, C, (K, N))) % C
        return np.where(wrong, noise, y[None, :])

    ref = members(np.full(N, 0.1))
    cand = members(np.full(N, 0.1))
    tail = score >= np.quantile(score, 0.9)
    cand[:, tail] = (y[tail] + 1) % C
    ids = np.arange(N) * 7 + 1
    return {"y": y, "score": score, "ref": ref, "cand": cand, "ids": ids}


def _audit(case: dict[str, np.ndarray]) -> compaudit.Report:
    return compaudit.audit(
        case["ref"],
        {"pruned": case["cand"]},
        y=case["y"],
        ids=case["ids"],
        example_scores={"cscore": case["score"]},
    )


def _row(comp: Comparison, subset: str):  # type: ignore[no-untyped-def]
    return next(r for r in comp.long_tail if r.score == "cscore" and r.subset == subset)


def test_planted_pies_are_the_long_tail_and_seed_noise_is_not(
    case: dict[str, np.ndarray],
) -> None:
    comp = _audit(case).document.comparisons[0]
    subsets = {r.subset for r in comp.long_tail}
    assert subsets == {
        "pie", "cie", "cie_u", "cie_c", "pie_seed", "cie_seed", "cie_u_seed", "cie_c_seed"
    }  # fmt: skip
    pie, seed = _row(comp, "pie"), _row(comp, "pie_seed")
    assert pie.n == comp.pie.count
    assert pie.p_value is not None
    assert pie.p_value < 1e-10
    assert pie.cliffs_delta is not None
    assert pie.cliffs_delta > 0.5
    assert seed.n > 0
    assert seed.p_value is not None
    assert seed.p_value > 0.05
    assert seed.cliffs_delta is not None
    assert abs(seed.cliffs_delta) < 0.2
    top = pie.deciles[-1]
    assert top.share_flagged is not None
    assert top.base_rate is not None
    assert top.share_flagged > 2 * top.base_rate
    assert next((r, s.subset if s else None) for r, s in comp.long_tail_pairs())[1] == "pie_seed"


def test_no_scores_no_long_tail_key(case: dict[str, np.ndarray]) -> None:
    rep = compaudit.audit(case["ref"], {"pruned": case["cand"]}, y=case["y"])
    assert rep.document.comparisons[0].long_tail == ()
    assert "long_tail" not in rep.document.to_dict()["comparisons"][0]


def test_report_validates_and_round_trips(case: dict[str, np.ndarray]) -> None:
    doc = _audit(case).document.to_dict()
    validate_report(doc)
    back = AuditReport.from_dict(json.loads(json.dumps(doc)))
    assert back.to_dict() == json.loads(json.dumps(doc))


def test_old_report_without_long_tail_parses(case: dict[str, np.ndarray]) -> None:
    doc = json.loads(json.dumps(_audit(case).document.to_dict()))
    for comp in doc["comparisons"]:
        del comp["long_tail"]
    validate_report(doc)
    assert AuditReport.from_dict(doc).comparisons[0].long_tail == ()


def test_score_array_of_wrong_length_is_an_input_error(case: dict[str, np.ndarray]) -> None:
    with pytest.raises(compaudit.InputError, match="cscore"):
        compaudit.audit(
            case["ref"], {"pruned": case["cand"]}, y=case["y"], example_scores={"cscore": [1.0]}
        )


# -- command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(case: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lt")
    paths = {"ref": d / "ref.npz", "cand": d / "pruned.npz"}
    save_population(Population.create(case["ref"], case["y"], ids=case["ids"]), paths["ref"])
    save_population(Population.create(case["cand"], case["y"], ids=case["ids"]), paths["cand"])
    return paths


def invoke(files: dict[str, Path], out: Path, *extra: str) -> Result:
    args = ["report", "-r", str(files["ref"]), "-c", f"pruned={files['cand']}"]
    return CliRunner().invoke(build_cli(), [*args, "--out", str(out), "-f", "json", *extra])


def _csv(path: Path, ids: list[str], values: list[str]) -> Path:
    path.write_text("id,cscore\n" + "".join(f"{i},{v}\n" for i, v in zip(ids, values, strict=True)))
    return path


def test_cli_csv_in_shuffled_order_equals_the_api(
    case: dict[str, np.ndarray], files: dict[str, Path], tmp_path: Path
) -> None:
    order = np.random.default_rng(1).permutation(N)
    csv = _csv(
        tmp_path / "scores.csv",
        [str(i) for i in case["ids"][order]],
        [repr(float(v)) for v in case["score"][order]],
    )
    res = invoke(files, tmp_path / "out", "--example-scores", f"cscore={csv}")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(doc)
    api = json.loads(json.dumps(_audit(case).document.to_dict()))
    assert doc["comparisons"][0]["long_tail"] == api["comparisons"][0]["long_tail"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda ids, vals: (ids[:-1], vals[:-1]), "have no score"),
        (lambda ids, vals: (ids + ids[:1], vals + vals[:1]), "more than once"),
        (lambda ids, vals: (ids, ["nan", *vals[1:]]), "NaN or infinite"),
        (lambda ids, vals: (ids, ["high", *vals[1:]]), "non-numeric"),
    ],
    ids=["missing-ids", "duplicates", "nan", "non-numeric"],
)
def test_bad_score_file_exits_2_naming_the_file(
    case: dict[str, np.ndarray],
    files: dict[str, Path],
    tmp_path: Path,
    mutate: Callable[[list[str], list[str]], tuple[list[str], list[str]]],
    needle: str,
) -> None:
    ids, vals = mutate([str(i) for i in case["ids"]], ["0.5"] * N)
    csv = _csv(tmp_path / "bad-scores.csv", ids, vals)
    res = invoke(files, tmp_path / "out", "--example-scores", f"cscore={csv}")
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "bad-scores.csv" in text
    assert needle in text


def test_example_scores_needs_name_equals_file(files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke(files, tmp_path / "out", "--example-scores", "scores.csv")
    assert res.exit_code == 2
    assert "NAME=FILE" in res.output


def test_reporters_show_the_long_tail_only_with_scores(
    case: dict[str, np.ndarray], files: dict[str, Path], tmp_path: Path
) -> None:
    csv = _csv(
        tmp_path / "s.csv", [str(i) for i in case["ids"]], [repr(float(v)) for v in case["score"]]
    )
    out = tmp_path / "with"
    res = invoke(files, out, "-f", "terminal,md,html", "--example-scores", f"cscore={csv}")
    assert res.exit_code == 0, res.output
    assert "Long tail" in res.output
    assert "pie_seed" not in res.output  # seed rows sit beside their subset
    md = (out / "report.md").read_text()
    assert "#### Long tail" in md
    assert "| `cscore` | `pie` |" in md
    html = (out / "report.html").read_text()
    assert "<h3>Long tail</h3>" in html
    assert "flagged share per decile of cscore" in html
    bare = tmp_path / "without"
    res = invoke(files, bare, "-f", "terminal,md,html")
    assert res.exit_code == 0, res.output
    assert "Long tail" not in res.output
    assert "Long tail" not in (bare / "report.md").read_text()
    assert "Long tail" not in (bare / "report.html").read_text()


def test_long_tail_pie_row_size_and_power_by_simulation() -> None:
    # Seed-only populations (both sides retrained from one per-example difficulty) with
    # a score unrelated to the models: the PIE row's Welch p rejects at about alpha.
    # Planted damage (30% more errors on the top 10% of scores): it rejects, flagged
    # examples scoring higher. Scores come from their own generator.
    rng, srng = np.random.default_rng(1), np.random.default_rng(99)
    n, c, alpha = 1000, 5, 0.05
    y = rng.integers(0, c, n)
    p = rng.beta(18, 2, n)

    def draw(k: int, err: np.ndarray | None = None) -> np.ndarray:
        pc = p if err is None else p * (1 - err)
        wrong = (y + 1 + rng.integers(0, c - 1, (k, n))) % c  # never the label
        return np.where(rng.random((k, n)) < pc, y, wrong)

    def pie_row(err: np.ndarray | None, score: np.ndarray) -> LongTailRow:
        report = compaudit.audit(draw(3), {"c": draw(3, err)}, y=y, example_scores={"s": score})
        return next(r for r in report.comparisons[0].long_tail if r.subset == "pie")

    sims = 150
    null = [pie_row(None, srng.random(n)).p_value for _ in range(sims)]
    size = float(np.mean([q is not None and q <= alpha for q in null]))
    assert size <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / sims), size  # measured 0.067
    hits = 0
    for _ in range(100):
        score = srng.random(n)
        row = pie_row(np.where(score > 0.9, 0.3, 0.0), score)
        hits += row.p_value is not None and row.p_value <= alpha and (row.cliffs_delta or 0) > 0
    assert hits >= 75, hits  # measured 87% (131 of 150) in a trial run


# -- the seed-noise control over every floor split -----------------------------------


def _direct_seed_masks(
    case: dict[str, np.ndarray], splits: np.ndarray
) -> dict[str, list[np.ndarray]]:
    """Each split's seed subsets from the definitions: modal labels of A and B differ
    (PIE); some member of A and some of B disagree, or are right/wrong (CIEs)."""
    ref, y = case["ref"], case["y"]
    out: dict[str, list[np.ndarray]] = {
        "pie_seed": [],
        "cie_seed": [],
        "cie_u_seed": [],
        "cie_c_seed": [],
    }
    for a, b in splits:
        pa, pb = ref[a], ref[b]
        out["pie_seed"].append(modal_predictions(pa, seed=0)[0] != modal_predictions(pb, seed=0)[0])
        out["cie_seed"].append(~((pa == pa[0]).all(0) & (pb == pa[0]).all(0)))
        out["cie_u_seed"].append((pa == y).any(0) & (pb != y).any(0))
        out["cie_c_seed"].append((pa != y).any(0) & (pb == y).any(0))
    return out


def test_seed_rows_summarise_every_floor_split(case: dict[str, np.ndarray]) -> None:
    comp = _audit(case).document.comparisons[0]
    floors = seed_floors(
        case["ref"], case["y"], k_candidate=K, class_codes=case["y"], n_classes=C, n_splits=64
    )
    assert floors.n_splits == 10  # C(6, 3) C(3, 3) / 2: all distinct splits of 3 against 3
    masks = _direct_seed_masks(case, floors.splits)
    for subset, per_split in masks.items():
        loop = [long_tail_comparison(case["score"], m) for m in per_split]
        row = _row(comp, subset)
        assert row.n_splits == floors.n_splits
        assert row.n == sorted(r.n for r in loop)[(len(loop) - 1) // 2]
        for f in ("mean_subset", "mean_rest", "statistic", "p_value", "mann_whitney_p",
                  "cohens_d", "cliffs_delta"):  # fmt: skip
            values = np.array([getattr(r, f) for r in loop])
            want = float(np.median(values[~np.isnan(values)]))
            assert abs(getattr(row, f) - want) <= 1e-12 * max(1.0, abs(want)), (subset, f)
        for i, d in enumerate(row.deciles):
            want = float(np.mean([r.deciles[i].share_flagged for r in loop]))
            assert d.share_flagged == pytest.approx(want, abs=1e-12)
        deltas = np.array([r.cliffs_delta for r in loop])
        obs = _row(comp, subset.removesuffix("_seed"))
        assert obs.seed_splits == floors.n_splits
        assert obs.seed_cliffs_delta_q05 == pytest.approx(np.quantile(deltas, 0.05), abs=1e-12)
        assert obs.seed_cliffs_delta_q95 == pytest.approx(np.quantile(deltas, 0.95), abs=1e-12)
        assert obs.n_splits is None
        assert row.p_beyond_seed is None
    # The candidate forgets the top score decile: its PIEs and CIEs lie beyond seed noise.
    for subset in ("pie", "cie", "cie_u"):
        p = _row(comp, subset).p_beyond_seed
        assert p is not None
        assert p < 1e-3, (subset, p)


def test_no_floors_no_seed_rows_and_null_seed_fields(case: dict[str, np.ndarray]) -> None:
    # Two reference members: no floor split, so no seed rows and null seed fields.
    rep = compaudit.audit(
        case["ref"][:2], {"pruned": case["cand"]}, y=case["y"],
        example_scores={"cscore": case["score"]},
    )  # fmt: skip
    doc = rep.document.to_dict()
    validate_report(doc)
    rows = doc["comparisons"][0]["long_tail"]
    assert {r["subset"] for r in rows} == {"pie", "cie", "cie_u", "cie_c"}
    for r in rows:
        assert r["seed_splits"] is None
        assert r["p_beyond_seed"] is None
        assert r["seed_cliffs_delta_q05"] is None
        assert "n_splits" not in r


# -- memorization: the run's influence runs on its own training split ----------------


def test_report_on_the_run_training_split_adds_memorization(tmp_path: Path) -> None:
    # `compaudit report RUN_DIR --data <the run's train spec>` audits the members on
    # the training split; the influence runs' memorization is then a score of exactly
    # those examples (on the eval split it is mean_influence instead).
    pytest.importorskip("torch")
    from compaudit.analysis.influence import load_runs, memorization
    from compaudit.pipeline import AuditRequest, execute
    from compaudit.train import load_run, train_recipe
    from compaudit.train.recipe import recipe_from_dict
    from tests.train.conftest import TINY

    recipe = {
        **TINY,
        "training": {**TINY["training"], "epochs": 1},
        "variants": [
            {"name": "dense", "kind": "dense"},
            {"name": "half", "kind": "quantize", "from": "dense", "quantize": {"method": "fp16"}},
        ],
        # 20 runs at 0.5: every training example in some run and out of another
        # (else its memorization is undefined and no score is added).
        "influence": {"runs": 20, "subset_fraction": 0.5, "seed": 0, "variant": "dense"},
    }
    run = tmp_path / "run"
    train_recipe(recipe_from_dict(recipe), run, progress=False)
    info = load_run(run)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        build_cli(),
        ["report", str(run), "--data", info.train_data, "--out", str(out), "-f", "json"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "report.json").read_text())
    validate_report(doc)
    rows = doc["comparisons"][0]["long_tail"]
    assert {r["score"] for r in rows} == {"memorization"}
    assert info.influence is not None
    mem = memorization(load_runs(info.influence)).value
    assert mem.shape == (info.manifest["data"]["train_n"],)
    # The same audit in the library: the PIE row is the long-tail test of this array,
    # example by example, on the training split's PIEs.
    outcome = execute(AuditRequest(run_dir=run, data=info.train_data, out=None, formats=()))
    ref = outcome.result.reference.population
    (cand,) = outcome.result.candidates
    pie = modal_predictions(ref.predictions)[0] != modal_predictions(cand.population.predictions)[0]
    want = long_tail_comparison(mem, pie).to_dict()
    got = next(r for r in rows if r["subset"] == "pie")
    assert got["n"] == want["n"] == doc["comparisons"][0]["pie"]["count"]
    assert got["cliffs_delta"] == pytest.approx(want["cliffs_delta"], abs=1e-12)
    assert got["mean_subset"] == pytest.approx(want["mean_subset"], abs=1e-12)
