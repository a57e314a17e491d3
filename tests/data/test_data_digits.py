"""scikit-learn digits: deterministic stratified split, scaling against load_digits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from compaudit.data._spec import ERR_SPLIT
from compaudit.data.digits import DigitsProvider, stratified_split
from compaudit.data.loading import load_dataset
from compaudit.errors import InputError


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return np.asarray(bunch.images), np.asarray(bunch.target)


def test_split_is_deterministic_stratified_and_complete(
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    _, y = reference
    test = DigitsProvider().load("digits")
    again = DigitsProvider().load("digits:test")
    train = DigitsProvider().load("digits:train")
    np.testing.assert_array_equal(test.ids, again.ids)
    assert test.fingerprint() == again.fingerprint()
    assert test.name == "digits:test"
    assert (train.n, test.n) == (1258, 539)
    assert np.intersect1d(train.ids, test.ids).size == 0
    np.testing.assert_array_equal(np.union1d(train.ids, test.ids), np.arange(y.size))
    per_class = np.bincount(y, minlength=10)
    expected = np.array([round(0.3 * n) for n in per_class])
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), expected)
    np.testing.assert_array_equal(test.y, y[test.ids])


def test_seed_changes_the_split_but_not_its_strata(
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    _, y = reference
    a = DigitsProvider().load("digits:test")
    b = load_dataset("digits:test?seed=1")
    assert b.name == "digits:test?seed=1"
    assert not np.array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(np.bincount(a.y), np.bincount(b.y))
    _, test = stratified_split(y, test_fraction=0.3, seed=1)
    np.testing.assert_array_equal(b.ids, test)


def test_scaling(reference: tuple[np.ndarray, np.ndarray]) -> None:
    pixels, _ = reference
    ds = DigitsProvider().load("digits:train")
    raw = pixels[ds.ids]
    assert ds.x.shape == (1258, 1, 8, 8)
    assert ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[:, 0], raw / 16.0, rtol=0, atol=1e-7)
    assert ds.images is not None
    assert ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, np.rint(raw * 255 / 16).astype(np.uint8))
    assert ds.images.max() == 255
    assert ds.preprocessing.scaling == "divide:16"
    assert ds.class_names == tuple("0123456789")


def test_unknown_split() -> None:
    with pytest.raises(InputError) as err:
        DigitsProvider().load("digits:val")
    assert str(err.value) == ERR_SPLIT.format(src="digits:val", split="val", splits="train, test")
