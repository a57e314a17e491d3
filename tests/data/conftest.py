"""Fixtures for the data tests: real shared data (skipped when absent), no network."""

from __future__ import annotations

import gzip
import os
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from compaudit.data import lookup

SKIP_UNSET = "COMPAUDIT_DATA_DIR is not set; point it at the shared data (../shared/data)"
SKIP_MISSING = "COMPAUDIT_DATA_DIR={root} has no {sub}/ folder"


@pytest.fixture(autouse=True)
def _no_network_and_isolated_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every data test: downloads fail loudly, the user cache and system dir are empty tmp dirs."""

    def refuse(url: str, timeout: float) -> None:
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(lookup, "_urlopen", refuse)
    root = tmp_path_factory.mktemp("isolated")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    monkeypatch.setattr(lookup, "SYSTEM_DATA_DIR", root / "system")
    monkeypatch.delenv(lookup.ENV_NO_DOWNLOAD, raising=False)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real shared data folder (``$COMPAUDIT_DATA_DIR``); skip when it is absent."""
    root = os.environ.get("COMPAUDIT_DATA_DIR", "")
    if not root:
        pytest.skip(SKIP_UNSET)
    path = Path(root).absolute()  # as given: sources name the path the user set
    if not path.is_dir():
        pytest.skip(f"COMPAUDIT_DATA_DIR={root} is not a folder")
    return path


def _sub(root: Path, sub: str) -> Path:
    path = root / sub
    if not path.is_dir():
        pytest.skip(SKIP_MISSING.format(root=root, sub=sub))
    return path


@pytest.fixture(scope="session")
def fmnist_dir(shared_data_dir: Path) -> Path:
    """``$COMPAUDIT_DATA_DIR/fashion-mnist`` (skip when absent)."""
    return _sub(shared_data_dir, "fashion-mnist")


@pytest.fixture(scope="session")
def adult_dir(shared_data_dir: Path) -> Path:
    """``$COMPAUDIT_DATA_DIR/adult`` (skip when absent)."""
    return _sub(shared_data_dir, "adult")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the idx format (big-endian dims after the magic)."""
    header = bytes((0, 0, 0x08, array.ndim)) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


@pytest.fixture(name="idx_bytes")
def idx_bytes_fixture() -> Callable[[np.ndarray], bytes]:
    """``idx_bytes(array)``: the raw (uncompressed) idx encoding of a uint8 array."""
    return idx_bytes


@pytest.fixture
def write_idx() -> Callable[[Path, np.ndarray], Path]:
    """``write_idx(path, array)``: an idx file, gzip-compressed when ``path`` ends in .gz."""
    return _write_idx


class FakeResponse:
    """What ``urllib.request.urlopen`` returns, as far as the downloader uses it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.headers = {"Content-Length": str(len(data))}

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        block = self.data[self.pos : end]
        self.pos += len(block)
        return block

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeWeb:
    """A fake web server: ``pages`` maps URL to bytes; other URLs fail as offline."""

    pages: dict[str, bytes] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    def open(self, url: str, timeout: float) -> FakeResponse:
        self.requested.append(url)
        if url not in self.pages:
            raise urllib.error.URLError("offline (test)")
        return FakeResponse(self.pages[url])


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> FakeWeb:
    """Replace the downloader's opener by a :class:`FakeWeb` (never the network)."""
    fake = FakeWeb()
    monkeypatch.setattr(lookup, "_urlopen", fake.open)
    return fake
