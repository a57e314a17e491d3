"""Size and power of the fairness gates' rule, by simulation.

The gates (:mod:`compaudit._gates_fairness`) fail when a disparity's largest
increase over the positive classes exceeds both the threshold and its seed-noise
floor. With the threshold at 0 (the strictest policy) the floor alone decides, so:

* **size**: on seed-only populations (reference and candidate drawn the same way,
  the candidate's members fresh seeds) the rule fires at most at rate alpha
  (1 - ``floor_quantile``, 0.05);
* **power**: when the candidate's members predict negative on a share of one group's
  positives (planted damage), it fires nearly always.

Each replicate draws new examples, a harder group B, and per-example correctness
probabilities shared by every member (seed noise piles up on hard examples); the
members' errors are independent given those. N = 1,200 examples, Kr = 8, Kc = 4,
the exact null of all 495 member relabellings; 600 seed-only and 200 damaged
replicates per case.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from compaudit.analysis.fairness import PERMUTATIONS, fairness_table

ALPHA = 0.05
R_SIZE, R_POWER, N, KR, KC = 600, 200, 1200, 8, 4


def _replicate(
    rng: np.random.Generator, c: int, flip: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    group = (rng.random(N) < 0.4).astype(np.intp)  # group B: 40%, harder
    # Binary: base rates differ by group (50% in A, 30% in B), so selection rates do too.
    y = rng.integers(0, c, N) if c > 2 else (rng.random(N) < 0.5 - 0.2 * group).astype(np.intp)
    p_ok = np.where(group == 1, rng.beta(6, 3, N), rng.beta(8, 2, N))
    k = KR + KC
    ok = rng.random((k, N)) < p_ok
    wrong = (y + rng.integers(1, c, (k, N))) % c  # any other class
    preds = np.where(ok, y, wrong)
    ref, cand = preds[:KR], preds[KR:].copy()
    if flip:
        # Planted damage: the candidate calls a share of group B's positives negative.
        target = (group == 1) & (y == (1 if c == 2 else 0))
        hit = target[None, :] & (rng.random((KC, N)) < flip)
        cand[hit] = (1 - cand[hit]) if c == 2 else (y[None, :].repeat(KC, 0)[hit] + 1) % c
    return ref, cand, y, group


def _fire_rates(c: int, flip: float, seed: int, reps: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    fired = {"demographic_parity_difference": 0, "equalized_odds_difference": 0}
    for _ in range(reps):
        ref, cand, y, group = _replicate(rng, c, flip)
        t = fairness_table(
            ref, cand, y, group, 2, num_classes=c, min_support=30,
            permutations=PERMUTATIONS, replicates=0,
        )  # fmt: skip
        for key, d in t.disparities.items():
            # The gate's rule with threshold 0: beyond the threshold and beyond the floor.
            fired[key] += bool(d.increase > 0 and d.increase > d.increase_floor)
    return {k: v / reps for k, v in fired.items()}


@pytest.mark.parametrize("c", [2, 4])
def test_seed_only_false_alarm_rate_is_at_most_alpha(c: int) -> None:
    rates = _fire_rates(c, 0.0, seed=100 + c, reps=R_SIZE)
    # The null is exact (all C(12, 4) = 495 relabellings), so the true rate is at most
    # alpha; the bound allows for the R_SIZE replicates' own sampling error (one-sided
    # binomial, 1%).
    bound = binom.ppf(0.99, R_SIZE, ALPHA) / R_SIZE
    for key, rate in rates.items():
        assert rate <= bound, (key, rate, bound)


@pytest.mark.parametrize("c", [2, 4])
def test_planted_damage_on_one_group_is_found(c: int) -> None:
    rates = _fire_rates(c, 0.3, seed=200 + c, reps=R_POWER)
    assert rates["equalized_odds_difference"] >= 0.9, rates
    # Binary: the damage lowers group B's selection rate by about 6 points only (its
    # positives are 30%), so the parity gap moves less than the TPR gap (measured 0.58).
    assert rates["demographic_parity_difference"] >= (0.5 if c == 2 else 0.9), rates
