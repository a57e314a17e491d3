"""One candidate model against a reference population: how often seed noise alone flags a class.

Loads the calibration study's 40 seed-only digits MLPs (``runs/calibration``;
train them with ``compaudit train examples/calibration/recipe.yaml --out
runs/calibration``), draws reference groups of 10 members and one disjoint
member as the candidate (the policy tables' draws), and counts the
comparisons where at least one class is significantly worse after Holm: every
one is a false alarm.

    .venv/bin/python examples/calibration/single_vs_population.py [--draws 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calibration_nulls import binomial_interval, load_members, policy_draws

import compaudit


def main(argv: list[str] | None = None) -> int:
    """Print the family-wise false alarm rate of the single-candidate class test."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/calibration"))
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--k-ref", type=int, default=10)
    args = ap.parse_args(argv)
    pop, note = load_members(args.run_dir, 40)
    if pop is None:
        print(note, file=sys.stderr)
        return 2
    ref_idx, cand_idx = policy_draws(pop.k, args.k_ref, 1, args.draws, 0)
    alarms = 0
    methods: dict[str, int] = {}
    for r, k in zip(ref_idx, cand_idx, strict=True):
        ref = compaudit.Population.create(pop.predictions[r], pop.y)
        cand = compaudit.Population.create(pop.predictions[k], pop.y)
        (comparison,) = compaudit.audit(ref, {"seed-only": cand}).comparisons
        alarms += any(row.significantly_worse for row in comparison.classes)
        for row in comparison.classes:
            methods[str(row.test)] = methods.get(str(row.test), 0) + 1
    lo, hi = binomial_interval(alarms, len(ref_idx))
    print(note)
    print(
        f"{args.k_ref} vs 1: a class flagged worse in {alarms} of {len(ref_idx)} seed-only "
        f"comparisons ({100 * alarms / len(ref_idx):.1f}%, 95% interval "
        f"{100 * lo:.1f}%-{100 * hi:.1f}%); tests used: {methods}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
