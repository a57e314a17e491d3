"""Image folders: one sub-folder per class, read with Pillow.

Class names are the sub-folder names, sorted; example ids are the image
paths relative to the folder (``"cat/001.png"``). Options:

``mode``
    ``L`` (grey) or ``RGB``; every image is converted to it. Default: ``L``
    when the first image (in sorted order) is grey-level, else ``RGB``.
``size``
    ``HxW``: resize every image (bilinear). Without it all images must share
    one size.

``x`` is float32 ``[N, C, H, W]`` scaled by 1/255; ``images`` keeps the
uint8 pixels (``[N, H, W]`` or ``[N, H, W, 3]``) for the PIE gallery.
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from compaudit.data._common import progress, strings
from compaudit.data._spec import file_request, merge_options
from compaudit.data.base import Dataset, Preprocessing
from compaudit.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderProvider"]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
OPTIONS = ("mode", "size")
# Pillow modes that hold one grey level per pixel (with or without alpha).
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_SIZE_RE = re.compile(r"^(\d+)[xX](\d+)$")

ERR_IMG_NO_CLASSES = (
    "{src}: no class sub-folders; put the images of each class in their own sub-folder"
)
ERR_IMG_NO_IMAGES = "{src}: the class sub-folders hold no images ({suffixes})"
ERR_IMG_UNREADABLE = "{src}: cannot read image {file} ({reason}); remove or replace it"
ERR_IMG_BOMB = (
    "{src}: image {file} is too large to decode safely, a possible decompression bomb "
    "({reason}); remove it or replace it with a smaller image"
)
ERR_IMG_SIZE = (
    "{src}: image {file} is {got} (HxW) but {first} is {want}; resize them, "
    "or pass ?size=HxW to resize on load"
)
ERR_IMG_MODE = "{src}: option mode={mode} is not supported; use mode=L or mode=RGB"
ERR_IMG_SIZE_OPT = "{src}: option size={size} is not HxW with positive integers, e.g. size=28x28"


def _class_dirs(root: Path) -> list[Path]:
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _parse_size(value: str, src: str) -> tuple[int, int]:
    match = _SIZE_RE.match(value)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise InputError(ERR_IMG_SIZE_OPT.format(src=src, size=value))
    return int(match[1]), int(match[2])


class ImageFolderProvider:
    """Loads a folder of class sub-folders of images."""

    name: str = "images"
    summary: str = "DIR/ (an image folder: one sub-folder of images per class; mode=, size=)"

    def matches(self, spec: str) -> bool:
        """A folder holding at least one sub-folder or image file."""
        base, _, _ = merge_options(spec, None)
        path = Path(base)
        if not path.is_dir():
            return False
        return any(
            p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES
            for p in path.iterdir()
            if not p.name.startswith(".")
        )

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Read every image below the class sub-folders of ``spec``."""
        root, src, opts = file_request(spec, options, allowed=OPTIONS, kind="image folder")
        mode = opts.get("mode", "").upper() or None
        if mode not in (None, "L", "RGB"):
            raise InputError(ERR_IMG_MODE.format(src=src, mode=opts["mode"]))
        size = _parse_size(opts["size"], src) if opts.get("size") else None

        classes = _class_dirs(root)
        if not classes:
            raise InputError(ERR_IMG_NO_CLASSES.format(src=src))
        files: list[Path] = []
        labels: list[int] = []
        for index, folder in enumerate(classes):
            found = _image_files(folder)
            files.extend(found)
            labels.extend([index] * len(found))
        if not files:
            suffixes = " ".join(sorted(IMAGE_SUFFIXES))
            raise InputError(ERR_IMG_NO_IMAGES.format(src=src, suffixes=suffixes))

        pixels: list[np.ndarray] = []
        first_shape: tuple[int, int] | None = None
        for path in progress(files, total=len(files), description="reading images"):
            rel = path.relative_to(root).as_posix()
            try:
                # Pillow only warns below twice its pixel limit; a data image that big is
                # refused too (it would be decoded whole, then copied to float32).
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    img = Image.open(path)
                with img:
                    if mode is None:
                        mode = "L" if img.mode in _GREY_MODES else "RGB"
                    converted = img.convert(mode)
                    if size is not None and converted.size != (size[1], size[0]):
                        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                    arr = np.asarray(converted, dtype=np.uint8)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise InputError(ERR_IMG_BOMB.format(src=src, file=rel, reason=exc)) from None
            except (OSError, UnidentifiedImageError, ValueError, EOFError, struct.error) as exc:
                # Pillow's decoders raise EOFError / struct.error on some truncated files.
                raise InputError(ERR_IMG_UNREADABLE.format(src=src, file=rel, reason=exc)) from None
            shape = (arr.shape[0], arr.shape[1])
            if first_shape is None:
                first_shape = shape
            elif shape != first_shape:
                raise InputError(
                    ERR_IMG_SIZE.format(
                        src=src,
                        file=rel,
                        got=f"{shape[0]}x{shape[1]}",
                        first=files[0].relative_to(root).as_posix(),
                        want=f"{first_shape[0]}x{first_shape[1]}",
                    )
                )
            pixels.append(arr)

        images = np.stack(pixels)
        nchw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        x = np.divide(nchw, np.float32(255), dtype=np.float32)
        # Both are set while reading the first image.
        assert first_shape is not None
        assert mode is not None
        return Dataset(
            name=spec,
            x=np.ascontiguousarray(x),
            y=np.asarray(labels, dtype=np.int64),
            ids=strings(p.relative_to(root).as_posix() for p in files),
            class_names=tuple(p.name for p in classes),
            preprocessing=Preprocessing(
                layout="NCHW",
                dtype="float32",
                scaling="divide:255",
                params={
                    "mode": mode,
                    "height": first_shape[0],
                    "width": first_shape[1],
                    "resize": "bilinear" if size is not None else "none",
                },
            ),
            images=images,
            source=src,
        )
