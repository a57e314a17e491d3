"""Raw uint8 pixels -> model inputs, as a declared preprocessing says (images and .npz)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compaudit.data.base import Preprocessing
from compaudit.errors import InputError

__all__ = ["ERR_PIXEL_PREP", "PIXEL_SCALINGS", "scale_pixels"]

PIXEL_SCALINGS = ("divide:255", "standardize", "none")
ERR_PIXEL_PREP = (
    "{src}: the prep from {prep} cannot prepare uint8 images ({reason}); an image prep has "
    "layout NCHW, dtype float32 and scaling divide:255, none, or standardize with "
    "params mean and std (one per channel, on pixels / 255)"
)


def _per_channel(value: Any, channels: int) -> np.ndarray | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != channels:
        return None
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return arr.reshape(1, channels, 1, 1)


def scale_pixels(nchw: np.ndarray, prep: Preprocessing, *, src: str, prep_src: str) -> np.ndarray:
    """Apply ``prep``'s scaling to uint8 ``[N, C, H, W]`` pixels; float32, contiguous.

    Raises
    ------
    InputError
        The prep is not an image prep (layout, dtype, unknown scaling, bad
        mean/std), naming both files.
    """

    def fail(reason: str) -> InputError:
        return InputError(ERR_PIXEL_PREP.format(src=src, prep=prep_src, reason=reason))

    if prep.layout != "NCHW" or prep.dtype != "float32":
        raise fail(f"layout {prep.layout}, dtype {prep.dtype}")
    if prep.scaling == "divide:255":
        return np.ascontiguousarray(np.divide(nchw, np.float32(255), dtype=np.float32))
    if prep.scaling == "none":
        return np.ascontiguousarray(nchw, dtype=np.float32)
    if prep.scaling == "standardize":
        channels = nchw.shape[1]
        mean = _per_channel(prep.params.get("mean"), channels)
        std = _per_channel(prep.params.get("std"), channels)
        if mean is None or std is None or not (std > 0).all():
            raise fail(f"standardize needs {channels} mean and {channels} positive std values")
        x = np.divide(nchw, np.float32(255), dtype=np.float32)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)
    raise fail(f"scaling {prep.scaling!r}")
