"""The numpy normal and Student-t CDFs against scipy.special (the reference).

Tolerances: a relative 1e-12 wherever scipy's value is a normal float (above
1e-300); below it, both are denormal or 0 and must agree to 1e-300 absolute. The
largest relative error seen over the grids below is 7e-14 (ndtr) and 1e-12
(stdtr, df near 4,096, t near the centre, where the continued fraction is longest).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from compaudit.analysis._special import _SCIPY_ABOVE, ndtr, stdtr, t_tails

RTOL = 1e-12
TINY = 1e-300


def _close(got: np.ndarray, want: np.ndarray) -> None:
    normal = np.abs(want) > TINY
    np.testing.assert_allclose(got[normal], want[normal], rtol=RTOL, atol=0)
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=0, atol=TINY)


def _t_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Centre, shoulders and far tails: Cauchy draws at four scales and uniform [-8, 8]."""
    scale = rng.choice([0.01, 1.0, 10.0, 1e4], n // 2)
    return np.concatenate([rng.standard_cauchy(n // 2) * scale, rng.uniform(-8, 8, n - n // 2)])


def test_ndtr_matches_scipy_over_the_line_and_the_tails() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-40, 40, 8001), rng.normal(0, 10, 20_000), [0.0, -0.0]])
    edge = np.nextafter(1.0, [0.0, 2.0])  # either side of the erf / erfc switch at |x| = 1
    x = np.concatenate([x, edge, -edge])
    _close(ndtr(x), special.ndtr(x))
    assert ndtr(np.array([np.inf, -np.inf, 0.0])).tolist() == [1.0, 0.0, 0.5]
    assert np.isnan(ndtr(np.array([np.nan]))).all()


@pytest.mark.parametrize(("lo", "hi"), [(0.5, 10.0), (10.0, 100.0), (100.0, 4096.0)])
def test_stdtr_matches_scipy_over_df_and_t(lo: float, hi: float) -> None:
    rng = np.random.default_rng(int(lo * 10))
    df = np.exp(rng.uniform(np.log(lo), np.log(hi), 40_000))
    t = _t_values(rng, df.size)
    _close(stdtr(df, t), special.stdtr(df, t))


def test_stdtr_at_integer_df_and_the_populations_welch_df() -> None:
    # K = 30 a side: Welch df between 29 and 58; prediction intervals df = K - 1.
    df = np.repeat(np.concatenate([np.arange(1.0, 61.0), np.linspace(29, 58, 97)]), 101)
    t = np.tile(np.linspace(-12, 12, 101), df.size // 101)
    _close(stdtr(df, t), special.stdtr(df, t))


def test_stdtr_special_values() -> None:
    df = np.array([3.0, 3.0, 3.0, 3.0, np.inf, 0.0, -1.0, np.nan, 3.0])
    t = np.array([0.0, -0.0, np.inf, -np.inf, 1.5, 1.0, 1.0, 1.0, np.nan])
    got = stdtr(df, t)
    assert got[:4].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert got[4] == ndtr(np.array([1.5]))[0]
    assert np.isnan(got[5:]).all()


def test_large_df_are_scipys_own_values() -> None:
    df = np.array([_SCIPY_ABOVE * 1.01, 1e5, 1e9])
    t = np.array([-1.7, 0.3, -4.0])
    assert stdtr(df, t).tolist() == special.stdtr(df, t).tolist()


def test_stdtr_broadcasts_like_a_ufunc() -> None:
    got = stdtr(np.array([[2.0], [7.5]]), np.array([-1.0, 0.0, 2.0]))
    assert got.shape == (2, 3)
    _close(got, special.stdtr(np.array([[2.0], [7.5]]), np.array([-1.0, 0.0, 2.0])))


def test_t_tails_is_one_evaluation_of_both_sides() -> None:
    rng = np.random.default_rng(5)
    df = np.exp(rng.uniform(0, 6, 5_000))
    t = _t_values(rng, df.size)
    two, cdf = t_tails(df, t)
    assert np.array_equal(cdf, stdtr(df, t))  # bit for bit
    assert np.array_equal(two, 2.0 * stdtr(df, -np.abs(t)))
    np.testing.assert_allclose(two, 2.0 * special.stdtr(df, -np.abs(t)), rtol=RTOL, atol=TINY)


@settings(max_examples=60, deadline=None)
@given(
    df=st.floats(0.5, 4000.0),
    lo=st.floats(-60.0, 60.0),
    width=st.floats(1e-6, 60.0),
)
def test_stdtr_is_a_cdf_monotone_in_t_and_symmetric(df: float, lo: float, width: float) -> None:
    t = np.linspace(lo, lo + width, 257)
    cdf = stdtr(np.full(t.size, df), t)
    assert ((cdf >= 0) & (cdf <= 1)).all()
    # Non-decreasing up to rounding (a relative 1e-13 of the value).
    assert (np.diff(cdf) >= -1e-13 * cdf[1:]).all()
    np.testing.assert_allclose(cdf + stdtr(np.full(t.size, df), -t), 1.0, rtol=0, atol=1e-15)


def test_the_per_class_tests_load_no_scipy() -> None:
    code = (
        "import sys, numpy as np\n"
        "from compaudit.analysis import stats, shift, fairness\n"
        "import compaudit.engine\n"
        "r = stats.welch_test(np.random.default_rng(0).random((5, 40)), np.ones((4, 40)) / 2)\n"
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
