"""One candidate model against a reference population: no spread, no interval.

Class counts are small integers. Where every reference member gets a class's
count right alike, the members' scores (class recall minus top-1) still vary
through top-1, so the prediction interval saw a tiny spread and flagged a
candidate that lost one more example: 10% of seed-only digits comparisons
(10 vs 1) failed `significant_classes` that way. Such classes go to the
paired test.
"""

from __future__ import annotations

import numpy as np

from compaudit.analysis.shift import ShiftTable, group_shift

ALPHA = 0.05


def _shift(ref: np.ndarray, cand: np.ndarray, y: np.ndarray, n_classes: int) -> ShiftTable:
    modal = ref.mean(axis=0) >= 0.5  # the reference's modal correctness (ties: right)
    return group_shift(
        ref,
        cand,
        y,
        n_classes,
        ref_summary=modal,
        cand_summary=cand[0],
        testable=np.ones(n_classes, dtype=bool),
        alpha=ALPHA,
        correction="holm",
    )


def test_a_class_every_member_scores_alike_goes_to_the_paired_test() -> None:
    rng = np.random.default_rng(0)
    n_classes, per = 10, 54
    y = np.repeat(np.arange(n_classes), per)
    ref = np.ones((10, y.size), dtype=bool)
    ref[:, :2] = False  # class 0: the same two examples wrong in every member (52 of 54)
    # Other classes: a few unstable examples, so top-1 varies between members.
    unstable = rng.choice(np.arange(per, y.size), 60, replace=False)
    ref[:, unstable] = rng.random((10, unstable.size)) < 0.7
    cand = ref[:1].copy()
    cand[0, 2] = False  # one more example of class 0 lost: 51 of 54
    table = _shift(ref, cand, y, n_classes)
    assert table.test == "prediction-interval"
    assert table.method[0].startswith("paired-score")
    assert not table.significant[0]
    assert table.p_value[0] > 0.05  # one example of 54 is not evidence
