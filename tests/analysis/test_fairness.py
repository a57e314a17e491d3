"""Fairness metrics against fairlearn (tolerance 1e-12), their bootstrap and their floors.

fairlearn 0.15's ``MetricFrame`` (``true_positive_rate``, ``false_positive_rate``,
``false_negative_rate``, ``selection_rate``), ``demographic_parity_difference`` and
``equalized_odds_difference`` are the reference. A population's rates are fairlearn on
the members' predictions stacked (examples repeated K times), its disparities the mean
of fairlearn's disparity of each member; multi-class tasks are fairlearn on the
one-vs-rest binarised labels; intersections are fairlearn's own crossing of several
sensitive-feature columns.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (  # type: ignore[import-untyped]
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from compaudit.analysis import _fairness_noise as noise
from compaudit.analysis.fairness import RATES, fairness_table, positive_classes
from compaudit.analysis.subgroups import group_codes

TOL = 1e-12
METRICS = {
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "fnr": false_negative_rate,
    "selection_rate": selection_rate,
}


def _data(
    n: int, c: int, kr: int, kc: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    attrs = {
        "sex": rng.choice(np.array(["F", "M"]), n, p=[0.4, 0.6]),
        "age": rng.choice(np.array(["old", "young", "mid"]), n, p=[0.2, 0.5, 0.3]),
    }
    # Accuracy differs by group so that the disparities are not all zero.
    p_ok = np.where(attrs["sex"] == "F", 0.7, 0.85)
    ref = np.where(rng.random((kr, n)) < p_ok, y, rng.integers(0, c, (kr, n)))
    cand = np.where(rng.random((kc, n)) < p_ok - 0.1, y, rng.integers(0, c, (kc, n)))
    return y, ref, cand, attrs


def _fairlearn(
    preds: np.ndarray, y: np.ndarray, sf: pd.DataFrame, positive: int, keep: np.ndarray
) -> tuple[pd.DataFrame, float, float]:
    """fairlearn's rates on a population's stacked predictions and the mean of its
    members' disparities (over the judged groups' examples ``keep``), for ``positive``."""
    k = preds.shape[0]
    yt = np.tile(y == positive, k).astype(int)
    yp = (preds == positive).ravel().astype(int)
    sft = pd.concat([sf] * k, ignore_index=True)
    frame = MetricFrame(metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=sft)
    y1, s1 = (y == positive).astype(int)[keep], sf[keep]
    dpd = [
        demographic_parity_difference(y1, (p == positive)[keep], sensitive_features=s1)
        for p in preds
    ]
    eod = [
        equalized_odds_difference(y1, (p == positive)[keep], sensitive_features=s1) for p in preds
    ]
    return frame.by_group, float(np.mean(dpd)), float(np.mean(eod))


@pytest.mark.parametrize(
    ("kr", "kc", "names", "min_support"),
    [
        (1, 1, ("sex",), 1),  # single models, marginal groups
        (5, 3, ("sex", "age"), 60),  # populations, intersections, a small group not judged
    ],
)
def test_binary_rates_and_disparities_match_fairlearn(
    kr: int, kc: int, names: tuple[str, ...], min_support: int
) -> None:
    y, ref, cand, attrs = _data(700, 2, kr, kc, seed=kr)
    codes, keys = group_codes(attrs, names, y=y, class_names=["0", "1"])
    t = fairness_table(
        ref, cand, y, codes, len(keys), num_classes=2, min_support=min_support, replicates=20
    )
    sf = pd.DataFrame({a: attrs[a] for a in names})
    keep = t.judged[codes]
    if min_support > 1:
        assert not t.judged.all()  # the case tests something
        assert t.judged.sum() >= 2
    assert t.classes.tolist() == [1]
    for side, preds in ((0, ref), (1, cand)):
        by_group, dpd, eod = _fairlearn(preds, y, sf, 1, keep)
        for i, key in enumerate(keys):
            index = tuple(key[a] for a in names)
            row = by_group.loc[index if len(names) > 1 else index[0]]
            for rate in RATES:
                assert t.rates[rate][side][i, 0] == pytest.approx(float(row[rate]), abs=TOL)
        d_p = t.disparities["demographic_parity_difference"]
        d_e = t.disparities["equalized_odds_difference"]
        assert (d_p.reference, d_p.candidate)[side][0] == pytest.approx(dpd, abs=TOL)
        assert (d_e.reference, d_e.candidate)[side][0] == pytest.approx(eod, abs=TOL)
    for d in t.disparities.values():
        assert d.increase == pytest.approx(d.candidate[0] - d.reference[0], abs=TOL)


def test_multi_class_one_vs_rest_matches_fairlearn_per_class() -> None:
    """fairlearn on the one-vs-rest labels, the class as a control feature (one frame a
    side); its ``difference()`` is how fairlearn's disparity functions are defined."""
    c = 3
    y, ref, cand, attrs = _data(900, c, 2, 3, seed=2)
    codes, keys = group_codes(attrs, ("age",), y=y, class_names=list("012"))
    t = fairness_table(ref, cand, y, codes, len(keys), num_classes=c, replicates=20)
    assert t.classes.tolist() == list(positive_classes(c)) == [0, 1, 2]
    for side, preds in ((0, ref), (1, cand)):
        k, n = preds.shape
        cls = np.repeat(np.arange(c), k * n)
        member = np.tile(np.repeat(np.arange(k), n), c)
        yt = (np.tile(y, k * c) == cls).astype(int)
        yp = (np.tile(preds.ravel(), c) == cls).astype(int)
        sf = np.tile(attrs["age"], k * c)
        frame = MetricFrame(
            metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=sf, control_features=cls
        )
        # Each member's between-group differences, then their mean (the population's).
        per_member = MetricFrame(
            metrics={k: METRICS[k] for k in ("tpr", "fpr", "selection_rate")},
            y_true=yt,
            y_pred=yp,
            sensitive_features=sf,
            control_features=pd.DataFrame({"cls": cls, "member": member}),
        ).difference(method="between_groups")
        d_p = t.disparities["demographic_parity_difference"]
        d_e = t.disparities["equalized_odds_difference"]
        for j in range(c):
            for i, key in enumerate(keys):
                row = frame.by_group.loc[(j, key["age"])]
                for rate in RATES:
                    assert t.rates[rate][side][i, j] == pytest.approx(float(row[rate]), abs=TOL)
            diff = per_member.loc[j]
            dpd = float(diff["selection_rate"].mean())
            eod = float(np.maximum(diff["tpr"], diff["fpr"]).mean())
            assert (d_p.reference, d_p.candidate)[side][j] == pytest.approx(dpd, abs=TOL)
            assert (d_e.reference, d_e.candidate)[side][j] == pytest.approx(eod, abs=TOL)
    # The set's summary is the worst class; the gate's value the largest change.
    for d in t.disparities.values():
        assert d.worst_reference == pytest.approx(d.reference.max(), abs=TOL)
        assert d.worst_candidate == pytest.approx(d.candidate.max(), abs=TOL)
        change = d.candidate - d.reference
        assert d.increase == pytest.approx(change.max(), abs=TOL)
        assert d.increase_class == int(np.argmax(change))


