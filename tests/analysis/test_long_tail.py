"""compaudit.analysis.long_tail against scipy and the definitions; score files.

Tolerances: 1e-12 against scipy's Welch t-test and Mann-Whitney U (the same
calls, guarded) and against Cohen's d and Cliff's delta written from their
definitions (Cliff's delta by the O(n m) double loop over pairs); deciles
against a direct count of mid-distribution values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from compaudit.analysis import long_tail as lt
from compaudit.analysis import score_files as sf
from compaudit.analysis.long_tail import long_tail_comparison, read_scores
from compaudit.errors import DataNotFoundError, InputError

TOL = 1e-12
KEYS = [
    "n",
    "mean_subset",
    "mean_rest",
    "statistic",
    "p_value",
    "mann_whitney_p",
    "cohens_d",
    "cliffs_delta",
    "deciles",
]


# -- references ----------------------------------------------------------------------
def ref_cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    greater = less = 0
    for a in x.tolist():
        for b in y.tolist():
            greater += a > b
            less += a < b
    return (greater - less) / (len(x) * len(y))


def ref_cohens_d(x: np.ndarray, y: np.ndarray) -> float:
    n1, n2 = len(x), len(y)
    v1 = np.var(x, ddof=1) if n1 > 1 else 0.0
    v2 = np.var(y, ddof=1) if n2 > 1 else 0.0
    pooled = math.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    return float((np.mean(x) - np.mean(y)) / pooled)


def ref_deciles(scores: np.ndarray, flagged: np.ndarray) -> list[tuple[int, float]]:
    """(size, share flagged) per decile of F(x) = (#less + #equal / 2) / N, by loops."""
    n = len(scores)
    decile = []
    for v in scores.tolist():
        less = sum(w < v for w in scores.tolist())
        equal = sum(w == v for w in scores.tolist())
        decile.append(math.floor(10 * (less + equal / 2) / n))
    out = []
    for d in range(10):
        members = [i for i in range(n) if decile[i] == d]
        share = sum(bool(flagged[i]) for i in members) / len(members) if members else math.nan
        out.append((len(members), share))
    return out


def close(a: float, b: float, tol: float = TOL) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(b))


cases = st.tuples(
    st.integers(2, 60),  # N
    st.integers(0, 2**32 - 1),  # seed
    st.sampled_from(["continuous", "ties", "few-values"]),
    st.floats(0.05, 0.6),  # flagged share
)


