"""compaudit.analysis.influence against the definitions, a planted case and simulation.

Tolerances: 1e-12 against the definitions computed with Python loops over
runs (memorization, influence, mean influence, standard errors); top-k
indices exactly equal to a stable argsort of the explicit matrix; standard
error coverage within 4 binomial standard errors (plus a stated allowance for
the Wald interval) of 95% on simulated bits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compaudit.analysis import influence as inf
from compaudit.analysis.influence import (
    RUNS_FORMAT,
    InfluenceRuns,
    influence,
    load_runs,
    mean_influence,
    memorization,
    pack_bits,
    required_runs,
    save_runs,
    se_bound,
    top_influencers,
    unpack_bits,
)
from compaudit.errors import DataNotFoundError, InputError

TOL = 1e-12
NAN = float("nan")


# -- reference implementations: the definitions, with loops over runs ---------------
def _diff(
    s_in: float, n_in: int, s_out: float, n_out: int
) -> tuple[float, float]:  # value, se of a difference of two Bernoulli means
    if n_in == 0 or n_out == 0:
        return NAN, NAN
    p_in, p_out = s_in / n_in, s_out / n_out
    se = math.sqrt(p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out)
    return p_in - p_out, se


def ref_memorization(in_run: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r_count, s = in_run.shape
    value, se = np.empty(s), np.empty(s)
    for j in range(s):
        s_in = s_out = n_in = n_out = 0
        for r in range(r_count):
            if in_run[r, j]:
                n_in += 1
                s_in += int(train[r, j])
            else:
                n_out += 1
                s_out += int(train[r, j])
        value[j], se[j] = _diff(s_in, n_in, s_out, n_out)
    return value, se


def ref_influence(in_run: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The explicit |T| x |S| matrix ``I[t, j]`` and its standard errors."""
    r_count, s = in_run.shape
    t_count = test.shape[1]
    value, se = np.empty((t_count, s)), np.empty((t_count, s))
    for t in range(t_count):
        for j in range(s):
            s_in = s_out = n_in = n_out = 0
            for r in range(r_count):
                if in_run[r, j]:
                    n_in += 1
                    s_in += int(test[r, t])
                else:
                    n_out += 1
                    s_out += int(test[r, t])
            value[t, j], se[t, j] = _diff(s_in, n_in, s_out, n_out)
    return value, se


def ref_mean_influence(in_run: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``(sum_j I[:, j]) / |S'|`` over the estimable columns (Dam et al., Algorithm 1)."""
    value, _ = ref_influence(in_run, test)
    ok = in_run.any(axis=0) & ~in_run.all(axis=0)
    out = np.full(test.shape[1], NAN)
    if ok.any():
        for t in range(test.shape[1]):
            out[t] = math.fsum(value[t, ok]) / int(ok.sum())
    return out


def random_runs(
    seed: int, r: int, s: int, t: int, *, p: float = 0.5, edges: bool = True
) -> InfluenceRuns:
    """Random masks and correctness; with ``edges``, example 0 is in every run and
    example 1 in none (and, with enough examples, 2 in exactly one run)."""
    rng = np.random.default_rng(seed)
    in_run = rng.random((r, s)) < p
    if edges and s >= 2:
        in_run[:, 0] = True
        in_run[:, 1] = False
    if edges and s >= 3:
        in_run[:, 2] = False
        in_run[0, 2] = True
    train = rng.random((r, s)) < 0.6
    test = rng.random((r, t)) < 0.7
    return InfluenceRuns(in_run, train, test)


def assert_close(a: np.ndarray, b: np.ndarray, tol: float = TOL) -> None:
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=tol, equal_nan=True)


shapes = st.tuples(
    st.integers(1, 14), st.integers(1, 11), st.integers(0, 6), st.integers(0, 2**32 - 1)
)


# -- memorization ------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(shape=shapes, p=st.sampled_from([0.1, 0.5, 0.9]), packed=st.booleans())
def test_memorization_equals_the_definition(
    shape: tuple[int, int, int, int], p: float, packed: bool
) -> None:
    r, s, t, seed = shape
    runs = random_runs(seed, r, s, t, p=p)
    value, se = ref_memorization(runs.in_run, runs.train_correct)
    got = memorization(runs.pack() if packed else runs)
    assert_close(got.value, value)
    assert_close(got.se, se)
    np.testing.assert_array_equal(got.n_in, runs.in_run.sum(axis=0))
    np.testing.assert_array_equal(got.n_in + got.n_out, r)


