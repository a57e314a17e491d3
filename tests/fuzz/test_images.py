"""Hostile image folders: decompression bombs (issue 11, part 6).

A PNG header can claim 10**10 pixels in a few dozen bytes. Pillow raises
its own DecompressionBombError above twice its pixel limit (an internal
error before the fix) and only warns between one and two times the limit
(the image was then decoded whole); both now exit 2 with one line naming
the image and the folder.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compaudit.data import images
from tests.fuzz._expect import assert_error
from tests.fuzz.conftest import fails_closed


def png_claiming(width: int, height: int) -> bytes:
    """An 8-bit grey PNG whose header says ``width`` x ``height``, with one row of pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (10_000, 10_000)],
    ids=["png-claims-10**10-pixels", "png-claims-10**8-pixels-pillow-only-warns"],
)
def test_decompression_bomb_fails_closed(tmp_path: Path, width: int, height: int) -> None:
    assert width * height > Image.MAX_IMAGE_PIXELS  # type: ignore[operator]
    root = tmp_path / "set"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "cat" / "ok.png")
    (root / "dog" / "bomb.png").write_bytes(png_claiming(width, height))
    out = tmp_path / "preds.npz"
    args = ["predict", tmp_path / "model.onnx", "--data", root, "--out", out]
    run = fails_closed([str(a) for a in args], names="dog/bomb.png")
    assert_error(run.error_lines[0], images.ERR_IMG_BOMB, src=str(root), file="dog/bomb.png")
    assert not out.exists()