def make_case(n: int, seed: int, kind: str, share: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        scores = rng.normal(size=n)
    elif kind == "ties":
        scores = np.round(rng.normal(size=n), 1)
    else:
        scores = rng.integers(0, 3, n).astype(float) * 0.1
    flagged = rng.random(n) < share
    return scores, flagged


# -- statistics --------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(case=cases)
def test_statistics_equal_scipy_and_the_definitions(case: tuple[int, int, str, float]) -> None:
    scores, flagged = make_case(*case)
    x, y = scores[flagged], scores[~flagged]
    res = long_tail_comparison(scores, flagged)
    assert res.n == x.size
    assert res.n_rest == y.size
    if x.size == 0 or y.size == 0:
        assert math.isnan(res.statistic)
        assert math.isnan(res.cliffs_delta)
        return
    assert close(res.mean_subset, float(np.mean(x)))
    assert close(res.mean_rest, float(np.mean(y)))
    assert close(res.cliffs_delta, ref_cliffs_delta(x, y))
    if x.size >= 2 and y.size >= 2 and (np.ptp(x) > 0 or np.ptp(y) > 0):
        welch = stats.ttest_ind(x, y, equal_var=False)
        assert close(res.statistic, float(welch.statistic))
        assert close(res.p_value, float(welch.pvalue))
    else:
        assert math.isnan(res.statistic)
        assert math.isnan(res.p_value)
    if np.ptp(scores) > 0:
        mw = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert close(res.mann_whitney_p, float(mw.pvalue))
        # Cliff's delta is the Mann-Whitney U of the flagged side, rescaled
        assert close(res.cliffs_delta, 2 * float(mw.statistic) / (x.size * y.size) - 1)
    if (np.ptp(x) > 0 or np.ptp(y) > 0) and x.size + y.size > 2:
        assert close(res.cohens_d, ref_cohens_d(x, y))


def test_mann_whitney_uses_scipys_method_selection() -> None:
    x = np.array([0.3, 1.2, 2.5, 4.0])  # small, no ties: scipy chooses the exact method
    y = np.array([0.1, 0.2, 0.5, 0.9, 1.1])
    scores, flagged = np.r_[x, y], np.r_[np.ones(4, bool), np.zeros(5, bool)]
    res = long_tail_comparison(scores, flagged)
    assert res.mann_whitney_p == stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
    exact = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue
    assert res.mann_whitney_p == exact
    rng = np.random.default_rng(3)
    big = rng.normal(size=500)
    mask = rng.random(500) < 0.2
    res = long_tail_comparison(big, mask)
    want = stats.mannwhitneyu(big[mask], big[~mask], alternative="two-sided", method="asymptotic")
    assert abs(res.mann_whitney_p - want.pvalue) <= TOL


def test_cliffs_delta_at_scale_matches_the_pair_loop() -> None:
    rng = np.random.default_rng(8)
    scores = np.round(rng.normal(size=1500), 2)  # many ties
    flagged = rng.random(1500) < 0.1
    res = long_tail_comparison(scores, flagged)
    x, y = scores[flagged], scores[~flagged]
    want = float(np.sign(x[:, None] - y[None, :]).mean())  # vectorised O(n m) definition
    assert abs(res.cliffs_delta - want) <= TOL


def test_a_planted_long_tail_is_found() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=2000)
    flagged = np.zeros(2000, bool)
    flagged[np.argsort(scores)[-200:][::2]] = True  # 100 of the top 200 scores
    res = long_tail_comparison(scores, flagged)
    assert res.p_value < 1e-20
    assert res.mann_whitney_p < 1e-20
    assert res.cohens_d > 1.5
    assert res.cliffs_delta > 0.8
    shares = [d.share_flagged for d in res.deciles]
    assert shares[:9] == [0.0] * 9
    assert shares[9] == 0.5
    assert all(d.base_rate == 0.05 for d in res.deciles)


# -- deciles -----------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(case=cases)
def test_deciles_follow_the_mid_distribution_rule(case: tuple[int, int, str, float]) -> None:
    scores, flagged = make_case(*case)
    res = long_tail_comparison(scores, flagged)
    assert [d.decile for d in res.deciles] == list(range(1, 11))
    want = ref_deciles(scores, flagged)
    assert [d.size for d in res.deciles] == [w[0] for w in want]
    for d, (_, share) in zip(res.deciles, want, strict=True):
        assert close(d.share_flagged, share)
        assert d.base_rate == flagged.mean()


def test_deciles_do_not_depend_on_the_order_of_examples() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 7, 300).astype(float)
    flagged = rng.random(300) < 0.3
    perm = rng.permutation(300)
    a = long_tail_comparison(scores, flagged)
    b = long_tail_comparison(scores[perm], flagged[perm])
    assert a.deciles == b.deciles
    assert a.cliffs_delta == b.cliffs_delta  # exact: from integer rank sums


def test_deciles_are_equal_without_ties() -> None:
    scores = np.arange(100.0)[::-1]
    res = long_tail_comparison(scores, scores >= 90)
    assert [d.size for d in res.deciles] == [10] * 10
    assert [d.share_flagged for d in res.deciles] == [0.0] * 9 + [1.0]


# -- edge cases --------------------------------------------------------------------
def _nan_stats(d: dict[str, object]) -> list[str]:
    return [k for k in KEYS[1:-1] if d[k] is None]


def test_to_dict_has_exactly_the_report_keys_and_is_json() -> None:
    scores, flagged = make_case(50, 1, "continuous", 0.3)
    d = long_tail_comparison(scores, flagged).to_dict()
    assert list(d) == KEYS
    assert len(d["deciles"]) == 10
    assert all(list(e) == ["decile", "share_flagged", "base_rate"] for e in d["deciles"])
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize(
    ("scores", "flagged", "nulls"),
    [
        ([1.0, 2.0, 3.0], [False, False, False], KEYS[1:2] + KEYS[3:-1]),  # empty subset
        ([1.0, 2.0, 3.0], [True, True, True], KEYS[2:-1]),  # empty rest
        ([2.0] * 6, [True, False] * 3, KEYS[3:7]),  # constant: delta stays 0
        ([1.0, 1.0, 2.0, 2.0], [True, True, False, False], KEYS[3:5] + KEYS[6:7]),
        ([1.0, 2.0, 3.0, 4.0], [True, False, False, False], KEYS[3:5]),  # one flagged
        ([], [], KEYS[1:-1]),
    ],
)
def test_degenerate_inputs_give_nan_not_an_exception(
    scores: list[float], flagged: list[bool], nulls: list[str]
) -> None:
    d = long_tail_comparison(np.array(scores), np.array(flagged, dtype=bool)).to_dict()
    json.dumps(d, allow_nan=False)
    assert _nan_stats(d) == nulls


