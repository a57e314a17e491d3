"""Every ``.npz`` reader is bounded (issue 11): datasets, cache entries, runs and scores.

The predictions file's reader (``tests/fuzz/test_predictions.py``) is now
:func:`compaudit._npz.read_npz`, and so is every other ``.npz`` reader. Each
case below holds a ``.npy`` header that claims 10**12 elements (8 TB) in a
member of a few hundred bytes, or another lie; each reader called
``numpy.load`` on it before the fix. The ``no_unbounded_reads`` fixture makes
such an attempt fail the test at once instead of allocating: ``numpy.load``
raises, and ``read_array`` refuses a header claiming more than 100 MB.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit import _npz
from compaudit.analysis.influence import load_runs
from compaudit.analysis.long_tail import read_scores
from compaudit.cache import WARN_CORRUPT, PredictionCache
from compaudit.data.npz import NpzProvider
from compaudit.errors import CompauditWarning, InputError
from compaudit.models.base import Prediction
from tests.fuzz._expect import PREFIX, assert_error
from tests.fuzz.conftest import fails_closed

HUGE = (10**12,)
HUGE_BYTES = 8 * 10**12
_GUARD_BYTES = 10**8


@pytest.fixture(autouse=True)
def no_unbounded_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail at once where the old code would allocate what a forged header claims."""
    real = np.lib.format.read_array

    def unbounded_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("numpy.load called: an unbounded .npz read")

    def guarded_read_array(fp: Any, *args: Any, **kwargs: Any) -> Any:
        start = fp.tell()
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        fp.seek(start)
        claimed = math.prod(shape) * dtype.itemsize
        assert claimed <= _GUARD_BYTES, f"read_array allocating {claimed:,} bytes"
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(np, "load", unbounded_load)
    monkeypatch.setattr(np.lib.format, "read_array", guarded_read_array)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def forged(descr: str = "<i8", shape: tuple[int, ...] = HUGE) -> bytes:
    """A ``.npy`` member whose header claims ``descr`` x ``shape`` but holds 64 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + bytes(64)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A stored zip of raw members (``numpy.savez`` layout, any bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


def size_template() -> str:
    return _npz.ERR_NPZ_MEMBER.replace("{problem}", _npz.PROBLEM_SIZE)


def assert_forged(message: str, path: Path, what: str, member: str) -> None:
    known = {"member": repr(member), "shape": HUGE, "dtype": "int64", "claimed": HUGE_BYTES}
    assert_error(PREFIX + message, size_template(), src=str(path), what=what, **known)


# -- datasets: `--data file.npz` on the command line -------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-feature, 3-class linear ONNX model (built with onnx.helper: no torch, no training)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, 3, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def forged_dataset(path: Path, member: str) -> Path:
    good = {"x": np.zeros((8, 4), np.float32), "y": np.arange(8) % 3}
    members = {f"{k}.npy": npy(v) for k, v in good.items()}
    members[f"{member}.npy"] = forged()
    return write_zip(path, members)


@pytest.mark.parametrize("command", ["predict", "report"])
@pytest.mark.parametrize("member", ["x", "y"])
def test_dataset_with_a_forged_header_fails_closed(
    command: str, member: str, tiny_onnx: Path, tmp_path: Path
) -> None:
    data = forged_dataset(tmp_path / "data.npz", member)
    if command == "predict":
        args = ["predict", str(tiny_onnx), "--data", str(data), "--out", str(tmp_path / "p.npz")]
    else:
        model = str(tiny_onnx)
        args = ["report", "-r", model, "-c", model, "--data", str(data), "-o", str(tmp_path / "r")]
    run = fails_closed(args, names=str(data))
    assert_forged(run.error_lines[0][len(PREFIX) :], data, "dataset", f"{member}.npy")


def test_dataset_limit_is_its_own_and_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.npz"
    write_zip(path, {"x.npy": npy(np.zeros((8, 4))), "y.npy": npy(np.arange(8) % 3)})
    monkeypatch.setenv(_npz.ENV_MAX_NPZ_BYTES, "10")  # the predictions limit does not apply
    assert NpzProvider().load(str(path)).x.shape == (8, 4)
    monkeypatch.setenv(_npz.ENV_MAX_DATASET_BYTES, "100")
    with pytest.raises(InputError) as err:
        NpzProvider().load(str(path))
    known = {"what": "dataset", "limit": 100, "env": _npz.ENV_MAX_DATASET_BYTES}
    assert_error(PREFIX + str(err.value), _npz.ERR_NPZ_TOO_LARGE, src=str(path), **known)
    assert _npz.MAX_DATASET_BYTES > _npz.MAX_NPZ_BYTES


# -- cache entries: damage is a miss with a warning --------------------------------------

KEY = "ab" + "0" * 62


def _forged_topk(entry: dict[str, bytes]) -> None:
    entry["topk.npy"] = forged()


def _pickled_probs(entry: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([None, 1], dtype=object), allow_pickle=True)
    entry["probs.npy"] = buf.getvalue()


def _no_checksum(entry: dict[str, bytes]) -> None:
    del entry["checksum.npy"]


Damage = Callable[[dict[str, bytes]], None]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_forged_topk, "array 'topk.npy' claims shape (1000000000000,) of int64"),
        (_pickled_probs, "array 'probs.npy' holds Python objects"),
        (_no_checksum, "missing array(s) ['checksum']"),
    ],
    ids=["topk-header-claims-10**12", "probs-pickled", "no-checksum"],
)
def test_forged_cache_entry_is_a_miss_with_a_warning(
    damage: Damage, reason: str, tmp_path: Path
) -> None:
    store = PredictionCache(tmp_path)
    pred = Prediction(topk=np.array([[0, 1], [1, 0]]), probs=np.full((2, 2), 0.5, np.float32))
    path = store.put(KEY, pred)
    assert path is not None
    with zipfile.ZipFile(path) as zf:
        entry = {name: zf.read(name) for name in zf.namelist()}
    damage(entry)
    write_zip(path, entry)
    with pytest.warns(CompauditWarning) as record:
        assert store.get(KEY) is None
    [warning] = record
    message = str(warning.message)
    head = WARN_CORRUPT.format(path=path, reason="X").split("(X)")[0]
    assert message.startswith(head + "(" + reason), message
    assert message.count(str(path)) == 1, message  # the reason does not repeat the path
    assert not path.exists()
    assert store.put(KEY, pred) is not None  # recomputed and stored again
    assert store.get(KEY) is not None


def test_a_bad_limit_variable_is_an_error_not_cache_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PredictionCache(tmp_path)
    path = store.put(KEY, Prediction(topk=np.zeros((2, 1), int), probs=np.ones((2, 1))))
    assert path is not None
    monkeypatch.setenv(_npz.ENV_MAX_NPZ_BYTES, "lots")
    with pytest.raises(InputError) as err:
        store.get(KEY)
    assert str(err.value) == _npz.ERR_ENV_LIMIT.format(env=_npz.ENV_MAX_NPZ_BYTES, value="lots")
    assert path.exists()  # a valid entry is not deleted for a typo in the environment


# -- influence runs and scores files -----------------------------------------------------


def test_forged_influence_runs_file_names_the_file(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "runs.npz",
        {
            "format.npy": npy(np.asarray("compaudit.influence_runs/v1")),
            "in_run.npy": forged(),
            "train_correct.npy": npy(np.zeros((2, 1), np.uint8)),
            "test_correct.npy": npy(np.zeros((2, 1), np.uint8)),
            "n_train.npy": npy(np.asarray(5)),
            "n_test.npy": npy(np.asarray(2)),
        },
    )
    with pytest.raises(InputError) as err:
        load_runs(path)
    assert_forged(str(err.value), path, "influence runs file", "in_run.npy")


def test_influence_runs_file_extra_members_are_not_read(tmp_path: Path) -> None:
    from compaudit.analysis.influence import InfluenceRuns, save_runs

    rng = np.random.default_rng(0)
    runs = InfluenceRuns(
        rng.random((4, 6)) < 0.5, rng.random((4, 6)) < 0.5, rng.random((4, 3)) < 0.5
    )
    path = save_runs(tmp_path / "runs.npz", runs)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.npy", forged())  # not a runs array: never inflated
    assert load_runs(path).shape == (4, 6, 3)


@pytest.mark.parametrize("member", ["ids", "scores"])
def test_forged_scores_file_names_the_file(member: str, tmp_path: Path) -> None:
    arrays = {"ids": npy(np.array(["a", "b"])), "scores": npy(np.zeros(2))}
    arrays[member] = forged()
    path = write_zip(tmp_path / "scores.npz", {f"{k}.npy": v for k, v in arrays.items()})
    with pytest.raises(InputError) as err:
        read_scores(path, np.array(["a", "b"]))
    assert_forged(str(err.value), path, "scores file", f"{member}.npy")
