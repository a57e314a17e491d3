"""Seed-noise floors: hand cases, the audit's own statistics by brute force, excess and
p-values on known nulls, and a Monte-Carlo calibration (size and power)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compaudit.analysis import floors
from compaudit.analysis.agreement import cie, modal_predictions
from compaudit.analysis.floors import (
    ERR_DIRECTION,
    ERR_K_CANDIDATE,
    ERR_N_SPLITS,
    ERR_QUANTILE,
    REASON_TOO_FEW,
    SeedFloors,
    excess,
    seed_floors,
)
from compaudit.analysis.shift import group_accuracy
from compaudit.analysis.subgroups import pie_shares

# -- hand case: Kr = 4, k = 2, the 3 splits {01|23}, {02|13}, {03|12} ---------------------
# Binary labels, so each side of a split is unanimous or a 1-1 tie. Two sides tied
# on the same labels break the tie the same way (the audit's seeded key depends on
# the example and label only), so a PIE needs unanimous sides that differ.
#            ex0 ex1 ex2 ex3 ex4 ex5 ex6
HAND = np.array(
    [
        [0, 0, 0, 1, 1, 0, 1],  # member 0
        [0, 0, 1, 0, 1, 0, 1],  # member 1
        [0, 1, 0, 0, 1, 0, 0],  # member 2
        [0, 1, 1, 1, 1, 0, 0],  # member 3
    ]
)
HAND_Y = np.array([0, 0, 0, 1, 1, 1, 0])
HAND_GROUPS = np.array([0, 0, 1, 1, 0, 1, 0])


def _hand_floors(**kw: object) -> SeedFloors:
    args: dict[str, object] = {
        "k_candidate": 2,
        "class_codes": HAND_Y,
        "n_classes": 2,
        "group_codes": HAND_GROUPS,
        "n_groups": 2,
    }
    args.update(kw)
    return seed_floors(HAND, HAND_Y, **args)  # type: ignore[arg-type]


def test_hand_case_splits_pie_and_cie() -> None:
    fl = _hand_floors()
    assert fl.available
    assert fl.reason is None
    assert (fl.k_split, fl.n_splits, fl.sized_to_candidate) == (2, 3, True)
    np.testing.assert_array_equal(fl.splits, [[[0, 1], [2, 3]], [[0, 2], [1, 3]], [[0, 3], [1, 2]]])
    # PIEs: split 1 ex1 and ex6 (0,0 vs 1,1 and 1,1 vs 0,0); split 2 ex2; split 3 ex3.
    np.testing.assert_allclose(fl.pie_rate, [2 / 7, 1 / 7, 1 / 7])
    # Disagreements per member pair: d01 = 2, d02 = d03 = d12 = d13 = 3, d23 = 2.
    # Split 1: (3 + 3 + 3 + 3) / 4 pairs / 7; splits 2 and 3: (2 + 3 + 3 + 2) / 4 / 7.
    np.testing.assert_allclose(fl.cie_rate, [12 / 28, 10 / 28, 10 / 28])
    assert (fl.min_p_value, fl.min_p_value_signed) == (1 / 4, 1 / 7)


def test_hand_case_class_difference() -> None:
    fl = _hand_floors()
    # Per member: top-1 and recall of class 0 (ex0, 1, 2, 6) and class 1 (ex3, 4, 5).
    top1 = np.array([5, 3, 4, 4]) / 7
    recall = np.array([[3 / 4, 2 / 3], [2 / 4, 1 / 3], [3 / 4, 1 / 3], [2 / 4, 2 / 3]])
    s = recall - top1[:, None]
    want = np.array(
        [
            (s[2] + s[3] - s[0] - s[1]) / 2,
            (s[1] + s[3] - s[0] - s[2]) / 2,
            (s[1] + s[2] - s[0] - s[3]) / 2,
        ]
    )
    assert fl.class_difference.shape == (6, 2)  # both orientations of each split
    np.testing.assert_allclose(fl.class_difference, np.concatenate([want, -want]), atol=1e-15)


def test_hand_case_groups() -> None:
    fl = _hand_floors()
    # Group 0 = ex0, 1, 4, 6 (4 examples), group 1 = ex2, 3, 5 (3).
    # Split 1: PIEs ex1, ex6 -> pct_pie (100, 0), pct_non (2/5, 3/5) -> growth (150, -100).
    # Splits 2, 3: one PIE in group 1 -> pct_pie (0, 100), pct_non (4/6, 2/6) -> (-100, 200).
    np.testing.assert_allclose(fl.group_pct_growth, [[150, -100], [-100, 200], [-100, 200]])
    # Group accuracy minus top-1 per member.
    top1 = np.array([5, 3, 4, 4]) / 7
    acc = np.array([[3 / 4, 2 / 3], [3 / 4, 0], [3 / 4, 1 / 3], [3 / 4, 1 / 3]])
    s = acc - top1[:, None]
    want = np.array(
        [
            (s[2] + s[3] - s[0] - s[1]) / 2,
            (s[1] + s[3] - s[0] - s[2]) / 2,
            (s[1] + s[2] - s[0] - s[3]) / 2,
        ]
    )
    np.testing.assert_allclose(fl.group_shift_difference, np.concatenate([want, -want]), atol=1e-15)


# -- the audit's statistics, by brute force ---------------------------------------------
def _brute(
    preds: np.ndarray, y: np.ndarray, fl: SeedFloors, groups: np.ndarray, n_groups: int, seed: int
) -> tuple[np.ndarray, ...]:
    """Each split through the audit's own functions (modal, CIE, shares, accuracy)."""
    c = int(y.max()) + 1

    def s(x: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
        ok = x == y
        return np.asarray(group_accuracy(ok, codes, n) - ok.mean(axis=1)[:, None])

    rows: list[list[np.ndarray]] = [[], [], [], [], []]
    for a, b in fl.splits:
        pie = modal_predictions(preds[a], seed=seed)[0] != modal_predictions(preds[b], seed=seed)[0]
        rows[0].append(np.asarray(pie.mean()))
        rows[1].append(np.asarray(cie(preds[a], preds[b], y).rate))
        rows[2].append(s(preds[b], y, c).mean(0) - s(preds[a], y, c).mean(0))
        rows[3].append(pie_shares(groups, n_groups, pie)["pct_growth"])
        rows[4].append(
            s(preds[b], groups, n_groups).mean(0) - s(preds[a], groups, n_groups).mean(0)
        )
    out = [np.array(r) for r in rows]
    return (
        out[0],
        out[1],
        np.concatenate([out[2], -out[2]]),
        out[3],
        np.concatenate([out[4], -out[4]]),
    )


@settings(max_examples=40, deadline=None)
@given(
    kr=st.integers(3, 10),
    k_candidate=st.integers(1, 6),
    n_classes=st.integers(2, 6),
    agreement=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31),
)
def test_floors_are_the_audits_statistics_on_every_split(
    kr: int, k_candidate: int, n_classes: int, agreement: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    y = rng.integers(0, n_classes, n)
    ease = rng.uniform(agreement, 1.0, n)
    preds = np.where(rng.random((kr, n)) < ease, y, rng.integers(0, n_classes, (kr, n)))
    groups = rng.integers(0, 3, n)
    fl = seed_floors(
        preds, y, k_candidate=k_candidate, class_codes=y, n_classes=n_classes,
        group_codes=groups, n_groups=3, n_splits=12, seed=seed % 7,
    )  # fmt: skip
    got = (
        fl.pie_rate,
        fl.cie_rate,
        fl.class_difference,
        fl.group_pct_growth,
        fl.group_shift_difference,
    )
    for g, want in zip(got, _brute(preds, y, fl, groups, 3, seed % 7), strict=True):
        np.testing.assert_allclose(g, want, atol=1e-12, equal_nan=True)


def test_small_working_blocks_give_the_same_floors(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 6, 300)
    preds = np.where(
        rng.random((10, 300)) < rng.uniform(0.2, 1, 300), y, rng.integers(0, 6, (10, 300))
    )
    groups = rng.integers(0, 3, 300)

    def run() -> SeedFloors:
        return seed_floors(preds, y, k_candidate=4, class_codes=y, n_classes=6,
                           group_codes=groups, n_groups=3, n_splits=16, seed=2)  # fmt: skip

    big = run()
    monkeypatch.setattr(floors, "_CHUNK", 97)  # many chunks of examples everywhere
    small = run()
    for name in ("pie_rate", "cie_rate", "class_difference", "group_pct_growth"):
        np.testing.assert_array_equal(getattr(small, name), getattr(big, name))
    want = _brute(preds, y, big, groups, 3, seed=2)
    np.testing.assert_allclose(small.pie_rate, want[0])


def test_regroup_equals_a_call_with_the_groups() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 400)
    preds = np.where(rng.random((9, 400)) < 0.7, y, rng.integers(0, 5, (9, 400)))
    a, b = rng.integers(0, 4, 400), rng.integers(0, 2, 400)
    base = seed_floors(preds, y, k_candidate=3, class_codes=y, n_classes=5)
    assert base.group_pct_growth.shape == (base.n_splits, 0)
    direct = seed_floors(
        preds, y, k_candidate=3, class_codes=y, n_classes=5, group_codes=a, n_groups=4
    )
    again = base.regroup(b, 2).regroup(a, 4)
    np.testing.assert_array_equal(again.group_pct_growth, direct.group_pct_growth)
    np.testing.assert_array_equal(again.group_shift_difference, direct.group_shift_difference)
    np.testing.assert_array_equal(again.pie_rate, direct.pie_rate)


