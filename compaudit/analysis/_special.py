"""The normal and Student-t CDFs in numpy, so the audit's default path loads no scipy.

``import scipy.special`` costs about 0.25 s of CPU here (its array-API layer
imports half of numpy's optional submodules), more than the whole per-class test
at ImageNet scale; the audit needs only two of its functions on that path.

* :func:`ndtr`: scipy's own formula (``erf`` near 0, ``erfc`` in the tails) on the
  C library's ``erf``/``erfc`` (``math``), so within an ulp or two of scipy.
* :func:`stdtr`: ``P(T_df <= t)`` from the regularised incomplete beta function
  ``I_x(df/2, 1/2)`` at ``x = df / (df + t^2)`` (its complement through
  ``t^2 / (df + t^2)``, computed directly, near the centre): a continued fraction
  (modified Lentz) run to convergence, element-wise. Its prefactor needs
  ``log B(df/2, 1/2)``; above :data:`_STIRLING_FROM` the difference of the two log
  gammas is taken from Stirling's series, where subtracting ``lgamma`` values of size
  ``df log df`` would lose digits.

Both agree with ``scipy.special`` to a relative 1e-12 (df in [0.5, 4096], the tails
down to 1e-300; ``tests/analysis/test_special.py``); larger df, which no population of
models has, are handed to ``scipy.special.stdtr``. Callers that need more of
scipy (the single-model bootstrap's exact cells and guard, the long-tail tests)
import it themselves, lazily.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["ndtr", "stdtr", "t_tails"]

_ERF, _ERFC, _LGAMMA = (np.frompyfunc(f, 1, 1) for f in (math.erf, math.erfc, math.lgamma))
_SQRT1_2 = math.sqrt(0.5)
_EPS = 1e-16
"""Relative size of the last continued-fraction factor's step at convergence."""
_TINY = 1e-300
"""Lentz's guard against a zero denominator."""
_MAX_TERMS = 10_000
"""Continued-fraction terms at most; it needs a few times sqrt(df) near the centre."""
_STIRLING_FROM = 30.0
"""Above this, ``lgamma(q) - lgamma(q + p)`` comes from Stirling's series (error < 1e-17)."""
_SCIPY_ABOVE = 4096.0
"""Larger df go to ``scipy.special.stdtr``: the fraction's error grows with sqrt(df)
(5e-13 here, 1e-11 at df 1e5), and no audit of model populations has such df."""
_ERR_NO_CONVERGENCE = "compaudit: internal error: the Student-t CDF did not converge at df={df}"