@pytest.mark.parametrize(("r", "s", "t"), [(1, 1, 0), (2, 9, 1), (40, 30, 12), (33, 17, 9)])
def test_always_in_and_never_in_examples_are_nan(r: int, s: int, t: int) -> None:
    runs = random_runs(r * 1000 + s, r, s, t)
    mem = memorization(runs)
    assert np.isnan(mem.value[:2]).all() if s >= 2 else np.isnan(mem.value).all()
    assert np.isnan(mem.se[: min(s, 2)]).all()
    if s >= 3 and r >= 2:  # in exactly one run: estimable
        assert not np.isnan(mem.value[2])


# -- influence and mean influence -------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(shape=shapes, packed=st.booleans())
def test_mean_influence_equals_the_mean_of_the_matrix(
    shape: tuple[int, int, int, int], packed: bool
) -> None:
    r, s, t, seed = shape
    runs = random_runs(seed, r, s, t, edges=seed % 2 == 0)
    got = mean_influence(runs.pack() if packed else runs)
    assert_close(got.value, ref_mean_influence(runs.in_run, runs.test_correct))
    assert got.weights.shape == (r,)
    if got.n_estimable:
        assert abs(got.weights.sum()) < TOL


def test_mean_influence_on_a_small_case_equals_the_explicit_matrix() -> None:
    runs = random_runs(7, 60, 45, 25, p=0.7)
    explicit, _ = ref_influence(runs.in_run, runs.test_correct)
    want = np.nanmean(explicit, axis=1)  # two never/always-in columns are NaN
    got = mean_influence(runs.pack())
    np.testing.assert_allclose(got.value, want, rtol=0, atol=TOL)
    assert got.n_estimable == 43
    # value is the weighted sum of the test-correctness rows over runs
    np.testing.assert_allclose(got.weights @ runs.test_correct, got.value, rtol=0, atol=TOL)


def test_mean_influence_without_an_estimable_example_is_nan() -> None:
    in_run = np.ones((5, 3), dtype=bool)
    runs = InfluenceRuns(in_run, in_run.copy(), np.ones((5, 4), dtype=bool))
    got = mean_influence(runs)
    assert np.isnan(got.value).all()
    assert np.isnan(got.se).all()
    assert got.n_estimable == 0


def test_mean_influence_se_is_the_plug_in_formula() -> None:
    runs = random_runs(11, 50, 20, 8)
    got = mean_influence(runs)
    p = runs.test_correct.mean(axis=0)
    w = got.weights
    want = [math.sqrt(p[t] * (1 - p[t]) * math.fsum(w * w)) for t in range(8)]
    np.testing.assert_allclose(got.se, want, rtol=0, atol=TOL)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, packed=st.booleans())
def test_influence_equals_the_definition(shape: tuple[int, int, int, int], packed: bool) -> None:
    r, s, t, seed = shape
    runs = random_runs(seed, r, s, t)
    value, se = ref_influence(runs.in_run, runs.test_correct)
    got = influence(runs.pack() if packed else runs, np.arange(t))
    assert_close(got.value, value.reshape(t, s))
    assert_close(got.se, se.reshape(t, s))


# -- top-k ---------------------------------------------------------------------------
def ref_top(explicit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ranked = np.where(np.isnan(explicit[rows]), -np.inf, explicit[rows])
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]  # ties: smaller index first
    return order, np.take_along_axis(explicit[rows], order, axis=1)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize(("r", "k", "block"), [(6, 5, 3), (30, 12, 4), (200, 40, 256), (9, 53, 2)])
def test_top_k_equals_argsort_of_the_explicit_matrix(
    monkeypatch: pytest.MonkeyPatch, packed: bool, r: int, k: int, block: int
) -> None:
    monkeypatch.setattr(inf, "_TRAIN_CHUNK", 16)  # many chunks, a short last one
    runs = random_runs(r, r, 53, 11)  # few runs: many exact ties
    explicit, explicit_se = ref_influence(runs.in_run, runs.test_correct)
    flagged = np.array([3, 0, 10, 3, 7, 1, 5])
    got = top_influencers(runs.pack() if packed else runs, flagged, k=k, block_size=block)
    order, values = ref_top(explicit, flagged, k)
    np.testing.assert_array_equal(got.test_indices, flagged)
    np.testing.assert_array_equal(got.train_indices, order)
    assert_close(got.influence, values)
    assert_close(got.se, np.take_along_axis(explicit_se[flagged], order, axis=1))


