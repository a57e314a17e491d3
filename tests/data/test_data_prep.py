"""Prep files, unknown categories (scikit-learn oracle), mismatch diffs, subsets, ids, raw npz."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from compaudit.cli import build_cli
from compaudit.data import encoding, images, prep, subset, tables
from compaudit.data.base import Preprocessing
from compaudit.data.loading import load_dataset
from compaudit.errors import DataNotFoundError, InputError

TRAIN = """id,age,color,sex,label
10,20,red,f,yes
11,30,blue,m,no
12,40,red,f,yes
13,50,green,m,no
14,35,blue,f,no
"""
# 'pink' and 'teal' never occur in TRAIN; 'green' is missing here (fine with a prep).
TEST = """id,age,color,sex,label
20,25,pink,f,yes
21,45,blue,m,no
22,33,teal,m,yes
23,41,red,f,no
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _error(spec: str, **kw: object) -> str:
    with pytest.raises(InputError) as err:
        load_dataset(spec, **kw)  # type: ignore[arg-type]
    return str(err.value)


@pytest.fixture
def fitted(tmp_path: Path) -> dict[str, Path]:
    train = _write(tmp_path / "train.csv", TRAIN)
    test = _write(tmp_path / "test.csv", TEST)
    ds = load_dataset(f"{train}?attributes=sex", fit=True)
    prep_file = prep.write_prep(tmp_path / "prep.json", ds.preprocessing, fitted_on=str(train))
    return {"train": train, "test": test, "prep": prep_file}


def test_unknown_ignore_matches_scikit_learn(fitted: dict[str, Path]) -> None:
    ds = load_dataset(f"{fitted['test']}?attributes=sex&prep={fitted['prep']}&unknown=ignore")
    train_rows = [r.split(",") for r in TRAIN.strip().splitlines()[1:]]
    test_rows = [r.split(",") for r in TEST.strip().splitlines()[1:]]
    scaler = StandardScaler().fit([[float(r[1])] for r in train_rows])
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    onehot.fit([[r[2]] for r in train_rows])
    expected = np.column_stack(
        [
            scaler.transform([[float(r[1])] for r in test_rows]),
            onehot.transform([[r[2]] for r in test_rows]),
        ]
    )
    # float32 output of float64 arithmetic: agree to float32 rounding.
    np.testing.assert_allclose(ds.x, expected, rtol=1e-6, atol=1e-6)
    assert ds.x[0, 1:].sum() == 0
    assert ds.x[2, 1:].sum() == 0
    assert ds.x.shape[1] == 4  # 'green' (absent here) keeps its column


def test_unknown_error_names_column_and_values(fitted: dict[str, Path]) -> None:
    spec = f"{fitted['test']}?attributes=sex&prep={fitted['prep']}"
    message = encoding.ERR_UNKNOWN_CATEGORY.format(
        src=fitted["test"], col="color", count=2, examples="'pink', 'teal'"
    )
    assert _error(spec) == message
    assert "unknown=ignore" in message
    assert _error(f"{spec}&unknown=maybe") == tables.ERR_UNKNOWN_VALUE.format(
        src=fitted["test"], value="maybe"
    )


def test_a_missing_category_is_fine_with_the_training_prep(fitted: dict[str, Path]) -> None:
    train = load_dataset(f"{fitted['train']}?attributes=sex", fit=True)
    only_red = _write(fitted["test"].parent / "red.csv", "age,color,sex,label\n20,red,f,no\n")
    ds = load_dataset(f"{only_red}?attributes=sex&prep={fitted['prep']}")
    assert ds.preprocessing == train.preprocessing
    assert ds.class_names == ("no", "yes")  # classes come from training too
    np.testing.assert_array_equal(ds.x[0, 1:], [0, 0, 1])


def test_csv_without_prep_or_fit_names_the_command(fitted: dict[str, Path]) -> None:
    test = fitted["test"]
    message = tables.ERR_NEEDS_PREP.format(
        src=test, command=prep.fit_command("TRAIN.csv?attributes=sex")
    )
    assert _error(f"{test}?attributes=sex") == message
    assert "compaudit fit-data 'TRAIN.csv?attributes=sex' --out prep.json" in message
    refit = load_dataset(f"{test}?attributes=sex&fit=eval")  # explicit: allowed
    assert refit.preprocessing.params["fitted_on"] == "test.csv"
    assert _error(f"{test}?fit=now") == tables.ERR_FIT_VALUE.format(src=test, value="now")
    assert _error(f"{test}?fit=eval&prep={fitted['prep']}") == tables.ERR_PREP_AND_FIT.format(
        src=test
    )


