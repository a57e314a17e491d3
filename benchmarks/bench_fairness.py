"""Fairness gates at benchmark size: size and power of the rule, and what the metrics cost.

Size and power: the rule of ``demographic_parity_difference_increase`` /
``equalized_odds_difference_increase`` at threshold 0 (fail when the largest rise
over classes is beyond the seed-noise floor of the member relabellings) on
seed-only candidates and on candidates that call a share of one group's positives
negative; the same generator as ``tests/analysis/test_fairness_calibration.py``,
at a larger size (N = 5,000, Kr = 10, Kc = 5; R = 400 replicates a case; quick:
N = 1,200, R = 100). Cost: ``audit()`` + ``to_report()`` on the ``audit``
benchmark's synthetic case with and without the fairness block.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import row
from compaudit.analysis.calibration_sim import fairness_fire_rates

NAME = "fairness"


def _audit_cost(quick: bool) -> list[dict[str, Any]]:
    import compaudit._comparison as comparison
    from benchmarks.bench_audit import ATTRIBUTES, FULL, QUICK, synthetic_case
    from compaudit.engine import audit
    from compaudit.settings import AuditSettings

    size = QUICK if quick else FULL
    case = synthetic_case(size["n"], size["c"], size["k"], seed=0)
    settings = AuditSettings(attributes=ATTRIBUTES, correction="holm", seed=0)
    original = comparison._fairness
    out = []
    try:
        for label, fn in (("with", original), ("without", lambda *a: ())):
            comparison._fairness = fn
            audit(case.reference, case.candidates, settings=settings).to_report()  # warm-up
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                audit(case.reference, case.candidates, settings=settings).to_report()
                best = min(best, time.perf_counter() - t0)
            out.append(
                row(NAME, f"audit_time_{label}_fairness", round(best, 3), "s",
                    f"N={size['n']}, C={size['c']}, K={size['k']}, 5 candidates, "
                    "attributes crossed (3 fairness sets); best of 2")
            )  # fmt: skip
    finally:
        comparison._fairness = original
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Size and power rows, then the audit's cost with and without fairness."""
    n, reps = (1200, 100) if quick else (5000, 400)
    kr, kc = 10, 5
    rows = []
    for c in (2, 4):
        for flip in (0.0, 0.1, 0.3):
            rates = fairness_fire_rates(
                n, kr, kc, c, flip, reps=reps, seed=1000 + 10 * c + int(100 * flip)
            )
            what = "false_alarm" if flip == 0 else f"power_flip{flip:g}"
            for key, rate in rates.items():
                rows.append(
                    row(NAME, f"{key}_{what}_C{c}", rate, "",
                        f"threshold 0, alpha 0.05; N={n}, Kr={kr}, Kc={kc}, R={reps}")
                )  # fmt: skip
    return rows + _audit_cost(quick)