def test_top_k_puts_non_estimable_examples_last() -> None:
    runs = random_runs(5, 20, 6, 3)
    got = top_influencers(runs, [0, 1, 2], k=7)  # at most n_train = 6 columns
    assert got.train_indices.shape == (3, 6)
    assert set(got.train_indices[:, -2:].ravel()) == {0, 1}
    assert np.isnan(got.influence[:, -2:]).all()
    assert not np.isnan(got.influence[:, :-2]).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, inf.ERR_K.format(k=0)),
        ({"k": 2.0}, inf.ERR_K.format(k=2.0)),
        ({"k": 2, "block_size": 0}, inf.ERR_BLOCK.format(block=0)),
    ],
)
def test_top_k_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    runs = random_runs(5, 20, 6, 3)
    with pytest.raises(InputError) as exc:
        top_influencers(runs, [0], **kwargs)  # type: ignore[arg-type]
    assert str(exc.value) == message


def test_test_indices_must_be_integer_indices() -> None:
    runs = random_runs(5, 20, 6, 3)
    with pytest.raises(InputError) as exc:
        influence(runs, np.array([True, False, True]))
    assert str(exc.value) == inf.ERR_TEST_INDICES.format(n=3, got="bool array of shape (3,)")
    with pytest.raises(InputError) as exc:
        top_influencers(runs, [0, 3])
    assert str(exc.value) == inf.ERR_TEST_INDICES.format(
        n=3, got="int64 array of shape (2,) with values 0..3"
    )
    empty = top_influencers(runs, np.array([], dtype=int), k=2)
    assert empty.train_indices.shape == (0, 2)


# -- a planted case ------------------------------------------------------------------
def test_planted_unique_examples_are_memorized_and_influential() -> None:
    """A tiny "dataset": five unique training examples are right exactly when
    included; the rest are easy (right 95% of the time, included or not). Test
    example 5 is a near-duplicate of unique example 42: right exactly when 42
    was trained on. No training: the bits follow the rule."""
    rng = np.random.default_rng(2024)
    r, s, t = 200, 100, 30
    unique = np.array([3, 17, 42, 77, 91])
    in_run = rng.random((r, s)) < 0.5
    train = rng.random((r, s)) < 0.95
    train[:, unique] = in_run[:, unique]
    test = rng.random((r, t)) < 0.8
    test[:, 5] = in_run[:, 42]
    runs = InfluenceRuns(in_run, train, test).pack()

    mem = memorization(runs)
    np.testing.assert_array_equal(mem.value[unique], 1.0)
    np.testing.assert_array_equal(mem.se[unique], 0.0)
    others = np.setdiff1d(np.arange(s), unique)
    assert np.abs(mem.value[others]).max() < 0.15
    assert set(np.argsort(-mem.value, kind="stable")[:5]) == set(unique)

    top = top_influencers(runs, [5, 0], k=3)
    assert top.train_indices[0, 0] == 42
    assert top.influence[0, 0] == 1.0
    assert top.influence[0, 1] < 0.3
    assert top.influence[1, 0] < 0.3  # a test example that depends on nothing


# -- standard errors by simulation ---------------------------------------------------
def test_memorization_se_covers_the_truth_95_percent() -> None:
    """Each example has its own P(right | in) and P(right | out); the Wald interval
    +/- 1.96 SE covers the true difference in ~95% of 4,000 examples (binomial
    MC error 0.0034; 4 of them plus 0.006 for the Wald interval at n ~ 150)."""
    rng = np.random.default_rng(5)
    r, s = 300, 4000
    q_in = rng.uniform(0.3, 0.9, s)
    q_out = q_in - rng.uniform(0.0, 0.25, s)
    in_run = rng.random((r, s)) < 0.5
    train = rng.random((r, s)) < np.where(in_run, q_in, q_out)
    mem = memorization(InfluenceRuns(in_run, train, np.zeros((r, 0), bool)).pack())
    covered = np.abs(mem.value - (q_in - q_out)) <= 1.96 * mem.se
    assert abs(covered.mean() - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / s) + 0.006


def test_mean_influence_se_covers_zero_under_no_influence() -> None:
    rng = np.random.default_rng(6)
    r, s, t = 300, 200, 4000
    in_run = rng.random((r, s)) < 0.7
    q = rng.uniform(0.2, 0.9, t)
    test = rng.random((r, t)) < q  # correctness independent of the subsets
    got = mean_influence(InfluenceRuns(in_run, in_run, test))
    covered = np.abs(got.value) <= 1.96 * got.se
    assert abs(covered.mean() - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / t) + 0.006


