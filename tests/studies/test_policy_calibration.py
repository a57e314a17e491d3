"""The policy calibration tables (issue 9, item 5): planted damage, draws, the
engine calls that must equal ``compaudit check``, the tables, and RESULTS.md.

Nothing here trains; populations are small seeded synthetic ones.
"""

from __future__ import annotations

import importlib
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from rich.console import Console

from compaudit.pipeline import AuditRequest, execute
from compaudit.policy import load_policy
from compaudit.population import Population, save_population

CALIBRATION = Path(__file__).resolve().parents[2] / "examples" / "calibration"
SHIPPED = CALIBRATION.parents[0] / "policies"

Mods = tuple[ModuleType, ModuleType, ModuleType]


@pytest.fixture(scope="module")
def mods() -> Iterator[Mods]:
    """policy_calibration, calibration_tables, calibration_nulls (from the script folder)."""
    sys.path.insert(0, str(CALIBRATION))
    try:
        yield tuple(  # type: ignore[misc]
            importlib.import_module(m)
            for m in ("policy_calibration", "calibration_tables", "calibration_nulls")
        )
    finally:
        sys.path.remove(str(CALIBRATION))


def toy(rng: np.random.Generator, k: int, n: int = 240, c: int = 3) -> Population:
    """K noisy models on ``c`` balanced classes, with sex and race attributes."""
    y = np.arange(n) % c
    correct = rng.random((k, n)) < rng.beta(8.0, 2.0, n)
    preds = np.where(correct, y, (y + rng.integers(1, c, (k, n))) % c)
    sex = np.where(np.arange(n) % 2 == 0, "F", "M")
    race = np.where(np.arange(n) % 5 == 0, "A", "B")
    return Population.create(preds, y, num_classes=c, attributes={"sex": sex, "race": race})


# -- planted damage (planted_damage.py) ------------------------------------------------------
@pytest.fixture(scope="module")
def damage(mods: Mods) -> ModuleType:
    """planted_damage (importable while ``mods`` holds the script folder on sys.path)."""
    return importlib.import_module("planted_damage")


def test_lost_count_rounds_half_up(damage: ModuleType) -> None:
    assert [damage.lost_count(n, f) for n, f in ((10, 0.25), (59, 0.3), (0, 0.3), (7, 1.0))] == [
        3,
        18,
        0,
        7,
    ]


def test_plant_damage_touches_only_correct_target_examples_exactly(damage: ModuleType) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 60)
    preds = np.where(rng.random((3, 60)) < 0.8, y, (y + 1) % 4).astype(np.uint8)
    target = y == 2
    out = damage.plant_damage(preds, y, target, 0.5, num_classes=4, seed=[1, 2])
    assert out.dtype == preds.dtype
    assert np.array_equal(out[:, ~target], preds[:, ~target])  # nothing outside the target
    for k in range(3):
        correct = target & (preds[k] == y)
        changed = out[k] != preds[k]
        assert not (changed & ~correct).any()  # only correct target examples move
        assert changed.sum() == damage.lost_count(int(correct.sum()), 0.5)
        assert (out[k, changed] != y[changed]).all()  # ... and become wrong
        assert out[k].max() < 4
    # A smaller damage is contained in the larger one; 0 and 1 are the extremes.
    small = damage.plant_damage(preds, y, target, 0.2, num_classes=4, seed=[1, 2])
    assert not ((small != preds) & (out == preds)).any()
    assert np.array_equal(damage.plant_damage(preds, y, target, 0.0, num_classes=4, seed=0), preds)
    full = damage.plant_damage(preds, y, target, 1.0, num_classes=4, seed=0)
    assert not (full[:, target] == y[target]).any()
    assert np.array_equal(
        out, damage.plant_damage(preds, y, target, 0.5, num_classes=4, seed=[1, 2])
    )


def test_plant_damage_is_systematic_across_members(damage: ModuleType) -> None:
    y = np.arange(50) % 5
    preds = np.tile(y, (4, 1))  # every member right everywhere
    out = damage.plant_damage(preds, y, y == 3, 0.3, num_classes=5, seed=9)
    assert (out == out[0]).all()  # the same examples, the same wrong labels
    assert (out[0] != y).sum() == 3  # 30% of the 10 examples of class 3


