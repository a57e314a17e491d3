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

import pytest
from scipy.stats import binom

from compaudit.analysis.calibration_sim import fairness_fire_rates

ALPHA = 0.05
R_SIZE, R_POWER, N, KR, KC = 600, 200, 1200, 8, 4


def _fire_rates(c: int, flip: float, seed: int, reps: int) -> dict[str, float]:
    return fairness_fire_rates(N, KR, KC, c, flip, reps=reps, seed=seed)


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