def test_constant_scores() -> None:
    res = long_tail_comparison(np.full(20, 0.1), np.arange(20) < 5)
    assert res.cliffs_delta == 0.0
    assert [d.size for d in res.deciles] == [0] * 5 + [20] + [0] * 4
    assert res.deciles[5].share_flagged == 0.25
    assert math.isnan(res.deciles[0].share_flagged)


@pytest.mark.parametrize(
    ("scores", "flagged", "message"),
    [
        (
            np.zeros(3),
            np.zeros(4, bool),
            lt.ERR_SCORES_SHAPE.format(scores=(3,), flagged=(4,)),
        ),
        (
            np.zeros((2, 2)),
            np.zeros((2, 2), bool),
            lt.ERR_SCORES_SHAPE.format(scores=(2, 2), flagged=(2, 2)),
        ),
        (np.zeros(3), np.array([0, 1, 0]), lt.ERR_FLAGGED_DTYPE.format(dtype="int64")),
        (np.array(["a", "b"]), np.zeros(2, bool), lt.ERR_SCORES_DTYPE.format(dtype="<U1")),
        (
            np.array([0.0, np.nan, np.inf]),
            np.zeros(3, bool),
            lt.ERR_SCORES_NONFINITE.format(count=2, index=1),
        ),
    ],
)
def test_bad_inputs_are_input_errors(scores: np.ndarray, flagged: np.ndarray, message: str) -> None:
    with pytest.raises(InputError) as exc:
        long_tail_comparison(scores, flagged)
    assert str(exc.value) == message


# -- score files -------------------------------------------------------------------
IDS = np.array([10, 11, 12, 13])


def test_read_scores_joins_a_csv_by_id_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("score,id\n0.5,12\n-1e-3,10\n\n2,13\n7,99\n 0.25 , 11 \n", encoding="utf-8")
    np.testing.assert_array_equal(read_scores(path, IDS), [-1e-3, 0.25, 0.5, 2.0])
    np.testing.assert_array_equal(read_scores(path, IDS[::-1].astype(str)), [2.0, 0.5, 0.25, -1e-3])


def test_read_scores_chooses_a_column(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text("id,a,b\n10,1,5\n11,2,6\n12,3,7\n13,4,8\n", encoding="utf-8")
    np.testing.assert_array_equal(read_scores(path, IDS, column="b"), [5, 6, 7, 8])
    with pytest.raises(InputError) as exc:
        read_scores(path, IDS)
    assert str(exc.value) == sf.ERR_CSV_COLUMNS.format(path=path, columns=["id", "a", "b"])
    with pytest.raises(InputError) as exc:
        read_scores(path, IDS, column="c")
    assert str(exc.value) == sf.ERR_CSV_NO_COLUMN.format(
        path=path, column="c", columns=["id", "a", "b"]
    )


def test_read_scores_from_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    np.savez(path, ids=np.array(["13", "11", "10", "12", "7"]), scores=np.array([4, 2, 1, 3, 0]))
    got = read_scores(path, IDS)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [1, 2, 3, 4])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", sf.ERR_CSV_EMPTY),
        ("id,score\n", sf.ERR_CSV_NO_ROWS),
        ("key,score\n10,1\n", sf.ERR_CSV_NO_ID.replace("{columns}", "['key', 'score']")),
        ("id\n10\n", sf.ERR_CSV_COLUMNS.replace("{columns}", "['id']")),
        (
            "id,score\n10,1\n11\n",
            sf.ERR_CSV_RAGGED.replace("{line}", "3").replace("{got}", "1").replace("{want}", "2"),
        ),
        (
            "id,score\n10,1\n11,high\n",
            sf.ERR_NOT_NUMERIC.replace("{column!r}", "'score'")
            .replace("{value!r}", "'high'")
            .replace("{line}", "3"),
        ),
        (
            "id,score\n10,1\n11,\n",
            sf.ERR_NOT_NUMERIC.replace("{column!r}", "'score'")
            .replace("{value!r}", "''")
            .replace("{line}", "3"),
        ),
        (
            "id,score\n10,1\n11,2\n12,nan\n13,inf\n",
            sf.ERR_FILE_NONFINITE.replace("{count}", "2").replace("{example!r}", "'12'"),
        ),
        (  # finite, but variances and Welch df of such values overflow (report.json crashed)
            "id,score\n10,1\n11,2\n12,-1e308\n13,1e200\n",
            sf.ERR_FILE_HUGE.replace("{count}", "2")
            .replace("{limit:g}", "1e+50")
            .replace("{example!r}", "'12'"),
        ),
        (
            "id,score\n10,1\n11,2\n12,3\n13,4\n12,5\n10,6\n",
            sf.ERR_FILE_DUP.replace("{count}", "2").replace("{examples}", "'10', '12'"),
        ),
        (
            "id,score\n10,1\n12,3\n",
            sf.ERR_FILE_MISSING_IDS.replace("{count}", "2")
            .replace("{n}", "4")
            .replace("{examples}", "'11', '13'"),
        ),
    ],
)
def test_csv_errors_name_the_file_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_scores(path, IDS)
    assert str(exc.value) == message.replace("{path}", str(path))


