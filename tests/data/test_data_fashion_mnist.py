"""Fashion-MNIST: idx parsing, lookup order, not-found listing, checked download, real files."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from compaudit.data import fashion_mnist as fm
from compaudit.data import lookup
from compaudit.data.fashion_mnist import FashionMnistProvider, read_idx
from compaudit.data.loading import load_dataset
from compaudit.errors import DataNotFoundError, InputError

if TYPE_CHECKING:
    from .conftest import FakeWeb

WriteIdx = Callable[[Path, np.ndarray], Path]
IdxBytes = Callable[[np.ndarray], bytes]
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _fake_split(
    folder: Path, write_idx: WriteIdx, *, n: int = 5, fill: int = 0, prefix: str = "t10k"
) -> tuple[np.ndarray, np.ndarray]:
    """A tiny Fashion-MNIST-shaped split: n 28x28 images whose first pixel is ``fill``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(fill)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = fill
    labels = (np.arange(n) % 10).astype(np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


# -- idx parsing ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
def test_read_idx_round_trip(tmp_path: Path, write_idx: WriteIdx, name: str) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 3, 2), dtype=np.uint8)
    path = write_idx(tmp_path / name, arr)
    np.testing.assert_array_equal(read_idx(path, ndim=3), arr)
    np.testing.assert_array_equal(read_idx(path, ndim=3, limit=2), arr[:2])
    np.testing.assert_array_equal(read_idx(path, ndim=3, limit=100), arr)
    assert read_idx(path, ndim=3).flags.writeable


def test_wrong_magic(tmp_path: Path, write_idx: WriteIdx) -> None:
    path = write_idx(tmp_path / "l.gz", np.zeros(4, np.uint8))
    with pytest.raises(InputError) as err:
        read_idx(path, ndim=3)
    assert str(err.value) == fm.ERR_IDX_MAGIC.format(
        path=path, ndim=3, got="00000801", want="00000803"
    )


def test_truncated_gz_names_the_file(tmp_path: Path, write_idx: WriteIdx) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    full = write_idx(tmp_path / "full.gz", arr).read_bytes()
    cut = tmp_path / "t10k-images-idx3-ubyte.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputError) as err:
        read_idx(cut, ndim=3)
    assert str(err.value).startswith(f"{cut}: truncated idx file (compressed stream ends early")


def test_truncated_plain_file(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 2, 2), np.uint8))[:-1])
    with pytest.raises(InputError) as err:
        read_idx(path, ndim=3)
    what = "11 data bytes, header promises 12"
    assert str(err.value) == fm.ERR_IDX_TRUNCATED.format(path=path, what=what)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(InputError) as err:
        read_idx(short, ndim=3)
    what = "2 header bytes of 16"
    assert str(err.value) == fm.ERR_IDX_TRUNCATED.format(path=short, what=what)


