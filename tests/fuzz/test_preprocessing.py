"""Predictions made on differently prepared inputs are not compared (issue 11, point 3).

Both files record their preprocessing (``meta.preprocessing``, as ``compaudit
predict`` writes it); inputs divided by 16 against inputs divided by 255 used to be
audited without ``--data`` (exit 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compaudit.comparable import ERR_DIFFERENT_DATA, ERR_DIFFERENT_PREPROCESSING
from compaudit.population import Population, load_population, save_population
from tests.fuzz.conftest import fails_closed


def _with_meta(src: Path, dst: Path, meta: dict[str, object]) -> Path:
    pop = load_population(src)
    save_population(Population.create(pop.predictions, pop.y, meta=meta, source=str(dst)), dst)
    return dst


@pytest.mark.parametrize(
    ("meta_ref", "meta_cand", "template"),
    [
        ({"preprocessing": {"scale": 1 / 16}}, {"preprocessing": {"scale": 1 / 255}}, "prep"),
        ({"dataset_fingerprint": "a" * 64}, {"dataset_fingerprint": "b" * 64}, "data"),
    ],
    ids=["scale-16-vs-255", "different-dataset-fingerprints"],
)
def test_differently_prepared_predictions_exit_2(
    good_preds: dict[str, Path],
    tmp_path: Path,
    meta_ref: dict[str, object],
    meta_cand: dict[str, object],
    template: str,
) -> None:
    ref = _with_meta(good_preds["ref"], tmp_path / "ref.npz", meta_ref)
    cand = _with_meta(good_preds["cand"], tmp_path / "cand.npz", meta_cand)
    run = fails_closed(["report", "-r", ref, "-c", f"int8={cand}", "--out", tmp_path / "o"])
    if template == "prep":
        expected = ERR_DIFFERENT_PREPROCESSING.format(
            a=str(ref), b=str(cand), what=f"scale: {1 / 16!r} vs {1 / 255!r}"
        )
    else:
        expected = ERR_DIFFERENT_DATA.format(a=str(ref), b=str(cand), fa="a" * 64, fb="b" * 64)
    assert run.error_lines == [f"compaudit: error: {expected}"]


def test_predictions_prepared_unlike_data_exit_2(tmp_path: Path) -> None:
    # With --data the rule is the same: a file that records other preprocessing than
    # the data's is not audited against them (the digits are divided by 16).
    from compaudit.data.loading import load_dataset

    data = load_dataset("digits:test")
    preds = np.tile(data.y, (3, 1))
    prep: dict[str, object] = dict(data.preprocessing.to_dict())
    meta: dict[str, object] = {"dataset_fingerprint": data.fingerprint(), "preprocessing": prep}
    ref, cand = tmp_path / "ref.npz", tmp_path / "cand.npz"
    save_population(Population.create(preds, data.y, ids=data.ids, meta=meta), ref)
    other = {**meta, "preprocessing": {**prep, "scaling": "divide:255"}}
    save_population(Population.create(preds, data.y, ids=data.ids, meta=other), cand)
    args = ["report", "-r", str(ref), "-c", f"int8={cand}", "--data", "digits:test"]
    run = fails_closed([*args, "--out", str(tmp_path / "o"), "-f", "json"])
    what = "scaling: 'divide:255' vs 'divide:16'"
    expected = ERR_DIFFERENT_PREPROCESSING.format(a=str(cand), b="--data digits:test", what=what)
    assert run.error_lines == [f"compaudit: error: {expected}"]
