"""Runners on real models: formats agree, quantized models run, top-k is exact."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import softmax

from compaudit.data.base import Dataset
from compaudit.errors import InputError
from compaudit.models.base import MemberSpec, Runner, RunnerSettings
from compaudit.models.builtin import register_model_loaders
from compaudit.models.device import ERR_NO_CUDA, ERR_UNKNOWN_DEVICE, check_device
from compaudit.models.inference import topk_from_scores
from compaudit.models.onnx_runner import OnnxLoader
from compaudit.models.spec import load_member
from compaudit.models.torch_runner import TorchScriptLoader

from .helpers import TinyCNN, export_onnx, train

TRUSTED = RunnerSettings(trust_model_code=True)
"""The test models' TorchScript is ours: trusted."""


def _run(path: Path, data: Dataset, **kw: object) -> np.ndarray:
    settings = RunnerSettings(trust_model_code=True, **kw)  # type: ignore[arg-type]
    runner = load_member(MemberSpec(path=str(path), name=path.stem), settings)
    return runner.predict(data.x, settings).topk  # type: ignore[no-any-return]


def _torch_logits(path: Path, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()  # type: ignore[no-any-return]


def test_builtin_loaders_satisfy_the_runner_protocol(digits_models: dict[str, Path]) -> None:
    names = {loader.name for loader in register_model_loaders()}
    assert names == {"onnx", "torchscript", "torch-export", "checkpoint", "module-factory"}
    for key in ("fp32_onnx", "torchscript", "pt2"):
        member = MemberSpec(path=str(digits_models[key]), name=key)
        runner: Runner = load_member(member, TRUSTED)
        assert runner.name == digits_models[key].stem
        assert runner.fingerprint == hashlib.sha256(digits_models[key].read_bytes()).hexdigest()
        assert runner.meta["path"] == str(digits_models[key])
        assert callable(runner.predict)


def test_onnx_export_agrees_with_its_torch_source(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    onnx_top = _run(digits_models["fp32_onnx"], digits_test)
    ts_top = _run(digits_models["torchscript"], digits_test)
    pt2_top = _run(digits_models["pt2"], digits_test)
    assert (onnx_top[:, 0] == ts_top[:, 0]).mean() >= 0.999
    # Same weights, same torch kernels: TorchScript and torch.export agree exactly.
    np.testing.assert_array_equal(pt2_top, ts_top)
    assert (onnx_top[:, 0] == digits_test.y).mean() > 0.85  # the model learnt something


@pytest.mark.parametrize("key", ["int8_dynamic_onnx", "int8_static_onnx"])
def test_onnxruntime_quantized_models_run_and_mostly_agree(
    digits_models: dict[str, Path], digits_test: Dataset, key: str
) -> None:
    fp32 = _run(digits_models["fp32_onnx"], digits_test)[:, 0]
    quant = _run(digits_models[key], digits_test)[:, 0]
    assert (quant == fp32).mean() >= 0.95


def test_torch_dynamic_int8_torchscript_runs_and_mostly_agrees(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    fp32 = _run(digits_models["torchscript"], digits_test)[:, 0]
    quant = _run(digits_models["torchscript_dynamic_int8"], digits_test)[:, 0]
    assert (quant == fp32).mean() >= 0.95


def test_topk_and_probabilities_match_scipy(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    settings = RunnerSettings(k=4, batch_size=37)  # a ragged last batch
    runner = load_member(MemberSpec(path=str(digits_models["torchscript"]), name="cnn"), TRUSTED)
    pred = runner.predict(digits_test.x, settings)
    logits = _torch_logits(digits_models["torchscript"], digits_test.x)
    ref_p = softmax(logits.astype(np.float64), axis=1)
    ref_idx = np.argsort(-ref_p, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(pred.topk, ref_idx)
    np.testing.assert_allclose(pred.probs, np.take_along_axis(ref_p, ref_idx, 1), atol=1e-6)
    assert pred.probs.dtype == np.float32
    assert (np.diff(pred.probs, axis=1) <= 0).all()
    assert (pred.probs.sum(axis=1) <= 1 + 1e-6).all()


def test_batch_size_does_not_change_results(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    a = _run(digits_models["fp32_onnx"], digits_test, batch_size=1000)
    b = _run(digits_models["fp32_onnx"], digits_test, batch_size=7)
    np.testing.assert_array_equal(a, b)


def test_topk_is_capped_at_the_number_of_classes(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    top = _run(digits_models["mlp_onnx"], digits_test, k=50)
    assert top.shape == (digits_test.n, 10)
    assert (np.sort(top, axis=1) == np.arange(10)).all()


def test_outputs_probabilities_are_taken_as_given() -> None:
    p = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], dtype=np.float32)
    idx, probs = topk_from_scores(p, 2, probabilities=True)
    np.testing.assert_array_equal(idx, [[1, 2], [0, 1]])  # tie 0.25/0.25: lower index first
    np.testing.assert_array_equal(probs, np.array([[0.6, 0.3], [0.5, 0.25]], np.float32))


@pytest.mark.parametrize("c", [10, 1000])
def test_topk_breaks_ties_toward_the_lower_class(c: int) -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(64, c)).astype(np.float32)  # many ties
    idx, probs = topk_from_scores(scores, 5, probabilities=False)
    order = np.lexsort((np.broadcast_to(np.arange(c), scores.shape), -scores), axis=1)
    np.testing.assert_array_equal(idx, order[:, :5])
    np.testing.assert_array_equal(idx[:, 0], scores.argmax(axis=1))
    ref = np.take_along_axis(softmax(scores.astype(np.float64), axis=1), idx, 1)
    np.testing.assert_allclose(probs, ref, rtol=1e-6)


def test_onnx_model_with_a_fixed_batch_dimension_is_padded(
    tmp_path: Path, digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    torch.manual_seed(0)
    model = train(TinyCNN(in_size=8), digits_test.x, digits_test.y, epochs=1)
    fixed = export_onnx(model, digits_test.x[:16], tmp_path / "fixed.onnx", fixed_batch=True)
    dynamic = export_onnx(model, digits_test.x, tmp_path / "dynamic.onnx")
    a = _run(fixed, digits_test, batch_size=100)  # 540 = 33 x 16 + 12: last batch padded
    b = _run(dynamic, digits_test)
    np.testing.assert_array_equal(a, b)


def test_cuda_without_a_gpu_is_an_error(digits_models: dict[str, Path]) -> None:
    """Both runners (and the trainer) ask one check, with one message."""
    import onnxruntime as ort

    onnx_path, ts_path = digits_models["fp32_onnx"], digits_models["torchscript"]
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        with pytest.raises(InputError) as exc:
            OnnxLoader().load(str(onnx_path), options={"device": "cuda"})
        assert str(exc.value) == ERR_NO_CUDA.format(
            subject=onnx_path,
            backend="onnxruntime",
            detail=f" (its providers: {', '.join(providers)})",
            fix="install onnxruntime-gpu or use --device cpu",
        )
    if not torch.cuda.is_available():
        runner = TorchScriptLoader().load(str(ts_path), options={"trust_model_code": True})
        with pytest.raises(InputError) as exc:
            runner.predict(np.zeros((2, 1, 8, 8), np.float32), RunnerSettings(device="cuda"))
        assert str(exc.value) == ERR_NO_CUDA.format(
            subject=ts_path, backend="torch", detail="", fix="use --device cpu"
        )
        assert check_device("auto", subject="r", allow_auto=True) == "cpu"
    else:
        assert check_device("auto", subject="r", allow_auto=True) == "cuda"


def test_unknown_device_names_the_choices() -> None:
    with pytest.raises(InputError) as exc:
        check_device("tpu", subject="m.onnx", backend="onnxruntime")
    assert str(exc.value) == ERR_UNKNOWN_DEVICE.format(
        subject="m.onnx", device="tpu", choices="cpu, cuda"
    )
    with pytest.raises(InputError) as exc:
        check_device("auto", subject="m.onnx")  # auto only where the caller allows it
    with pytest.raises(InputError) as exc:
        check_device("gpu", subject="recipe 'r'", allow_auto=True)
    assert str(exc.value).endswith("use auto, cpu, cuda")


@pytest.mark.shared_data
def test_fashion_mnist_fp32_and_int8_static(
    fashion_models: dict[str, Path], fashion_test: Dataset
) -> None:
    onnx_top = _run(fashion_models["fp32_onnx"], fashion_test)[:, 0]
    ts_top = _run(fashion_models["torchscript"], fashion_test)[:, 0]
    qdq_top = _run(fashion_models["int8_static_onnx"], fashion_test)[:, 0]
    assert (onnx_top == ts_top).mean() >= 0.999
    assert (qdq_top == onnx_top).mean() >= 0.95
    assert (onnx_top == fashion_test.y).mean() > 0.6  # 2 epochs on 4,000 images
