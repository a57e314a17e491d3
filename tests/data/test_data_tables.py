"""CSV tables: encoding against hand-computed values and scikit-learn, every error path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from compaudit.data import _common, _spec, encoding, tables
from compaudit.data.base import Dataset
from compaudit.data.tables import CsvProvider
from compaudit.errors import DataNotFoundError, InputError

SMALL = """id,age,color,sex,label
10,20,red,f,yes
11,30,blue,m,no
12,40,red,f,yes
13,50,green,m,no
"""


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _fit(spec: str) -> Dataset:
    """Load ``spec`` as training data (the encoding is fitted on it)."""
    return CsvProvider().load(spec, fit=True)


def _error(spec: str, *, fit: bool = True) -> str:
    with pytest.raises(InputError) as err:
        CsvProvider().load(spec, fit=fit and "prep=" not in spec and "encoding=" not in spec)
    return str(err.value)


def test_small_table_by_hand(tmp_path: Path) -> None:
    path = _csv(tmp_path, SMALL)
    ds = _fit(f"{path}?attributes=sex")
    mean, std = 35.0, np.sqrt(125.0)  # population std of 20, 30, 40, 50
    age = (np.array([20, 30, 40, 50]) - mean) / std
    onehot = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])  # blue, green, red
    np.testing.assert_allclose(ds.x, np.column_stack([age, onehot]), rtol=0, atol=1e-7)
    assert ds.x.dtype == np.float32
    assert ds.class_names == ("no", "yes")
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.ids, [10, 11, 12, 13])
    assert ds.ids.dtype == np.int64
    np.testing.assert_array_equal(ds.attributes["sex"], ["f", "m", "f", "m"])
    pre = ds.preprocessing
    assert (pre.layout, pre.scaling, pre.encoding) == ("NF", "standardize", "onehot")
    assert dict(pre.params) == {
        "label": "label",
        "classes": ["no", "yes"],
        "fitted_on": "t.csv",
        "columns": ["age", "color"],
        "numeric": {"age": {"mean": mean, "std": std}},
        "categorical": {"color": ["blue", "green", "red"]},
        "features": ["age", "color=blue", "color=green", "color=red"],
    }


def test_matches_scikit_learn(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 200
    num = rng.normal(5, 3, size=(n, 2)).round(3)
    cat = rng.choice(["a", "b", "c", "d"], size=(n, 1))
    lab = rng.choice(["p", "q", "r"], size=n)
    lines = ["u,v,w,label"] + [
        f"{a},{b},{c},{d}" for (a, b), (c,), d in zip(num, cat, lab, strict=True)
    ]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    ds = _fit(str(path))
    expected = np.column_stack(
        [
            StandardScaler().fit_transform(num),
            OneHotEncoder(sparse_output=False).fit_transform(cat),
        ]
    )
    # float32 output of float64 arithmetic: agree to float32 rounding.
    np.testing.assert_allclose(ds.x, expected, rtol=1e-6, atol=1e-6)
    assert ds.preprocessing.params["categorical"] == {"w": ["a", "b", "c", "d"]}


def test_integer_labels_sort_numerically(tmp_path: Path) -> None:
    path = _csv(tmp_path, "f,label\n1,10\n2,9\n3,2\n")
    ds = _fit(str(path))
    assert ds.class_names == ("2", "9", "10")
    np.testing.assert_array_equal(ds.y, [2, 1, 0])
    np.testing.assert_array_equal(ds.ids, [0, 1, 2])


def test_classes_option_fixes_order(tmp_path: Path) -> None:
    path = _csv(tmp_path, "f,label\n1,b\n2,a\n")
    ds = _fit(f"{path}?classes=c,b,a")
    assert ds.class_names == ("c", "b", "a")
    np.testing.assert_array_equal(ds.y, [1, 2])
    message = tables.ERR_LABEL_NOT_IN_CLASSES.format(src=path, values="a", classes="b,c")
    assert _error(f"{path}?classes=b,c") == message


def test_declared_categorical_and_keep_attributes(tmp_path: Path) -> None:
    path = _csv(tmp_path, SMALL)
    ds = _fit(f"{path}?attributes=sex&keep_attributes=1&categorical=age,color,sex")
    params = ds.preprocessing.params
    assert params["numeric"] == {}
    assert params["columns"] == ["age", "color", "sex"]
    assert ds.x.shape == (4, 4 + 3 + 2)
    assert ds.preprocessing.scaling == "none"


def test_string_ids_and_label_option(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,g,income\na1,1,x\nb2,2,y\n")
    ds = _fit(f"{path}?label=income")
    np.testing.assert_array_equal(ds.ids, ["a1", "b2"])


def test_recorded_encoding_is_reapplied(tmp_path: Path) -> None:
    train = _fit(str(_csv(tmp_path, SMALL)))
    enc_file = tmp_path / "enc.json"
    enc_file.write_text(json.dumps(train.preprocessing.to_dict()))
    test_path = _csv(tmp_path, "id,age,color,sex,label\n1,35,green,m,yes\n", "test.csv")
    test = CsvProvider().load(f"{test_path}?encoding={enc_file}")  # the alias of prep=
    assert test.preprocessing == train.preprocessing
    np.testing.assert_allclose(test.x, [[0.0, 0, 1, 0, 0, 1]], atol=1e-7)  # sex: f, m
    # Classes come from the training table: 'no' is absent here but keeps index 0.
    assert test.class_names == ("no", "yes")
    bad = _csv(tmp_path, "age,color,sex,label\n1,pink,m,yes\n", "bad.csv")
    message = encoding.ERR_UNKNOWN_CATEGORY.format(src=bad, col="color", count=1, examples="'pink'")
    assert _error(f"{bad}?encoding={enc_file}") == message


def test_encoding_columns_must_match(tmp_path: Path) -> None:
    train = _fit(str(_csv(tmp_path, SMALL)))
    enc_file = tmp_path / "enc.json"
    enc_file.write_text(json.dumps(dict(train.preprocessing.params)))  # bare params still read
    path = _csv(tmp_path, SMALL, "again.csv")
    message = tables.ERR_ENCODING_COLUMNS.format(src=path, prep=enc_file, diff="missing here: sex")
    assert _error(f"{path}?encoding={enc_file}&attributes=sex") == message
    assert _error(f"{path}?encoding={enc_file}&categorical=age") == (
        tables.ERR_ENCODING_BOTH.format(src=path)
    )


def test_missing_label_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, SMALL)
    message = tables.ERR_NO_LABEL.format(
        src=path, label="income", columns="id, age, color, sex, label"
    )
    assert _error(f"{path}?label=income") == message


def test_missing_attribute_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, SMALL)
    message = tables.ERR_NO_COLUMN.format(src=path, option="attributes", missing=["race"])
    assert _error(f"{path}?attributes=sex,race") == message


def test_ragged_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,label\n1,x\n2,y,3\n")
    assert _error(str(path)) == tables.ERR_CSV_RAGGED.format(src=path, line=3, got=3, want=2)


def test_empty_cell(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,label\n1,2,x\n\n3, ,y\n")
    message = tables.ERR_CSV_EMPTY_CELL.format(src=path, line=4, col="b", count=1)
    assert _error(str(path)) == message


def test_duplicate_header(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,a,label\n1,2,x\n")
    assert _error(str(path)) == tables.ERR_CSV_HEADER.format(src=path, bad=["a"])


def test_a_wide_header_is_refused_in_linear_time(tmp_path: Path) -> None:
    """200,001 columns took 20 minutes of header.count (quadratic) before any bound."""
    cols = ["label", *(f"c{i}" for i in range(tables.MAX_CSV_COLUMNS))]
    path = _csv(tmp_path, ",".join(cols) + "\n" + ",".join("1" * len(cols)) + "\n")
    assert _error(str(path)) == tables.ERR_CSV_TOO_WIDE.format(
        src=path, got=len(cols), limit=tables.MAX_CSV_COLUMNS
    )
    # At the bound, duplicates are still found (by counting once, not per column).
    dup = ["label", *(f"c{i}" for i in range(tables.MAX_CSV_COLUMNS - 2)), "c0"]
    path = _csv(tmp_path, ",".join(dup) + "\n" + ",".join("1" * len(dup)) + "\n", "d.csv")
    assert _error(str(path)) == tables.ERR_CSV_HEADER.format(src=path, bad=["c0"])


def test_a_huge_table_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _csv(tmp_path, "a,label\n" + "1,x\n" * 100)
    monkeypatch.setattr(tables, "MAX_CSV_BYTES", 64)
    assert _error(str(path)) == tables.ERR_CSV_TOO_LARGE.format(
        src=path, size=path.stat().st_size, limit=64
    )


def test_no_rows_and_no_header(tmp_path: Path) -> None:
    assert _error(str(_csv(tmp_path, "a,label\n"))) == tables.ERR_CSV_NO_ROWS.format(
        src=tmp_path / "t.csv"
    )
    empty = _csv(tmp_path, "", "e.csv")
    assert _error(str(empty)) == tables.ERR_CSV_NO_HEADER.format(src=empty)


def test_no_features_left(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,sex,label\n1,f,x\n")
    assert _error(f"{path}?attributes=sex") == tables.ERR_NO_FEATURES.format(src=path)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,a,label\n1,1,x\n1,2,y\n")
    message = _common.ERR_DUP_IDS.format(src=f"{path} (column 'id')", count=1, examples="'1'")
    assert _error(str(path)) == message


def test_non_finite_numeric(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,label\n1,x\ninf,y\n")
    message = encoding.ERR_NOT_FINITE.format(src=path, col="a", value="inf")
    assert _error(str(path)) == message


def test_unknown_option_and_missing_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, SMALL)
    message = _spec.ERR_UNKNOWN_OPTION.format(
        src=path, unknown="lable", allowed=", ".join(sorted(tables.OPTIONS))
    )
    assert _error(f"{path}?lable=x") == message
    with pytest.raises(DataNotFoundError) as err:
        _fit(str(tmp_path / "none.csv"))
    assert str(err.value) == tables.ERR_CSV_MISSING.format(src=tmp_path / "none.csv")