def test_counts_and_judged_groups() -> None:
    y, ref, cand, attrs = _data(500, 2, 2, 2, seed=3)
    codes, keys = group_codes(attrs, ("age",), y=y, class_names=["0", "1"])
    t = fairness_table(ref, cand, y, codes, len(keys), num_classes=2, min_support=120)
    assert t.n.tolist() == np.bincount(codes).tolist()
    assert t.n_positive[:, 0].tolist() == np.bincount(codes, weights=y == 1).astype(int).tolist()
    assert t.judged.tolist() == (np.bincount(codes) >= 120).tolist()


def test_fewer_than_two_judged_groups_leave_the_disparities_undefined() -> None:
    y, ref, cand, attrs = _data(300, 2, 1, 1, seed=4)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    t = fairness_table(ref, cand, y, codes, len(keys), num_classes=2, min_support=10_000)
    d = t.disparities["demographic_parity_difference"]
    assert np.isnan(d.reference).all()
    assert np.isnan(d.increase)
    assert d.increase_class == -1
    assert np.isfinite(t.rates["tpr"][0]).all()  # the rates themselves are still given


def test_bootstrap_is_seeded_and_its_interval_holds_the_change() -> None:
    y, ref, cand, attrs = _data(800, 3, 4, 3, seed=5)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1", "2"])
    run = dict(num_classes=3, replicates=200, seed=11)
    a = fairness_table(ref, cand, y, codes, len(keys), **run)  # type: ignore[arg-type]
    b = fairness_table(ref, cand, y, codes, len(keys), **run)  # type: ignore[arg-type]
    other = fairness_table(ref, cand, y, codes, len(keys), **{**run, "seed": 12})  # type: ignore[arg-type]
    for k in RATES:
        np.testing.assert_array_equal(a.rates[k][2], b.rates[k][2])
        assert not np.array_equal(a.rates[k][2], other.rates[k][2])
        ref_v, cand_v, low, high = a.rates[k]
        change = cand_v - ref_v
        assert (low <= change + TOL).all()
        assert (change <= high + TOL).all()
        assert (high - low > 0).all()
    assert a.resampled == "members and examples"