# -- sizing, availability, determinism --------------------------------------------------
@pytest.mark.parametrize(
    ("kr", "kc", "k_split", "n_splits", "sized"),
    [(3, 1, 1, 3, True), (3, 5, 1, 3, False), (4, 2, 2, 3, True), (4, 1, 1, 6, True),
     (5, 2, 2, 15, True), (6, 3, 3, 10, True), (7, 9, 3, 64, False), (30, 30, 15, 64, False),
     (30, 15, 15, 64, True)],
)  # fmt: skip
def test_split_sizes(kr: int, kc: int, k_split: int, n_splits: int, sized: bool) -> None:
    rng = np.random.default_rng(kr)
    y = rng.integers(0, 3, 50)
    preds = rng.integers(0, 3, (kr, 50))
    fl = seed_floors(preds, y, k_candidate=kc, class_codes=y, n_classes=3)
    assert (fl.k_split, fl.n_splits, fl.sized_to_candidate) == (k_split, n_splits, sized)
    assert fl.splits.shape == (n_splits, 2, k_split)
    keys = {frozenset((tuple(a), tuple(b))) for a, b in fl.splits.tolist()}
    assert len(keys) == n_splits  # distinct
    assert all(not set(a) & set(b) for a, b in fl.splits.tolist())  # disjoint


