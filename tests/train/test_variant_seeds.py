"""Per-variant seeds, and the audit's warning when a variant pruned from scratch shares the
reference's seeds (its members then start from the reference members' initialisation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from compaudit.cli import build_cli
from compaudit.train import train_recipe
from compaudit.train.manifest import load_run
from compaudit.train.member import member_seed
from compaudit.train.recipe import recipe_from_dict
from tests.train.conftest import TINY, tiny_dict, tiny_recipe

DENSE = {"name": "dense", "kind": "dense"}
PRUNE = {
    "name": "p50",
    "kind": "prune",
    "prune": {"sparsity": 0.5, "begin_step": 4, "end_step": 28, "frequency": 4},
}
INT8 = {"name": "int8", "kind": "quantize", "from": "dense", "quantize": {"method": "fp16"}}


def test_a_variant_seed_moves_its_members_and_nothing_else() -> None:
    recipe = tiny_recipe(seed=5, variants=[DENSE, {**PRUNE, "seed": 100}])
    assert [member_seed(recipe, i, recipe.variant("dense")) for i in range(3)] == [5, 6, 7]
    assert [member_seed(recipe, i, recipe.variant("p50")) for i in range(3)] == [100, 101, 102]


def test_fingerprints_without_a_variant_seed_are_those_of_older_runs() -> None:
    """A run trained before the key existed resumes: no seed, the same fingerprint."""
    plain = tiny_recipe()
    assert "seed" not in plain.variant("p50").fingerprint_form()
    explicit_none = recipe_from_dict(
        tiny_dict(variants=[{**v, "seed": None} for v in TINY["variants"]])
    )
    for v in plain.variants:
        assert explicit_none.variant_fingerprint(v.name) == plain.variant_fingerprint(v.name)
    seeded = tiny_recipe(variants=[DENSE, {**PRUNE, "seed": 100}])
    assert seeded.variant_fingerprint("p50") != plain.variant_fingerprint("p50")
    assert seeded.variant_fingerprint("dense") == plain.variant_fingerprint("dense")


def test_a_variant_seed_must_be_a_natural_number() -> None:
    with pytest.raises(ValueError, match="seed"):
        tiny_recipe(variants=[DENSE, {**PRUNE, "seed": -1}])


def _report(run: Path, out: Path, *extra: str) -> dict[str, Any]:
    res = CliRunner().invoke(
        build_cli(), ["report", str(run), "-o", str(out), "-f", "json", *extra],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return dict(json.loads((out / "report.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seeds")
    shared = tiny_recipe(k=3, variants=[DENSE, PRUNE, INT8])
    own = tiny_recipe(k=3, variants=[DENSE, {**PRUNE, "seed": 100}, INT8])
    return {
        "shared": train_recipe(shared, root / "shared", progress=False).run_dir,
        "own": train_recipe(own, root / "own", progress=False).run_dir,
    }


def test_shared_seeds_are_recorded_and_named_in_a_warning(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    info = load_run(runs["shared"])
    dense = [m.seed for m in info.variants["dense"].members]
    assert [m.seed for m in info.variants["p50"].members] == dense == [0, 1, 2]
    warnings = _report(runs["shared"], tmp_path / "a")["warnings"]
    shared = [w for w in warnings if "trained from the same seeds" in w]
    # p50 is named; int8 is made from dense (lineage: compared member with member).
    assert len(shared) == 1, warnings
    assert "p50's members" in shared[0]
    assert "seed: 1000" in shared[0]
    assert "--paired" in shared[0]


def test_own_seeds_or_pairing_mean_no_warning(runs: dict[str, Path], tmp_path: Path) -> None:
    info = load_run(runs["own"])
    assert [m.seed for m in info.variants["p50"].members] == [100, 101, 102]
    assert [m.seed for m in info.variants["dense"].members] == [0, 1, 2]
    for run, extra, out in ((runs["own"], (), "b"), (runs["shared"], ("--paired",), "c")):
        warnings = _report(run, tmp_path / out, *extra)["warnings"]
        assert not [w for w in warnings if "same seeds" in w], warnings