def test_mismatch_is_a_short_diff_with_the_fix(fitted: dict[str, Path]) -> None:
    good = prep.read_prep(fitted["prep"])
    numeric = dict(good.params["numeric"])
    numeric["age"] = {"mean": 38.6, "std": 10.0}
    other = dataclasses.replace(good, params={**good.params, "numeric": numeric})
    diff = prep.prep_diff(other.to_dict(), good.to_dict())
    assert diff == "mean[age]: 38.6 vs 35"  # train ages 20..50: mean 35, std 10 (unchanged)
    spec = f"{fitted['test']}?attributes=sex&prep={fitted['prep']}&unknown=ignore"
    message = _error(spec, prep=other, prep_source="model.ckpt")
    assert message == prep.ERR_PREP_MISMATCH.format(
        data=fitted["prep"],
        model="model.ckpt",
        diff=diff,
        fix=(
            "load the data with the model's preprocessing: add ?prep=PREP.json "
            f"(written by {prep.fit_command()} on the training data)"
        ),
    )
    many = {f"c{i}": {"mean": float(i), "std": 1.0} for i in range(9)}
    long = prep.prep_diff({"params": {"numeric": many}}, {"params": {"numeric": {}}})
    assert long.endswith("and 14 more field(s)")
    assert long.count("vs") == 4


def test_prep_files_fail_closed(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.json", "[1, 2]")
    with pytest.raises(InputError) as err:
        prep.read_prep(bad)
    assert "compaudit fit-data" in str(err.value)
    table = _write(tmp_path / "t.csv", TRAIN)
    with pytest.raises(InputError) as err:
        load_dataset(f"{table}?prep={tmp_path / 'none.json'}")
    assert str(err.value).startswith(f"{table}: cannot read prep file {tmp_path / 'none.json'}")
    assert _error(f"{table}?prep={bad}&encoding={bad}") == tables.ERR_PREP_TWICE.format(src=table)


# -- subsets -------------------------------------------------------------------------


def test_fractional_subset_is_stable_and_changes_the_fingerprint() -> None:
    whole = load_dataset("digits:test")
    a = load_dataset("digits:test?subset=0.25&seed=3")
    b = load_dataset("digits:test?subset=0.25&seed=3")
    c = load_dataset("digits:test?subset=0.25&seed=4")
    assert a.n == round(0.25 * whole.n)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.ids, c.ids)
    assert len({whole.fingerprint(), a.fingerprint(), c.fingerprint()}) == 3
    expected = np.sort(np.random.default_rng(3).permutation(whole.n)[: a.n])
    np.testing.assert_array_equal(a.ids, whole.ids[expected])
    np.testing.assert_array_equal(a.x, whole.x[expected])
    assert _error("digits:test?subset=1.5") == subset.ERR_SUBSET_FRACTION.format(
        src="digits:test?subset=1.5", value="1.5"
    )


def test_subset_by_ids_file(tmp_path: Path) -> None:
    whole = load_dataset("digits:test")
    wanted = [str(i) for i in whole.ids[[5, 1, 40]]]
    ids_file = _write(tmp_path / "ids.txt", "# three examples\n" + "\n".join(wanted) + "\n")
    ds = load_dataset(f"digits:test?subset={ids_file}")
    np.testing.assert_array_equal(ds.ids, whole.ids[[1, 5, 40]])  # dataset order kept
    again = load_dataset(f"digits:test?subset={ids_file}")
    assert ds.fingerprint() == again.fingerprint() != whole.fingerprint()
    _write(ids_file, "\n".join([*wanted, "99999"]) + "\n")
    changed = load_dataset(f"digits:test?subset={_write(tmp_path / 'b.txt', wanted[0])}")
    assert changed.fingerprint() != ds.fingerprint()
    assert _error(f"digits:test?subset={ids_file}") == subset.ERR_SUBSET_UNKNOWN.format(
        src=f"digits:test?subset={ids_file}", count=1, path=ids_file, examples="'99999'"
    )
    with pytest.raises(DataNotFoundError):
        load_dataset(f"digits:test?subset={tmp_path / 'none.txt'}")