@pytest.mark.parametrize("kr", [1, 2])
def test_unavailable_below_three_members(kr: int) -> None:
    y = np.array([0, 1, 1, 0])
    fl = seed_floors(np.tile(y, (kr, 1)), y, k_candidate=2, class_codes=y, n_classes=2,
                     group_codes=y, n_groups=2)  # fmt: skip
    assert not fl.available
    assert fl.reason == REASON_TOO_FEW.format(kr=kr, s="" if kr == 1 else "s")
    assert fl.n_splits == 0
    assert fl.pie_rate.shape == (0,)
    assert fl.class_difference.shape == (0, 2)
    assert fl.group_pct_growth.shape == (0, 2)
    assert np.isnan(fl.min_p_value)
    f, e, p = excess(np.array([0.1, 0.2]), fl.class_difference, direction="less", quantile=0.95)
    assert np.isnan(f).all()
    assert np.isnan(e).all()
    assert np.isnan(p).all()


def test_identical_members_give_a_zero_floor() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    member = np.where(rng.random(300) < 0.8, y, (y + 1) % 4)
    fl = seed_floors(np.tile(member, (6, 1)), y, k_candidate=3, class_codes=y, n_classes=4,
                     group_codes=rng.integers(0, 2, 300), n_groups=2)  # fmt: skip
    assert fl.n_splits == 10
    np.testing.assert_array_equal(fl.pie_rate, 0.0)
    np.testing.assert_array_equal(fl.cie_rate, 0.0)
    np.testing.assert_allclose(fl.class_difference, 0.0, atol=1e-15)
    assert np.isnan(fl.group_pct_growth).all()  # no PIE in any split: growth undefined
    floor, beyond, p = excess(0.01, fl.pie_rate, direction="greater", quantile=0.95)
    assert (float(floor), float(beyond), float(p)) == (0.0, 0.01, 1 / 11)


