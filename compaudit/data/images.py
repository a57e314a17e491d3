"""Image folders: one sub-folder per class, read with Pillow.

Class names are the sub-folder names, sorted; example ids are the image
paths relative to the folder (``"cat/001.png"``). Options:

``mode``
    ``L`` (grey) or ``RGB``; every image is converted to it. Default: ``L``
    when the first image (in sorted order) is grey-level, else ``RGB``.
``size``
    ``HxW``: resize every image (bilinear). Without it all images must share
    one size.

``prep``
    A prep file (``compaudit fit-data DIR --out prep.json``, or a run
    directory's ``prep.json``): its mode, size (images are resized to it)
    and scaling (``divide:255``, ``none``, or ``standardize`` with per-channel
    ``mean``/``std`` on pixels / 255) are applied.

``x`` is float32 ``[N, C, H, W]`` scaled by 1/255 (or as the prep says);
``images`` keeps the uint8 pixels (``[N, H, W]`` or ``[N, H, W, 3]``) for the
PIE gallery.

An ``ids.csv`` file at the top of the folder (columns ``path``, ``id``:
``cat/001.png,17``) gives each image its dataset's own id; every image must
have a row. Ids that all parse as integers become integers.
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
from compaudit.data._pixels import scale_pixels
from compaudit.data._spec import file_request, merge_options
from compaudit.data.base import Dataset, Preprocessing
from compaudit.data.prep import given_prep
from compaudit.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderProvider"]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
OPTIONS = ("mode", "size", "prep")
IDS_FILE = "ids.csv"
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
ERR_IMG_PREP_AND = "{src}: give prep= or mode=/size=, not both (the prep fixes mode and size)"
ERR_IMG_PREP = (
    "{src}: the prep from {prep} is not an image folder's (params need mode L or RGB, "
    "height and width); write it with `compaudit fit-data TRAIN_DIR --out prep.json`"
)
ERR_IDS_COLUMNS = "{src}: {file} needs columns 'path' and 'id' (path relative to the folder)"
ERR_IDS_MISSING = (
    "{src}: {count} image(s) have no row in {file}, e.g. {examples}; add one row per image"
)
ERR_IDS_DUP = "{src}: {file} lists path {path!r} twice; keep one row per image"


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

    def load(
        self,
        spec: str,
        *,
        options: Mapping[str, str] | None = None,
        prep: Preprocessing | None = None,
        fit: bool = False,
    ) -> Dataset:
        """Read every image below the class sub-folders of ``spec``.

        ``prep`` (a model's preprocessing) is applied like ``?prep=``;
        ``fit`` changes nothing (an image folder's preparation is declared).
        """
        root, src, opts = file_request(spec, options, allowed=OPTIONS, kind="image folder")
        prep_src = "the model"
        if "prep" in opts:
            prep, prep_src = given_prep(opts["prep"], prep, src=src), opts["prep"]
        if prep is not None and ("mode" in opts or "size" in opts):
            raise InputError(ERR_IMG_PREP_AND.format(src=src))
        mode = opts.get("mode", "").upper() or None
        if mode not in (None, "L", "RGB"):
            raise InputError(ERR_IMG_MODE.format(src=src, mode=opts["mode"]))
        size = _parse_size(opts["size"], src) if opts.get("size") else None
        if prep is not None:
            mode, size = _prep_mode_size(prep, prep_src, src=src)

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
        # Both are set while reading the first image.
        assert first_shape is not None
        assert mode is not None
        if prep is None:
            prep = Preprocessing(
                layout="NCHW",
                dtype="float32",
                scaling="divide:255",
                params={
                    "mode": mode,
                    "height": first_shape[0],
                    "width": first_shape[1],
                    "resize": "bilinear" if size is not None else "none",
                },
            )
        rel_paths = [p.relative_to(root).as_posix() for p in files]
        ids_file = root / IDS_FILE
        return Dataset(
            name=spec,
            x=scale_pixels(nchw, prep, src=src, prep_src=prep_src),
            y=np.asarray(labels, dtype=np.int64),
            ids=_read_ids(ids_file, rel_paths, src=src)
            if ids_file.is_file()
            else strings(rel_paths),
            class_names=tuple(p.name for p in classes),
            preprocessing=prep,
            images=images,
            source=src,
        )


def _prep_mode_size(prep: Preprocessing, prep_src: str, *, src: str) -> tuple[str, tuple[int, int]]:
    """The mode and ``(height, width)`` an image prep fixes."""
    mode, height, width = (prep.params.get(k) for k in ("mode", "height", "width"))
    if (
        prep.layout != "NCHW"
        or mode not in ("L", "RGB")
        or not isinstance(height, int)
        or not isinstance(width, int)
        or height < 1
        or width < 1
    ):
        raise InputError(ERR_IMG_PREP.format(src=src, prep=prep_src))
    return str(mode), (height, width)


def _read_ids(path: Path, rel_paths: list[str], *, src: str) -> np.ndarray:
    """Ids of the images from ``ids.csv`` (``path``, ``id``), aligned with ``rel_paths``."""
    from compaudit.data.tables import read_csv_columns

    header, cells, _ = read_csv_columns(path, src=str(path))
    if "path" not in header or "id" not in header:
        raise InputError(ERR_IDS_COLUMNS.format(src=src, file=path))
    lookup: dict[str, str] = {}
    for rel, value in zip(
        cells[:, header.index("path")].tolist(), cells[:, header.index("id")].tolist(), strict=True
    ):
        if rel in lookup:
            raise InputError(ERR_IDS_DUP.format(src=src, file=path, path=rel))
        lookup[rel] = value
    missing = [r for r in rel_paths if r not in lookup]
    if missing:
        examples = ", ".join(repr(m) for m in missing[:3])
        raise InputError(
            ERR_IDS_MISSING.format(src=src, count=len(missing), file=path, examples=examples)
        )
    values = strings(lookup[r] for r in rel_paths)
    try:
        return values.astype(np.int64)
    except ValueError:
        return values