def test_plant_damage_rejects_bad_inputs(damage: ModuleType) -> None:
    y = np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match=re.escape(damage.ERR_FRACTION.format(fraction=1.5))):
        damage.plant_damage(y[None], y, y == 0, 1.5, num_classes=2, seed=0)
    with pytest.raises(ValueError, match="the target mask has 3 entries but there are 4"):
        damage.plant_damage(y[None], y, np.ones(3, dtype=bool), 0.5, num_classes=2, seed=0)


def test_with_top1_moves_the_new_label_to_the_front_without_repeats(mods: Mods) -> None:
    _, _, nulls = mods
    topk = np.array([[[0, 1, 2], [1, 2, 3], [2, 3, 0]]])
    out = nulls.with_top1(topk, np.array([[0, 3, 1]]))
    assert out.tolist() == [[[0, 1, 2], [3, 1, 2], [1, 2, 3]]]
    assert topk.tolist() == [[[0, 1, 2], [1, 2, 3], [2, 3, 0]]]  # not modified in place


def test_members_keep_attributes_and_follow_damaged_top1(mods: Mods) -> None:
    _, _, nulls = mods
    y = np.array([0, 1, 2])
    topk = np.array([[[0, 1], [1, 0], [2, 0]], [[0, 2], [1, 2], [2, 1]]])
    pop = Population.create(topk[..., 0], y, topk=topk, attributes={"sex": ["F", "M", "F"]})
    damaged = np.array([[1, 1, 2]])
    sub = nulls.members(pop, np.array([0]), damaged)
    assert sub.predictions.tolist() == [[1, 1, 2]]
    assert sub.topk is not None
    assert sub.topk.tolist() == [[[1, 0], [1, 0], [2, 0]]]
    assert sub.attributes["sex"].tolist() == ["F", "M", "F"]


# -- draws and groups --------------------------------------------------------------------
def test_policy_draws_are_disjoint_distinct_and_all_when_few(mods: Mods) -> None:
    _, _, nulls = mods
    ref, cand = nulls.policy_draws(5, 2, 1, 100, seed=0)
    assert ref.shape == (30, 2)  # C(5, 2) * 3: every draw, once
    assert cand.shape == (30, 1)
    ref, cand = nulls.policy_draws(20, 10, 5, 50, seed=3)
    assert ref.shape == (50, 10)
    assert cand.shape == (50, 5)
    keys = {(tuple(r), tuple(c)) for r, c in zip(ref, cand, strict=True)}
    assert len(keys) == 50
    assert all(not set(r) & set(c) for r, c in zip(ref, cand, strict=True))
    again = nulls.policy_draws(20, 10, 5, 50, seed=3)
    assert np.array_equal(ref, again[0])
    assert not np.array_equal(ref, nulls.policy_draws(20, 10, 5, 50, seed=4)[0])
    with pytest.raises(ValueError, match="disjoint groups of 6 and 5 need 11 members, have 10"):
        nulls.policy_draws(10, 6, 5, 1, seed=0)


def test_smallest_cell_and_random_group(mods: Mods) -> None:
    _, _, nulls = mods
    sex = np.array(["F"] * 60 + ["M"] * 40)
    race = np.array(["A"] * 10 + ["B"] * 50 + ["A"] * 30 + ["B"] * 10)
    mask, label = nulls.smallest_cell({"sex": sex, "race": race}, ("sex", "race"), 20)
    assert label == "sex=M, race=A"
    assert np.array_equal(np.flatnonzero(mask), np.arange(60, 90))
    with pytest.raises(ValueError, match="no crossing"):
        nulls.smallest_cell({"sex": sex, "race": race}, ("sex", "race"), 80)
    group = nulls.random_group(100, 7, [1, 2])
    assert group.sum() == 7
    assert np.array_equal(group, nulls.random_group(100, 7, [1, 2]))


# -- the engine calls -------------------------------------------------------------------
POLICY_CLASSES = """version: 1
gates:
  top1_drop: 0.05
  pie_rate: 0.2
  significant_classes: 0
  class_recall_drop: 0.05
"""
POLICY_GROUPS = """version: 1
alpha: 0.1
correction: bh
gates:
  top1_drop: 0.05
  subgroups:
    attributes: [sex, race]
    min_support: 20
    accuracy_gap: 0.05
"""


def write_policies(tmp_path: Path, mods: Mods) -> dict[str, tuple[Path, object]]:
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "classes.yaml").write_text(POLICY_CLASSES)
    (tmp_path / "pol" / "groups.yaml").write_text(POLICY_GROUPS)
    result: dict[str, tuple[Path, object]] = mods[0].shipped_policies(tmp_path / "pol")
    return result


