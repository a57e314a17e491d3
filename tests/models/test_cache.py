"""The prediction cache: keys, damaged entries, concurrent writers, cache hits."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit import cache as cache_mod
from compaudit.cache import WARN_CORRUPT, WARN_UNWRITABLE, PredictionCache, cache_key, cache_root
from compaudit.data.base import Dataset
from compaudit.errors import CompauditWarning
from compaudit.models.base import Prediction, RunnerSettings
from compaudit.models.onnx_runner import OnnxLoader, OnnxRunner
from compaudit.models.torch_runner import TorchRunner
from compaudit.predictions import LOG_CACHE, predict_population

KEY = "ab" + "0" * 62


def _prediction(seed: int, n: int = 300, k: int = 5) -> Prediction:
    rng = np.random.default_rng(seed)
    topk = np.argsort(rng.random((n, 10)), axis=1)[:, :k]
    probs = np.sort(rng.random((n, k)).astype(np.float32), axis=1)[:, ::-1] / k
    return Prediction(topk=topk, probs=np.ascontiguousarray(probs))


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("COMPAUDIT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home/.cache/compaudit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg/compaudit"
    monkeypatch.setenv("COMPAUDIT_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == tmp_path / "own"
    assert PredictionCache().directory == tmp_path / "own/predictions"


def test_key_depends_on_everything_that_decides_predictions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base: dict[str, Any] = {
        "model_fingerprint": "m",
        "dataset_fingerprint": "d",
        "preprocessing_fingerprint": "p",
        "settings_key": RunnerSettings().key(),
    }
    key = cache_key(**base)
    assert key == cache_key(**base)
    assert len(key) == 64
    variants = [
        {"model_fingerprint": "m2"},
        {"dataset_fingerprint": "d2"},
        {"preprocessing_fingerprint": "p2"},
        {"settings_key": RunnerSettings(k=3).key()},
        {"settings_key": RunnerSettings(outputs_probabilities=True).key()},
        {"settings_key": RunnerSettings(device="cuda").key()},
    ]
    keys = {cache_key(**{**base, **v}) for v in variants}
    assert len(keys) == len(variants)
    assert key not in keys
    monkeypatch.setattr(cache_mod, "CACHE_FORMAT_VERSION", cache_mod.CACHE_FORMAT_VERSION + 1)
    assert cache_key(**base) != key


def test_round_trip(tmp_path: Path) -> None:
    store = PredictionCache(tmp_path)
    pred = _prediction(0)
    path = store.put(KEY, pred)
    assert path == tmp_path / "ab" / f"{KEY}.npz"
    got = store.get(KEY)
    assert got is not None
    np.testing.assert_array_equal(got.topk, pred.topk)
    np.testing.assert_array_equal(got.probs, pred.probs)
    assert store.get("cd" + "0" * 62) is None
    assert store.clear() == 1
    assert store.get(KEY) is None


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-200])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a zip file")


def _tamper(path: Path) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["probs"] = arrays["probs"] * 0.5
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", [_truncate, _garbage, _tamper])
def test_damaged_entries_are_reported_deleted_and_missed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any
) -> None:
    store = PredictionCache(tmp_path)
    path = store.put(KEY, _prediction(0))
    assert path is not None
    damage(path)
    with pytest.warns(CompauditWarning) as record:
        assert store.get(KEY) is None
    assert not path.exists()
    [warning] = record
    message = str(warning.message)
    assert message.startswith(WARN_CORRUPT.format(path=path, reason="X").split("(X)")[0])
    assert message.endswith("; deleted it, recomputing")
    assert capsys.readouterr().err == ""  # a warning, never a direct write


def test_entry_under_the_wrong_key_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = PredictionCache(tmp_path)
    src = store.put(KEY, _prediction(0))
    assert src is not None
    other = "ab" + "1" * 62
    store.path(other).write_bytes(src.read_bytes())
    with pytest.warns(CompauditWarning) as record:
        assert store.get(other) is None
    assert [str(w.message) for w in record] == [
        WARN_CORRUPT.format(path=store.path(other), reason="entry belongs to another key")
    ]
    assert capsys.readouterr().err == ""


def test_unwritable_cache_warns_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = PredictionCache(blocker)
    with pytest.warns(CompauditWarning) as record:
        assert store.put(KEY, _prediction(0)) is None
    head = WARN_UNWRITABLE.format(path=store.path(KEY), reason="X", env="E").split("(X)")[0]
    [warning] = record
    assert str(warning.message).startswith(head)
    assert capsys.readouterr().err == ""


# -- concurrency -------------------------------------------------------------------
BIG = 20_000  # entries large enough that writes overlap


def _writer(directory: str, seed: int, rounds: int) -> None:
    store = PredictionCache(directory)
    pred = _prediction(seed, n=BIG)
    for _ in range(rounds):
        store.put(KEY, pred)


def _signature(pred: Prediction) -> tuple[int, ...]:
    return tuple(int(v) for v in pred.topk[:16, 0])


def _reader(directory: str, done: Any, out: Any) -> None:
    """Read while the writers write; an existing entry that fails to load is torn."""
    store = PredictionCache(directory)
    seen, torn, reads = set(), 0, 0
    finished = False
    while not finished:
        finished = done.is_set()  # one last read after the writers are done
        if store.path(KEY).exists():
            got = store.get(KEY)
            reads += 1
            if got is None:
                torn += 1
            else:
                seen.add(_signature(got))
    out.put((sorted(seen), torn, reads))


@pytest.mark.skipif(sys.platform != "linux", reason="uses the fork start method")
def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue, done = ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(str(tmp_path), done, queue))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), s, 15)) for s in range(3)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    done.set()
    seen, torn, reads = queue.get(timeout=120)
    reader.join(timeout=120)
    assert reads > 0
    assert torn == 0  # every read of an existing entry got a complete one
    written = [_prediction(s, n=BIG) for s in range(3)]
    assert {tuple(v) for v in seen} <= {_signature(p) for p in written}
    final = PredictionCache(tmp_path).get(KEY)
    assert final is not None
    assert any(np.array_equal(final.topk, p.topk) for p in written)
    assert list(tmp_path.glob("ab/.*.tmp")) == []  # no temporary files left behind


# -- predict_population and the cache ---------------------------------------------
def _forbid_inference(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(type(self).__name__)
        raise AssertionError("inference ran on a cache hit")

    for cls in (OnnxRunner, TorchRunner):
        monkeypatch.setattr(cls, "predict", fail)
    monkeypatch.setattr(OnnxLoader, "load", fail)
    return calls


def test_cache_hit_runs_no_inference(
    digits_models: dict[str, Path],
    digits_test: Dataset,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = [str(digits_models["fp32_onnx"]), str(digits_models["torchscript"])]
    trusted = RunnerSettings(trust_model_code=True)  # TorchScript is code
    first = predict_population(spec, digits_test, settings=trusted)
    assert len(list(cache_dir.glob("*/*.npz"))) == 2
    calls = _forbid_inference(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="compaudit"):
        second = predict_population(spec, digits_test, settings=trusted, name="pop")
    assert calls == []
    # What -v shows (before, nothing told a rerun it had skipped the models).
    assert LOG_CACHE.format(name="pop", hits=2, k=2, where=cache_dir) in caplog.messages
    np.testing.assert_array_equal(second.topk, first.topk)
    assert {k: v for k, v in second.meta.items() if k != "name"} == first.meta
    other_keys = (RunnerSettings(k=3), RunnerSettings(batch_size=100))
    for settings in (dataclasses.replace(s, trust_model_code=True) for s in other_keys):
        with pytest.raises(AssertionError, match="inference ran"):
            predict_population(spec, digits_test, settings=settings)


def test_damaged_entry_is_recomputed_with_a_warning(
    digits_models: dict[str, Path],
    digits_test: Dataset,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = str(digits_models["fp32_onnx"])
    first = predict_population(spec, digits_test)
    [entry] = cache_dir.glob("*/*.npz")
    _truncate(entry)
    capsys.readouterr()
    with pytest.warns(CompauditWarning, match=f"prediction cache entry {entry} is damaged") as got:
        second = predict_population(spec, digits_test)
    # One "recomputing", not the reader's "it is recomputed" before it too.
    assert [str(w.message).replace(str(entry), "").count("recomput") for w in got] == [1]
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(second.topk, first.topk)
    assert PredictionCache(cache_dir).get(entry.stem) is not None  # rewritten, valid


def test_no_cache_writes_nothing(
    digits_models: dict[str, Path], digits_test: Dataset, cache_dir: Path
) -> None:
    predict_population(str(digits_models["mlp_onnx"]), digits_test, cache=False)
    assert not cache_dir.exists() or list(cache_dir.glob("*/*.npz")) == []


@pytest.mark.parametrize("key", ["torchscript_dynamic_int8", "int8_dynamic_onnx"])
def test_batch_size_is_in_the_key_because_dynamic_quantization_depends_on_it(
    digits_models: dict[str, Path],
    digits_test: Dataset,
    cache_dir: Path,
    key: str,
) -> None:
    spec = str(digits_models[key])
    # TorchScript is code: trusted (these models are ours).
    small, large = (RunnerSettings(batch_size=b, trust_model_code=True) for b in (20, 540))
    predict_population(spec, digits_test, settings=small)
    assert len(list(cache_dir.glob("*/*.npz"))) == 1
    predict_population(spec, digits_test, settings=large)
    assert len(list(cache_dir.glob("*/*.npz"))) == 2  # a miss, not the batch-20 entry
    # Activation scales are computed per batch, so the probabilities move.
    store = PredictionCache(cache_dir)
    entries = [store.get(p.stem) for p in sorted(cache_dir.glob("*/*.npz"))]
    assert entries[0] is not None
    assert entries[1] is not None
    assert np.abs(entries[0].probs - entries[1].probs).max() > 1e-3