@pytest.mark.parametrize("p", [0.5, 0.7])
def test_se_bound_is_the_spread_at_the_worst_case(p: float) -> None:
    """At P(right) = 1/2 on both sides, the spread of the estimate over 4,000
    examples matches 1 / (2 sqrt(R p (1 - p))) to 4% (MC error of an SD ~1.1%,
    plus E[1/n_in] > 1/(R p) by ~1/(R p))."""
    rng = np.random.default_rng(int(p * 10))
    r, s = 400, 4000
    in_run = rng.random((r, s)) < p
    train = rng.random((r, s)) < 0.5
    mem = memorization(InfluenceRuns(in_run, train, np.zeros((r, 0), bool)))
    bound = se_bound(r, subset_fraction=p)
    assert abs(np.std(mem.value) / bound - 1) < 0.04
    assert abs(np.mean(mem.se) / bound - 1) < 0.02  # the plug-in SE, on average


def test_required_runs_inverts_the_bound() -> None:
    assert required_runs(0.05, subset_fraction=0.5) == 400
    assert required_runs(0.025, subset_fraction=0.5) == 1600
    assert required_runs(0.05, subset_fraction=0.7) == 477
    assert required_runs(0.025, subset_fraction=0.7) == 1905
    assert se_bound(400, subset_fraction=0.5) == 0.05
    for se in (0.01, 0.03, 0.1, 0.3):
        for p in (0.1, 0.3, 0.7):
            n = required_runs(se, subset_fraction=p)
            assert se_bound(n, subset_fraction=p) <= se * (1 + 1e-12)
            if n > 1:
                assert se_bound(n - 1, subset_fraction=p) > se


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: se_bound(10, subset_fraction=1.0), inf.ERR_FRACTION.format(p=1.0)),
        (lambda: se_bound(0, subset_fraction=0.5), inf.ERR_N_RUNS.format(n=0)),
        (lambda: required_runs(0.0, subset_fraction=0.5), inf.ERR_TARGET_SE.format(se=0.0)),
        (lambda: required_runs(0.1, subset_fraction=0), inf.ERR_FRACTION.format(p=0)),
    ],
)
def test_run_count_arguments_are_checked(call: object, message: str) -> None:
    with pytest.raises(InputError) as exc:
        call()  # type: ignore[operator]
    assert str(exc.value) == message


