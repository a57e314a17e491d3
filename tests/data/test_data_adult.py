"""UCI Adult: row counts, train-fitted encoding against pandas, attributes, error paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from compaudit.data import adult, lookup
from compaudit.data._spec import ERR_SPLIT
from compaudit.data.adult import AdultProvider, age_buckets
from compaudit.data.base import Dataset
from compaudit.data.loading import load_dataset
from compaudit.errors import DataNotFoundError, InputError

if TYPE_CHECKING:
    from .conftest import FakeWeb

ROW = "{age}, Private, 1000, HS-grad, 9, Never-married, Sales, Unmarried, {race}, {sex}, 0, 0, 40, {country}, {income}"  # noqa: E501


def _row(age: int, sex: str = "Male", race: str = "White", income: str = "<=50K", **kw: str) -> str:
    return ROW.format(age=age, sex=sex, race=race, income=income, country=kw.get("country", "Peru"))


def _tiny(folder: Path) -> Path:
    """A small Adult-format pair of files: '?' rows, a comment line, dotted test labels."""
    folder.mkdir(parents=True, exist_ok=True)
    train = [
        _row(25, "Female", "Black"),
        _row(30, income=">50K"),
        _row(44, country="?"),
        _row(45, "Female", income=">50K"),
        "",
        _row(70, race="Asian-Pac-Islander"),
    ]
    test = ["|1x3 Cross validator", _row(29, income="<=50K."), _row(60, income=">50K."), ""]
    (folder / "adult.data").write_text("\n".join(train) + "\n")
    (folder / "adult.test").write_text("\n".join(test) + "\n")
    return folder


def test_tiny_files(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "a")
    train = load_dataset(f"adult:train?path={folder}")
    np.testing.assert_array_equal(train.ids, [1, 2, 4, 6])  # line 3 has '?', line 5 is blank
    np.testing.assert_array_equal(train.y, [0, 1, 1, 0])
    np.testing.assert_array_equal(train.attributes["sex"], ["Female", "Male", "Female", "Male"])
    np.testing.assert_array_equal(train.attributes["age_bucket"], ["<30", "30-44", "45-59", "60+"])
    test = load_dataset(f"{folder}:test")  # the folder as the spec
    np.testing.assert_array_equal(test.ids, [2, 3])
    np.testing.assert_array_equal(test.y, [0, 1])
    np.testing.assert_array_equal(test.attributes["race"], ["White", "White"])
    assert test.preprocessing == train.preprocessing
    params = train.preprocessing.params
    assert "race" not in params["columns"]
    assert "age" not in params["columns"]
    assert "fnlwgt" not in params["columns"]
    assert params["categorical"]["native-country"] == ["Peru"]  # the '?' row is gone


def test_age_buckets_boundaries() -> None:
    ages = np.array([17, 29, 30, 44, 45, 59, 60, 90])
    expected = ["<30", "<30", "30-44", "30-44", "45-59", "45-59", "60+", "60+"]
    np.testing.assert_array_equal(age_buckets(ages), expected)


def test_keep_attributes(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "a")
    ds = AdultProvider().load(f"adult:train?path={folder}&keep_attributes=1")
    columns = ds.preprocessing.params["columns"]
    assert {"age", "race", "sex"} <= set(columns)
    assert ds.name == "adult:train?keep_attributes=1"


def test_wrong_field_count(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "a")
    (folder / "adult.data").write_text(_row(30) + "\n39, State-gov\n")
    with pytest.raises(InputError) as err:
        AdultProvider().load(f"adult:train?path={folder}")
    assert str(err.value) == adult.ERR_ADULT_FIELDS.format(
        path=folder / "adult.data", line=2, got=2
    )


def test_bad_label(tmp_path: Path) -> None:
    folder = _tiny(tmp_path / "a")
    (folder / "adult.test").write_text(_row(30, income="rich") + "\n")
    with pytest.raises(InputError) as err:
        AdultProvider().load(f"adult:test?path={folder}")
    assert str(err.value) == adult.ERR_ADULT_LABEL.format(
        path=folder / "adult.test", line=1, value="rich"
    )


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        AdultProvider().load("adult:dev")
    assert str(err.value) == ERR_SPLIT.format(src="adult:dev", split="dev", splits="train, test")


def test_not_found_lists_every_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb
) -> None:
    monkeypatch.setenv("COMPAUDIT_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _tiny(tmp_path / "env" / "adult")
    (tmp_path / "env" / "adult" / "adult.test").unlink()  # half a copy is no copy
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("adult")
    cache = tmp_path / "xdg" / "compaudit" / "data" / "adult"
    assert str(err.value) == (
        "dataset 'adult' not found; looked for adult.data, adult.test in: "
        f"{tmp_path}/env/adult ($COMPAUDIT_DATA_DIR) | "
        f"{cache} (user cache). "
        f"Download from {adult.URL}adult.data into {cache} failed: "
        "<urlopen error offline (test)>. "
        f"Fix: {adult.FIX}"
    )


@pytest.fixture(scope="module")
def real(adult_dir: Path) -> dict[str, Dataset]:
    return {split: load_dataset(f"adult:{split}") for split in ("train", "test")}


@pytest.mark.shared_data
def test_real_row_counts_and_widths(real: dict[str, Dataset]) -> None:
    train, test = real["train"], real["test"]
    assert (train.n, test.n) == (30162, 15060)
    assert train.x.shape[1] == test.x.shape[1] == 95
    assert train.preprocessing.fingerprint() == test.preprocessing.fingerprint()
    np.testing.assert_array_equal(np.bincount(train.y), [22654, 7508])
    np.testing.assert_array_equal(np.bincount(test.y), [11360, 3700])
    assert train.class_names == ("<=50K", ">50K")


def _pandas_reference(path: Path, skip: int) -> pd.DataFrame:
    df = pd.read_csv(
        path, header=None, names=list(adult.COLUMNS), skipinitialspace=True, skiprows=skip,
        na_values="?",
    )  # fmt: skip
    return df.dropna().reset_index(drop=True)


@pytest.mark.shared_data
def test_real_encoding_matches_pandas(adult_dir: Path, real: dict[str, Dataset]) -> None:
    ref_train = _pandas_reference(adult_dir / "adult.data", 0)
    ref_test = _pandas_reference(adult_dir / "adult.test", 1)
    numeric = ["education-num", "capital-gain", "capital-loss", "hours-per-week"]
    features = [c for c in adult.COLUMNS if c not in {"age", "fnlwgt", "race", "sex", "income"}]
    for split, ref in (("train", ref_train), ("test", ref_test)):
        blocks = []
        for col in features:
            if col in numeric:
                train_col = ref_train[col].astype(float)
                blocks.append(((ref[col] - train_col.mean()) / train_col.std(ddof=0)).to_numpy())
            else:
                cats = sorted(ref_train[col].unique())
                dummies = pd.get_dummies(pd.Categorical(ref[col], categories=cats))
                blocks.append(dummies.to_numpy(dtype=float))
        expected = np.column_stack(blocks)
        ds = real[split]
        np.testing.assert_allclose(ds.x, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ds.attributes["sex"], ref["sex"].to_numpy(str))
        np.testing.assert_array_equal(ds.attributes["race"], ref["race"].to_numpy(str))
        buckets = pd.cut(ref["age"], [0, 29, 44, 59, 200], labels=adult.AGE_BUCKETS)
        np.testing.assert_array_equal(ds.attributes["age_bucket"], buckets.to_numpy(str))
        labels = ref["income"].str.rstrip(".") == ">50K"
        np.testing.assert_array_equal(ds.y, labels.to_numpy(int))


@pytest.mark.shared_data
def test_real_ids_are_line_numbers(adult_dir: Path, real: dict[str, Dataset]) -> None:
    for split, name in (("train", "adult.data"), ("test", "adult.test")):
        ds = real[split]
        lines = (adult_dir / name).read_text().splitlines()
        fields = [lines[i - 1].split(", ") for i in ds.ids[::97]]
        np.testing.assert_array_equal([f[9] for f in fields], ds.attributes["sex"][::97])
    assert real["test"].ids[0] == 2  # line 1 of adult.test is a comment


@pytest.mark.shared_data
def test_real_download_passes_the_checks(
    adult_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb
) -> None:
    monkeypatch.delenv("COMPAUDIT_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for name in ("adult.data", "adult.test"):
        web.pages[adult.URL + name] = (adult_dir / name).read_bytes()
    ds = AdultProvider().load("adult:test")
    assert ds.n == 15060
    assert ds.source.startswith(str(tmp_path / "compaudit" / "data" / "adult" / "adult.test"))
    assert lookup.user_cache_dir() == tmp_path / "compaudit" / "data"
