"""Population: validation (fail closed), file form, fingerprint, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compaudit.errors import InputError
from compaudit.population import (
    ERR_EMPTY,
    ERR_NEGATIVE,
    ERR_TOPK_REPEATED,
    Population,
    load_population,
    save_population,
    smallest_uint,
)


def test_one_model_given_as_1d_is_k1() -> None:
    pop = Population.create([0, 1, 2], [0, 1, 1])
    assert pop.k == 1
    assert pop.n == 3
    assert pop.num_classes == 3


def test_zero_models_is_an_error() -> None:
    with pytest.raises(InputError) as exc:
        Population.create(np.zeros((0, 3), dtype=int), [0, 1, 1], source="p.npz")
    assert str(exc.value) == ERR_EMPTY.format(src="p.npz")


@pytest.mark.parametrize(
    ("preds", "y", "fragment"),
    [
        ([[0, 1, 2]], [0, 1], "'predictions' has 3 examples but 'y' has 2"),
        ([[0, 1, 5]], [0, 1, 1], "'predictions' has labels up to 5 but there are only 3 classes"),
        ([[0.5, 1, 1]], [0, 1, 1], "'predictions' must hold integer class indices"),
        ([["a", "b", "c"]], [0, 1, 1], "'predictions' must hold integer class indices"),
        ([[0, 1, 1]], [[0, 1, 1]], "'y' must be one-dimensional"),
    ],
)
def test_bad_input_names_the_source(preds: object, y: object, fragment: str) -> None:
    names = ["a", "b", "c"]
    with pytest.raises(InputError, match=r"^p\.npz: ") as exc:
        Population.create(preds, y, class_names=names, source="p.npz")  # type: ignore[arg-type]
    assert fragment in str(exc.value)


def test_negative_labels() -> None:
    with pytest.raises(InputError) as exc:
        Population.create([[0, -1]], [0, 1], source="p.npz")
    assert str(exc.value) == ERR_NEGATIVE.format(src="p.npz", key="predictions", vmin=-1)


def test_attribute_length_mismatch() -> None:
    with pytest.raises(InputError, match="attribute 'sex' has 2 values but there are 3 examples"):
        Population.create([0, 1, 1], [0, 1, 1], attributes={"sex": ["F", "M"]})


def test_topk_first_column_must_equal_predictions() -> None:
    topk = np.array([[[0, 1], [1, 0], [0, 1]]])
    Population.create([[0, 1, 0]], [0, 1, 1], topk=topk)
    with pytest.raises(InputError, match="first column of 'topk' must equal 'predictions'"):
        Population.create([[0, 1, 1]], [0, 1, 1], topk=topk)


def test_topk_with_a_repeated_label_is_an_input_error(tmp_path: Path) -> None:
    preds = [[0, 1, 2], [1, 1, 0]]
    topk = np.array([[[0, 1], [1, 2], [2, 0]], [[1, 0], [1, 1], [0, 0]]])
    with pytest.raises(InputError) as exc:
        Population.create(preds, [0, 1, 1], topk=topk, source="p.npz")
    assert str(exc.value) == ERR_TOPK_REPEATED.format(
        src="p.npz", label=1, model=1, example=1, bad=2
    )
    assert "\n" not in str(exc.value)
    # the same through a file: the message names it
    path = tmp_path / "pop.npz"
    np.savez(path, predictions=np.array(preds), y=np.array([0, 1, 1]), topk=topk)
    with pytest.raises(InputError, match=r"pop\.npz: 'topk' lists label 1 twice"):
        load_population(path)
    Population.create(preds, [0, 1, 1], topk=topk[:, :, :1])  # k = 1 cannot repeat


def test_duplicate_ids() -> None:
    with pytest.raises(InputError, match="'ids' has duplicates"):
        Population.create([0, 1], [0, 1], ids=["a", "a"])


@pytest.mark.parametrize(
    ("c", "dtype"), [(10, np.uint8), (256, np.uint8), (257, np.uint16), (1000, np.uint16)]
)
def test_smallest_integer_type(c: int, dtype: type) -> None:
    pop = Population.create([[c - 1, 0]], [0, c - 1], num_classes=c)
    assert pop.predictions.dtype == dtype
    assert pop.y.dtype == dtype
    assert smallest_uint(c - 1) == dtype


def test_roundtrip_keeps_everything(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 4, (3, 50))
    topk = np.stack([preds, (preds + 1) % 4], axis=2)
    pop = Population.create(
        preds,
        rng.integers(0, 4, 50),
        topk=topk,
        ids=[f"img{i}" for i in range(50)],
        class_names=["w", "x", "y", "z"],
        attributes={"sex": rng.choice(["F", "M"], 50), "age": rng.integers(18, 90, 50)},
        meta={"members": ["a", "b", "c"]},
    )
    path = tmp_path / "p.npz"
    fp = save_population(pop, path)
    back = load_population(path)
    assert fp == back.fingerprint() == pop.fingerprint()
    np.testing.assert_array_equal(back.predictions, pop.predictions)
    np.testing.assert_array_equal(back.topk, pop.topk)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back.ids, pop.ids)
    assert back.class_names == ("w", "x", "y", "z")
    assert set(back.attributes) == {"sex", "age"}
    assert back.meta == {"members": ["a", "b", "c"]}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_num_classes_survives_roundtrip_without_names(tmp_path: Path) -> None:
    pop = Population.create([0, 1], [0, 1], num_classes=7)
    save_population(pop, tmp_path / "p.npz")
    assert load_population(tmp_path / "p.npz").num_classes == 7


def test_tampered_file_is_detected(tmp_path: Path) -> None:
    pop = Population.create([[0, 1, 1]], [0, 1, 1])
    path = tmp_path / "p.npz"
    save_population(pop, path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["predictions"] = np.array([[1, 1, 1]], dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="does not match its recorded fingerprint"):
        load_population(path)


def test_corrupt_and_incomplete_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"bad\.npz: not a readable \.npz"):
        load_population(bad)
    half = tmp_path / "half.npz"
    np.savez(half, predictions=np.zeros((1, 3), dtype=int))
    with pytest.raises(InputError, match=r"missing required array\(s\) \['y'\]"):
        load_population(half)
    typo = tmp_path / "typo.npz"
    np.savez(
        typo, predictions=np.zeros((1, 3), dtype=int), y=np.zeros(3, dtype=int), atr_sex=np.zeros(3)
    )
    with pytest.raises(InputError, match=r"unknown array\(s\) \['atr_sex'\]"):
        load_population(typo)
    with pytest.raises(InputError, match="no such predictions file"):
        load_population(tmp_path / "missing.npz")


def test_interrupted_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.npz"
    save_population(Population.create([0, 1], [0, 1]), path)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("compaudit._io.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_population(Population.create([1, 1], [0, 1]), path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([0.5, np.nan, 1.0, np.inf]), "attribute 'age' has 2 NaN or infinite value(s)"),
        (np.array([b"a", b"b", b"a", b"b"]), "attribute 'age' has dtype |S1"),
        (
            np.array(["2020-01-01"] * 4, dtype="datetime64[D]"),
            "attribute 'age' has dtype datetime64[D]",
        ),
        (np.zeros((4, 2)), "attribute 'age' has shape (4, 2); give one value per example"),
    ],
)
def test_attributes_are_finite_one_value_per_example(values: np.ndarray, expected: str) -> None:
    """NaN attributes crashed report.json (not JSON), bytes its schema check: one line now."""
    y = np.array([0, 1, 0, 1])
    with pytest.raises(InputError) as info:
        Population.create(y[None, :], y, attributes={"age": values}, source="f.npz")
    assert str(info.value).startswith(f"f.npz: {expected}")


@pytest.mark.parametrize("name", ["label", "Label", "ＬＡＢＥＬ"])
def test_no_attribute_may_shadow_the_true_label(name: str) -> None:
    """``-g label`` groups by the true label; a file's own 'label' array would choose them."""
    y = np.array([0, 1, 2])
    with pytest.raises(InputError, match="would shadow the true label"):
        Population.create(y[None, :], y, attributes={name: np.array([0, 0, 1])}, source="f.npz")


def test_ids_are_one_integer_or_string_per_example() -> None:
    y = np.array([0, 1])
    with pytest.raises(InputError, match=r"'ids' has shape \(2, 1\)"):
        Population.create(y[None, :], y, ids=np.array([[1], [2]]))
    with pytest.raises(InputError, match="'ids' has dtype"):
        Population.create(y[None, :], y, ids=np.array([1.5, 2.5]))
