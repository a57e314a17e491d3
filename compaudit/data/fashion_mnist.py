"""Fashion-MNIST from the official idx files (``fashion-mnist[:train|test]``).

The four files (``train-images-idx3-ubyte.gz`` ... ``t10k-labels-idx1-ubyte.gz``,
``.gz`` or not) are found as described in :mod:`compaudit.data.lookup`: an
explicit folder (``fashion-mnist?path=DIR`` or the folder itself as the spec),
``$COMPAUDIT_DATA_DIR/fashion-mnist/``, the user cache, then Debian's
``/usr/share/datasets/fashion-mnist/``; only if none has them are they
downloaded from the official mirror, checked by the sha256 of their
decompressed content (mirrors and Debian re-compress the files with
different gzip headers; the content is identical).

Options: ``path=DIR``; ``limit=N`` reads only the first N examples (fast
tests; the count check against 60,000 / 10,000 is then skipped).
``x`` is float32 ``[N, 1, 28, 28]`` divided by 255; ``images`` is uint8
``[N, 28, 28]``; ids are the example indices in the official files.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from math import prod
from pathlib import Path

import numpy as np

from compaudit.data._spec import builtin_request, merge_options, opt_int
from compaudit.data.base import Dataset, Preprocessing
from compaudit.data.lookup import Remote, locate
from compaudit.errors import InputError

__all__ = ["CLASS_NAMES", "FashionMnistProvider", "read_idx"]

NAME = "fashion-mnist"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = {"train": ("train", 60000), "test": ("t10k", 10000)}
# sha256 of the decompressed idx content: what downloads are checked against.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
# sha256 of the .gz files as Debian's dataset-fashion-mnist ships them (for reference;
# the official mirror's .gz bytes differ only in the gzip header).
DEBIAN_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}
FIX = (
    "set COMPAUDIT_DATA_DIR to a folder holding fashion-mnist/ with the official idx.gz files, "
    "install Debian's dataset-fashion-mnist (apt install dataset-fashion-mnist), "
    "or name the folder: fashion-mnist?path=DIR"
)

ERR_IDX_TRUNCATED = "{path}: truncated idx file ({what}); delete it and fetch it again"
ERR_IDX_CORRUPT = "{path}: unreadable idx file ({reason}); delete it and fetch it again"
ERR_IDX_MAGIC = (
    "{path}: not an idx file of unsigned bytes with {ndim} dimension(s) "
    "(magic 0x{got}, expected 0x{want})"
)
ERR_IDX_TRAILING = "{path}: has bytes beyond what its header declares; the file is not an idx file"
ERR_FMNIST_SHAPE = (
    "{src}: expected {n} images of 28x28 with as many labels in 0..9, "
    "got images {images} and labels {labels} (max {vmax}); these are not the official files"
)


def read_idx(path: Path, *, ndim: int, limit: int | None = None) -> np.ndarray:
    """Read an idx file of unsigned bytes (``.gz`` or plain) into a uint8 array.

    Parameters
    ----------
    path : Path
    ndim : int
        Expected number of dimensions (1 for labels, 3 for images).
    limit : int or None
        Read only the first ``limit`` items (the rest of the file is not
        checked).

    Raises
    ------
    InputError
        Wrong magic number, truncated or corrupt file (naming ``path``).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    header_len = 4 + 4 * ndim
    try:
        with opener(path, "rb") as fh:
            header = fh.read(header_len)
            want_magic = bytes((0, 0, 0x08, ndim))
            if len(header) >= 4 and header[:4] != want_magic:
                raise InputError(
                    ERR_IDX_MAGIC.format(
                        path=path, ndim=ndim, got=header[:4].hex(), want=want_magic.hex()
                    )
                )
            if len(header) < header_len:
                what = f"{len(header)} header bytes of {header_len}"
                raise InputError(ERR_IDX_TRUNCATED.format(path=path, what=what))
            dims = [int(d) for d in np.frombuffer(header, dtype=">u4", count=ndim, offset=4)]
            n = dims[0] if limit is None else min(dims[0], limit)
            want = n * prod(dims[1:])
            data = fh.read(want)
            if len(data) < want:
                what = f"{len(data)} data bytes, header promises {want}"
                raise InputError(ERR_IDX_TRUNCATED.format(path=path, what=what))
            if limit is None and fh.read(1):
                raise InputError(ERR_IDX_TRAILING.format(path=path))
    except EOFError as exc:  # gzip's report of a cut-off compressed stream
        what = f"compressed stream ends early: {exc}"
        raise InputError(ERR_IDX_TRUNCATED.format(path=path, what=what)) from None
    except (OSError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise InputError(ERR_IDX_CORRUPT.format(path=path, reason=exc)) from None
    # Copy: frombuffer views are read-only, which torch warns about.
    return np.frombuffer(data, dtype=np.uint8).reshape(n, *dims[1:]).copy()


def _files(prefix: str) -> list[tuple[str, str]]:
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    return [(f"{name}.gz", name) for name in names]


def _looks_like_fmnist_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_file()
        for prefix in ("train", "t10k")
        for pair in _files(prefix)
        for name in pair
    )


class FashionMnistProvider:
    """``fashion-mnist[:train|test]`` or a folder holding the idx files."""

    name: str = NAME
    summary: str = "fashion-mnist[:train|test] (official idx files; options path=, limit=)"

    def matches(self, spec: str) -> bool:
        """The name ``fashion-mnist``, or a folder holding its idx files."""
        base, _, _ = merge_options(spec, None)
        return base == NAME or _looks_like_fmnist_dir(Path(base))

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Find (or download) and parse one split."""
        req = builtin_request(NAME, spec, options, splits=SPLITS, allowed=("path", "limit"))
        split, src, explicit, opts = req.split, req.src, req.explicit, req.options
        prefix, expected_n = SPLITS[split]
        files = _files(prefix)
        remotes = [Remote(name, URL + name, CONTENT_SHA256[name], gunzip=True) for name, _ in files]
        image_path, label_path = locate(
            NAME,
            files,
            explicit=explicit,
            remotes=remotes,
            system="dataset-fashion-mnist",
            fix=FIX,
        )
        limit = opt_int(opts, "limit", src=src, minimum=1)
        images = read_idx(image_path, ndim=3, limit=limit)
        labels = read_idx(label_path, ndim=1, limit=limit).astype(np.int64)
        n = expected_n if limit is None else min(expected_n, limit)
        if images.shape != (n, 28, 28) or labels.shape != (n,) or labels.max(initial=0) > 9:
            raise InputError(
                ERR_FMNIST_SHAPE.format(
                    src=f"{image_path}, {label_path}",
                    n=n,
                    images=images.shape,
                    labels=labels.shape,
                    vmax=labels.max(initial=0),
                )
            )
        return Dataset(
            name=src if limit is None else f"{src}?limit={limit}",
            x=np.divide(images[:, None], np.float32(255), dtype=np.float32),
            y=labels,
            ids=np.arange(n, dtype=np.int64),
            class_names=CLASS_NAMES,
            preprocessing=Preprocessing(
                layout="NCHW",
                dtype="float32",
                scaling="divide:255",
                params={"height": 28, "width": 28, "channels": 1},
            ),
            images=images,
            source=f"{image_path}, {label_path}",
        )
