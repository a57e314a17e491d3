"""The .npz dataset contract: round trip, inferred layout, every validation error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit.data import _common, npz
from compaudit.data.npz import NpzProvider
from compaudit.errors import DataNotFoundError, InputError


def _save(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


def _error(spec: str) -> str:
    with pytest.raises(InputError) as err:
        NpzProvider().load(spec)
    return str(err.value)


def test_round_trip_with_every_optional_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 2, 1, 2, 0, 1])
    ids = np.array(["a", "b", "c", "d", "e", "f"])
    images = rng.integers(0, 256, size=(6, 4, 4), dtype=np.uint8)
    sex = np.array(["f", "m", "f", "m", "f", "m"])
    spec = _save(
        tmp_path / "d.npz",
        x=x,
        y=y,
        ids=ids,
        class_names=np.array(["cat", "dog", "emu"]),
        attr_sex=sex,
        images=images,
    )
    ds = NpzProvider().load(spec)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.ids, ids)
    np.testing.assert_array_equal(ds.attributes["sex"], sex)
    np.testing.assert_array_equal(ds.images, images)
    assert ds.class_names == ("cat", "dog", "emu")
    assert ds.preprocessing.to_dict() == {
        "layout": "NCHW",
        "dtype": "float32",
        "scaling": "none",
        "encoding": "none",
        "params": {},
    }
    assert ds.source == spec
    assert ds.name == spec


@pytest.mark.parametrize(("shape", "layout"), [((5, 3), "NF"), ((5, 2, 2), "NHW")])
def test_layout_is_inferred_and_defaults_apply(
    tmp_path: Path, shape: tuple[int, ...], layout: str
) -> None:
    spec = _save(tmp_path / "d.npz", x=np.ones(shape, np.float64), y=np.array([0, 3, 1, 1, 0.0]))
    ds = NpzProvider().load(spec)
    assert ds.preprocessing.layout == layout
    assert ds.preprocessing.dtype == "float64"
    assert ds.class_names == ("0", "1", "2", "3")
    np.testing.assert_array_equal(ds.ids, np.arange(5))


def test_declared_preprocessing_is_recorded(tmp_path: Path) -> None:
    declared = {"layout": "NHWC", "scaling": "divide:255", "params": {"mean": [0.5]}}
    spec = _save(
        tmp_path / "d.npz",
        x=np.zeros((2, 3, 3, 1), np.float32),
        y=np.array([0, 1]),
        preprocessing=np.array(json.dumps(declared)),
    )
    pre = NpzProvider().load(spec).preprocessing
    assert (pre.layout, pre.scaling, dict(pre.params)) == ("NHWC", "divide:255", {"mean": [0.5]})


def test_missing_file_is_data_not_found(tmp_path: Path) -> None:
    spec = str(tmp_path / "none.npz")
    with pytest.raises(DataNotFoundError) as err:
        NpzProvider().load(spec)
    assert str(err.value) == npz.ERR_NPZ_MISSING.format(src=spec)


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    path.write_text("hello")
    assert _error(str(path)).startswith(f"{path}: not a readable .npz dataset (")


def test_missing_key(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((2, 2)))
    assert _error(spec) == npz.ERR_NPZ_KEY.format(src=spec, key="y")


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, 1]), **{"attr-sex": [1, 2]})
    assert _error(spec) == npz.ERR_NPZ_UNKNOWN.format(src=spec, keys="attr-sex")


def test_length_mismatch(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.array([0, 1]))
    assert _error(spec) == _common.ERR_LENGTH.format(src=spec, key="x", got=3, n=2)


def test_fractional_labels(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0.0, 1.5]))
    assert _error(spec) == _common.ERR_LABELS_NOT_INT.format(src=f"{spec} 'y'", dtype="float64")


def test_negative_labels(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, -1]))
    assert _error(spec) == _common.ERR_LABELS_NEGATIVE.format(src=f"{spec} 'y'", vmin=-1)


def test_labels_beyond_class_names(tmp_path: Path) -> None:
    spec = _save(
        tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, 2]), class_names=np.array(["a", "b"])
    )
    assert _error(spec) == _common.ERR_LABELS_RANGE.format(src=f"{spec} 'y'", vmax=2, c=2)


def test_duplicate_ids(tmp_path: Path) -> None:
    spec = _save(
        tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(3, int), ids=np.array([4, 4, 5])
    )
    assert _error(spec) == _common.ERR_DUP_IDS.format(src=f"{spec} 'ids'", count=1, examples="'4'")


def test_attribute_length(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(3, int), attr_age=np.ones(2))
    assert _error(spec) == _common.ERR_LENGTH.format(src=spec, key="attr_age", got=2, n=3)


def test_non_finite_inputs(tmp_path: Path) -> None:
    x = np.zeros((2, 2))
    x[1, 0] = np.nan
    spec = _save(tmp_path / "d.npz", x=x, y=np.array([0, 1]))
    assert _error(spec) == npz.ERR_X_FINITE.format(src=spec, count=1)


def test_string_inputs(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.array([["a"], ["b"]]), y=np.array([0, 1]))
    assert _error(spec) == npz.ERR_X_DTYPE.format(src=spec, dtype="<U1")


def test_one_dimensional_inputs(tmp_path: Path) -> None:
    spec = _save(tmp_path / "d.npz", x=np.zeros(2), y=np.array([0, 1]))
    assert _error(spec) == npz.ERR_X_NDIM.format(src=spec, shape=(2,))


def test_declared_layout_must_fit(tmp_path: Path) -> None:
    spec = _save(
        tmp_path / "d.npz",
        x=np.zeros((2, 3)),
        y=np.array([0, 1]),
        preprocessing=np.array('{"layout": "NCHW"}'),
    )
    assert _error(spec) == npz.ERR_LAYOUT.format(src=spec, layout="NCHW", shape=(2, 3))


def test_images_must_be_uint8(tmp_path: Path) -> None:
    spec = _save(
        tmp_path / "d.npz", x=np.zeros((2, 3)), y=np.array([0, 1]), images=np.zeros((2, 4, 4))
    )
    assert _error(spec) == npz.ERR_IMAGES.format(src=spec, dtype="float64", shape=(2, 4, 4))