def test_applies_needs_every_gated_attribute(mods: Mods, tmp_path: Path) -> None:
    pc, _, _ = mods
    policies = write_policies(tmp_path, mods)
    assert list(policies) == ["classes", "groups"]
    groups = policies["groups"][1]
    assert pc.needed_attributes(groups) == {"sex", "race"}
    assert pc.applies(groups, ["race", "sex", "age"])
    assert not pc.applies(groups, ["sex"])
    assert pc.applies(policies["classes"][1], [])


def test_judge_decides_what_compaudit_check_decides(
    mods: Mods, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pc, _, nulls = mods
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    policies = write_policies(tmp_path, mods)
    pop = toy(np.random.default_rng(8), 6)
    ref = nulls.members(pop, np.arange(4))
    damaged = pc.plant_damage(pop.predictions[4:], pop.y, pop.y == 1, 0.4, num_classes=3, seed=0)
    cands = {
        "seed-only": nulls.members(pop, np.arange(4, 6)),
        "class-40pct": nulls.members(pop, np.arange(4, 6), damaged),
    }
    judged = pc.judge(ref, cands, policies)
    save_population(ref, tmp_path / "ref.npz")
    seen = set()
    for cand_name, cand in cands.items():
        save_population(cand, tmp_path / f"{cand_name}.npz")
        for pol_name, (path, _) in policies.items():
            outcome = execute(
                AuditRequest(
                    reference=str(tmp_path / "ref.npz"),
                    candidates=[f"{cand_name}={tmp_path / cand_name}.npz"],
                    policy=str(path),
                    out=None,
                    formats=(),
                    console=Console(file=io.StringIO()),
                )
            )
            gates = outcome.report["gates"]
            verdict, failed, errored, names = judged[(cand_name, pol_name)]
            assert verdict == outcome.report["verdict"]
            assert failed == {g["name"] for g in gates if g["status"] == "failed"}
            assert errored == {g["name"] for g in gates if g["status"] == "error"}
            assert names == tuple(g["name"] for g in gates)
            seen.add(verdict)
    assert "fail" in seen  # the damaged candidate is caught by at least one policy


def test_run_cells_covers_every_damage_and_applicable_policy(mods: Mods, tmp_path: Path) -> None:
    pc, _, nulls = mods
    policies = write_policies(tmp_path, mods)
    pop = toy(np.random.default_rng(2), 9)
    plain = Population.create(pop.predictions, pop.y, num_classes=3)  # no attributes
    damages = [pc.Damage("none"), pc.Damage("class", 0.3), pc.Damage("group", 0.3)]
    draws = nulls.policy_draws(9, 6, 3, 3, seed=0)
    cells = pc.run_cells(
        pc.Setup("toy", plain, np.zeros(plain.n, dtype=bool), group_size=20),
        draws,
        policies,
        damages,
        seed=0,
    )
    # The group policy needs sex and race, which these data lack: not run.
    assert [(c.damage.name, c.policy) for c in cells] == [
        ("seed-only", "classes"),
        ("class-30pct", "classes"),
        ("group-30pct", "classes"),
    ]
    assert all(c.n == 3 and c.shape == "6 vs 3" for c in cells)
    assert cells[1].rate("fail") == 1.0  # 30% of a class is always caught here
    assert set(cells[0].gates) == {
        "top1_drop",
        "pie_rate",
        "significant_classes",
        "class_recall_drop",
    }
    mask, _ = nulls.smallest_cell(pop.attributes, ("sex", "race"), 20)
    real = pc.run_cells(pc.Setup("toy", pop, mask), draws, policies, damages, seed=0)
    assert len(real) == 6
    group_cell = next(c for c in real if c.policy == "groups" and c.damage.kind == "group")
    assert group_cell.gates == ("top1_drop", "subgroups.accuracy_gap")


# -- tables -----------------------------------------------------------------------------
def cell(
    mods: Mods,
    kind: str,
    fraction: float,
    policy: str,
    verdicts: str,
    gates: tuple[str, ...],
    failed: list[set[str]] | None = None,
    dataset: str = "toy",
) -> object:
    pc = mods[0]
    n = len(verdicts)
    words = {"p": "pass", "f": "fail", "e": "error"}
    failed = failed or [set() for _ in range(n)]
    return pc.Cell(
        dataset,
        10,
        5,
        pc.Damage(kind, fraction),
        policy,  # type: ignore[arg-type]
        verdicts=[words[v] for v in verdicts],
        failed=[frozenset(f) for f in failed],
        errored=[frozenset() for _ in range(n)],
        gates=gates,
    )


def test_rate_se_and_gate_breakdown(mods: Mods) -> None:
    _, tables, _ = mods
    assert tables.rate_se(0.95, 200) == "95.0% ± 1.5"
    assert tables.rate_se(1.0, 20) == "100.0% ± 0.0"
    c = cell(mods, "none", 0.0, "p", "pfpf", ("a", "b"), [set(), {"b"}, set(), {"a", "b"}])
    assert tables.gate_breakdown(c) == "`b` 50.0%, `a` 25.0%"
    c.errored[0] = frozenset({"a"})  # type: ignore[attr-defined]
    assert tables.gate_breakdown(c) == "`a` 50.0% (25.0% unevaluable), `b` 50.0%"


def test_seed_only_and_damage_tables_and_misses(mods: Mods) -> None:
    _, tables, _ = mods
    gates = ("top1_drop", "significant_classes", "subgroups.accuracy_gap")
    cells = [
        cell(mods, "none", 0.0, "strict", "p" * 19 + "f", gates, [set()] * 19 + [{"top1_drop"}]),
        cell(
            mods,
            "none",
            0.0,
            "loose",
            "p" * 18 + "ff",
            ("top1_drop",),
            [set()] * 18 + [{"top1_drop"}] * 2,
        ),
        cell(mods, "class", 0.1, "strict", "p" * 10 + "f" * 10, gates),
        cell(mods, "class", 0.3, "strict", "p" + "f" * 19, gates),
        cell(mods, "class", 0.1, "loose", "p" * 20, ("top1_drop",)),
        cell(mods, "class", 0.3, "loose", "p" * 20, ("top1_drop",)),
        cell(mods, "group", 0.3, "strict", "p" * 3 + "f" * 17, gates),
    ]
    seed = tables.seed_only_table(cells).splitlines()
    assert seed[0] == (
        "| dataset | K_ref vs K_cand | policy | n | pass (± MC s.e.) | errors | >= 95% | "
        "gates that failed (share of comparisons) |"
    )
    assert seed[2] == (
        "| toy | 10 vs 5 | `strict` | 20 | 95.0% ± 4.9 | 0.0% | yes | `top1_drop` 5.0% |"
    )
    assert seed[3] == (
        "| toy | 10 vs 5 | `loose` | 20 | 90.0% ± 6.7 | 0.0% | **NO** | `top1_drop` 10.0% |"
    )
    damage = tables.damage_table(cells, "class", 0.3).splitlines()
    assert damage[0].endswith(
        "| fails, 10% lost | fails, 30% lost | >= 90% at 30% | failed gates at 30% |"
    )
    assert damage[2] == (
        "| toy | 10 vs 5 | `strict` | 20 | `significant_classes` | 50.0% ± 11.2 | "
        "95.0% ± 4.9 | yes | - |"
    )
    assert damage[3] == (
        "| toy | 10 vs 5 | `loose` | 20 | none | 0.0% ± 0.0 | 0.0% ± 0.0 | not gated | - |"
    )
    group = tables.damage_table(cells, "group", 0.3).splitlines()
    assert group[2] == (
        "| toy | 10 vs 5 | `strict` | 20 | `subgroups.accuracy_gap` | 85.0% ± 8.0 | **NO** | - |"
    )
    assert tables.policy_misses(cells, 0.3) == [
        "`loose` on toy, 10 vs 5: passes 90.0% of 20 seed-only comparisons (target 95%); "
        "failing: `top1_drop` 10.0%.",
        "`strict` on toy, 10 vs 5: fails only 85.0% of 20 comparisons with small-subgroup "
        "damage (30% lost; target 90%); failing: -.",
    ]
    ok, lines = tables.policy_verdict(cells, 0.3)
    assert not ok
    assert len(lines) == 2
    assert tables.blind_spots(cells, 0.3) == [
        "`loose` has no gate aimed at one-class damage (toy): it can only catch it through "
        "its other gates (see the table)."
    ]
    section = tables.policy_section(cells, setup="- setup", main=0.3, figure="figures/p.png")
    assert "### Seed-only comparisons (target: pass >= 95%)" in section
    assert "![power curves](figures/p.png)" in section


def test_power_figure(mods: Mods, tmp_path: Path) -> None:
    pc, _, _ = mods
    cells = [
        cell(mods, kind, f, "strict", "pf", ("top1_drop",), dataset=ds)
        for ds in ("a", "b")
        for kind, f in (("none", 0.0), ("class", 0.1), ("group", 0.1))
    ]
    data = pc.power_figure(cells, tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


# -- the committed results --------------------------------------------------------------
def test_results_md_has_the_policy_tables_for_every_shipped_policy() -> None:
    text = (CALIBRATION / "RESULTS.md").read_text(encoding="utf-8")
    for heading in (
        "## Shipped policies: seed-only comparisons and planted damage",
        "### Seed-only comparisons (target: pass >= 95%)",
        "### One-class damage (target: fail >= 90% where gated)",
        "### Small-subgroup damage (target: fail >= 90% where gated)",
    ):
        assert heading in text
    assert "**Shipped policies: every one passes at least 95% of seed-only comparisons" in text
    assert (CALIBRATION / "figures" / "policies.png").is_file()
    seed_rows = [
        line
        for line in text.splitlines()
        if re.match(r"\| (digits|Fashion-MNIST|Adult) \| \d+ vs \d+ \| `", line)
    ]
    for policy in sorted(p.stem for p in SHIPPED.glob("*.yaml")):
        needs = load_policy(SHIPPED / f"{policy}.yaml").gates.subgroups
        datasets = (
            ("Adult",)
            if needs is not None and needs.attributes
            else ("digits", "Fashion-MNIST", "Adult")
        )
        for dataset in datasets:
            rows = [r for r in seed_rows if r.startswith(f"| {dataset} |") and f"`{policy}`" in r]
            # two shapes, in the seed-only, class and group tables
            assert len(rows) == 6, (policy, dataset, rows)


# -- resuming and parallel draws (policy_cache.py) ---------------------------------------
@pytest.fixture(scope="module")
def cache_mod(mods: Mods) -> ModuleType:
    """policy_cache (importable while ``mods`` holds the script folder on sys.path)."""
    return importlib.import_module("policy_cache")


def test_verdict_cache_round_trips_and_recomputes_damaged_entries(
    cache_mod: ModuleType, tmp_path: Path
) -> None:
    cache = cache_mod.VerdictCache(tmp_path / "c")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    value = {
        "seed-only": ("pass", frozenset(), frozenset(), ("top1_drop", "pie_rate")),
        "class-30pct": ("fail", frozenset({"pie_rate"}), frozenset({"x"}), ("top1_drop",)),
    }
    cache.put(key, value)
    assert cache.get(key) == value
    path = tmp_path / "c" / "ab" / f"{key}.json"
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    path.write_text(path.read_text()[:40])  # a torn entry
    assert cache.get(key) is None
    cache.put(key, value)
    other = "cd" + "0" * 62
    (tmp_path / "c" / "cd").mkdir()
    (tmp_path / "c" / "cd" / f"{other}.json").write_bytes(path.read_bytes())  # wrong key inside
    assert cache.get(other) is None


def test_digest_and_key_change_with_every_input(mods: Mods, cache_mod: ModuleType) -> None:
    _, _, nulls = mods
    pop = toy(np.random.default_rng(1), 3)
    digest = cache_mod.population_digest
    base = digest(pop)
    assert base == digest(nulls.members(pop, np.arange(3)))  # same content, same digest
    flipped = pop.predictions.copy()
    flipped[0, 0] = (flipped[0, 0] + 1) % 3
    assert digest(nulls.members(pop, np.arange(3), flipped)) != base
    assert digest(pop.with_attributes({"sex": pop.attributes["race"]})) != base
    assert digest(nulls.members(pop, np.arange(2))) != base
    key = dict(code="c", policy_bytes=b"p", reference="r", candidates={"a": "1"}, draw_seed=[0, 1])
    k0 = cache_mod.draw_key(**key)
    assert k0 == cache_mod.draw_key(**key)
    for change in (
        {"code": "d"},
        {"policy_bytes": b"p "},
        {"reference": "s"},
        {"candidates": {"a": "2"}},
        {"candidates": {"b": "1"}},
        {"draw_seed": [0, 2]},
    ):
        assert cache_mod.draw_key(**{**key, **change}) != k0, change


def test_source_fingerprint_covers_the_study_scripts(cache_mod: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "judge.py").write_text("RULE = 1\n")
    (tmp_path / "notes.md").write_text("not code")
    base = cache_mod.source_fingerprint(tmp_path)
    assert base == cache_mod.source_fingerprint(tmp_path)
    (tmp_path / "notes.md").write_text("edited prose")
    assert cache_mod.source_fingerprint(tmp_path) == base  # only scripts count
    (tmp_path / "judge.py").write_text("RULE = 2\n")  # an edited judging rule
    assert cache_mod.source_fingerprint(tmp_path) != base
    (tmp_path / "judge.py").write_text("RULE = 1\n")
    (tmp_path / "damage.py").write_text("")
    assert cache_mod.source_fingerprint(tmp_path) != base  # a new script
    assert cache_mod.source_fingerprint() != base  # the default is the study's folder


def _counting_audit(monkeypatch: pytest.MonkeyPatch, pc: ModuleType) -> list[int]:
    calls: list[int] = []
    real = pc.compaudit.audit

    def audit(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pc.compaudit, "audit", audit)
    return calls


def test_run_cells_resumes_from_the_cache_and_reruns_only_what_changed(
    mods: Mods, cache_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pc, _, nulls = mods
    policies = write_policies(tmp_path, mods)
    pop = toy(np.random.default_rng(3), 9)
    mask, _ = nulls.smallest_cell(pop.attributes, ("sex", "race"), 20)
    setup = pc.Setup("toy", pop, mask)
    damages = [pc.Damage("none"), pc.Damage("class", 0.3), pc.Damage("group", 0.3)]
    draws = nulls.policy_draws(9, 6, 3, 3, seed=0)
    fresh = pc.run_cells(setup, draws, policies, damages, seed=0)
    calls = _counting_audit(monkeypatch, pc)
    cache = cache_mod.VerdictCache(tmp_path / "cache")

    def run() -> list[object]:
        out: list[object] = pc.run_cells(setup, draws, policies, damages, seed=0, cache=cache)
        return out

    assert run() == fresh
    assert len(calls) == 3 * 2  # draws x policies, one audit each
    calls.clear()
    assert run() == fresh  # every draw read back: nothing audited
    assert calls == []
    # An interrupted run: one entry lost is the only audit redone.
    next(iter((tmp_path / "cache").rglob("*.json"))).unlink()
    assert run() == fresh
    assert len(calls) == 1
    calls.clear()
    # A policy edited (even a comment): only its draws are audited again.
    path = policies["groups"][0]
    path.write_text(path.read_text() + "# edited\n")
    assert run() == fresh
    assert len(calls) == 3


def test_run_cells_on_two_processes_matches_one(mods: Mods, tmp_path: Path) -> None:
    pc, _, nulls = mods
    policies = write_policies(tmp_path, mods)
    pop = toy(np.random.default_rng(5), 8)
    setup = pc.Setup("toy", pop, np.zeros(pop.n, dtype=bool), group_size=20)
    damages = [pc.Damage("none"), pc.Damage("group", 0.3)]
    draws = nulls.policy_draws(8, 4, 2, 2, seed=1)
    serial = pc.run_cells(setup, draws, policies, damages, seed=1)
    assert pc.run_cells(setup, draws, policies, damages, seed=1, jobs=2) == serial


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["passed", "passed"], "pass"),
        (["passed", "skipped"], "pass"),
        (["passed", "failed"], "fail"),
        (["failed", "error"], "error"),
        (["skipped", "skipped"], "error"),  # nothing evaluated: check says error, never pass
        ([], "error"),
    ],
)
def test_candidate_verdict_is_checks_rule(mods: Mods, statuses: list[str], expected: str) -> None:
    from compaudit.gates import decide_verdict
    from compaudit.results import GateResult

    passed = {"passed": True, "failed": False, "error": None, "skipped": None}
    gates = [
        GateResult(
            name=f"g{i}",
            candidate="c",
            value=None,
            threshold=None,
            passed=passed[s],
            detail="",
            status=s,  # type: ignore[arg-type]
        )
        for i, s in enumerate(statuses)
    ]
    assert mods[0].candidate_verdict(gates) == expected
    assert decide_verdict(gates, ()) == expected