def test_npz_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    ids = np.array(["10", "11", "12", "13"])
    cases = {
        "keys.npz": (
            {"id": ids, "scores": np.zeros(4)},
            sf.ERR_NPZ_KEYS.replace("{found}", "['id', 'scores']"),
        ),
        "extra.npz": (  # another score beside them was ignored without a word
            {"ids": ids, "scores": np.zeros(4), "cscore": np.zeros(4)},
            sf.ERR_NPZ_KEYS.replace("{found}", "['cscore', 'ids', 'scores']"),
        ),
        "length.npz": (
            {"ids": ids, "scores": np.zeros(3)},
            sf.ERR_NPZ_LENGTH.replace("{ids}", "(4,)").replace("{scores}", "(3,)"),
        ),
        "text.npz": (
            {"ids": ids, "scores": np.array(["a", "b", "c", "d"])},
            sf.ERR_NPZ_NOT_NUMERIC.replace("{dtype}", "<U1"),
        ),
        "nan.npz": (
            {"ids": ids, "scores": np.array([0.0, np.nan, 1.0, 2.0])},
            sf.ERR_FILE_NONFINITE.replace("{count}", "1").replace("{example!r}", "'11'"),
        ),
        "dup.npz": (
            {"ids": np.r_[ids, ["11"]], "scores": np.zeros(5)},
            sf.ERR_FILE_DUP.replace("{count}", "1").replace("{examples}", "'11'"),
        ),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / name
        np.savez(path, **arrays)
        with pytest.raises(InputError) as exc:
            read_scores(path, IDS)
        assert str(exc.value) == message.replace("{path}", str(path)), name

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, ids=np.array(list(ids), dtype=object), scores=np.zeros(4))
    with pytest.raises(InputError, match=r"pickled\.npz: array 'ids\.npy' holds Python objects"):
        read_scores(pickled, IDS)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00\x01")
    with pytest.raises(InputError, match=r"junk\.npz: not a readable \.npz scores file"):
        read_scores(junk, IDS)


def test_file_kind_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        read_scores(tmp_path / "scores.json", IDS)
    assert str(exc.value) == sf.ERR_FILE_KIND.format(path=tmp_path / "scores.json")
    with pytest.raises(DataNotFoundError) as nf:
        read_scores(tmp_path / "nope.csv", IDS)
    assert str(nf.value) == sf.ERR_FILE_MISSING.format(path=tmp_path / "nope.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,score\n\xe9,1\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.csv: cannot read the score file"):
        read_scores(latin, IDS)


def test_module_does_not_import_scipy_stats_at_import_time() -> None:
    import ast

    tree = ast.parse(Path(lt.__file__).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top for a in n.names] + [
        n.module or "" for n in top if isinstance(n, ast.ImportFrom)
    ]
    assert not any(name.startswith("scipy") for name in names)