def test_trailing_bytes(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(InputError) as err:
        read_idx(path, ndim=1)
    assert str(err.value) == fm.ERR_IDX_TRAILING.format(path=path)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(InputError) as err:
        read_idx(path, ndim=1)
    assert str(err.value).startswith(f"{path}: unreadable idx file (")


# -- provider on synthetic folders ------------------------------------------------------


def test_explicit_folder_with_limit(tmp_path: Path, write_idx: WriteIdx) -> None:
    images, labels = _fake_split(tmp_path / "fm", write_idx)
    ds = load_dataset(f"fashion-mnist?path={tmp_path / 'fm'}&limit=3")
    assert ds.name == "fashion-mnist:test?limit=3"
    np.testing.assert_array_equal(ds.images, images[:3])
    np.testing.assert_array_equal(ds.y, labels[:3])
    np.testing.assert_array_equal(ds.x[:, 0], images[:3] / np.float32(255))
    assert ds.class_names == fm.CLASS_NAMES
    same = load_dataset(f"{tmp_path / 'fm'}:test?limit=3")  # the folder as the spec
    assert same.fingerprint() == ds.fingerprint()


def test_wrong_count_without_limit(tmp_path: Path, write_idx: WriteIdx) -> None:
    _fake_split(tmp_path / "fm", write_idx)
    with pytest.raises(InputError) as err:
        FashionMnistProvider().load(str(tmp_path / "fm"))
    src = f"{tmp_path / 'fm' / TEST_FILES[0]}, {tmp_path / 'fm' / TEST_FILES[1]}"
    assert str(err.value) == fm.ERR_FMNIST_SHAPE.format(
        src=src, n=10000, images=(5, 28, 28), labels=(5,), vmax=4
    )


def test_lookup_order(tmp_path: Path, write_idx: WriteIdx, monkeypatch: pytest.MonkeyPatch) -> None:
    env, cache, system = tmp_path / "env", tmp_path / "xdg", tmp_path / "sys"
    monkeypatch.setenv("COMPAUDIT_DATA_DIR", str(env))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(lookup, "SYSTEM_DATA_DIR", system)
    _fake_split(system / "fashion-mnist", write_idx, fill=3)
    assert FashionMnistProvider().load("fashion-mnist?limit=2").x[0, 0, 0, 0] == np.float32(3 / 255)
    _fake_split(cache / "compaudit" / "data" / "fashion-mnist", write_idx, fill=2)
    assert FashionMnistProvider().load("fashion-mnist?limit=2").x[0, 0, 0, 0] == np.float32(2 / 255)
    _fake_split(env / "fashion-mnist", write_idx, fill=1)
    ds = FashionMnistProvider().load("fashion-mnist?limit=2")
    assert ds.x[0, 0, 0, 0] == np.float32(1 / 255)
    assert ds.source.startswith(str(env / "fashion-mnist"))


def _setup_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    env, cache, system = tmp_path / "env", tmp_path / "xdg", tmp_path / "sys"
    monkeypatch.setenv("COMPAUDIT_DATA_DIR", str(env))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(lookup, "SYSTEM_DATA_DIR", system)
    return env, cache, system


def _not_found(env: Path | None, cache: Path, system: Path, download: str) -> str:
    first = (
        f"{env}/fashion-mnist ($COMPAUDIT_DATA_DIR) | "
        if env
        else "$COMPAUDIT_DATA_DIR/fashion-mnist ($COMPAUDIT_DATA_DIR is not set) | "
    )
    return (
        "dataset 'fashion-mnist' not found; looked for "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in: "
        + first
        + f"{cache}/compaudit/data/fashion-mnist (user cache) | "
        f"{system}/fashion-mnist (system copy, Debian package dataset-fashion-mnist). "
        f"{download} "
        "Fix: set COMPAUDIT_DATA_DIR to a folder holding fashion-mnist/ with the official "
        "idx.gz files, install Debian's dataset-fashion-mnist (apt install "
        "dataset-fashion-mnist), or name the folder: fashion-mnist?path=DIR"
    )


def test_not_found_lists_every_place_downloads_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, cache, system = _setup_empty(tmp_path, monkeypatch)
    monkeypatch.setenv("COMPAUDIT_NO_DOWNLOAD", "1")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion-mnist")
    disabled = "Not downloaded: downloads are disabled by $COMPAUDIT_NO_DOWNLOAD=1."
    assert str(err.value) == _not_found(env, cache, system, disabled)


def test_not_found_offline_env_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb
) -> None:
    _, cache, system = _setup_empty(tmp_path, monkeypatch)
    monkeypatch.delenv("COMPAUDIT_DATA_DIR")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion-mnist:test")
    dest = cache / "compaudit" / "data" / "fashion-mnist"
    failed = (
        f"Download from {fm.URL}{TEST_FILES[0]} into {dest} failed: <urlopen error offline (test)>."
    )
    assert str(err.value) == _not_found(None, cache, system, failed)
    assert web.requested == [fm.URL + TEST_FILES[0]]
    assert not dest.exists()  # the network failed before anything was written


