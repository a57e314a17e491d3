"""scikit-learn's bundled digits (1,797 8x8 grey images, 10 classes), offline.

Split (``digits:train`` / ``digits:test``, default ``test``): stratified and
deterministic. For each class ``c`` in order, its example indices (in
``load_digits`` order) are permuted by one ``numpy.random.default_rng(seed)``
generator (``seed`` option, default 0) and the first
``round(0.3 * n_c)`` go to the test split, the rest to train; each split is
then sorted by index. Ids are the indices in ``load_digits`` order.

``x`` is float32 ``[N, 1, 8, 8]``, pixel values (0..16) divided by 16;
``images`` holds the same pixels as uint8 scaled to 0..255 for the gallery.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from compaudit.data._spec import builtin_request, merge_options, opt_int
from compaudit.data.base import Dataset, Preprocessing

__all__ = ["TEST_FRACTION", "DigitsProvider", "stratified_split"]

TEST_FRACTION = 0.3
DEFAULT_SEED = 0
SPLITS = ("train", "test")


def stratified_split(
    y: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split of example indices into (train, test).

    Parameters
    ----------
    y : ndarray of int, shape (N,)
        Labels.
    test_fraction : float
        Share of each class sent to test, rounded per class.
    seed : int
        Seed of the one generator that permutes every class in turn.

    Returns
    -------
    train, test : ndarray of int64
        Sorted indices into ``y``.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = round(test_fraction * members.size)
        test.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class DigitsProvider:
    """``digits[:train|test]``: sklearn's 8x8 digits with a fixed stratified split."""

    name: str = "digits"
    summary: str = "digits[:train|test] (scikit-learn's 8x8 digits, 70/30 stratified, seed=)"

    def matches(self, spec: str) -> bool:
        """The name ``digits``."""
        base, _, _ = merge_options(spec, None)
        return base == self.name

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Load one split of the digits."""
        from sklearn import __version__ as sklearn_version
        from sklearn.datasets import load_digits

        req = builtin_request(self.name, spec, options, splits=SPLITS, allowed=("seed",))
        split, src, opts = req.split, req.src, req.options
        seed = opt_int(opts, "seed", src=src, default=DEFAULT_SEED)
        assert seed is not None  # has a default

        bunch = load_digits()
        pixels = np.asarray(bunch.images)  # float64 0..16, [1797, 8, 8]
        y_all = np.asarray(bunch.target, dtype=np.int64)
        train, test = stratified_split(y_all, test_fraction=TEST_FRACTION, seed=seed)
        idx = test if split == "test" else train
        raw = pixels[idx]
        return Dataset(
            name=src if seed == DEFAULT_SEED else f"{src}?seed={seed}",
            x=np.divide(raw, 16.0).astype(np.float32)[:, None],
            y=y_all[idx],
            ids=idx.astype(np.int64),
            class_names=tuple(str(i) for i in range(10)),
            preprocessing=Preprocessing(
                layout="NCHW",
                dtype="float32",
                scaling="divide:16",
                params={"height": 8, "width": 8, "channels": 1},
            ),
            images=np.rint(raw * (255.0 / 16.0)).astype(np.uint8),
            source=(
                f"sklearn.datasets.load_digits (scikit-learn {sklearn_version}); "
                f"split {split}: stratified, test fraction {TEST_FRACTION}, seed {seed}"
            ),
        )
