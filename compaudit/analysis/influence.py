"""Feldman-Zhang subsampled memorization and influence estimates, from stored runs.

The estimator (Feldman & Zhang 2020, used by Dam et al. to show that CIEs are
the memorized long tail) trains ``R`` models, run ``r`` on a random subset of
the training set ``S``, and records three bit matrices:

* ``in_run[r, j]``: training example ``j`` was in run ``r``'s subset (``R x |S|``);
* ``train_correct[r, j]``: run ``r`` classifies training example ``j`` correctly;
* ``test_correct[r, t]``: run ``r`` classifies test example ``t`` correctly (``R x |T|``).

For training example ``j`` let ``n_in[j]`` be the number of runs that
included it and ``n_out[j] = R - n_in[j]`` the number that did not.

Memorization
    ``mem[j] = mean_{r: in} train_correct[r, j] - mean_{r: out} train_correct[r, j]``,
    NaN when ``n_in[j] = 0`` or ``n_out[j] = 0`` (not estimable).
Influence
    ``I[t, j] = mean_{r: j in r} test_correct[r, t] - mean_{r: j not in r} test_correct[r, t]``,
    NaN under the same condition.
Mean influence (Dam et al., Algorithm 1)
    ``m[t] = (1 / |S'|) sum_{j in S'} I[t, j]`` over the estimable training
    examples ``S'`` (all of ``S`` unless an example was always or never in).
    Writing each mean as a sum over runs,
    ``I[t, j] = sum_r test_correct[r, t] * (in[r, j] / n_in[j] - (1 - in[r, j]) / n_out[j])``,
    so ``m[t] = sum_r w[r] * test_correct[r, t]`` with one weight per run::

        w[r] = (1 / |S'|) sum_{j in S'} [in[r, j] / n_in[j] - (1 - in[r, j]) / n_out[j]]
             = (1 / |S'|) (sum_{j in S'} in[r, j] (1 / n_in[j] + 1 / n_out[j])
                           - sum_{j in S'} 1 / n_out[j])

    which costs ``O(R (|S| + |T|))`` and never forms the ``|T| x |S|`` matrix.
    The weights sum to zero over runs.

Standard errors
---------------
Each estimate is a difference of two means of 0/1 outcomes over disjoint sets
of runs (the runs' subsets are drawn independently), so its standard error is
``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)`` with the two sides'
observed rates ``p_in``, ``p_out`` (Bernoulli plug-in, conditional on the
masks). With subset fraction ``p`` (``n_in ~ R p``, ``n_out ~ R (1 - p)``) and
per-example variance at most ``1/4``::

    SE <= sqrt(1 / (4 R p) + 1 / (4 R (1 - p))) = 1 / (2 sqrt(R p (1 - p)))

so a target standard error ``se`` needs ``R = ceil(1 / (4 p (1 - p) se^2))``
runs (:func:`se_bound`, :func:`required_runs`). For example ``p = 0.7`` and
``se = 0.05`` need 477 runs; ``p = 0.5`` and ``se = 0.025`` need 1,600.
The standard error of the mean influence is
``sqrt(p_t (1 - p_t) sum_r w[r]^2)`` with ``p_t`` the test example's
correctness rate over all runs: exact (given the masks) when the test
example's correctness does not depend on which examples a run saw, i.e.
under the null hypothesis of no influence, and a plug-in otherwise.

Storage
-------
:class:`InfluenceRuns` holds the three matrices either as ``bool`` arrays or
bit-packed along the example axis (``np.packbits(..., axis=1)``: 8 examples
per byte, ``R x ceil(n / 8)`` ``uint8``); every estimator reads both, in
blocks of runs, so packed runs are never unpacked whole. :func:`save_runs`
and :func:`load_runs` store the packed form in an ``.npz`` (read with the
bounded :func:`compaudit._npz.read_npz`: nothing is unpickled, and no header
is believed before it is checked against its bytes).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from compaudit._io import atomic_write_with
from compaudit._npz import read_npz
from compaudit.errors import DataNotFoundError, InputError

__all__ = [
    "RUNS_FORMAT",
    "InfluenceEstimate",
    "InfluenceRuns",
    "MeanInfluence",
    "Memorization",
    "TopInfluencers",
    "influence",
    "load_runs",
    "mean_influence",
    "memorization",
    "pack_bits",
    "required_runs",
    "save_runs",
    "se_bound",
    "top_influencers",
    "unpack_bits",
]

RUNS_FORMAT = "compaudit.influence_runs/v1"
"""Value of the ``format`` array of a runs file written by :func:`save_runs`."""

_NAMES = ("in_run", "train_correct", "test_correct")
_BLOCK_ELEMENTS = 1 << 22
"""Bits unpacked at a time when streaming over runs (4 MiB as bool)."""
_TRAIN_CHUNK = 8192
"""Training examples per chunk in :func:`top_influencers` (a multiple of 8)."""

ERR_RUNS_NDIM = "{name} must be a 2-D array (runs x examples), got shape {shape}"
ERR_RUNS_DTYPE = (
    "{name} must be a bool array (or uint8 bytes from pack_bits with n_train/n_test), "
    "got dtype {dtype}"
)
ERR_RUNS_MIXED = (
    "in_run, train_correct and test_correct must all be bool arrays or all be packed "
    "uint8 arrays; got dtypes {dtypes}"
)
ERR_RUNS_COUNT = (
    "every array needs one row per run; got {in_run} (in_run), {train} (train_correct) "
    "and {test} (test_correct) rows"
)
ERR_RUNS_EMPTY = "the estimator needs at least one run and one training example, got shape {shape}"
ERR_RUNS_TRAIN = (
    "in_run and train_correct must cover the same training examples; got shapes {a} and {b}"
)
ERR_RUNS_N = "packed arrays need n_train and n_test (the number of examples before packing)"
ERR_RUNS_PACKED_SHAPE = (
    "{name} holds {n} examples packed 8 per byte, so it needs {want} columns; got shape {shape}"
)
ERR_RUNS_N_UNPACKED = "n_train/n_test are only for packed arrays; got {n} for an array of {m}"
ERR_PACK_DTYPE = "pack_bits needs a bool array, got dtype {dtype}"
ERR_UNPACK_SHAPE = "unpack_bits: {n} bits do not fit {cols} packed bytes (need {want})"
ERR_TEST_INDICES = (
    "test_indices must be integer indices into the {n} test examples, got {got}; "
    "for a boolean mask pass np.flatnonzero(mask)"
)
ERR_K = "k must be a positive integer, got {k!r}"
ERR_BLOCK = "block_size must be a positive integer, got {block!r}"
ERR_FRACTION = "subset_fraction must lie strictly between 0 and 1, got {p!r}"
ERR_TARGET_SE = "target_se must be positive (at most 0.5 is meaningful), got {se!r}"
ERR_N_RUNS = "n_runs must be a positive integer, got {n!r}"
ERR_RUNS_FILE_MISSING = "{path}: no such runs file; write one with save_runs (or check the path)"
ERR_RUNS_FILE_FORMAT = (
    "{path}: not a runs file of format {want!r} (format {got!r}); "
    "write it with compaudit.analysis.influence.save_runs"
)
ERR_RUNS_FILE_KEYS = (
    "{path}: missing array(s) {missing}; a runs file holds {keys}; "
    "write it with compaudit.analysis.influence.save_runs"
)
ERR_RUNS_FILE_BAD = "{path}: {reason}; write it with compaudit.analysis.influence.save_runs"

_FILE_KEYS = ("format", *_NAMES, "n_train", "n_test")


# -- bit packing -------------------------------------------------------------------
def pack_bits(bits: npt.ArrayLike) -> np.ndarray:
    """Pack a bool array 8 to a byte along its last axis.

    Parameters
    ----------
    bits : array-like of bool, shape (..., n)
        The bits; runs along the first axes, examples along the last.

    Returns
    -------
    ndarray of uint8, shape (..., ceil(n / 8))
        ``np.packbits(bits, axis=-1)`` (big-endian bit order, zero padding).

    Raises
    ------
    InputError
        If ``bits`` is not a bool array.
    """
    arr = np.asarray(bits)
    if arr.dtype != np.bool_:
        raise InputError(ERR_PACK_DTYPE.format(dtype=arr.dtype))
    return np.packbits(arr, axis=-1)


def unpack_bits(packed: npt.ArrayLike, n: int) -> np.ndarray:
    """Undo :func:`pack_bits`: the bool array of shape ``(..., n)``.

    Parameters
    ----------
    packed : array-like of uint8, shape (..., ceil(n / 8))
        Bytes from :func:`pack_bits`.
    n : int
        Number of bits along the last axis before packing (drops the padding).

    Returns
    -------
    ndarray of bool, shape (..., n)

    Raises
    ------
    InputError
        If ``n`` does not fit the number of packed bytes.
    """
    arr = np.asarray(packed, dtype=np.uint8)
    want = _n_bytes(n)
    if arr.ndim == 0 or arr.shape[-1] != want or n < 0:
        cols = arr.shape[-1] if arr.ndim else 0
        raise InputError(ERR_UNPACK_SHAPE.format(n=n, cols=cols, want=want))
    return np.unpackbits(arr, axis=-1, count=n).view(np.bool_)


def _n_bytes(n: int) -> int:
    return (int(n) + 7) // 8


# -- the runs ----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class InfluenceRuns:
    """The three bit matrices of ``R`` subsampled training runs, plain or packed.

    Give bool arrays, or ``uint8`` arrays from :func:`pack_bits` together with
    ``n_train`` and ``n_test``; :meth:`pack` and :meth:`unpack` convert. The
    estimators accept either form.

    Attributes
    ----------
    in_run : ndarray, shape (R, n_train) bool or (R, ceil(n_train / 8)) uint8
        Whether training example ``j`` was in run ``r``'s subset.
    train_correct : ndarray, same shape and form as ``in_run``
        Whether run ``r`` classifies training example ``j`` correctly.
    test_correct : ndarray, shape (R, n_test) bool or (R, ceil(n_test / 8)) uint8
        Whether run ``r`` classifies test example ``t`` correctly.
    n_train, n_test : int
        Numbers of training and test examples (inferred for bool arrays).

    Raises
    ------
    InputError
        On mixed forms, a dtype other than bool/uint8, non-2-D arrays, row
        counts that differ, no run or no training example, or packed widths
        that do not match ``n_train``/``n_test``.
    """

    in_run: np.ndarray
    train_correct: np.ndarray
    test_correct: np.ndarray
    n_train: int | None = None
    n_test: int | None = None

    def __post_init__(self) -> None:
        arrays = [np.asarray(getattr(self, name)) for name in _NAMES]
        for name, arr in zip(_NAMES, arrays, strict=True):
            if arr.ndim != 2:
                raise InputError(ERR_RUNS_NDIM.format(name=name, shape=arr.shape))
            if arr.dtype not in (np.bool_, np.uint8):
                raise InputError(ERR_RUNS_DTYPE.format(name=name, dtype=arr.dtype))
        dtypes = {str(a.dtype) for a in arrays}
        if len(dtypes) > 1:
            raise InputError(ERR_RUNS_MIXED.format(dtypes=[str(a.dtype) for a in arrays]))
        a, b, c = arrays
        if not a.shape[0] == b.shape[0] == c.shape[0]:
            raise InputError(
                ERR_RUNS_COUNT.format(in_run=a.shape[0], train=b.shape[0], test=c.shape[0])
            )
        if a.shape != b.shape:
            raise InputError(ERR_RUNS_TRAIN.format(a=a.shape, b=b.shape))
        if a.dtype == np.bool_:
            for n, m in ((self.n_train, a.shape[1]), (self.n_test, c.shape[1])):
                if n is not None and int(n) != m:
                    raise InputError(ERR_RUNS_N_UNPACKED.format(n=n, m=m))
            n_train, n_test = a.shape[1], c.shape[1]
        else:
            if self.n_train is None or self.n_test is None:
                raise InputError(ERR_RUNS_N)
            n_train, n_test = int(self.n_train), int(self.n_test)
            for name, arr, n in zip(_NAMES, arrays, (n_train, n_train, n_test), strict=True):
                if n < 0 or arr.shape[1] != _n_bytes(n):
                    raise InputError(
                        ERR_RUNS_PACKED_SHAPE.format(
                            name=name, n=n, want=_n_bytes(max(n, 0)), shape=arr.shape
                        )
                    )
        if a.shape[0] == 0 or n_train == 0:
            raise InputError(ERR_RUNS_EMPTY.format(shape=(a.shape[0], n_train)))
        for name, arr in zip(_NAMES, arrays, strict=True):
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "n_train", n_train)
        object.__setattr__(self, "n_test", n_test)

    @property
    def packed(self) -> bool:
        """Whether the arrays are bit-packed ``uint8``."""
        return bool(self.in_run.dtype == np.uint8)

    @property
    def n_runs(self) -> int:
        """Number of runs ``R``."""
        return int(self.in_run.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(R, n_train, n_test)``."""
        return self.n_runs, self._n("in_run"), self._n("test_correct")

    @property
    def subset_fraction(self) -> float:
        """Observed fraction ``p`` of training examples per run (mean of ``in_run``)."""
        return float(_column_sums(self, "in_run").sum()) / (self.n_runs * self._n("in_run"))

    def pack(self) -> InfluenceRuns:
        """The same runs bit-packed along the example axis (itself if already packed)."""
        if self.packed:
            return self
        a, b, c = (np.packbits(getattr(self, name), axis=1) for name in _NAMES)
        return InfluenceRuns(a, b, c, n_train=self.n_train, n_test=self.n_test)

    def unpack(self) -> InfluenceRuns:
        """The same runs as bool arrays (itself if not packed)."""
        if not self.packed:
            return self
        a, b, c = (unpack_bits(getattr(self, name), self._n(name)) for name in _NAMES)
        return InfluenceRuns(a, b, c)

    def bits(self, name: str, rows: slice = slice(None)) -> np.ndarray:
        """The bool matrix ``name`` (one of the three fields), for a slice of runs."""
        arr: np.ndarray = getattr(self, name)[rows]
        if not self.packed:
            return arr
        return np.unpackbits(arr, axis=1, count=self._n(name)).view(np.bool_)

    def _n(self, name: str) -> int:
        n = self.n_test if name == "test_correct" else self.n_train
        assert n is not None  # set by __post_init__
        return n

    def _row_blocks(self, name: str) -> Iterator[tuple[slice, np.ndarray]]:
        """``(rows, bits)`` blocks of about :data:`_BLOCK_ELEMENTS` bits."""
        step = max(1, _BLOCK_ELEMENTS // max(self._n(name), 1))
        for r0 in range(0, self.n_runs, step):
            rows = slice(r0, min(r0 + step, self.n_runs))
            yield rows, self.bits(name, rows)

    def _train_columns(self, start: int, stop: int) -> np.ndarray:
        """``in_run[:, start:stop]`` as bool; ``start`` is a multiple of 8."""
        if not self.packed:
            return self.in_run[:, start:stop]
        cols = self.in_run[:, start // 8 : _n_bytes(stop)]
        return np.unpackbits(cols, axis=1, count=stop - start).view(np.bool_)


def _column_sums(runs: InfluenceRuns, name: str) -> np.ndarray:
    """Number of runs with the bit set, per example (``int64``)."""
    total = np.zeros(runs._n(name), dtype=np.int64)
    for _, block in runs._row_blocks(name):
        total += np.add.reduce(block, axis=0, dtype=np.int32)
    return total


# -- results -----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Memorization:
    """Memorization estimates of the training examples.

    Attributes
    ----------
    value : ndarray of float, shape (n_train,)
        ``mem[j]``; NaN where ``n_in`` or ``n_out`` is 0.
    se : ndarray of float, shape (n_train,)
        Its standard error (two-sample Bernoulli plug-in); NaN likewise.
    n_in, n_out : ndarray of int, shape (n_train,)
        Runs that included / excluded each training example.
    """

    value: np.ndarray
    se: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


@dataclass(frozen=True, eq=False)
class MeanInfluence:
    """Mean influence of the training set on each test example (Dam et al., Alg. 1).

    Attributes
    ----------
    value : ndarray of float, shape (n_test,)
        ``m[t]``, the mean of ``I[t, j]`` over the estimable training examples.
    se : ndarray of float, shape (n_test,)
        ``sqrt(p_t (1 - p_t) sum_r w[r]^2)``.
    weights : ndarray of float, shape (R,)
        The per-run weights ``w[r]`` (``value = weights @ test_correct``).
    n_estimable : int
        Number of training examples ``|S'|`` with ``n_in > 0`` and ``n_out > 0``.
    """

    value: np.ndarray
    se: np.ndarray
    weights: np.ndarray
    n_estimable: int


@dataclass(frozen=True, eq=False)
class InfluenceEstimate:
    """Influence of every training example on some test examples.

    Attributes
    ----------
    test_indices : ndarray of int, shape (F,)
        The test examples (rows).
    value : ndarray of float, shape (F, n_train)
        ``I[t, j]``; NaN where training example ``j`` is not estimable.
    se : ndarray of float, shape (F, n_train)
        Standard errors (two-sample Bernoulli plug-in).
    """

    test_indices: np.ndarray
    value: np.ndarray
    se: np.ndarray


@dataclass(frozen=True, eq=False)
class TopInfluencers:
    """The ``k`` most influential training examples of each flagged test example.

    Row ``f`` is about test example ``test_indices[f]``; its columns are sorted
    by influence, largest first, ties by smaller training index; training
    examples that are not estimable (always or never in a run) come last,
    with influence NaN.

    Attributes
    ----------
    test_indices : ndarray of int, shape (F,)
    train_indices : ndarray of int, shape (F, k)
        ``k`` is ``min(k, n_train)``.
    influence : ndarray of float, shape (F, k)
    se : ndarray of float, shape (F, k)
    """

    test_indices: np.ndarray
    train_indices: np.ndarray
    influence: np.ndarray
    se: np.ndarray


# -- estimators --------------------------------------------------------------------
def _difference(
    s_in: np.ndarray, n_in: np.ndarray, s_out: np.ndarray, n_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``s_in / n_in - s_out / n_out`` and its Bernoulli standard error; NaN if a side is empty."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p_in = s_in / n_in
        p_out = s_out / n_out
        se = np.sqrt(p_in * (1.0 - p_in) / n_in + p_out * (1.0 - p_out) / n_out)
    bad = (n_in == 0) | (n_out == 0)
    value = np.where(bad, np.nan, p_in - p_out)
    return value, np.where(bad, np.nan, se)


def memorization(runs: InfluenceRuns) -> Memorization:
    """Memorization of every training example, with standard errors.

    ``mem[j] = mean(train_correct[r, j] | j in r) - mean(train_correct[r, j] | j not in r)``.

    Parameters
    ----------
    runs : InfluenceRuns
        Plain or packed runs; read in blocks of runs.

    Returns
    -------
    Memorization
        Estimates, standard errors and run counts per training example.
    """
    n = runs._n("in_run")
    n_in = np.zeros(n, dtype=np.int64)
    s_in = np.zeros(n, dtype=np.int64)
    s_all = np.zeros(n, dtype=np.int64)
    step = max(1, _BLOCK_ELEMENTS // n)
    for r0 in range(0, runs.n_runs, step):
        rows = slice(r0, min(r0 + step, runs.n_runs))
        a, b = runs.in_run[rows], runs.train_correct[rows]
        both = a & b  # on packed bytes too: the AND of the bits
        if runs.packed:
            a, b, both = (np.unpackbits(x, axis=1, count=n) for x in (a, b, both))
        n_in += np.add.reduce(a, axis=0, dtype=np.int32)
        s_in += np.add.reduce(both, axis=0, dtype=np.int32)
        s_all += np.add.reduce(b, axis=0, dtype=np.int32)
    n_out = runs.n_runs - n_in
    value, se = _difference(s_in, n_in, s_all - s_in, n_out)
    return Memorization(value=value, se=se, n_in=n_in, n_out=n_out)


def _run_weights(runs: InfluenceRuns, n_in: np.ndarray) -> tuple[np.ndarray, int]:
    """The weights ``w[r]`` of the mean influence and ``|S'|``."""
    n_out = runs.n_runs - n_in
    ok = (n_in > 0) & (n_out > 0)
    n_ok = int(ok.sum())
    if n_ok == 0:
        return np.full(runs.n_runs, np.nan), 0
    with np.errstate(divide="ignore"):
        slope = np.where(ok, 1.0 / n_in + 1.0 / n_out, 0.0)
        offset = float(np.sum(1.0 / n_out[ok]))
    w = np.empty(runs.n_runs)
    for rows, block in runs._row_blocks("in_run"):
        w[rows] = block @ slope
    return (w - offset) / n_ok, n_ok


def mean_influence(runs: InfluenceRuns) -> MeanInfluence:
    """Mean influence of the training set on every test example (Dam et al., Algorithm 1).

    ``m[t] = (1 / |S'|) sum_{j in S'} I[t, j]``, computed as
    ``sum_r w[r] test_correct[r, t]`` in ``O(R (|S| + |T|))`` (see the module
    docstring for the weights ``w``). ``S'`` is the set of training examples
    with both an including and an excluding run (all of ``S`` in practice).

    Parameters
    ----------
    runs : InfluenceRuns
        Plain or packed runs; read in blocks of runs.

    Returns
    -------
    MeanInfluence
        Estimates and standard errors per test example, and the run weights.
        All NaN when no training example is estimable.
    """
    n_in = _column_sums(runs, "in_run")
    w, n_ok = _run_weights(runs, n_in)
    n_test = runs._n("test_correct")
    value = np.zeros(n_test)
    correct = np.zeros(n_test, dtype=np.int64)
    for rows, block in runs._row_blocks("test_correct"):
        value += w[rows] @ block
        correct += np.add.reduce(block, axis=0, dtype=np.int32)
    p = correct / runs.n_runs
    se = np.sqrt(p * (1.0 - p) * float(w @ w))
    if n_ok == 0:
        value[:], se[:] = np.nan, np.nan
    return MeanInfluence(value=value, se=se, weights=w, n_estimable=n_ok)


def _test_indices(test_indices: npt.ArrayLike, n_test: int) -> np.ndarray:
    idx = np.asarray(test_indices)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    ok = idx.ndim == 1 and (idx.size == 0 or np.issubdtype(idx.dtype, np.integer))
    if ok and idx.size:
        ok = bool(idx.min() >= 0 and idx.max() < n_test)
    if not ok:
        shown = f"{idx.dtype} array of shape {idx.shape}"
        if idx.size and np.issubdtype(idx.dtype, np.integer):
            shown += f" with values {int(idx.min())}..{int(idx.max())}"
        raise InputError(ERR_TEST_INDICES.format(n=n_test, got=shown))
    return idx.astype(np.int64)


def _flagged_correct(runs: InfluenceRuns, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``test_correct[:, idx].T`` as float32 ``(F, R)`` and the counts ``c_t``."""
    out = np.empty((idx.size, runs.n_runs), dtype=np.float32)
    for rows, block in runs._row_blocks("test_correct"):
        out[:, rows] = block[:, idx].T
    return out, out.sum(axis=1, dtype=np.float64)


def _counts_in(flagged: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``A[t, j] = #runs with j in and t correct``, exact: float32 sums of 0/1 below 2**24."""
    counts: np.ndarray = np.matmul(flagged, cols).astype(np.float64)
    return counts


def influence(runs: InfluenceRuns, test_indices: npt.ArrayLike) -> InfluenceEstimate:
    """Influence ``I[t, j]`` of every training example on the given test examples.

    The result is ``F x n_train``; for the most influential examples of many
    test examples use :func:`top_influencers`, which never forms it.

    Parameters
    ----------
    runs : InfluenceRuns
        Plain or packed runs.
    test_indices : array-like of int, shape (F,)
        Test examples (rows of the result).

    Returns
    -------
    InfluenceEstimate
        Estimates and standard errors; NaN for training examples that were
        always or never in a run.
    """
    idx = _test_indices(test_indices, runs._n("test_correct"))
    n_in = _column_sums(runs, "in_run")
    n_out = runs.n_runs - n_in
    flagged, c = _flagged_correct(runs, idx)
    n = runs._n("in_run")
    value = np.empty((idx.size, n))
    se = np.empty((idx.size, n))
    for j0 in range(0, n, _TRAIN_CHUNK):
        j1 = min(j0 + _TRAIN_CHUNK, n)
        a = _counts_in(flagged, runs._train_columns(j0, j1).astype(np.float32))
        value[:, j0:j1], se[:, j0:j1] = _difference(a, n_in[j0:j1], c[:, None] - a, n_out[j0:j1])
    return InfluenceEstimate(test_indices=idx, value=value, se=se)


def _select_top(values: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's ``k`` largest values, ties to the leftmost.

    ``values`` has no NaN (``-inf`` ranks last); the positions come back in
    increasing order, ``k`` per row, as an ``(rows, k)`` array.
    """
    rows, cols = values.shape
    if k >= cols:
        return np.broadcast_to(np.arange(cols), (rows, cols)).copy()
    kth = np.partition(values, cols - k, axis=1)[:, cols - k : cols - k + 1]
    above = values > kth
    tied = values == kth
    need = k - above.sum(axis=1, keepdims=True)
    take = above | (tied & (np.cumsum(tied, axis=1) <= need))
    return np.nonzero(take)[1].reshape(rows, k)


def top_influencers(
    runs: InfluenceRuns, test_indices: npt.ArrayLike, *, k: int = 10, block_size: int = 256
) -> TopInfluencers:
    """The ``k`` most influential training examples of each given test example.

    Blockwise: training examples in chunks of :data:`_TRAIN_CHUNK` (each
    unpacked once), test examples in blocks of ``block_size``; each block
    keeps its ``k`` best per chunk and the best ``k`` of those are chosen at
    the end, so memory is ``O(R x chunk + block_size x chunk + F x k x chunks)``
    and the ``F x n_train`` matrix is never formed. The counts behind each
    influence are exact (float32 matrix products of 0/1 values below 2**24
    runs), so the values equal the definition's and ties are broken exactly.

    Parameters
    ----------
    runs : InfluenceRuns
        Plain or packed runs.
    test_indices : array-like of int, shape (F,)
        The flagged test examples (e.g. ``np.flatnonzero(pie_mask)``).
    k : int
        Influencers per test example, at least 1 (all of them when the
        training set has fewer than ``k`` examples).
    block_size : int
        Test examples per block.

    Returns
    -------
    TopInfluencers
        Per test example, training indices and influence values sorted
        descending (ties: smaller training index first; non-estimable
        training examples last, with NaN), with standard errors.
    """
    n = runs._n("in_run")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(ERR_K.format(k=k))
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InputError(ERR_BLOCK.format(block=block_size))
    k = min(int(k), n)
    idx = _test_indices(test_indices, runs._n("test_correct"))
    n_in = _column_sums(runs, "in_run")
    n_out = runs.n_runs - n_in
    flagged, c = _flagged_correct(runs, idx)
    f = idx.size
    cand_j: list[np.ndarray] = []  # per chunk, (F, <= k) training indices, increasing
    cand_v: list[np.ndarray] = []
    cand_a: list[np.ndarray] = []
    for j0 in range(0, n, _TRAIN_CHUNK):
        j1 = min(j0 + _TRAIN_CHUNK, n)
        cols = runs._train_columns(j0, j1).astype(np.float32)
        width = min(k, j1 - j0)
        pos_j = np.empty((f, width), dtype=np.int64)
        pos_v = np.empty((f, width))
        pos_a = np.empty((f, width))
        for t0 in range(0, f, block_size):
            t1 = min(t0 + block_size, f)
            a = _counts_in(flagged[t0:t1], cols)
            v, _ = _difference(a, n_in[j0:j1], c[t0:t1, None] - a, n_out[j0:j1])
            v = np.where(np.isnan(v), -np.inf, v)
            pos = _select_top(v, width)
            pos_j[t0:t1] = pos + j0
            pos_v[t0:t1] = np.take_along_axis(v, pos, axis=1)
            pos_a[t0:t1] = np.take_along_axis(a, pos, axis=1)
        cand_j.append(pos_j)
        cand_v.append(pos_v)
        cand_a.append(pos_a)
    all_j, all_v, all_a = (np.concatenate(x, axis=1) for x in (cand_j, cand_v, cand_a))
    pos = _select_top(all_v, k)  # candidates are in increasing training index
    order = np.argsort(-np.take_along_axis(all_v, pos, axis=1), axis=1, kind="stable")
    pos = np.take_along_axis(pos, order, axis=1)
    top_j = np.take_along_axis(all_j, pos, axis=1)
    top_a = np.take_along_axis(all_a, pos, axis=1)
    value, se = _difference(top_a, n_in[top_j], c[:, None] - top_a, n_out[top_j])
    return TopInfluencers(test_indices=idx, train_indices=top_j, influence=value, se=se)


# -- run counts --------------------------------------------------------------------
def _check_fraction(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p < 1.0:
        raise InputError(ERR_FRACTION.format(p=p))
    return float(p)


def se_bound(n_runs: int, *, subset_fraction: float) -> float:
    """Largest standard error of a memorization or influence estimate from ``n_runs`` runs.

    ``SE <= sqrt(1 / (4 R p) + 1 / (4 R (1 - p))) = 1 / (2 sqrt(R p (1 - p)))``, with
    ``R = n_runs`` and ``p = subset_fraction``: each side's Bernoulli variance is
    at most 1/4, and about ``R p`` runs include an example and ``R (1 - p)``
    exclude it (expected counts; the binomial spread of the counts is ignored).

    Parameters
    ----------
    n_runs : int
        Number of runs ``R`` (at least 1).
    subset_fraction : float
        Fraction ``p`` of the training set in each run, ``0 < p < 1``.

    Returns
    -------
    float
    """
    p = _check_fraction(subset_fraction)
    if isinstance(n_runs, bool) or not isinstance(n_runs, int | np.integer) or n_runs < 1:
        raise InputError(ERR_N_RUNS.format(n=n_runs))
    return 1.0 / (2.0 * math.sqrt(int(n_runs) * p * (1.0 - p)))


def required_runs(target_se: float, *, subset_fraction: float) -> int:
    """Runs needed for every memorization and influence SE to be at most ``target_se``.

    Inverts :func:`se_bound`: ``R = ceil(1 / (4 p (1 - p) target_se^2))``.
    E.g. ``p = 0.7``: 477 runs for SE 0.05, 1,905 for 0.025; ``p = 0.5``:
    400 and 1,600.

    Parameters
    ----------
    target_se : float
        The standard error wanted, ``> 0``.
    subset_fraction : float
        Fraction ``p`` of the training set in each run, ``0 < p < 1``.

    Returns
    -------
    int
    """
    p = _check_fraction(subset_fraction)
    if isinstance(target_se, bool) or not isinstance(target_se, int | float) or target_se <= 0:
        raise InputError(ERR_TARGET_SE.format(se=target_se))
    # Round away float noise before ceil (1 / (4 * 0.25 * 0.05**2) is 400.00000000000006).
    return max(1, math.ceil(round(1.0 / (4.0 * p * (1.0 - p) * target_se**2), 9)))


# -- files -------------------------------------------------------------------------
def save_runs(path: str | os.PathLike[str], runs: InfluenceRuns) -> Path:
    """Write ``runs`` bit-packed to an ``.npz`` (atomically, no pickles).

    Arrays: ``format`` (:data:`RUNS_FORMAT`), ``in_run``, ``train_correct``,
    ``test_correct`` (packed ``uint8``), ``n_train``, ``n_test``.

    Parameters
    ----------
    path : str or PathLike
        Destination (``.npz`` is not appended).
    runs : InfluenceRuns
        Plain or packed runs.

    Returns
    -------
    Path
        ``path``.
    """
    packed = runs.pack()
    arrays: dict[str, Any] = {name: getattr(packed, name) for name in _NAMES}
    arrays.update(
        format=np.asarray(RUNS_FORMAT),
        n_train=np.asarray(packed.n_train, dtype=np.int64),
        n_test=np.asarray(packed.n_test, dtype=np.int64),
    )

    def write(fh: IO[bytes]) -> None:
        np.savez(fh, **arrays)

    atomic_write_with(path, write, suffix=".npz")
    return Path(path)


def load_runs(path: str | os.PathLike[str]) -> InfluenceRuns:
    """Read runs written by :func:`save_runs`, packed (bounded: never unpickles, and no
    array is allocated before its header is checked against its bytes).

    Parameters
    ----------
    path : str or PathLike
        The ``.npz`` file.

    Returns
    -------
    InfluenceRuns
        Packed runs.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputError
        Not an ``.npz``, pickled arrays, a wrong format tag, missing arrays or
        inconsistent shapes; the message names the file.
    """
    src = str(path)
    if not Path(path).is_file():
        raise DataNotFoundError(ERR_RUNS_FILE_MISSING.format(path=src))
    data = read_npz(path, what="influence runs file", allowed=_FILE_KEYS)
    missing = [key for key in _FILE_KEYS if key not in data]
    if missing:
        raise InputError(
            ERR_RUNS_FILE_KEYS.format(path=src, missing=missing, keys=list(_FILE_KEYS))
        )
    fmt = data["format"]
    got = str(fmt) if fmt.shape == () and fmt.dtype.kind == "U" else repr(fmt)
    if got != RUNS_FORMAT:
        raise InputError(ERR_RUNS_FILE_FORMAT.format(path=src, want=RUNS_FORMAT, got=got))
    counts = []
    for key in ("n_train", "n_test"):
        arr = data[key]
        if arr.shape != () or arr.dtype.kind not in "iu":
            raise InputError(ERR_RUNS_FILE_BAD.format(path=src, reason=f"{key} is not an integer"))
        counts.append(int(arr))
    for key in _NAMES:
        if data[key].dtype != np.uint8:
            reason = f"{key} has dtype {data[key].dtype}, not packed uint8"
            raise InputError(ERR_RUNS_FILE_BAD.format(path=src, reason=reason))
    try:
        return InfluenceRuns(
            data["in_run"],
            data["train_correct"],
            data["test_correct"],
            n_train=counts[0],
            n_test=counts[1],
        )
    except InputError as exc:
        raise InputError(ERR_RUNS_FILE_BAD.format(path=src, reason=exc)) from None