# -- storage -------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(r=st.integers(0, 5), n=st.integers(0, 30), seed=st.integers(0, 1000))
def test_pack_unpack_keeps_shapes(r: int, n: int, seed: int) -> None:
    bits = np.random.default_rng(seed).random((r, n)) < 0.5
    packed = pack_bits(bits)
    assert packed.shape == (r, (n + 7) // 8)
    assert packed.dtype == np.uint8
    back = unpack_bits(packed, n)
    assert back.dtype == np.bool_
    np.testing.assert_array_equal(back, bits)


def test_pack_unpack_errors() -> None:
    with pytest.raises(InputError) as exc:
        pack_bits(np.zeros((2, 3), dtype=np.int8))
    assert str(exc.value) == inf.ERR_PACK_DTYPE.format(dtype="int8")
    with pytest.raises(InputError) as exc:
        unpack_bits(np.zeros((2, 3), dtype=np.uint8), 30)
    assert str(exc.value) == inf.ERR_UNPACK_SHAPE.format(n=30, cols=3, want=4)


def test_runs_pack_and_unpack_round_trip() -> None:
    runs = random_runs(3, 7, 13, 5)
    packed = runs.pack()
    assert packed.packed
    assert not runs.packed
    assert packed.shape == runs.shape == (7, 13, 5)
    assert packed.in_run.shape == (7, 2)
    assert packed.test_correct.shape == (7, 1)
    back = packed.unpack()
    for name in ("in_run", "train_correct", "test_correct"):
        np.testing.assert_array_equal(getattr(back, name), getattr(runs, name))
        np.testing.assert_array_equal(packed.bits(name), getattr(runs, name))
    assert packed.pack() is packed
    assert runs.unpack() is runs
    assert packed.subset_fraction == runs.in_run.mean()


def test_runs_are_validated() -> None:
    b = np.zeros((3, 4), dtype=bool)
    t = np.zeros((3, 2), dtype=bool)
    cases = [
        ((b[0], b, t), {}, inf.ERR_RUNS_NDIM.format(name="in_run", shape=(4,))),
        (
            (b.astype(int), b, t),
            {},
            inf.ERR_RUNS_DTYPE.format(name="in_run", dtype=np.dtype(int)),
        ),
        (
            (b, np.packbits(b, axis=1), t),
            {},
            inf.ERR_RUNS_MIXED.format(dtypes=["bool", "uint8", "bool"]),
        ),
        ((b, b, t[:2]), {}, inf.ERR_RUNS_COUNT.format(in_run=3, train=3, test=2)),
        ((b, b[:, :3], t), {}, inf.ERR_RUNS_TRAIN.format(a=(3, 4), b=(3, 3))),
        ((b[:0], b[:0], t[:0]), {}, inf.ERR_RUNS_EMPTY.format(shape=(0, 4))),
        ((b, b, t), {"n_train": 5}, inf.ERR_RUNS_N_UNPACKED.format(n=5, m=4)),
        ((pack_bits(b), pack_bits(b), pack_bits(t)), {}, inf.ERR_RUNS_N),
        (
            (pack_bits(b), pack_bits(b), pack_bits(t)),
            {"n_train": 9, "n_test": 2},
            inf.ERR_RUNS_PACKED_SHAPE.format(name="in_run", n=9, want=2, shape=(3, 1)),
        ),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(InputError) as exc:
            InfluenceRuns(*args, **kwargs)  # type: ignore[arg-type]
        assert str(exc.value) == message


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    runs = random_runs(8, 9, 21, 6)
    path = save_runs(tmp_path / "runs.npz", runs)
    loaded = load_runs(path)
    assert loaded.packed
    assert loaded.shape == (9, 21, 6)
    for name in ("in_run", "train_correct", "test_correct"):
        np.testing.assert_array_equal(loaded.bits(name), getattr(runs, name))
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["format"]) == RUNS_FORMAT
    assert_close(memorization(loaded).value, memorization(runs).value)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataNotFoundError) as nf:
        load_runs(missing)
    assert str(nf.value) == inf.ERR_RUNS_FILE_MISSING.format(path=missing)

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.npz: not a readable \.npz influence runs file"):
        load_runs(junk)

    pickled = tmp_path / "pickled.npz"
    packed = random_runs(1, 3, 5, 2).pack()
    arrays: dict[str, Any] = {
        "format": np.asarray(RUNS_FORMAT),
        "in_run": np.array([packed.in_run], dtype=object),
        "train_correct": packed.train_correct,
        "test_correct": packed.test_correct,
        "n_train": np.asarray(5),
        "n_test": np.asarray(2),
    }
    np.savez(pickled, **arrays)
    with pytest.raises(InputError, match=r"pickled\.npz: array 'in_run\.npy' holds Python objects"):
        load_runs(pickled)

    partial = tmp_path / "partial.npz"
    np.savez(partial, format=np.asarray(RUNS_FORMAT), in_run=packed.in_run)
    with pytest.raises(InputError) as exc:
        load_runs(partial)
    assert str(exc.value) == inf.ERR_RUNS_FILE_KEYS.format(
        path=partial,
        missing=["train_correct", "test_correct", "n_train", "n_test"],
        keys=list(inf._FILE_KEYS),
    )

    other = tmp_path / "other.npz"
    np.savez(other, **{**arrays, "in_run": packed.in_run, "format": np.asarray("v0")})
    with pytest.raises(InputError) as exc:
        load_runs(other)
    assert str(exc.value) == inf.ERR_RUNS_FILE_FORMAT.format(path=other, want=RUNS_FORMAT, got="v0")

    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**arrays, "in_run": packed.in_run, "n_train": np.asarray(40)})
    with pytest.raises(InputError, match=r"bad\.npz: in_run holds 40 examples"):
        load_runs(bad)

    unpacked = tmp_path / "unpacked.npz"
    np.savez(unpacked, **{**arrays, "in_run": np.zeros((3, 5), bool)})
    with pytest.raises(InputError, match=r"unpacked\.npz: in_run has dtype bool, not packed"):
        load_runs(unpacked)


def test_quick_benchmark_runs_and_checks_itself() -> None:
    from benchmarks import bench_influence

    rows = bench_influence.run(quick=True)  # verifies a sample against the definitions
    by_metric = {row["metric"]: row["value"] for row in rows}
    assert len(by_metric) == len(rows)
    for metric in ("estimator_time", "estimator_peak_memory", "top_k_time"):
        assert float(by_metric[metric]) > 0