def test_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 200)
    preds = np.where(rng.random((12, 200)) < 0.6, y, rng.integers(0, 3, (12, 200)))

    def run(seed: int) -> SeedFloors:
        return seed_floors(
            preds, y, k_candidate=4, class_codes=y, n_classes=3, n_splits=20, seed=seed
        )

    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a.splits, b.splits)
    np.testing.assert_array_equal(a.pie_rate, b.pie_rate)
    np.testing.assert_array_equal(a.class_difference, b.class_difference)
    assert not np.array_equal(a.splits, c.splits)


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"k_candidate": 0}, ERR_K_CANDIDATE.format(k=0)),
     ({"n_splits": 2}, ERR_N_SPLITS.format(n=2)),
     ({"quantile": 1.0}, ERR_QUANTILE.format(q=1.0))],
)  # fmt: skip
def test_bad_arguments(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        _hand_floors(**kw)
    assert str(err.value) == message


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="class_codes must have shape"):
        seed_floors(HAND, HAND_Y, k_candidate=2, class_codes=HAND_Y[:3], n_classes=2)


# -- excess and p-values on known nulls ------------------------------------------------------
def test_excess_greater_and_less_on_a_known_null() -> None:
    null = np.arange(1.0, 20.0)  # S = 19
    # 95th percentile, linear: position 0.95 * 18 = 17.1 -> 18.1; 5th: 0.9 -> 1.9.
    f, e, p = excess(18.5, null, direction="greater", quantile=0.95)
    assert (float(f), float(e), float(p)) == pytest.approx((18.1, 0.4, 2 / 20))
    f, e, p = excess(1.5, null, direction="less", quantile=0.95)
    assert (float(f), float(e), float(p)) == pytest.approx((1.9, 0.4, 2 / 20))
    # At the floor's side of the null: no excess, p large; ties count as extreme.
    f, e, p = excess(10.0, null, direction="greater", quantile=0.95)
    assert float(e) == pytest.approx(-8.1)
    assert float(p) == pytest.approx(11 / 20)
    assert float(excess(30.0, null, direction="greater", quantile=0.95)[2]) == 1 / 20


def test_excess_is_vectorised_and_nan_aware() -> None:
    null = np.array([[1.0, np.nan, 0.0], [2.0, np.nan, np.nan], [3.0, np.nan, 1.0]])
    f, e, p = excess(np.array([0.5, 1.0, np.nan]), null, direction="less", quantile=0.5)
    np.testing.assert_allclose(f, [2.0, np.nan, 0.5])
    np.testing.assert_allclose(e, [1.5, np.nan, np.nan])
    np.testing.assert_allclose(p, [1 / 4, np.nan, np.nan])
    _, _, p = excess(np.array([0.0, 1.0, 0.0]), null, direction="less", quantile=0.5)
    np.testing.assert_allclose(p, [1 / 4, np.nan, 2 / 3])  # column 3: S = 2 non-NaN
    with pytest.raises(ValueError, match="direction") as err:
        excess(0.0, null, direction="up", quantile=0.9)  # type: ignore[arg-type]
    assert str(err.value) == ERR_DIRECTION.format(d="up")


# -- calibration: seed-only populations, and planted damage -------------------------------
def simulate_population(
    rng: np.random.Generator,
    y: np.ndarray,
    ease: np.ndarray,
    favourite: np.ndarray,
    k: int,
    *,
    n_classes: int,
    class_skill_sd: float = 0.25,
    damage: dict[int, float] | None = None,
) -> np.ndarray:
    """K members with model-level random effects: each has its own per-class skill
    (normal on the logit scale) and an overall shift, then independent per-example
    flips; a wrong answer is the example's favourite confusion 60% of the time.
    ``damage`` takes away that share of each member's correct answers in a class."""
    n = y.shape[0]
    skill = rng.normal(0.0, class_skill_sd, (k, n_classes))[:, y] + rng.normal(0, 0.1, (k, 1))
    correct = rng.random((k, n)) < 1.0 / (1.0 + np.exp(-(ease[None, :] + skill)))
    for c, loss in (damage or {}).items():
        correct &= ~((y == c)[None, :] & (rng.random((k, n)) < loss))
    other = (y[None, :] + rng.integers(1, n_classes, (k, n))) % n_classes
    wrong = np.where(rng.random((k, n)) < 0.6, favourite[None, :], other)
    return np.where(correct, y[None, :], wrong)


