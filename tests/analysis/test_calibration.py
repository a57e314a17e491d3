"""Calibration under pure seed noise: family-wise false alarms after Holm stay at alpha.

Both sides are drawn from the same per-example difficulty, so every rejection is
a false alarm. The difficulty is heterogeneous and class-dependent (one hard
class near 60% accuracy, the others 90-99%), which is what breaks naive tests:
hard classes flip far more examples in both directions. The bound is
alpha + 3 binomial standard errors over the simulations.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from compaudit.analysis.stats import adjust_pvalues, paired_outcomes, paired_shift_test, welch_test

ALPHA = 0.05
C, PER_CLASS = 10, 200
N = C * PER_CLASS
CLASS_ACCURACY = np.array([0.60, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.99])


def difficulty(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and per-example probability of being classified correctly.

    Within a class, p_i ~ Beta with the class accuracy as mean (concentration 20),
    so examples range from easy to near-impossible as in real test sets.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), PER_CLASS)
    mean = CLASS_ACCURACY[y]
    return y, rng.beta(mean * 20.0, (1.0 - mean) * 20.0)


def bound(sims: int) -> float:
    return float(ALPHA + 3.0 * np.sqrt(ALPHA * (1.0 - ALPHA) / sims))


def any_rejection(p: np.ndarray, *, method: str) -> float:
    """Share of simulated families (rows of p) with at least one rejection."""
    adjusted = np.stack([adjust_pvalues(row, method=method) for row in p])  # type: ignore[arg-type]
    return float((adjusted <= ALPHA).any(axis=1).mean())


def test_welch_populations_family_wise_rate() -> None:
    # K = 5 models per side, the paper's statistic S = recall_c(k) - top1(k).
    sims, K, batch = 2000, 5, 100
    _y, p_correct = difficulty(seed=2024)
    rng = np.random.default_rng(1)
    pvals = []
    for _ in range(sims // batch):
        correct = rng.random((batch, 2, K, N)) < p_correct  # [sim, side, model, example]
        recall = correct.reshape(batch, 2, K, C, PER_CLASS).mean(axis=-1)
        s = recall - correct.mean(axis=-1)[..., None]  # [sim, side, model, class]
        ref = s[:, 0].transpose(1, 0, 2).reshape(K, batch * C)
        cand = s[:, 1].transpose(1, 0, 2).reshape(K, batch * C)
        pvals.append(welch_test(ref, cand).p_value.reshape(batch, C))
    p = np.concatenate(pvals)
    holm = any_rejection(p, method="holm")
    raw = any_rejection(p, method="none")
    assert holm <= bound(sims), holm
    # Without correction some class false-alarms in roughly 1 - 0.95^10 of families.
    assert raw > 0.25, raw


def test_paired_single_models_family_wise_rate() -> None:
    # 400 families: the small-count path is a seeded bootstrap per family, so this
    # is the costly calibration test; bound(400) = alpha + 3 SE = 0.083.
    sims = 400
    y, p_correct = difficulty(seed=2025)
    rng = np.random.default_rng(2)
    n = np.bincount(y, minlength=C)
    studentized, raw_mean = [], []
    for _ in range(sims):
        d = paired_outcomes(rng.random(N) < p_correct, rng.random(N) < p_correct)
        studentized.append(paired_shift_test(d, y, C, n_boot=999).p_value)
        # The unstudentized alternative: a normal approximation to the exchangeable
        # permutation distribution of the raw mean difference (pooled variance).
        s = np.bincount(y, weights=d, minlength=C)
        diff = s / n - (d.sum() - s) / (N - n)
        z = diff / np.sqrt(d.var(ddof=1) * (1.0 / n + 1.0 / (N - n)))
        raw_mean.append(2.0 * stats.norm.sf(np.abs(z)))
    holm = any_rejection(np.array(studentized), method="holm")
    # Measured 3.75% here (1.75% at another seed); it was 9.0% before the
    # normal guard on the paired-draw path of the score test's bootstrap.
    assert holm <= bound(sims), holm
    # The raw-mean test treats the hard class as if it churned like the rest and
    # flags it far beyond alpha even after Holm: the evidence for studentizing.
    naive = any_rejection(np.array(raw_mean), method="holm")
    assert naive > 0.12, naive