# -- image folders and raw .npz ------------------------------------------------------


def _folder(root: Path, size: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / cls / f"{i}.png")
    return root


def test_image_folder_ids_csv(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    rows = [
        f"{c}/{i}.png,{100 + 10 * k + i}" for k, c in enumerate(("cat", "dog")) for i in range(3)
    ]
    _write(root / "ids.csv", "path,id\n" + "\n".join(rows) + "\n")
    ds = load_dataset(str(root))
    np.testing.assert_array_equal(ds.ids, [100, 101, 102, 110, 111, 112])
    _write(root / "ids.csv", "path,id\n" + "\n".join(rows[:-1]) + "\n")
    assert _error(str(root)) == images.ERR_IDS_MISSING.format(
        src=root, count=1, file=root / "ids.csv", examples="'dog/2.png'"
    )


def test_image_prep_resizes_and_npz_raw_uint8_gives_the_same_inputs(tmp_path: Path) -> None:
    train = _folder(tmp_path / "train", size=6)
    out = tmp_path / "prep.json"
    res = CliRunner().invoke(build_cli(), ["fit-data", str(train), "--out", str(out)])
    assert res.exit_code == 0, res.output
    folder = load_dataset(f"{train}?prep={out}")
    bigger = _folder(tmp_path / "big", size=9)
    resized = load_dataset(f"{bigger}?prep={out}")
    assert resized.x.shape == folder.x.shape  # resized to the prep's 6x6
    assert resized.preprocessing == folder.preprocessing

    npz = tmp_path / "raw.npz"
    assert folder.images is not None
    np.savez(npz, x=folder.images, y=folder.y, ids=np.arange(folder.n))
    raw = load_dataset(f"{npz}?prep={out}")
    assert raw.x.dtype == np.float32
    np.testing.assert_array_equal(raw.x, folder.x)  # bitwise
    np.testing.assert_array_equal(raw.images, folder.images)
    assert raw.preprocessing == folder.preprocessing

    standardize = Preprocessing(
        layout="NCHW", scaling="standardize", params={"mean": [0.5], "std": [0.25]}
    )
    std_file = prep.write_prep(tmp_path / "std.json", standardize, fitted_on="by hand")
    scaled = load_dataset(f"{npz}?prep={std_file}")
    np.testing.assert_allclose(scaled.x, (folder.x - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    # Pre-normalised floats must already be prepared as the prep says.
    np.savez(npz, x=folder.x, y=folder.y)
    message = _error(f"{npz}?prep={out}")
    assert "the data are prepared differently" in message
    assert "scaling" in message


def test_prep_file_round_trip(tmp_path: Path) -> None:
    pre = Preprocessing(layout="NF", scaling="standardize", params={"columns": ["a"]})
    path = prep.write_prep(tmp_path / "p.json", pre, fitted_on="t.csv")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert (doc["schema"], doc["fitted_on"]) == (prep.PREP_SCHEMA, "t.csv")
    assert prep.read_prep(path) == pre


def test_two_prediction_files_prepared_differently_show_a_field_diff() -> None:
    from compaudit.comparable import ERR_DIFFERENT_PREPROCESSING, check_same_examples
    from compaudit.population import Population

    def pop(mean: float, source: str) -> Population:
        params = {
            "columns": [f"c{i}" for i in range(50)],
            "numeric": {f"c{i}": {"mean": mean if i == 7 else 0.0, "std": 1.0} for i in range(50)},
        }
        pre = Preprocessing(layout="NF", scaling="standardize", params=params)
        y = np.array([0, 1, 1, 0])
        return Population.create(y[None], y, meta={"preprocessing": pre.to_dict()}, source=source)

    with pytest.raises(InputError) as err:
        check_same_examples(pop(1.5, "a.npz"), pop(2.0, "b.npz"))
    assert str(err.value) == ERR_DIFFERENT_PREPROCESSING.format(
        a="a.npz", b="b.npz", what="mean[c7]: 1.5 vs 2"
    )
