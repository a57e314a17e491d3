"""Runners fail closed: each unusable model or input is a named ModelError."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from compaudit.data.base import Dataset, Preprocessing
from compaudit.errors import CompauditWarning, DataNotFoundError, ModelError
from compaudit.models import inference, onnx_runner, torch_runner
from compaudit.models.base import RunnerSettings
from compaudit.predictions import predict_population
from tests.conftest import UnpickleMarker

from .helpers import MLP, export_onnx, save_torchscript

TRUSTED = RunnerSettings(trust_model_code=True)
"""The test models' TorchScript and factories are ours: trusted."""
TRUST = {"trust_model_code": True}


def _matches(template: str, message: str, **fields: object) -> bool:
    """``message`` is ``template`` filled with ``fields`` and any text for ``{reason}``."""
    head, _, tail = template.partition("{reason}")
    return message.startswith(head.format(**fields)) and message.endswith(tail.format(**fields))


def _truncate(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


class Log(nn.Module):
    """Scores = log(x): NaN for negative inputs, -inf for zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


@pytest.fixture(scope="module")
def log_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("log_models")
    example = np.ones((2, 10), np.float32)
    return {
        "onnx": export_onnx(Log(), example, tmp / "log.onnx"),
        "torchscript": save_torchscript(Log(), example, tmp / "log.pt"),
    }


def _table(x: np.ndarray, classes: int = 10) -> Dataset:
    n = x.shape[0]
    return Dataset(
        name="synthetic",
        x=x,
        y=np.arange(n) % classes,
        ids=np.arange(n),
        class_names=tuple(f"c{i}" for i in range(classes)),
        preprocessing=Preprocessing(layout="NF"),
    )


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_nonfinite_outputs_name_the_model_and_count(
    log_models: dict[str, Path], kind: str, cache_dir: Path
) -> None:
    x = np.random.default_rng(0).uniform(1, 2, (50, 10)).astype(np.float32)
    x[[3, 17], 4] = -1.0  # NaN
    x[40, 0] = 0.0  # -inf
    settings = RunnerSettings(batch_size=8, trust_model_code=True)
    with pytest.raises(ModelError) as exc:
        predict_population(str(log_models[kind]), _table(x), settings=settings)
    assert str(exc.value) == inference.ERR_NONFINITE.format(model=log_models[kind], bad=3, n=50)


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_output_width_must_equal_the_number_of_classes(
    log_models: dict[str, Path], kind: str, cache_dir: Path
) -> None:
    data = _table(np.ones((12, 10), np.float32), classes=5)
    with pytest.raises(ModelError) as exc:
        predict_population(str(log_models[kind]), data, settings=TRUSTED)
    assert str(exc.value) == inference.ERR_WIDTH.format(model=log_models[kind], width=10, c=5)


def test_declared_probabilities_that_are_not(log_models: dict[str, Path], cache_dir: Path) -> None:
    data = _table(np.full((12, 10), 2.0, np.float32))  # log(2) per class: sums 6.93
    with pytest.raises(ModelError) as exc:
        predict_population(
            str(log_models["onnx"]), data, settings=RunnerSettings(outputs_probabilities=True)
        )
    s = float(np.log(np.float32(2.0)) * 10)
    assert str(exc.value) == inference.ERR_NOT_PROBABILITIES.format(
        model=log_models["onnx"], lo=s, hi=s, vmin=float(np.log(np.float32(2.0)))
    )


def test_scores_of_the_wrong_rank(tmp_path: Path, cache_dir: Path) -> None:
    class Sum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1)

    path = save_torchscript(Sum(), np.ones((2, 10), np.float32), tmp_path / "sum.pt")
    with pytest.raises(ModelError) as exc:
        predict_population(str(path), _table(np.ones((12, 10), np.float32)), settings=TRUSTED)
    assert str(exc.value) == inference.ERR_BAD_SCORES_SHAPE.format(model=path, b=12, shape=(12,))


def test_onnx_input_dtype_and_shape_say_what_the_model_expects(
    digits_models: dict[str, Path], digits_test: Dataset
) -> None:
    path = digits_models["fp32_onnx"]
    runner = onnx_runner.OnnxLoader().load(str(path))
    for x in (digits_test.x.astype(np.float64), digits_test.x.reshape(-1, 64)):
        with pytest.raises(ModelError) as exc:
            runner.predict(x, RunnerSettings())
        assert str(exc.value) == onnx_runner.ERR_INPUT_MISMATCH.format(
            path=path,
            name="x",
            expected="tensor(float) [batch, 1, 8, 8]",
            got=inference.describe_array(x),
        )


@pytest.mark.parametrize("key", ["torchscript", "pt2"])
def test_torch_input_errors_report_the_data_shape_and_dtype(
    digits_models: dict[str, Path], digits_test: Dataset, key: str
) -> None:
    path = digits_models[key]
    for x in (digits_test.x.astype(np.float64), digits_test.x[:, :, :, :6]):
        with pytest.raises(ModelError) as exc:
            predict_population(str(path), _with_x(digits_test, x), cache=False, settings=TRUSTED)
        assert _matches(
            torch_runner.ERR_TORCH_INPUT, str(exc.value), path=path, got=inference.describe_array(x)
        ), str(exc.value)


def _with_x(data: Dataset, x: np.ndarray) -> Dataset:
    return Dataset(
        name=data.name,
        x=x,
        y=data.y,
        ids=data.ids,
        class_names=data.class_names,
        preprocessing=data.preprocessing,
    )


@pytest.mark.parametrize(
    ("key", "suffix", "template"),
    [
        ("fp32_onnx", ".onnx", onnx_runner.ERR_ONNX_UNREADABLE),
        ("torchscript", ".pt", torch_runner.ERR_TS_UNREADABLE),
        ("pt2", ".pt2", torch_runner.ERR_PT2_UNREADABLE),
    ],
)
def test_truncated_model_files(
    digits_models: dict[str, Path],
    digits_test: Dataset,
    tmp_path: Path,
    key: str,
    suffix: str,
    template: str,
) -> None:
    bad = _truncate(digits_models[key], tmp_path / f"truncated{suffix}")
    with pytest.raises(ModelError) as exc:
        predict_population(str(bad), digits_test, cache=False, settings=TRUSTED)
    assert _matches(template, str(exc.value), path=bad), str(exc.value)


def test_state_dict_saved_as_pt_is_not_torchscript(
    digits_models: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(digits_models["cnn_state_dict"].read_bytes())
    with pytest.raises(ModelError) as exc:
        torch_runner.TorchScriptLoader().load(str(path), options=TRUST)
    assert str(exc.value) == torch_runner.ERR_NOT_TORCHSCRIPT.format(path=path)


def test_torch_save_files_are_named_before_any_trust_advice(
    digits_models: dict[str, Path], tmp_path: Path
) -> None:
    """Before: without --trust-model-code every .pt was "refusing to run a TorchScript
    model ... pass --trust-model-code", which advised trusting a pickle."""
    import pickle

    marker = tmp_path / "ran.txt"
    files = {
        "state_dict.pt": digits_models["cnn_state_dict"].read_bytes(),
        "legacy.pt": pickle.dumps({"w": [1.0, 2.0]}, protocol=2),  # torch.save's old format
        "evil.pt": pickle.dumps(UnpickleMarker(marker)),
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        for options in ({}, TRUST):
            with pytest.raises(ModelError) as exc:
                torch_runner.TorchScriptLoader().load(str(path), options=options)
            assert str(exc.value) == torch_runner.ERR_NOT_TORCHSCRIPT.format(path=path), name
        with pytest.raises(ModelError) as exc:
            torch_runner.TorchScriptLoader().fingerprint(str(path))
        assert str(exc.value) == torch_runner.ERR_NOT_TORCHSCRIPT.format(path=path)
    assert not marker.exists()  # nothing was unpickled
    # A real TorchScript archive still needs the trust.
    ts = tmp_path / "model.pt"
    save_torchscript(MLP().eval(), np.zeros((2, 64), dtype=np.float32), ts)
    with pytest.raises(ModelError) as exc:
        torch_runner.TorchScriptLoader().load(str(ts))
    assert "--trust-model-code" in str(exc.value)


def test_missing_model_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(DataNotFoundError) as exc:
        onnx_runner.OnnxLoader().load(str(path))
    assert str(exc.value) == onnx_runner.ERR_MISSING.format(path=path)


def test_onnx_model_with_two_inputs(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["out"])], "add", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two_inputs.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as exc:
        onnx_runner.OnnxLoader().load(str(path))
    assert str(exc.value) == onnx_runner.ERR_ONNX_INPUTS.format(path=path, n=2, names="a, b")


# -- module:factory -----------------------------------------------------------
FACTORY_SOURCE = """
from models.helpers import MLP, TinyCNN

def build_cnn():
    return TinyCNN(in_size=8)

def build_mlp():
    return MLP()

def broken():
    raise RuntimeError("boom")
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "compaudit_test_factory.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "compaudit_test_factory", raising=False)
    return "compaudit_test_factory"


def test_factory_loads_weights_and_matches_torchscript(
    digits_models: dict[str, Path], digits_test: Dataset, factory_module: str, cache_dir: Path
) -> None:
    weights = digits_models["cnn_state_dict"]
    pop = predict_population(
        f"{factory_module}:build_cnn",
        digits_test,
        options={"weights": str(weights)},
        settings=TRUSTED,
    )
    ref = predict_population(str(digits_models["torchscript"]), digits_test, settings=TRUSTED)
    np.testing.assert_array_equal(pop.topk, ref.topk)
    assert pop.meta["members"] == [weights.stem]


def test_factory_errors(
    digits_models: dict[str, Path], digits_test: Dataset, factory_module: str, tmp_path: Path
) -> None:
    loader = torch_runner.FactoryLoader()
    spec = f"{factory_module}:build_cnn"
    with pytest.raises(ModelError) as exc:
        loader.load(spec, options=TRUST)
    assert str(exc.value) == torch_runner.ERR_NO_WEIGHTS.format(spec=spec)

    mlp_weights = tmp_path / "mlp.pth"
    torch.save(MLP().state_dict(), mlp_weights)
    with pytest.raises(ModelError) as exc:
        loader.load(spec, options={"weights": str(mlp_weights), **TRUST})
    assert _matches(torch_runner.ERR_WEIGHTS, str(exc.value), spec=spec, weights=mlp_weights)

    weights = {"weights": str(digits_models["cnn_state_dict"]), **TRUST}
    with pytest.raises(ModelError) as exc:
        loader.load(f"{factory_module}:broken", options=weights)
    assert str(exc.value) == torch_runner.ERR_FACTORY.format(
        spec=f"{factory_module}:broken", reason="calling broken() failed: RuntimeError: boom"
    )
    with pytest.raises(ModelError) as exc:
        loader.load("no_such_module_xyz:build", options=weights)
    assert str(exc.value) == torch_runner.ERR_FACTORY.format(
        spec="no_such_module_xyz:build", reason="module not found"
    )


def test_factory_fingerprint_covers_weights_and_source(
    digits_models: dict[str, Path], factory_module: str, tmp_path: Path
) -> None:
    loader = torch_runner.FactoryLoader()
    spec = f"{factory_module}:build_cnn"
    weights = {"weights": str(digits_models["cnn_state_dict"]), **TRUST}
    before = loader.fingerprint(spec, options=weights)
    other = tmp_path / "other.pth"
    torch.save(MLP().state_dict(), other)
    assert loader.fingerprint(spec, options={"weights": str(other), **TRUST}) != before
    source = tmp_path / f"{factory_module}.py"
    source.write_text(source.read_text() + "\n# changed\n")
    assert loader.fingerprint(spec, options=weights) != before


def test_dynamic_int8_checkpoint_and_damaged_checkpoint(
    digits_models: dict[str, Path], digits_test: Dataset, tmp_path: Path, cache_dir: Path
) -> None:
    from compaudit.models import checkpoint
    from compaudit.models.architectures import build

    torch.manual_seed(0)
    model = build("mlp", in_features=64, hidden=[16], num_classes=10).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = checkpoint.apply_quantization_structure(model, "dynamic-int8")
    path = tmp_path / "mlp_int8.ckpt"
    checkpoint.save_checkpoint(
        path,
        quantized,
        arch="mlp",
        arch_kwargs={"in_features": 64, "hidden": [16], "num_classes": 10},
        class_names=digits_test.class_names,
        preprocessing=digits_test.preprocessing.to_dict(),
        quantization="dynamic-int8",
        meta={},
    )
    pop = predict_population(str(path), digits_test)
    with torch.inference_mode():
        ref = quantized(torch.from_numpy(digits_test.x)).argmax(1).numpy()
    np.testing.assert_array_equal(pop.predictions[0], ref)
    bad = _truncate(path, tmp_path / "truncated.ckpt")
    with pytest.raises(ModelError) as exc:
        predict_population(str(bad), digits_test)
    assert _matches(checkpoint.ERR_UNREADABLE, str(exc.value), path=bad), str(exc.value)


def test_probability_outputs_without_the_flag_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache_dir: Path
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 10), nn.Softmax(dim=1)).eval()
    path = export_onnx(model, np.ones((2, 10), np.float32), tmp_path / "softmax.onnx")
    data = _table(np.random.default_rng(0).normal(size=(12, 10)).astype(np.float32))
    with pytest.warns(CompauditWarning) as record:
        pop = predict_population(str(path), data)
    assert [str(w.message) for w in record] == [
        inference.WARN_LOOKS_LIKE_PROBABILITIES.format(model=path)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompauditWarning)
        flagged = predict_population(
            str(path), data, settings=RunnerSettings(outputs_probabilities=True)
        )
    assert capsys.readouterr().err == ""
    assert pop.topk is not None
    np.testing.assert_array_equal(flagged.topk, pop.topk)  # softmax keeps the order


@pytest.mark.parametrize("dtype", [np.str_, np.bool_, object])
def test_scores_that_are_not_numbers_are_one_line(dtype: type) -> None:
    """An ONNX model whose output is a string tensor crashed np.isfinite (internal error)."""
    x = np.zeros((4, 3), dtype=np.float32)

    def strings(batch: np.ndarray) -> np.ndarray:
        return np.ones((batch.shape[0], 2)).astype(dtype)

    with pytest.raises(ModelError) as exc:
        inference.run_batches("m.onnx", x, strings, RunnerSettings(progress=False))
    got = np.ones((1, 1)).astype(dtype).dtype
    assert str(exc.value) == inference.ERR_SCORES_DTYPE.format(model="m.onnx", dtype=got)
