"""Hostile predictions files fail closed (issue 11, parts 3 and 6).

Labels are validated in their own dtype before any cast, and every array of
a ``.npz`` is size-checked against its zip member and a limit before
anything is allocated. Each case below was accepted silently, crashed (an
internal error) or tried to allocate terabytes on the code before the fix;
each now exits 2 with one line naming the file, asserted against its
message constant.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit import population as pop_mod
from compaudit.errors import InputError
from compaudit.population import Population
from tests.fuzz._expect import assert_error
from tests.fuzz.conftest import fails_closed

Built = tuple[Path, str, dict[str, Any]]
"""A bad file, the message template its error must match, and the fields known in advance."""
Builder = Callable[[dict[str, Path], Path, pytest.MonkeyPatch], Built]

CASES: dict[str, Builder] = {}


def case(name: str) -> Callable[[Builder], Builder]:
    """Register a builder of one bad predictions file under a test id that says what is wrong."""

    def register(fn: Builder) -> Builder:
        CASES[name] = fn
        return fn

    return register


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a valid file, without its fingerprint (a spoiled file must not fail on it)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.pop("fingerprint")
    return arrays


def hand_written(good: dict[str, Path], out: Path, **changes: Any) -> Path:
    """The candidate file written by hand (``numpy.savez``) with ``changes`` (None drops a key)."""
    arrays = arrays_of(good["cand"])
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = np.asarray(value)
    path = out / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def npy_bytes(descr: str, shape: tuple[int, ...], payload: bytes) -> bytes:
    """A ``.npy`` member whose header says ``descr`` x ``shape``, followed by ``payload``."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def raw_npz(good: dict[str, Path], out: Path, replace: dict[str, bytes]) -> Path:
    """The candidate's arrays as a stored zip, with some members' raw bytes replaced."""
    path = out / "bad.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays_of(good["cand"]).items():
            name = f"{key}.npy"
            if name in replace:
                zf.writestr(name, replace.pop(name))
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                zf.writestr(name, buf.getvalue())
        for name, raw in replace.items():
            zf.writestr(name, raw)
    return path


def patch_member(
    path: Path,
    member: str,
    *,
    file_size: int | None = None,
    flags: int | None = None,
    method: int | None = None,
    version: int | None = None,
) -> None:
    """Rewrite fields of ``member``'s local and central zip headers in place (a lying header)."""
    buf = bytearray(path.read_bytes())
    name = member.encode()
    # (signature, offset of the version needed, the flag bits, the uncompressed size, the name)
    for sig, version_at, flag_at, size_at, name_at in (
        (b"PK\x03\x04", 4, 6, 22, 30),
        (b"PK\x01\x02", 6, 8, 24, 46),
    ):
        i = buf.find(sig)
        while i >= 0:
            if buf[i + name_at : i + name_at + len(name)] == name:
                if version is not None:
                    struct.pack_into("<H", buf, i + version_at, version)
                if flags is not None:
                    struct.pack_into("<H", buf, i + flag_at, flags)
                if method is not None:
                    struct.pack_into("<H", buf, i + flag_at + 2, method)
                if file_size is not None:
                    struct.pack_into("<I", buf, i + size_at, file_size)
            i = buf.find(sig, i + 1)
    path.write_bytes(bytes(buf))


def member_template(problem: str) -> str:
    return pop_mod.ERR_NPZ_MEMBER.replace("{problem}", problem)


# -- labels in their own dtype (part 3) --------------------------------------------------