def test_bootstrap_of_single_models_resamples_examples_only() -> None:
    y, ref, cand, attrs = _data(400, 2, 1, 1, seed=6)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    t = fairness_table(ref, cand, y, codes, len(keys), num_classes=2, replicates=50)
    assert t.resampled == "examples"
    # A candidate identical to the reference has no change in any replicate.
    same = fairness_table(ref, ref, y, codes, len(keys), num_classes=2, replicates=50)
    for k in RATES:
        assert np.nanmax(np.abs(same.rates[k][2:])) == 0.0


def test_lineage_pairing_draws_the_same_members() -> None:
    y, ref, _, attrs = _data(400, 2, 4, 4, seed=7)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    # The candidate is its reference: paired replicates draw the same members, so no change.
    t = fairness_table(ref, ref, y, codes, len(keys), num_classes=2, paired=True, replicates=50)
    assert np.nanmax(np.abs(t.rates["tpr"][2:])) == 0.0
    unpaired = fairness_table(ref, ref, y, codes, len(keys), num_classes=2, replicates=50)
    assert np.nanmax(np.abs(unpaired.rates["tpr"][2:])) > 0.0


def test_floor_null_is_every_relabelling_of_the_members() -> None:
    """Binary, Kr = 4, Kc = 2: all C(6, 2) = 15 relabellings, the members' disparities
    from fairlearn (floor at quantile 0.9, the highest that 15 relabellings allow)."""
    y, ref, cand, attrs = _data(600, 2, 4, 2, seed=8)
    codes, keys = group_codes(attrs, ("age",), y=y, class_names=["0", "1"])
    t = fairness_table(
        ref, cand, y, codes, len(keys), num_classes=2, permutations=100, quantile=0.9
    )
    pool = np.concatenate([ref, cand])
    member = np.asarray(
        [demographic_parity_difference(y, p, sensitive_features=attrs["age"]) for p in pool]
    )
    null = np.asarray(
        [
            member[list(c)].mean() - np.delete(member, list(c)).mean()
            for c in itertools.combinations(range(6), 2)
        ]
    )
    d = t.disparities["demographic_parity_difference"]
    change = d.candidate[0] - d.reference[0]
    assert change == pytest.approx(member[4:].mean() - member[:4].mean(), abs=TOL)
    assert null.size == 15
    expected_floor = np.quantile(null, 0.9, method="higher")  # never interpolated
    assert d.floor[0] == pytest.approx(expected_floor, abs=TOL)
    assert d.excess[0] == pytest.approx(change - expected_floor, abs=TOL)
    assert d.increase_floor == pytest.approx(expected_floor, abs=TOL)  # one class: same null
    p = np.count_nonzero(null >= change - TOL) / null.size  # the null holds the observed
    assert d.p_floor[0] == pytest.approx(p, abs=TOL)


def test_lineage_null_swaps_pairs() -> None:
    y, ref, cand, attrs = _data(500, 2, 3, 3, seed=10)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    t = fairness_table(
        ref, cand, y, codes, len(keys), num_classes=2, paired=True, permutations=100, quantile=0.8
    )
    member = [
        [equalized_odds_difference(y, p, sensitive_features=attrs["sex"]) for p in side]
        for side in (ref, cand)
    ]
    diff = np.asarray(member[1]) - np.asarray(member[0])
    signs = np.asarray(list(itertools.product([1, -1], repeat=3)))
    null = (signs * diff).mean(axis=1)
    d = t.disparities["equalized_odds_difference"]
    assert d.floor[0] == pytest.approx(np.quantile(null, 0.8, method="higher"), abs=TOL)


def test_no_permutations_no_floor_and_no_replicates_no_interval() -> None:
    y, ref, cand, attrs = _data(300, 2, 3, 2, seed=12)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    t = fairness_table(ref, cand, y, codes, len(keys), num_classes=2, replicates=0)
    d = t.disparities["equalized_odds_difference"]
    assert np.isnan(d.floor).all()
    assert np.isnan(d.increase_floor)
    assert np.isfinite(d.increase)
    assert np.isnan(t.rates["tpr"][2]).all()


