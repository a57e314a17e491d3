"""``.npz`` datasets, the design's contract.

Keys:

``x``
    Model inputs, shape ``[N, ...]``, numeric; used as given (no scaling).
    The layout is inferred from ``x.ndim``: 2 -> ``NF``, 3 -> ``NHW``, 4 -> ``NCHW``.
``y``
    Integer class indices, shape ``[N]``.
``ids`` (optional)
    Unique example ids (ints or strings); default ``0..N-1``.
``class_names`` (optional)
    One string per class; default ``"0" .. str(max(y))``.
``attr_<name>`` (optional)
    One protected attribute per array, one value per example.
``images`` (optional)
    uint8 ``[N, H, W]`` or ``[N, H, W, 3]``, shown in the PIE gallery.
``preprocessing`` (optional)
    A JSON object (as a string array) with any of ``layout``, ``dtype``,
    ``scaling``, ``encoding``, ``params``, describing how ``x`` was made;
    it overrides what is inferred.

Any other key is an error, so that a misspelled ``attr-sex`` is not dropped.

Option ``prep=prep.json`` (a prep file, see :mod:`compaudit.data.prep`):
when ``x`` holds raw uint8 images (``[N, H, W]``, ``[N, H, W, C]`` or
``[N, C, H, W]``, C = 1 or 3), they are prepared as the prep says (scaling
``divide:255``, ``none``, or ``standardize`` with per-channel ``mean``/``std``
on pixels / 255) and kept as ``images`` for the gallery; otherwise ``x`` must
already be prepared that way (its declared or inferred preprocessing must
equal the prep's), or loading fails with the fields that differ.
The file is read with :func:`compaudit._npz.read_npz`: every array is
size-checked against its zip member and a limit (8 GiB uncompressed,
``$COMPAUDIT_MAX_DATASET_BYTES``) before it is allocated, and nothing is
unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from compaudit._npz import read_npz
from compaudit.data._common import (
    ERR_LABELS_RANGE,
    check_labels,
    check_length,
    check_unique_ids,
)
from compaudit.data._pixels import scale_pixels
from compaudit.data._spec import file_request, merge_options
from compaudit.data.base import Dataset, Preprocessing
from compaudit.data.prep import given_prep, plain, prep_mismatch
from compaudit.errors import DataNotFoundError, InputError

__all__ = ["NpzProvider"]

ATTR_PREFIX = "attr_"
KNOWN_KEYS = ("x", "y", "ids", "class_names", "images", "preprocessing")
LAYOUTS = {2: "NF", 3: "NHW", 4: "NCHW"}

ERR_NPZ_MISSING = "{src}: file not found; check the path of the data spec"
ERR_NPZ_KEY = "{src}: missing array '{key}'; a dataset .npz needs 'x' and 'y'"
ERR_NPZ_UNKNOWN = (
    "{src}: unknown array(s) {keys}; allowed: x, y, ids, class_names, images, "
    "preprocessing and attr_<name>"
)
ERR_X_DTYPE = "{src}: 'x' must be numeric, got dtype {dtype}"
ERR_X_NDIM = (
    "{src}: 'x' has shape {shape}; expected [N, F], [N, H, W] or [N, C, H, W] "
    "(or declare the layout in 'preprocessing')"
)
ERR_X_FINITE = "{src}: 'x' has {count} NaN or infinite value(s); clean the inputs"
ERR_CLASS_NAMES = "{src}: 'class_names' must be a 1-D array of strings, got shape {shape}"
ERR_ATTR = "{src}: attribute '{key}' must be 1-D (one value per example), got shape {shape}"
ERR_IMAGES = "{src}: 'images' must be uint8 [N, H, W] or [N, H, W, 3], got {dtype} {shape}"
ERR_PREPROCESSING = (
    "{src}: 'preprocessing' must be a JSON object with keys among "
    "layout, dtype, scaling, encoding, params ({reason})"
)
ERR_LAYOUT = "{src}: declared layout '{layout}' does not fit 'x' of shape {shape}"
ERR_RAW_SHAPE = (
    "{src}: raw uint8 'x' of shape {shape} is not [N, H, W], [N, H, W, C] or [N, C, H, W] "
    "with C = 1 or 3"
)
ERR_RAW_SIZE = "{src}: images are {got} (HxW) but the prep from {prep} expects {want}"
ERR_RAW_DECLARED = (
    "{src}: holds raw uint8 'x' and a 'preprocessing' array; with prep= the prep file "
    "declares the preprocessing, drop the array"
)


def _preprocessing(arrays: Mapping[str, np.ndarray], x: np.ndarray, src: str) -> Preprocessing:
    fields: dict[str, Any] = {"layout": LAYOUTS.get(x.ndim, ""), "dtype": str(x.dtype)}
    if "preprocessing" in arrays:
        try:
            declared = json.loads(str(arrays["preprocessing"].reshape(-1)[0]))
        except (ValueError, IndexError, RecursionError) as exc:
            reason = exc if not isinstance(exc, RecursionError) else "nested too deeply"
            raise InputError(ERR_PREPROCESSING.format(src=src, reason=reason)) from None
        allowed = {"layout", "dtype", "scaling", "encoding", "params"}
        if not isinstance(declared, dict) or set(declared) - allowed:
            reason = f"got {declared!r:.80}"
            raise InputError(ERR_PREPROCESSING.format(src=src, reason=reason))
        if not isinstance(declared.get("params", {}), dict):
            raise InputError(ERR_PREPROCESSING.format(src=src, reason="params is not an object"))
        fields.update(declared)
    layout = str(fields["layout"])
    if not layout:
        raise InputError(ERR_X_NDIM.format(src=src, shape=x.shape))
    if len(layout) != x.ndim:
        raise InputError(ERR_LAYOUT.format(src=src, layout=layout, shape=x.shape))
    return Preprocessing(
        layout=layout,
        dtype=str(fields["dtype"]),
        scaling=str(fields.get("scaling", "none")),
        encoding=str(fields.get("encoding", "none")),
        params=dict(fields.get("params", {})),
    )


class NpzProvider:
    """Loads ``*.npz`` datasets (see the module docstring for the keys)."""

    name: str = "npz"
    summary: str = "file.npz (arrays x, y; optional ids, class_names, attr_<name>)"

    def matches(self, spec: str) -> bool:
        """Any spec whose path ends in ``.npz``."""
        base, _, _ = merge_options(spec, None)
        return base.lower().endswith(".npz")

    def load(
        self,
        spec: str,
        *,
        options: Mapping[str, str] | None = None,
        prep: Preprocessing | None = None,
        fit: bool = False,
    ) -> Dataset:
        """Load and validate the ``.npz`` named by ``spec`` (option ``prep=``).

        ``prep`` (a model's preprocessing) is applied like ``?prep=``;
        ``fit`` changes nothing (an ``.npz`` declares its preprocessing).
        """
        path, src, opts = file_request(spec, options, allowed=("prep",), kind=".npz file")
        prep_src = "the model"
        if "prep" in opts:
            prep, prep_src = given_prep(opts["prep"], prep, src=src), opts["prep"]
        if not path.is_file():
            raise DataNotFoundError(ERR_NPZ_MISSING.format(src=src))
        arrays = read_npz(path, what="dataset")  # bounded: no 10**12-element header allocates
        for key in ("x", "y"):
            if key not in arrays:
                raise InputError(ERR_NPZ_KEY.format(src=src, key=key))
        unknown = sorted(k for k in arrays if k not in KNOWN_KEYS and not k.startswith(ATTR_PREFIX))
        if unknown:
            raise InputError(ERR_NPZ_UNKNOWN.format(src=src, keys=", ".join(unknown)))

        x = arrays["x"]
        if x.dtype.kind not in "fiub":
            raise InputError(ERR_X_DTYPE.format(src=src, dtype=x.dtype))
        raw_images = None
        if prep is not None and x.dtype == np.uint8:
            if "preprocessing" in arrays:
                raise InputError(ERR_RAW_DECLARED.format(src=src))
            raw_images, nchw = _raw_pixels(x, src)
            _check_raw_size(nchw, prep, src=src, prep_src=prep_src)
            x = scale_pixels(nchw, prep, src=src, prep_src=prep_src)
            preprocessing = prep
        else:
            preprocessing = _preprocessing(arrays, x, src)
            if prep is not None and plain(prep.to_dict()) != plain(preprocessing.to_dict()):
                raise prep_mismatch(
                    prep.to_dict(), preprocessing.to_dict(), model=prep_src, data=src
                )
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            count = int(x.size - np.isfinite(x).sum())
            raise InputError(ERR_X_FINITE.format(src=src, count=count))
        y = check_labels(arrays["y"], src=f"{src} 'y'")
        n = y.shape[0]
        check_length(x, n, key="x", src=src)

        if "class_names" in arrays:
            names = arrays["class_names"]
            if names.ndim != 1 or names.dtype.kind not in "US":
                raise InputError(ERR_CLASS_NAMES.format(src=src, shape=names.shape))
            class_names = tuple(str(v) for v in names)
        else:
            class_names = tuple(str(i) for i in range(int(y.max()) + 1 if n else 0))
        if n and y.max() >= len(class_names):
            raise InputError(
                ERR_LABELS_RANGE.format(src=f"{src} 'y'", vmax=y.max(), c=len(class_names))
            )

        ids = arrays.get("ids", np.arange(n, dtype=np.int64))
        check_length(ids, n, key="ids", src=src)
        check_unique_ids(ids, src=f"{src} 'ids'")

        attributes: dict[str, np.ndarray] = {}
        for key in sorted(k for k in arrays if k.startswith(ATTR_PREFIX)):
            values = arrays[key]
            if values.ndim != 1:
                raise InputError(ERR_ATTR.format(src=src, key=key, shape=values.shape))
            check_length(values, n, key=key, src=src)
            attributes[key[len(ATTR_PREFIX) :]] = values

        images = arrays.get("images", raw_images)
        if images is not None:
            rgb = images.ndim == 4 and images.shape[-1] == 3
            if images.dtype != np.uint8 or not (images.ndim == 3 or rgb):
                raise InputError(ERR_IMAGES.format(src=src, dtype=images.dtype, shape=images.shape))
            check_length(images, n, key="images", src=src)
        return Dataset(
            name=spec,
            x=x,
            y=y,
            ids=ids,
            class_names=class_names,
            attributes=attributes,
            preprocessing=preprocessing,
            images=images,
            source=src,
        )


def _raw_pixels(x: np.ndarray, src: str) -> tuple[np.ndarray, np.ndarray]:
    """``(gallery images [N, H, W] or [N, H, W, 3], pixels [N, C, H, W])`` of raw uint8 ``x``."""
    if x.ndim == 3:
        return x, x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        nchw = x.transpose(0, 3, 1, 2)
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        nchw = x
    else:
        raise InputError(ERR_RAW_SHAPE.format(src=src, shape=x.shape))
    gallery = nchw[:, 0] if nchw.shape[1] == 1 else nchw.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(gallery), nchw


def _check_raw_size(nchw: np.ndarray, prep: Preprocessing, *, src: str, prep_src: str) -> None:
    want = (prep.params.get("height"), prep.params.get("width"))
    got = (int(nchw.shape[2]), int(nchw.shape[3]))
    if want != (None, None) and want != got:
        raise InputError(
            ERR_RAW_SIZE.format(
                src=src, got=f"{got[0]}x{got[1]}", prep=prep_src, want=f"{want[0]}x{want[1]}"
            )
        )