def _floats(x: npt.ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _each(f: np.ufunc, x: np.ndarray) -> np.ndarray:
    """The C library's function element by element (a ufunc over Python floats)."""
    return np.asarray(f(x), dtype=np.float64)


def ndtr(x: npt.ArrayLike) -> np.ndarray:
    """Standard normal CDF, element-wise (``scipy.special.ndtr``).

    Parameters
    ----------
    x : array-like of float

    Returns
    -------
    ndarray of float, the shape of ``x``
    """
    x = _floats(x)
    z = x * _SQRT1_2
    out = np.empty(x.shape)
    mid = np.abs(z) < _SQRT1_2
    out[mid] = 0.5 + 0.5 * _each(_ERF, z[mid])
    tail = 0.5 * _each(_ERFC, np.abs(z[~mid]))
    out[~mid] = np.where(z[~mid] > 0, 1.0 - tail, tail)
    return out


def _stirling(z: np.ndarray) -> np.ndarray:
    """``lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2)``, z >= :data:`_STIRLING_FROM`."""
    r = 1.0 / (z * z)
    return np.asarray((1.0 / 12 - r * (1.0 / 360 - r * (1.0 / 1260 - r / 1680))) / z)


def _lbeta(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``log B(p, q)`` for positive p, q (vectorised, digits kept when one is large)."""
    small, large = np.minimum(p, q), np.maximum(p, q)
    out = np.empty(p.shape)
    far = large >= _STIRLING_FROM
    s, q_ = small[far], large[far]
    # lgamma(q) - lgamma(q + s) from Stirling's series, without the two large terms.
    diff = -(q_ - 0.5) * np.log1p(s / q_) - s * np.log(q_ + s) + s
    diff += _stirling(q_) - _stirling(q_ + s)
    out[far] = _each(_LGAMMA, s) + diff
    s, q_ = small[~far], large[~far]
    out[~far] = _each(_LGAMMA, s) + _each(_LGAMMA, q_) - _each(_LGAMMA, s + q_)
    return out


def _lentz_guard(v: np.ndarray) -> np.ndarray:
    return np.where(np.abs(v) < _TINY, _TINY, v)


def _continued_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of ``I_x(a, b)``, converging fast for ``x < (a+1)/(a+b+2)``.

    Modified Lentz, two terms a step; each element stops at its own convergence (the
    working arrays shrink to the elements still moving).
    """
    h = 1.0 / _lentz_guard(1.0 - (a + b) * x / (a + 1.0))
    c, d = np.ones(a.shape), h.copy()
    todo = np.arange(a.size)
    a_, b_, x_ = a, b, x
    for m in range(1, _MAX_TERMS + 1):
        even = m * (b_ - m) * x_ / ((a_ - 1.0 + 2 * m) * (a_ + 2 * m))
        odd = -(a_ + m) * (a_ + b_ + m) * x_ / ((a_ + 2 * m) * (a_ + 1.0 + 2 * m))
        step = np.ones(todo.size)
        for num in (even, odd):
            d = 1.0 / _lentz_guard(1.0 + num * d)
            c = _lentz_guard(1.0 + num / c)
            step *= d * c
        h[todo] *= step
        moving = np.abs(step - 1.0) >= _EPS
        if not moving.any():
            return h
        todo, a_, b_, x_, c, d = (
            todo[moving],
            a_[moving],
            b_[moving],
            x_[moving],
            c[moving],
            d[moving],
        )
    raise RuntimeError(_ERR_NO_CONVERGENCE.format(df=2.0 * float(a[todo[0]])))


def _ibeta_small(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``I_x(a, b)`` where ``x < (a+1)/(a+b+2)``; ``y = 1 - x``, computed by the caller."""
    with np.errstate(divide="ignore"):
        # log x from whichever of x and y = 1 - x was computed without cancellation.
        log_x = np.where(x < 0.5, np.log(x), np.log1p(-y))
        log_y = np.where(y < 0.5, np.log(y), np.log1p(-x))
        log_front = a * log_x + b * log_y - _lbeta(a, b)
    return np.asarray(np.exp(log_front) * _continued_fraction(a, b, x) / a)


def stdtr(df: npt.ArrayLike, t: npt.ArrayLike) -> np.ndarray:
    """Student-t CDF ``P(T_df <= t)``, element-wise (``scipy.special.stdtr``).

    Parameters
    ----------
    df : array-like of float
        Degrees of freedom, positive (non-integer allowed); ``inf`` gives the normal
        CDF. Others (<= 0, NaN) give NaN.
    t : array-like of float
        Broadcast against ``df``; +/-inf give 1 and 0.

    Returns
    -------
    ndarray of float, the broadcast shape
    """
    df_, t_ = np.broadcast_arrays(_floats(df), _floats(t))
    out = np.full(df_.shape, np.nan)
    ok = (df_ > 0) & ~np.isnan(t_)
    normal = ok & np.isinf(df_)
    out[normal] = ndtr(t_[normal])
    ok &= ~normal
    big = ok & (df_ > _SCIPY_ABOVE)
    if big.any():
        from scipy import special  # lazily: see _SCIPY_ABOVE

        out[big] = special.stdtr(df_[big], t_[big])
        ok &= ~big
    inf_t = ok & np.isinf(t_)
    out[inf_t] = np.where(t_[inf_t] > 0, 1.0, 0.0)
    ok &= ~inf_t
    n, tt = df_[ok], t_[ok]
    a, half = n / 2.0, np.full(n.shape, 0.5)
    t2 = tt * tt
    with np.errstate(over="ignore", invalid="ignore"):
        x, y = n / (n + t2), t2 / (n + t2)  # y = 1 - x, without the cancellation
    x, y = np.where(np.isinf(t2), 0.0, x), np.where(np.isinf(t2), 1.0, y)
    # The tail mass P(T <= -|t|) = I_x(df/2, 1/2) / 2, from whichever side converges.
    direct = x < (a + 1.0) / (a + 2.5)
    ib = np.empty(n.shape)
    ib[direct] = _ibeta_small(a[direct], half[direct], x[direct], y[direct])
    flip = ~direct
    ib[flip] = 1.0 - _ibeta_small(half[flip], a[flip], y[flip], x[flip])
    tail = 0.5 * ib
    out[ok] = np.where(tt > 0, 1.0 - tail, tail)
    return out


def t_tails(df: npt.ArrayLike, t: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-value ``2 P(T_df <= -|t|)`` and the CDF ``P(T_df <= t)``, from one
    evaluation (the CDF is :func:`stdtr`'s, bit for bit)."""
    t_ = _floats(t)
    tail = stdtr(df, -np.abs(t_))
    return 2.0 * tail, np.where(t_ > 0, 1.0 - tail, tail)