def test_multi_class_increase_floor_is_the_floor_of_the_maximum() -> None:
    """The largest increase's null takes the maximum over classes within a relabelling."""
    c = 4
    y, ref, cand, attrs = _data(600, c, 4, 2, seed=9)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=list("0123"))
    t = fairness_table(
        ref, cand, y, codes, len(keys), num_classes=c, permutations=100, quantile=0.9
    )
    key = "equalized_odds_difference"
    # Members' per-class disparities, from the table of each member against itself.
    pool = np.concatenate([ref, cand])
    member = np.asarray(
        [
            fairness_table(p[None], p[None], y, codes, len(keys), num_classes=c, replicates=0)
            .disparities[key]
            .reference
            for p in pool
        ]
    )
    null = np.asarray(
        [
            member[list(s)].mean(axis=0) - np.delete(member, list(s), axis=0).mean(axis=0)
            for s in itertools.combinations(range(6), 2)
        ]
    )
    d = t.disparities[key]
    np.testing.assert_allclose(
        d.floor, np.quantile(null, 0.9, axis=0, method="higher"), atol=TOL, rtol=0
    )
    assert d.increase_floor == pytest.approx(
        np.quantile(null.max(axis=1), 0.9, method="higher"), abs=TOL
    )
    assert d.increase_excess == pytest.approx(d.increase - d.increase_floor, abs=TOL)
    assert d.increase_floor >= d.floor.max() - TOL  # the maximum's floor is the highest


@pytest.mark.parametrize(
    ("kr", "kc", "paired", "m", "floor"),
    [
        (3, 1, False, 4, False),
        (3, 3, False, 20, False),  # C(6, 3) = 20: one short of the 21 a 0.95 floor needs
        (4, 4, False, 70, True),
        (4, 4, True, 16, False),  # the demo's int8: 2^4 parent-child swaps
        (5, 5, True, 32, True),
    ],
)
def test_too_few_relabellings_give_no_floor_and_say_why(
    kr: int, kc: int, paired: bool, m: int, floor: bool
) -> None:
    """With fewer than 21 relabellings the 0.95 floor would be the null's largest value,
    and the null holds the observed labelling: no change could lie beyond it, and a gate
    reading it could never fail. Before, every member of the candidate losing every
    positive of a group still read "within seed noise" at K = 4 with lineage. Now there
    is no floor (the gates judge the threshold alone) and ``floor_note`` says why; with
    enough relabellings an extreme change lies beyond the floor."""
    y, ref, _, attrs = _data(400, 2, kr, kc, seed=30)
    codes, keys = group_codes(attrs, ("sex",), y=y, class_names=["0", "1"])
    # Every candidate member loses every positive of one group: the largest possible rise.
    hit = (codes == 0) & (y == 1)
    cand = np.where(hit[None, :], 0, ref[:kc] if paired else np.roll(ref, 1, axis=1)[:kc])
    t = fairness_table(
        ref, cand, y, codes, len(keys), num_classes=2, paired=paired, permutations=999,
        replicates=0,
    )  # fmt: skip
    assert noise.relabellings(kr, kc, paired, 999) == m
    d = t.disparities["equalized_odds_difference"]
    assert d.increase > 0.3
    if floor:
        assert t.floor_note is None
        assert d.increase_excess > 0.0  # beyond the floor: the gate can fail
    else:
        assert np.isnan(d.increase_floor)
        assert np.isnan(d.floor).all()
        assert t.floor_note is not None
        assert f"only {m} member relabellings" in t.floor_note


@pytest.mark.parametrize("quantile", [0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999])
def test_fewest_relabellings_is_the_first_null_size_whose_floor_is_not_its_largest(
    quantile: float,
) -> None:
    need = noise.fewest_relabellings(quantile)
    for m in range(2, need + 3):
        null = np.arange(m, dtype=float)[:, None]  # the observed change is the largest
        _, excess, _ = noise.against(np.asarray([m - 1.0 + 0.5]), null, quantile)
        floor_below_max = bool(excess[0] > 0.5)
        assert floor_below_max == (m >= need), m


def test_the_observed_labelling_always_counts_in_its_own_p_value() -> None:
    """The null holds the observed labelling, computed along another path (pooled sums):
    within rounding it ties with the observed change and must count, so every p-value
    is at least 1 / M. Before the tie tolerance, rounding gave p = 0 for some classes."""
    lowest = []
    for seed in range(4):
        y, ref, cand, attrs = _data(400, 12, 10, 5, seed=40 + seed)
        codes, keys = group_codes(attrs, ("age",), y=y, class_names=[str(i) for i in range(12)])
        t = fairness_table(
            ref, cand, y, codes, len(keys), num_classes=12, permutations=500, replicates=0
        )
        for d in t.disparities.values():
            finite = d.p_floor[np.isfinite(d.p_floor)]
            assert finite.size
            lowest.append(float(finite.min()))
            assert d.increase_p >= 1 / 501
    assert min(lowest) >= 1 / 501
