"""Image folders: pixels against Pillow, consistent modes, ragged folders, bad options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compaudit.data import _spec, images
from compaudit.data.images import ImageFolderProvider
from compaudit.errors import InputError


def _folder(root: Path, spec: dict[str, list[tuple[str, np.ndarray]]]) -> Path:
    """Write ``{class: [(file name, pixels)]}`` as PNGs under ``root``."""
    for cls, items in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, pixels in items:
            Image.fromarray(pixels).save(root / cls / name)
    return root


def _grey(seed: int, shape: tuple[int, ...] = (4, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _error(spec: str) -> str:
    with pytest.raises(InputError) as err:
        ImageFolderProvider().load(spec)
    return str(err.value)


def test_grey_folder(tmp_path: Path) -> None:
    pix = {i: _grey(i) for i in range(3)}
    root = _folder(
        tmp_path / "set",
        {"dog": [("b.png", pix[0])], "cat": [("z.png", pix[1]), ("a.png", pix[2])]},
    )
    (root / "README.txt").write_text("not an image")  # ignored: not in a class folder
    assert ImageFolderProvider().matches(str(root))
    ds = ImageFolderProvider().load(str(root))
    assert ds.class_names == ("cat", "dog")
    np.testing.assert_array_equal(ds.ids, ["cat/a.png", "cat/z.png", "dog/b.png"])
    np.testing.assert_array_equal(ds.y, [0, 0, 1])
    expected = np.stack([pix[2], pix[1], pix[0]])
    np.testing.assert_array_equal(ds.images, expected)
    assert ds.x.shape == (3, 1, 4, 5)
    assert ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x[:, 0], expected.astype(np.float32) / np.float32(255))
    assert ds.preprocessing.to_dict() == {
        "layout": "NCHW",
        "dtype": "float32",
        "scaling": "divide:255",
        "encoding": "none",
        "params": {"mode": "L", "height": 4, "width": 5, "resize": "none"},
    }


def test_rgb_inferred_from_first_image_and_grey_converted(tmp_path: Path) -> None:
    rgb = _grey(1, (4, 5, 3))
    grey = _grey(2)
    root = _folder(tmp_path / "set", {"a": [("1.png", rgb)], "b": [("2.png", grey)]})
    ds = ImageFolderProvider().load(str(root))
    assert ds.x.shape == (2, 3, 4, 5)
    assert ds.images is not None
    assert ds.images.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(ds.images[0], rgb)
    np.testing.assert_array_equal(ds.images[1], np.asarray(Image.fromarray(grey).convert("RGB")))
    np.testing.assert_array_equal(ds.x[0], rgb.transpose(2, 0, 1) / np.float32(255))


def test_mode_option_forces_grey(tmp_path: Path) -> None:
    rgb = _grey(1, (4, 5, 3))
    root = _folder(tmp_path / "set", {"a": [("1.png", rgb)]})
    ds = ImageFolderProvider().load(f"{root}?mode=L")
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(ds.images, expected[None])
    assert ds.x.shape == (1, 1, 4, 5)


def test_ragged_sizes_name_the_odd_file(tmp_path: Path) -> None:
    root = _folder(
        tmp_path / "set",
        {"a": [("1.png", _grey(1)), ("2.png", _grey(2, (6, 5)))], "b": [("3.png", _grey(3))]},
    )
    message = images.ERR_IMG_SIZE.format(
        src=root, file="a/2.png", got="6x5", first="a/1.png", want="4x5"
    )
    assert _error(str(root)) == message


def test_size_option_resizes_like_pillow(tmp_path: Path) -> None:
    big = _grey(2, (6, 5))
    root = _folder(tmp_path / "set", {"a": [("1.png", _grey(1)), ("2.png", big)]})
    ds = ImageFolderProvider().load(f"{root}?size=3x2")
    assert ds.x.shape == (2, 1, 3, 2)
    expected = np.asarray(Image.fromarray(big).resize((2, 3), Image.Resampling.BILINEAR))
    assert ds.images is not None
    np.testing.assert_array_equal(ds.images[1], expected)
    assert ds.preprocessing.params["resize"] == "bilinear"


def test_unreadable_image(tmp_path: Path) -> None:
    root = _folder(tmp_path / "set", {"a": [("1.png", _grey(1))]})
    (root / "a" / "2.png").write_bytes(b"not a png")
    assert _error(str(root)).startswith(f"{root}: cannot read image a/2.png (")


def test_images_outside_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    Image.fromarray(_grey(1)).save(root / "1.png")
    assert ImageFolderProvider().matches(str(root))
    assert _error(str(root)) == images.ERR_IMG_NO_CLASSES.format(src=root)


def test_class_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "set" / "a").mkdir(parents=True)
    (tmp_path / "set" / "a" / "notes.txt").write_text("x")
    suffixes = " ".join(sorted(images.IMAGE_SUFFIXES))
    message = images.ERR_IMG_NO_IMAGES.format(src=tmp_path / "set", suffixes=suffixes)
    assert _error(str(tmp_path / "set")) == message


def test_empty_folder_is_not_claimed(tmp_path: Path) -> None:
    assert not ImageFolderProvider().matches(str(tmp_path))
    assert not ImageFolderProvider().matches(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("mode=CMYK", images.ERR_IMG_MODE.format(src="{root}", mode="CMYK")),
        ("size=0x3", images.ERR_IMG_SIZE_OPT.format(src="{root}", size="0x3")),
        ("size=big", images.ERR_IMG_SIZE_OPT.format(src="{root}", size="big")),
        (
            "resize=1",
            _spec.ERR_UNKNOWN_OPTION.format(
                src="{root}", unknown="resize", allowed="mode, prep, size"
            ),
        ),
    ],
)
def test_bad_options(tmp_path: Path, query: str, message: str) -> None:
    root = _folder(tmp_path / "set", {"a": [("1.png", _grey(1))]})
    assert _error(f"{root}?{query}") == message.replace("{root}", str(root))