@case("uint64-label-above-2**63-wraps-negative")
def _uint64(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    preds = arrays_of(good["cand"])["predictions"].astype(np.uint64)
    preds[0, 0] = 2**63 + 1  # was cast to int64 (negative), then to uint8: accepted silently
    known = {"key": "predictions", "vmax": 2**63 + 1, "dtype": "uint64"}
    path = hand_written(good, out, predictions=preds)
    return path, pop_mod.ERR_LABEL_TOO_LARGE, {**known, "limit": pop_mod.MAX_CLASSES - 1}


@case("float-label-1e20-overflows-int64")
def _float_huge(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    preds = arrays_of(good["cand"])["predictions"].astype(np.float64)
    preds[0, 0] = 1e20
    known = {"key": "predictions", "vmax": 1e20, "dtype": "float64"}
    return hand_written(good, out, predictions=preds), pop_mod.ERR_LABEL_TOO_LARGE, known


@case("uint32-label-4e9-means-4e9-classes")
def _uint32_huge(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    arrays = arrays_of(good["cand"])
    y, preds = arrays["y"].astype(np.uint32), arrays["predictions"].astype(np.uint32)
    y[0] = preds[:, 0] = 4_000_000_000
    path = hand_written(good, out, y=y, predictions=preds, meta=None)
    return path, pop_mod.ERR_LABEL_TOO_LARGE, {"key": "y", "vmax": 4_000_000_000}


@case("meta-num-classes-10**12")
def _many_classes(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, meta=json.dumps({"num_classes": 10**12}))
    known = {"what": "num_classes", "c": 10**12, "limit": pop_mod.MAX_CLASSES}
    return path, pop_mod.ERR_TOO_MANY_CLASSES, known


@case("class-names-2d-array")
def _names_2d(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, class_names=np.array([["a"], ["b"], ["c"], ["d"]]))
    got = "an array of shape (4, 1) and dtype <U1"
    return path, pop_mod.ERR_CLASS_NAMES, {"got": got}


@case("class-names-not-strings")
def _names_int(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, class_names=np.arange(4))
    got = "an array of shape (4,) and dtype int64"
    return path, pop_mod.ERR_CLASS_NAMES, {"got": got}


@case("ids-a-scalar")
def _ids_scalar(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, ids=np.asarray(7))
    return path, pop_mod.ERR_NOT_1D, {"what": "'ids'", "shape": ()}


# -- meta ------------------------------------------------------------------------------


@case("meta-a-json-list")
def _meta_list(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    return hand_written(good, out, meta="[1, 2]"), pop_mod.ERR_META_NOT_OBJECT, {"kind": "array"}


@case("meta-num-classes-abc")
def _meta_abc(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, meta='{"num_classes": "abc"}')
    return path, pop_mod.ERR_META_NUM_CLASSES, {"value": repr('"abc"')}


@case("meta-nested-100000-deep")
def _meta_deep(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, meta="[" * 100_000 + "]" * 100_000)
    return path, pop_mod.ERR_META_JSON, {}


@case("meta-integer-of-5000-digits")
def _meta_bigint(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out, meta='{"x": 1' + "0" * 5000 + "}")
    return path, pop_mod.ERR_META_JSON, {}


# -- bounded reading of the zip (part 6) -------------------------------------------------


@case("npy-header-claims-10**12-int64")
def _header_huge(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    raw = npy_bytes("<i8", (10**12,), bytes(600))
    path = raw_npz(good, out, {"predictions.npy": raw})
    template = member_template(pop_mod.PROBLEM_SIZE)
    known = {"member": "'predictions.npy'", "shape": (10**12,), "dtype": "int64"}
    return path, template, {**known, "claimed": 8 * 10**12}


@case("npy-zero-size-dtype-10**12-strings")
def _zero_itemsize(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = raw_npz(good, out, {"class_names.npy": npy_bytes("<U0", (10**12,), b"")})
    template = member_template(pop_mod.PROBLEM_ZERO_ITEMSIZE)
    return path, template, {"member": "'class_names.npy'"}


@case("zip-member-claims-3-GiB")
def _claims_3gib(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out)
    patch_member(path, "y.npy", file_size=3 * 2**30)
    known = {"limit": pop_mod.MAX_NPZ_BYTES, "env": pop_mod.ENV_MAX_NPZ_BYTES}
    return path, pop_mod.ERR_NPZ_TOO_LARGE, known


@case("zip-member-ratio-beyond-deflate")
def _ratio(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = out / "bad.npz"
    np.savez_compressed(path, **arrays_of(good["cand"]))  # type: ignore[arg-type]
    with zipfile.ZipFile(path) as zf:
        packed = zf.getinfo("y.npy").compress_size
    patch_member(path, "y.npy", file_size=packed * 5000)
    return path, member_template(pop_mod.PROBLEM_RATIO), {"member": "'y.npy'"}


@case("zip-bomb-over-configured-limit")
def _bomb(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    mp.setenv(pop_mod.ENV_MAX_NPZ_BYTES, "1000000")
    path = out / "bad.npz"
    arrays = arrays_of(good["cand"])
    np.savez_compressed(path, **arrays, attr_pad=np.zeros(8_000_000, np.uint8))  # type: ignore[arg-type]
    known = {"limit": 1_000_000, "env": pop_mod.ENV_MAX_NPZ_BYTES}
    return path, pop_mod.ERR_NPZ_TOO_LARGE, known


@case("zip-member-encrypted")
def _encrypted(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out)
    patch_member(path, "y.npy", flags=0x1)
    return path, member_template(pop_mod.PROBLEM_ENCRYPTED), {"member": "'y.npy'"}


@case("zip-member-unknown-compression-method")
def _method(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out)
    patch_member(path, "y.npy", method=99)
    return path, member_template(pop_mod.PROBLEM_METHOD), {"member": "'y.npy'", "method": 99}


@case("zip-member-needs-zip-version-14.2")
def _zip_version(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = hand_written(good, out)
    patch_member(path, "y.npy", version=142)
    return path, pop_mod.ERR_NPZ_UNREADABLE, {"reason": repr("zip file version 14.2")}


@case("a-npy-file-named-npz")
def _npy_not_npz(good: dict[str, Path], out: Path, mp: pytest.MonkeyPatch) -> Built:
    path = out / "bad.npz"
    with path.open("wb") as fh:
        np.save(fh, np.zeros((3, 600), np.uint8))
    return path, pop_mod.ERR_NPZ_UNREADABLE, {}


def report_args(ref: Path, cand: Path, out: Path) -> list[str]:
    return ["report", "-r", str(ref), "-c", str(cand), "-o", str(out / "report"), "-f", "json"]


@pytest.mark.parametrize("build", list(CASES.values()), ids=list(CASES))
def test_bad_predictions_fail_closed(
    build: Builder, good_preds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, template, known = build(good_preds, tmp_path, monkeypatch)
    run = fails_closed(report_args(good_preds["ref"], path, tmp_path), names=str(path))
    assert_error(run.error_lines[0], template, src=str(path), **known)


# -- the same checks on the Python API (Population.create) ------------------------------

Y = np.array([0, 1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "template", "known"),
    [
        (
            {"predictions": np.array([2**64 - 1, 0, 0, 0], np.uint64)},
            pop_mod.ERR_LABEL_TOO_LARGE,
            {"key": "predictions", "vmax": 2**64 - 1, "dtype": "uint64"},
        ),
        (
            {"predictions": np.array([9.3e18, 0, 0, 0])},
            pop_mod.ERR_LABEL_TOO_LARGE,
            {"key": "predictions", "vmax": 9.3e18, "dtype": "float64"},
        ),
        (
            {"class_names": np.array([["a", "b"], ["c", "d"]])},
            pop_mod.ERR_CLASS_NAMES,
            {"got": "an array of shape (2, 2)"},
        ),
        ({"class_names": [0, 1, 2, 3]}, pop_mod.ERR_CLASS_NAMES, {"got": "an entry of type int"}),
        ({"class_names": "abcd"}, pop_mod.ERR_CLASS_NAMES, {"got": "a single string"}),
        (
            {"num_classes": 10**9},
            pop_mod.ERR_TOO_MANY_CLASSES,
            {"what": "num_classes", "c": 10**9},
        ),
    ],
    ids=[
        "uint64-max",
        "float-above-int64",
        "class-names-2d",
        "class-names-ints",
        "class-names-one-string",
        "num-classes-10**9",
    ],
)
def test_create_validates_labels_in_their_own_dtype(
    kwargs: dict[str, Any], template: str, known: dict[str, Any]
) -> None:
    args: dict[str, Any] = {"predictions": Y, "y": Y, "source": "mem", **kwargs}
    with pytest.raises(InputError) as err:
        Population.create(**args)
    assert_error("compaudit: error: " + str(err.value), template, src="mem", **known)


def test_a_valid_file_still_loads_within_a_tight_limit(good_preds: dict[str, Path]) -> None:
    size = sum(i.file_size for i in zipfile.ZipFile(good_preds["ref"]).infolist())
    pop = pop_mod.load_population(good_preds["ref"], max_bytes=size)
    assert (pop.k, pop.n, pop.num_classes) == (3, 600, 4)
    with pytest.raises(InputError, match="more than the limit"):
        pop_mod.load_population(good_preds["ref"], max_bytes=size - 1)