def calibration(
    reps: int,
    *,
    kr: int = 8,
    kc: int = 4,
    n: int = 1500,
    n_classes: int = 10,
    alpha: float = 0.05,
    damage: float = 0.0,
    n_splits: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Rejection rates of the excess tests over ``reps`` fresh (reference, candidate) draws.

    Returns the PIE-rate rejection rate, the per-class rejection rate over the
    undamaged classes (with its cluster standard error over reps) and, with
    ``damage``, the rejection rate of class 0, which every candidate member
    loses ``damage`` of.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    pie_rej, class_rej, hit = [], [], []
    for rep in range(reps):
        ease = rng.normal(1.8, 1.2, n)
        favourite = (y + rng.integers(1, n_classes, n)) % n_classes
        ref = simulate_population(rng, y, ease, favourite, kr, n_classes=n_classes)
        cand = simulate_population(
            rng, y, ease, favourite, kc, n_classes=n_classes, damage={0: damage} if damage else None
        )
        fl = seed_floors(ref, y, k_candidate=kc, class_codes=y, n_classes=n_classes,
                         n_splits=n_splits, seed=rep)  # fmt: skip
        pie = modal_predictions(ref, seed=rep)[0] != modal_predictions(cand, seed=rep)[0]
        _, _, p = excess(pie.mean(), fl.pie_rate, direction="greater", quantile=0.95)
        pie_rej.append(float(p) <= alpha)

        def s(x: np.ndarray) -> np.ndarray:
            ok = x == y
            return np.asarray(group_accuracy(ok, y, n_classes) - ok.mean(axis=1)[:, None])

        diff = s(cand).mean(axis=0) - s(ref).mean(axis=0)
        _, _, pc = excess(diff, fl.class_difference, direction="less", quantile=0.95)
        class_rej.append(float(np.mean(pc[1:] <= alpha)))
        hit.append(bool(pc[0] <= alpha))
    return {
        "pie_rate": float(np.mean(pie_rej)),
        "class": float(np.mean(class_rej)),
        "class_se": float(np.std(class_rej, ddof=1) / np.sqrt(reps)),
        "damaged_class": float(np.mean(hit)),
    }


def test_calibration_seed_only_false_alarms_within_alpha() -> None:
    """Kr = 8 against Kc = 4 (split 4 vs 4, sized to the candidate), 10 classes.

    Measured here: class false alarms 0.050 (cluster SE 0.006), PIE rate 0.000: the
    PIE floor of k vs k members lies above the PIE rate of Kr vs Kc (conservative).
    Over 1,000 reps (by hand): classes 0.044 (SE 0.002) at Kr=8/Kc=4, 0.025 at 8/8,
    0.037 at 16/8, 0.040 at 6/1, 0.037 at 30/15; PIE rate <= 0.002 everywhere.
    """
    reps, alpha = 150, 0.05
    res = calibration(reps, alpha=alpha, seed=11)
    # Binomial MC error of a size-alpha test over `reps` draws: sqrt(.05 * .95 / 150) = 0.018.
    se = np.sqrt(alpha * (1 - alpha) / reps)
    assert res["pie_rate"] <= alpha + 2 * se
    # Classes: 9 undamaged per rep, correlated within a rep: cluster SE over reps.
    assert res["class"] <= alpha + 2 * max(res["class_se"], se / 3)
    # Class 0 is no different from the others here.
    assert res["damaged_class"] <= alpha + 2 * se


def test_calibration_planted_damage_is_found() -> None:
    """Every candidate member loses 20% of class 0's recall: found in 40 of 40 here.

    Over 200 reps (by hand), 20% / 10% damage: Kr=8/Kc=4 1.00 / 0.76, 8/8 1.00 / 0.81,
    16/8 1.00 / 0.97, 30/15 1.00 / 1.00, 6/1 0.75 / 0.28; Kr=Kc=4 0 (3 splits: p >= 1/7).
    """
    res = calibration(40, damage=0.2, seed=12)
    assert res["damaged_class"] >= 0.9
    assert res["class"] <= 0.05 + 0.05  # the other classes stay near their size


def test_vectorised_nanquantile_equals_numpy() -> None:
    # The floors' quantile is numpy's nanquantile (linear), vectorised over columns:
    # identical results, NaN-only columns included.
    import warnings

    from compaudit.analysis.floors import _nanquantile

    rng = np.random.default_rng(3)
    for trial in range(200):
        s, c = int(rng.integers(1, 70)), int(rng.integers(1, 40))
        z = rng.normal(size=(s, c))
        if trial % 2:
            z = np.round(z, 1)  # ties
        z[rng.random((s, c)) < rng.random() * 0.8] = np.nan
        for q in (0.05, 0.1, 0.5, 0.95, 0.975):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanquantile(z, q, axis=0)
            assert np.array_equal(_nanquantile(z, q), expected, equal_nan=True)
