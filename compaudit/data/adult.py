"""UCI Adult census income (``adult[:train|test]``), for subgroup audits.

Files: ``adult.data`` (train) and ``adult.test`` (test; its first line is a
comment and its labels end in ``.``), found as described in
:mod:`compaudit.data.lookup` (``adult?path=DIR`` or the folder as the spec,
``$COMPAUDIT_DATA_DIR/adult/``, the user cache), else downloaded from UCI and
checked by sha256. Both files are needed for either split, because the
encoding is fitted on train.

* Rows with a missing value (``?``) are dropped: 30,162 train and 15,060 test
  rows remain (of 32,561 and 16,281).
* Label: income ``>50K``; class names ``("<=50K", ">50K")``.
* Protected attributes: ``sex``, ``race`` and ``age_bucket`` (``<30``,
  ``30-44``, ``45-59``, ``60+``). They and ``age`` (which ``age_bucket``
  summarises) are kept out of the features unless ``keep_attributes=1``.
* ``fnlwgt`` (a census sampling weight, not a property of the person) is dropped.
* Features: numerics standardised and categoricals one-hot encoded with the
  means, scales and category lists fitted on the train split and applied to
  both splits (recorded in ``Preprocessing.params``), so train and test have
  the same columns. A test category unseen in train would encode as zeros.
* Ids: the 1-based line number of the row in its file (``sed -n IDp FILE``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from compaudit.data._common import compact
from compaudit.data._spec import builtin_request, merge_options, opt_bool
from compaudit.data.base import Dataset, Preprocessing
from compaudit.data.encoding import TableEncoding
from compaudit.data.lookup import Remote, locate
from compaudit.errors import InputError

__all__ = ["CLASS_NAMES", "AdultProvider", "age_buckets", "read_adult"]

NAME = "adult"
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
SHA256 = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
CATEGORICAL = frozenset(
    {"workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
     "native-country"}
)  # fmt: skip
PROTECTED_COLUMNS = frozenset({"age", "race", "sex"})
DROPPED = frozenset({"fnlwgt", "income"})
CLASS_NAMES = ("<=50K", ">50K")
AGE_BUCKETS = ("<30", "30-44", "45-59", "60+")
AGE_EDGES = (30, 45, 60)
SPLITS = {"train": "adult.data", "test": "adult.test"}
FIX = (
    "set COMPAUDIT_DATA_DIR to a folder holding adult/adult.data and adult/adult.test "
    "(UCI Machine Learning Repository, dataset 2), or name the folder: adult?path=DIR"
)

ERR_ADULT_FIELDS = "{path}: line {line} has {got} fields, expected 15; is this the UCI Adult file?"
ERR_ADULT_LABEL = "{path}: line {line} has income {value!r}; expected <=50K or >50K"
ERR_ADULT_EMPTY = "{path}: no complete rows; is this the UCI Adult file?"


def age_buckets(age: np.ndarray) -> np.ndarray:
    """Bucket ages into ``<30``, ``30-44``, ``45-59``, ``60+`` (as strings)."""
    index = np.searchsorted(np.asarray(AGE_EDGES), age, side="right")
    return np.asarray(AGE_BUCKETS, dtype=np.str_)[index]


def read_adult(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse an Adult file into string columns and 1-based line numbers.

    Comment lines (``|...``) and blank lines are skipped, rows holding ``?``
    dropped, and the trailing ``.`` of test labels removed.
    """
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(path, encoding="utf-8", newline="") as fh:
        # The files separate fields by ", "; csv's C parser drops the spaces fast.
        reader = csv.reader(fh, skipinitialspace=True)
        for fields in reader:
            if not fields or fields[0].startswith("|") or fields == [""]:
                continue
            lineno = reader.line_num
            if len(fields) != len(COLUMNS):
                raise InputError(ERR_ADULT_FIELDS.format(path=path, line=lineno, got=len(fields)))
            if "?" in fields:
                continue
            label = fields[-1].strip().removesuffix(".")
            if label not in CLASS_NAMES:
                raise InputError(ERR_ADULT_LABEL.format(path=path, line=lineno, value=fields[-1]))
            fields[-1] = label
            rows.append(fields)
            lines.append(lineno)
    if not rows:
        raise InputError(ERR_ADULT_EMPTY.format(path=path))
    cells = np.asarray(rows, dtype=np.str_)
    return {col: cells[:, i] for i, col in enumerate(COLUMNS)}, np.asarray(lines, dtype=np.int64)


def _looks_like_adult_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in SPLITS.values())


class AdultProvider:
    """``adult[:train|test]`` or a folder holding ``adult.data`` / ``adult.test``."""

    name: str = NAME
    summary: str = "adult[:train|test] (UCI Adult; protected sex, race, age_bucket; path=)"

    def matches(self, spec: str) -> bool:
        """The name ``adult``, or a folder holding its files."""
        base, _, _ = merge_options(spec, None)
        return base == NAME or _looks_like_adult_dir(Path(base))

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Find the files, fit the encoding on train, encode the requested split."""
        req = builtin_request(
            NAME, spec, options, splits=SPLITS, allowed=("path", "keep_attributes")
        )
        split, src, explicit = req.split, req.src, req.explicit
        keep = opt_bool(req.options, "keep_attributes", src=src)
        names = list(SPLITS.values())
        train_path, test_path = locate(
            NAME,
            [(n,) for n in names],
            explicit=explicit,
            remotes=[Remote(n, URL + n, SHA256[n]) for n in names],
            system=None,
            fix=FIX,
        )
        excluded = DROPPED if keep else DROPPED | PROTECTED_COLUMNS
        features = [c for c in COLUMNS if c not in excluded]
        train, train_lines = read_adult(train_path)
        encoding = TableEncoding.fit(
            train, features, categorical=CATEGORICAL & set(features), src=str(train_path)
        )
        if split == "train":
            table, lines, path = train, train_lines, train_path
        else:
            table, lines = read_adult(test_path)
            path = test_path
        return Dataset(
            name=src if not keep else f"{src}?keep_attributes=1",
            x=encoding.transform(table, unknown="ignore", src=str(path)),
            y=(table["income"] == CLASS_NAMES[1]).astype(np.int64),
            ids=lines,
            class_names=CLASS_NAMES,
            attributes={
                "sex": compact(table["sex"]),
                "race": compact(table["race"]),
                "age_bucket": age_buckets(table["age"].astype(np.int64)),
            },
            preprocessing=Preprocessing(
                layout="NF",
                dtype="float32",
                scaling="standardize",
                encoding="onehot",
                params={"label": "income", "fitted_on": "adult.data", **encoding.to_params()},
            ),
            source=f"{path} (encoding fitted on {train_path}; rows with '?' dropped)",
        )
