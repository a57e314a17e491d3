"""Monte-Carlo calibration of the paired tests: size and power tables.

Each function simulates many independent comparisons, stacks them as rows of
counts and runs the tests once (the reference path is chosen per simulated
comparison, as :func:`~compaudit.analysis.stats.paired_shift_test` does per
call), and returns a table (list of dicts) that a study script can print.
Every random choice takes a seed. ``mc_se`` is the binomial Monte-Carlo
standard error of a rejection rate.

* :func:`size_table`: the single-model score test under H0 (equal net rate,
  each side its own churn) over group sizes, churn rates and "hard" groups
  that churn ``hard`` times more than the rest at the same net rate.
* :func:`power_table`: planted damage (the group loses ``damage`` more than
  the rest, the reference always right), the score test against the old
  studentized exact-permutation test (kept here only for that comparison).
* :func:`lineage_table`: K (parent, child) pairs where quantization flips
  fragile examples at random, fragility heterogeneous within groups; size
  (``damage = 0``) and power of the lineage test.
* :func:`prediction_interval_size`: the prediction-interval test's size.
* :func:`fairness_fire_rates`: how often the fairness gates' rule fires on
  seed-only candidates and on planted damage to one group's positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from compaudit.analysis import _score
from compaudit.analysis.stats import prediction_interval_test

__all__ = [
    "fairness_fire_rates",
    "fairness_replicate",
    "lineage_table",
    "old_paired_pvalue",
    "power_table",
    "prediction_interval_size",
    "size_table",
]

Row = dict[str, Any]


def _mc_se(rate: float, sims: int) -> float:
    return float(np.sqrt(max(rate * (1.0 - rate), 1e-12) / sims))


def _trinomial(n: int, p_loss: float, p_gain: float, sims: int, rng: np.random.Generator) -> Any:
    return rng.multinomial(n, [p_loss, p_gain, 1.0 - p_loss - p_gain], size=sims)


def size_table(
    group_sizes: Sequence[int] = (10, 20, 50, 62, 200, 1000, 5000),
    churns: Sequence[float] = (0.0005, 0.005, 0.02, 0.05, 0.2),
    hards: Sequence[float] = (1.0, 5.0),
    *,
    n_total: int = 20_000,
    net: float = -1.0 / 3.0,
    sims: int = 2000,
    alpha: float = 0.05,
    n_boot: int = 999,
    seed: int = 0,
) -> list[Row]:
    """Rejection rates of the single-model score test under H0.

    The rest churns ``c``, the group ``min(hard * c, 0.9)``; both have the net
    rate ``net * c`` (default: a third of the rest's changes, net losses).
    ``size`` is the two-sided rejection rate at ``alpha``; ``size_worse`` the
    rate of ``p_worse <= alpha / 2`` (its nominal value is alpha / 2).
    """
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    for hard in hards:
        for c in churns:
            for n1 in group_sizes:
                delta = net * c
                c1 = min(hard * c, 0.9)
                a = _trinomial(n1, (c1 - delta) / 2, (c1 + delta) / 2, sims, rng)
                b = _trinomial(n_total - n1, (c - delta) / 2, (c + delta) / 2, sims, rng)
                counts = np.column_stack(
                    [np.full(sims, n1), a[:, 0], a[:, 1], np.full(sims, n_total - n1), b[:, :2]]
                )
                _, p, worse, normal = _score.score_test(
                    counts, path="auto", seed=seed, n_boot=n_boot, per_row=True
                )
                size = float(np.mean(p <= alpha))
                out.append(
                    {
                        "n_group": n1,
                        "churn": c,
                        "hard": hard,
                        "size": size,
                        "size_worse": float(np.mean(worse <= alpha / 2)),
                        "mc_se": _mc_se(alpha, sims),
                        "normal_share": float(normal.mean()),
                        "sims": sims,
                    }
                )
    return out


def old_paired_pvalue(n1: int, l1: int, g1: int, N: int, L: int, G: int) -> float:
    """The replaced test: exact studentized permutation p-value of one group.

    Cells (l, g) of the group are multivariate hypergeometric given the totals;
    the statistic is Welch's on the outcomes. Kept only to compare power.
    """
    U = N - L - G
    grid = np.meshgrid(np.arange(min(L, n1) + 1.0), np.arange(min(G, n1) + 1.0), indexing="ij")
    ll, gg = grid[0].ravel(), grid[1].ravel()
    ok = (ll + gg <= n1) & (n1 - ll - gg <= U)
    ll, gg = ll[ok], gg[ok]

    def lncomb(m: float, k: np.ndarray) -> np.ndarray:
        return np.asarray(
            special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        )

    logp = lncomb(L, ll) + lncomb(G, gg) + lncomb(U, n1 - ll - gg) - lncomb(N, np.array(n1))
    t = _old_welch(n1, ll, gg, N, L, G)
    t_obs = _old_welch(n1, np.array([float(l1)]), np.array([float(g1)]), N, L, G)[0]
    return float(min(np.exp(logp)[np.abs(t) >= abs(t_obs) * (1 - 1e-9)].sum(), 1.0))


def _old_welch(n1: int, l1: np.ndarray, g1: np.ndarray, N: int, L: int, G: int) -> np.ndarray:
    n2 = N - n1
    s1, q1 = g1 - l1, g1 + l1
    s2, q2 = (G - L) - s1, (G + L) - q1
    w1 = (n1 * q1 - s1 * s1) / (n1 * n1 * (n1 - 1)) if n1 >= 2 else 0.0 * s1
    w2 = (n2 * q2 - s2 * s2) / (n2 * n2 * (n2 - 1)) if n2 >= 2 else 0.0 * s2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (s1 / n1 - s2 / n2) / np.sqrt(w1 + w2)
    return np.where(np.isnan(t), 0.0, t)


def power_table(
    group_sizes: Sequence[int] = (20, 62, 200),
    damages: Sequence[float] = (0.02, 0.05, 0.08),
    *,
    n_total: int = 20_000,
    rest_loss: float = 0.0036,
    sims: int = 1000,
    alpha: float = 0.05,
    n_boot: int = 999,
    seed: int = 0,
    old: bool = True,
) -> list[Row]:
    """Power against planted damage, new score test vs the old permutation test.

    The reference is always right; the rest loses ``rest_loss``, the group
    ``rest_loss + damage``. ``power`` counts two-sided p <= alpha,
    ``power_worse`` p_worse <= alpha / 2; ``power_old`` the old test's p <= alpha
    on the same simulated data.
    """
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    for n1 in group_sizes:
        for dmg in damages:
            l1 = rng.binomial(n1, rest_loss + dmg, size=sims)
            l2 = rng.binomial(n_total - n1, rest_loss, size=sims)
            zero = np.zeros(sims, dtype=np.int64)
            counts = np.column_stack(
                [np.full(sims, n1), l1, zero, np.full(sims, n_total - n1), l2, zero]
            )
            _, p, worse, normal = _score.score_test(
                counts, path="auto", seed=seed, n_boot=n_boot, per_row=True
            )
            row: Row = {
                "n_group": n1,
                "damage": dmg,
                "power": float(np.mean(p <= alpha)),
                "power_worse": float(np.mean(worse <= alpha / 2)),
                "normal_share": float(normal.mean()),
                "sims": sims,
            }
            if old:
                p_old = [
                    old_paired_pvalue(n1, int(a), 0, n_total, int(a + b), 0)
                    for a, b in zip(l1, l2, strict=True)
                ]
                row["power_old"] = float(np.mean(np.array(p_old) <= alpha))
            out.append(row)
    return out


def lineage_table(
    group_sizes: Sequence[int] = (20, 62, 200, 1000),
    damages: Sequence[float] = (0.0, 0.02, 0.05),
    *,
    k: int = 4,
    n_total: int = 10_000,
    churn: float = 0.01,
    hard: float = 5.0,
    net: float = -0.3,
    sims: int = 1000,
    alpha: float = 0.05,
    n_boot: int = 499,
    seed: int = 0,
) -> list[Row]:
    """Size (damage 0) and power of the lineage test on simulated quantization.

    Quantizing K members flips fragile examples at random. Example j has a
    fragility ``f_j = |delta| + e_j``, ``e_j`` Beta(0.5, .)-distributed
    (heavy-tailed: a few examples flip in almost every pair, most in none),
    shared by the K pairs; in each pair it is lost with probability
    ``(f_j - delta) / 2`` and gained with ``(f_j + delta) / 2``, so every
    example has the net rate ``delta = net * churn`` (H0) while the group
    churns ``hard`` times more than the rest on average. ``damage`` adds that
    probability of a loss in the group, in every pair.
    """
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    delta = net * churn
    for n1 in group_sizes:
        for dmg in damages:
            c1 = _lineage_counts(n1, k, hard * churn, delta, dmg, sims, rng)
            c2 = _lineage_counts(n_total - n1, k, churn, delta, 0.0, sims, rng)
            _, p, worse, normal = _score.lattice_test(
                c1, c2, path="auto", seed=seed, n_boot=n_boot, per_row=True
            )
            rate = float(np.mean(p <= alpha))
            out.append(
                {
                    "n_group": n1,
                    "k": k,
                    "damage": dmg,
                    "rejection": rate,
                    "rejection_worse": float(np.mean(worse <= alpha / 2)),
                    "mc_se": _mc_se(alpha if dmg == 0 else rate, sims),
                    "normal_share": float(normal.mean()),
                    "sims": sims,
                }
            )
    return out


def _lineage_counts(
    n: int, k: int, churn: float, delta: float, damage: float, sims: int, rng: np.random.Generator
) -> np.ndarray:
    """Lattice counts [sims, 2k + 1] of n examples' summed outcomes over k pairs."""
    extra = churn - abs(delta)
    a = 0.5
    f = abs(delta) + rng.beta(a, a * (1.0 - extra) / extra, size=(sims, n)) * (1 - abs(delta))
    p_loss = np.minimum((f - delta) / 2.0 + damage, 1.0)
    p_gain = np.minimum((f + delta) / 2.0, 1.0 - p_loss)
    changed = rng.binomial(k, p_loss + p_gain)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(p_loss + p_gain > 0, p_loss / (p_loss + p_gain), 0.0)
    lost = rng.binomial(changed, share)
    s = changed - 2 * lost + k  # lattice index of (gains - losses)
    J = 2 * k + 1
    idx = (np.arange(sims)[:, None] * J + s).ravel()
    return np.bincount(idx, minlength=sims * J).reshape(sims, J).astype(np.float64)


def prediction_interval_size(
    ks: Sequence[int] = (3, 4, 8, 16),
    *,
    n_groups: int = 20,
    sims: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Row]:
    """Size of the prediction-interval test when the candidate is one more member."""
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    for k in ks:
        scale = rng.uniform(0.005, 0.05, size=n_groups)
        ref = rng.normal(0.0, scale, size=(sims, k, n_groups))
        cand = rng.normal(0.0, scale, size=(sims, n_groups))
        p = np.stack([prediction_interval_test(ref[i], cand[i]).p_value for i in range(sims)])
        rate = float(np.mean(p <= alpha))
        out.append({"k": k, "size": rate, "mc_se": _mc_se(alpha, p.size), "tests": p.size})
    return out


def fairness_replicate(
    rng: np.random.Generator, n: int, kr: int, kc: int, c: int, flip: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One simulated comparison for the fairness gates: ``(ref, cand, y, group)``.

    New examples, a harder group B (40%), per-example correctness probabilities
    shared by every member (seed noise piles up on hard examples), members'
    errors independent given those. Binary: base rates differ by group (50% in
    A, 30% in B), so selection rates do too. ``flip`` > 0 plants damage: the
    candidate's members call that share of group B's positives negative (class
    0 for multi-class).
    """
    group = (rng.random(n) < 0.4).astype(np.intp)
    y = rng.integers(0, c, n) if c > 2 else (rng.random(n) < 0.5 - 0.2 * group).astype(np.intp)
    p_ok = np.where(group == 1, rng.beta(6, 3, n), rng.beta(8, 2, n))
    k = kr + kc
    ok = rng.random((k, n)) < p_ok
    wrong = (y + rng.integers(1, c, (k, n))) % c  # any other class
    preds = np.where(ok, y, wrong)
    ref, cand = preds[:kr], preds[kr:].copy()
    if flip:
        target = (group == 1) & (y == (1 if c == 2 else 0))
        hit = target[None, :] & (rng.random((kc, n)) < flip)
        cand[hit] = (1 - cand[hit]) if c == 2 else (y[None, :].repeat(kc, 0)[hit] + 1) % c
    return ref, cand, y, group


def fairness_fire_rates(
    n: int, kr: int, kc: int, c: int, flip: float, *, reps: int, seed: int
) -> dict[str, float]:
    """Share of ``reps`` replicates where the fairness gates' rule fires, per disparity.

    The rule of ``demographic_parity_difference_increase`` and
    ``equalized_odds_difference_increase`` at threshold 0 (the strictest
    policy): the largest increase over classes is above 0 and beyond its
    seed-noise floor (the member relabellings).
    """
    from compaudit.analysis.fairness import PERMUTATIONS, fairness_table

    rng = np.random.default_rng(seed)
    fired = {"demographic_parity_difference": 0, "equalized_odds_difference": 0}
    for _ in range(reps):
        ref, cand, y, group = fairness_replicate(rng, n, kr, kc, c, flip)
        t = fairness_table(
            ref, cand, y, group, 2, num_classes=c, min_support=30,
            permutations=PERMUTATIONS, replicates=0,
        )  # fmt: skip
        for key, d in t.disparities.items():
            fired[key] += bool(d.increase > 0 and d.increase > d.increase_floor)
    return {k: v / reps for k, v in fired.items()}