def test_explicit_folder_is_never_downloaded_into(tmp_path: Path, web: FakeWeb) -> None:
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(f"fashion-mnist?path={tmp_path}")
    assert str(err.value).endswith(
        f"in: {tmp_path} (given folder). {lookup.DL_EXPLICIT} Fix: {fm.FIX}"
    )
    assert web.requested == []


def test_download_checks_content_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb, idx_bytes: IdxBytes
) -> None:
    _, cache, _ = _setup_empty(tmp_path, monkeypatch)
    images = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1], np.uint8)
    blobs = {TEST_FILES[0]: idx_bytes(images), TEST_FILES[1]: idx_bytes(labels)}
    sums = {name: hashlib.sha256(raw).hexdigest() for name, raw in blobs.items()}
    monkeypatch.setattr(fm, "CONTENT_SHA256", sums)
    # The mirror's gzip header differs from any local copy's: only the content is checked.
    for name, raw in blobs.items():
        web.pages[fm.URL + name] = gzip.compress(raw, mtime=12345)
    ds = load_dataset("fashion-mnist?limit=4")
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.y, labels)
    dest = cache / "compaudit" / "data" / "fashion-mnist"
    assert sorted(p.name for p in dest.iterdir()) == sorted(TEST_FILES)
    assert web.requested == [fm.URL + name for name in TEST_FILES]
    load_dataset("fashion-mnist?limit=4")  # now cached: no second download
    assert len(web.requested) == 2


def test_download_with_wrong_sha256_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb
) -> None:
    _, cache, _ = _setup_empty(tmp_path, monkeypatch)
    bad = gzip.compress(b"tampered")
    web.pages[fm.URL + TEST_FILES[0]] = bad
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion-mnist")
    reason = lookup.ERR_SHA.format(
        name=TEST_FILES[0],
        expected=fm.CONTENT_SHA256[TEST_FILES[0]],
        got=hashlib.sha256(b"tampered").hexdigest(),
    )
    assert reason in str(err.value)
    assert list((cache / "compaudit" / "data" / "fashion-mnist").iterdir()) == []


# -- the real files --------------------------------------------------------------------


def _sha256(path: Path, *, gunzip: bool = False) -> str:
    data = gzip.decompress(path.read_bytes()) if gunzip else path.read_bytes()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.shared_data
def test_known_sha256_match_the_shared_copy(fmnist_dir: Path) -> None:
    sums = dict(
        reversed(line.split())
        for line in (fmnist_dir.parent / "SHA256SUMS").read_text().splitlines()
    )
    for name in fm.CONTENT_SHA256:
        path = fmnist_dir / name
        assert _sha256(path) == fm.DEBIAN_GZ_SHA256[name] == sums[f"fashion-mnist/{name}"]
        assert _sha256(path, gunzip=True) == fm.CONTENT_SHA256[name]


@pytest.mark.shared_data
@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
def test_real_shapes_and_label_counts(fmnist_dir: Path, split: str, n: int) -> None:
    ds = load_dataset(f"fashion-mnist:{split}")
    assert ds.x.shape == (n, 1, 28, 28)
    assert ds.x.dtype == np.float32
    assert ds.images is not None
    assert ds.images.shape == (n, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y, minlength=10), np.full(10, n // 10))
    assert ds.source.startswith(str(fmnist_dir))
    # x is images / 255 exactly as float32 division gives it.
    np.testing.assert_array_equal(ds.x[:100, 0], ds.images[:100] / np.float32(255))
    assert float(ds.x.max()) == 1.0


@pytest.mark.shared_data
def test_download_of_the_real_files_passes_the_checks(
    fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, web: FakeWeb
) -> None:
    _setup_empty(tmp_path, monkeypatch)
    for name in TEST_FILES:
        web.pages[fm.URL + name] = (fmnist_dir / name).read_bytes()
    downloaded = load_dataset("fashion-mnist:test")
    monkeypatch.setenv("COMPAUDIT_DATA_DIR", str(fmnist_dir.parent))
    assert downloaded.fingerprint() == load_dataset("fashion-mnist:test").fingerprint()
