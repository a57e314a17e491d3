"""Joining protected attributes from a CSV by example id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compaudit.data import loading
from compaudit.data.loading import read_attributes_csv
from compaudit.errors import DataNotFoundError, InputError


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "attrs.csv"
    path.write_text(text)
    return path


def _error(path: Path, ids: np.ndarray) -> str:
    with pytest.raises(InputError) as err:
        read_attributes_csv(path, ids)
    return str(err.value)


def test_join_by_id_in_any_order_extra_rows_ignored(tmp_path: Path) -> None:
    path = _csv(tmp_path, "sex,id,age\nf,3,<30\nm,1,60+\nf,2,30-44\nm,99,<30\n")
    attrs = read_attributes_csv(path, np.array([1, 2, 3]))
    assert list(attrs) == ["sex", "age"]
    np.testing.assert_array_equal(attrs["sex"], ["m", "f", "f"])
    np.testing.assert_array_equal(attrs["age"], ["60+", "30-44", "<30"])


def test_string_ids(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,group\ncat/b.png,x\ncat/a.png,y\n")
    attrs = read_attributes_csv(str(path), np.array(["cat/a.png", "cat/b.png"]))
    np.testing.assert_array_equal(attrs["group"], ["y", "x"])


def test_missing_ids_are_listed_and_counted(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,sex\n0,f\n2,m\n")
    ids = np.arange(10)
    message = loading.ERR_ATTR_MISSING.format(
        path=path, count=8, n=10, examples="'1', '3', '4', '5', '6'"
    )
    assert _error(path, ids) == message


def test_ids_compare_as_strings(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,sex\n007,f\n")
    message = loading.ERR_ATTR_MISSING.format(path=path, count=1, n=1, examples="'7'")
    assert _error(path, np.array([7])) == message


def test_duplicate_ids(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,sex\n1,f\n2,m\n1,m\n2,f\n3,f\n")
    message = loading.ERR_ATTR_DUP.format(path=path, count=2, examples="'1', '2'")
    assert _error(path, np.array([1, 2, 3])) == message


def test_no_id_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "key,sex\n1,f\n")
    assert _error(path, np.array([1])) == loading.ERR_ATTR_NO_ID.format(path=path)


def test_only_an_id_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id\n1\n")
    assert _error(path, np.array([1])) == loading.ERR_ATTR_NO_COLUMNS.format(path=path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        read_attributes_csv(tmp_path / "none.csv", np.array([1]))
    assert str(tmp_path / "none.csv") in str(err.value)
