"""Property fuzzing of what users hand the tool (issue 11): every outcome is clean.

Hypothesis mutates a valid predictions ``.npz`` (bytes, ``.npy`` headers,
keys, values) and valid policy YAML files (characters, hostile fragments,
values), runs the real CLI on each, and asserts the outcome is exit 0 or 1,
or a clean exit 2: no traceback, no internal error, exactly one
``compaudit: error:`` line. Derandomized, no example database, a small
``max_examples``: the same examples every run, well under 30 s in CI.
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import Run, run_cli

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # a fixed seed: CI sees the same examples every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
POLICIES = sorted((Path(__file__).parents[2] / "examples" / "policies").glob("*.yaml"))


def assert_clean(run: Run) -> None:
    """Exit 0 or 1, or exit 2 with one error line and no traceback or internal error."""
    assert run.code in (0, 1, 2), (run.code, run.stderr[-2000:])
    assert "Traceback" not in run.stdout + run.stderr, run.stderr[-2000:]
    assert "internal error" not in run.stderr, run.stderr[-2000:]
    if run.code == 2:
        assert len(run.error_lines) == 1, run.stderr[-2000:]


# -- predictions .npz ---------------------------------------------------------------------

DESCRS = ["<i8", "<u8", "|u1", ">i4", "<f8", "<f2", "|b1", "<U3", "<U0", "|V8", "|O", "<c16"]
DIMS = [-1, 0, 1, 3, 4, 599, 600, 601, 10**6, 10**12, 2**62]


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def zip_of(members: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


@st.composite
def mutated_npz(draw: st.DrawFn, arrays: dict[str, np.ndarray]) -> bytes:
    """One mutation of a valid predictions file: bytes, a header, the keys or a value."""
    members = {f"{k}.npy": npy(v) for k, v in arrays.items()}
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    kind = draw(st.sampled_from(["bytes", "truncate", "header", "keys", "value"]))
    if draw(st.booleans()):
        # Without its fingerprint a spoiled file is not refused for that alone.
        members.pop("fingerprint.npy")
    names = sorted(members)
    if kind == "header":
        name = draw(st.sampled_from(names))
        shape = tuple(draw(st.lists(st.sampled_from(DIMS), max_size=3)))
        payload = members[name][len(npy_header("<i8", arrays[name[:-4]].shape)) :]
        members[name] = npy_header(draw(st.sampled_from(DESCRS)), shape) + payload
    elif kind == "keys":
        name = draw(st.sampled_from(names))
        raw = members.pop(name)
        new = draw(st.one_of(st.none(), st.text(max_size=12), st.sampled_from(names)))
        if new is not None:
            members[new + draw(st.sampled_from([".npy", ""]))] = raw
    elif kind == "value":
        key = draw(st.sampled_from([n[:-4] for n in names]))
        dtype = draw(st.sampled_from(["u1", "i8", "u8", "f8", "f2", "?", "U3", "c16", "S2"]))
        value = draw(
            st.sampled_from([0, 1, -1, 3, 4, 2**63 + 1, 1e20, float("nan"), float("inf"), 0.5])
        )
        arr = np.array(arrays[key])
        with np.errstate(all="ignore"):
            with contextlib.suppress(ValueError, TypeError):  # e.g. the hex fingerprint as int
                arr = arr.astype(dtype)
            if arr.size:
                with contextlib.suppress(OverflowError, ValueError, TypeError):
                    arr.flat[0] = value  # a value the dtype cannot hold: keep the cast
        if draw(st.booleans()):
            arr = arr.reshape(-1) if arr.ndim > 1 else arr[None]
        members[f"{key}.npy"] = npy(arr)
    raw = zip_of(members, method)
    if kind == "bytes":
        edits = draw(
            st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8)
        )
        buf = bytearray(raw)
        for offset, byte in edits:
            buf[offset % len(buf)] = byte
        raw = bytes(buf)
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


@pytest.fixture(scope="module")
def cand_arrays(good_preds: dict[str, Path]) -> dict[str, np.ndarray]:
    with np.load(good_preds["cand"], allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@FUZZ
@given(data=st.data())
def test_mutated_predictions_fail_cleanly(
    data: st.DataObject,
    cand_arrays: dict[str, np.ndarray],
    good_preds: dict[str, Path],
    tmp_path: Path,
) -> None:
    path = tmp_path / "cand.npz"
    path.write_bytes(data.draw(mutated_npz(cand_arrays)))
    args = ["report", "-r", good_preds["ref"], "-c", path, "-o", tmp_path / "out", "-f", "json"]
    assert_clean(run_cli([str(a) for a in args]))


# -- policy YAML ----------------------------------------------------------------------------

FRAGMENTS = [
    "&a ",
    "*a",
    "<<: *a\n",
    "x: &a [*a]\n",
    "!!python/object/apply:os.system ['true']\n",
    "!!binary AAAA\n",
    "? [a, b]\n: c\n",
    "gates: {top1_drop: 1e999}\n",
    "alpha: .nan\n",
    "version: !!float 1\n",
    "[" * 60,
    "{a: " * 60,
    "---\n",
    "...\n",
    "\t",
    "- ",
    "k: &k {a: 1}\nother: *k\n",
    "gates: null\n",
    "gates: []\n",
    "l0: &l0 [x, x, x, x, x, x, x, x]\nl1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n",
    "\x00",
    "\ufeff",
    "\x1b[31m",
]
VALUES = [
    "-1",
    "0",
    "1e308",
    "1e-320",
    ".inf",
    "-.inf",
    ".nan",
    "true",
    "null",
    "'abc'",
    "[]",
    "{}",
    "9" * 30,
]
NUMBER = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")


@st.composite
def mutated_policy(draw: st.DrawFn, texts: list[str]) -> str:
    """One mutation of a valid example policy: characters, a hostile fragment, or a value."""
    text = draw(st.sampled_from(texts))
    kind = draw(st.sampled_from(["chars", "fragment", "value"]))
    if kind == "chars":
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(text)))
            char = draw(st.sampled_from(list(":-[]{}&*!|>'\"#\n\t %@`,?")))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            if op == "insert":
                text = text[:at] + char + text[at:]
            else:
                text = text[:at] + (char if op == "replace" else "") + text[at + 1 :]
    elif kind == "fragment":
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(FRAGMENTS)))
        text = "".join(lines)
    else:
        numbers = list(NUMBER.finditer(text))
        if numbers:
            m = draw(st.sampled_from(numbers))
            text = text[: m.start()] + draw(st.sampled_from(VALUES)) + text[m.end() :]
    return text


@pytest.fixture(scope="module")
def policy_texts() -> list[str]:
    assert POLICIES, "examples/policies/*.yaml: no example policies to mutate"
    return [p.read_text(encoding="utf-8") for p in POLICIES]


@FUZZ
@given(data=st.data())
def test_mutated_policies_fail_cleanly(
    data: st.DataObject,
    policy_texts: list[str],
    good_preds: dict[str, Path],
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(data.draw(mutated_policy(policy_texts)), encoding="utf-8")
    args = ["check", "-r", good_preds["ref"], "-c", good_preds["cand"], "-p", policy]
    args += ["-o", tmp_path / "out", "-f", "json"]
    assert_clean(run_cli([str(a) for a in args]))
