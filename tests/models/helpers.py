"""Small real models for tests: trained briefly, exported and quantized.

Reuse from other tests with ``from models.helpers import make_digits_models``
(``tests/`` is on ``sys.path`` through the root conftest).

Every builder is seeded and takes a directory to write files to; nothing
touches the network. ONNX export uses the TorchScript-based exporter
(``dynamo=False``): the dynamo exporter needs ``onnxscript``, which is not
installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compaudit.data.base import Dataset
from compaudit.data.loading import load_dataset
from compaudit.train.export import quiet

__all__ = [
    "MLP",
    "TinyCNN",
    "calibration_reader",
    "digits",
    "export_onnx",
    "fashion",
    "fashion_data_dir",
    "make_digits_models",
    "make_fashion_models",
    "quantize_onnx_dynamic",
    "quantize_onnx_static",
    "save_pt2",
    "save_torchscript",
    "train",
]

SEED = 0


class TinyCNN(nn.Module):
    """conv 3x3 (8) - ReLU - max-pool 2 - [conv 3x3 (16) - ReLU - max-pool 2] - linear - linear.

    One conv block for 8x8 digits, two for 28x28 Fashion-MNIST.
    """

    def __init__(self, in_size: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels, size = 8, in_size // 2
        if in_size >= 16:
            blocks += [nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels, size = 16, size // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * size * size, 32),
            nn.ReLU(),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


class MLP(nn.Module):
    """Flatten - linear (hidden) - ReLU - linear."""

    def __init__(self, in_features: int = 64, hidden: int = 48, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def digits(split: str) -> Dataset:
    """scikit-learn digits through the data loader (float32 [N, 1, 8, 8] / 16)."""
    return load_dataset(f"digits:{split}")


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    seed: int = SEED,
    lr: float = 1e-2,
    batch: int = 64,
) -> nn.Module:
    """Adam on cross-entropy for a few epochs, seeded; returns the model in eval mode.

    Runs on one thread: these models are tiny, and on a shared 2-core machine
    torch's thread pool spends more time waiting than computing.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(len(y)))
            for i in range(0, len(y), batch):
                idx = order[i : i + batch]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


_quiet = quiet  # the exporter's and onnxruntime.quantization's advisory warnings


def export_onnx(
    model: nn.Module, example: np.ndarray, path: Path, *, fixed_batch: bool = False
) -> Path:
    """ONNX (opset 17), input 'x', output 'logits'.

    The batch axis is dynamic unless ``fixed_batch``, which fixes it at
    ``len(example)`` (as exporters do when given no dynamic axes).
    """
    axes = None if fixed_batch else {"x": {0: "batch"}, "logits": {0: "batch"}}
    sample = example if fixed_batch else example[:2]
    with _quiet():
        torch.onnx.export(
            model,
            (torch.from_numpy(sample),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes=axes,
        )
    return path


def save_torchscript(model: nn.Module, example: np.ndarray, path: Path) -> Path:
    """``torch.jit.trace`` and save."""
    with _quiet(), torch.no_grad():
        torch.jit.trace(model, torch.from_numpy(example[:2])).save(str(path))
    return path


def save_pt2(model: nn.Module, example: np.ndarray, path: Path) -> Path:
    """``torch.export`` with a dynamic batch dimension, saved as ``.pt2``."""
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        program = torch.export.export(
            model, (torch.from_numpy(example[:2]),), dynamic_shapes=({0: batch},)
        )
        torch.export.save(program, str(path))
    return path


def quantize_onnx_dynamic(src: Path, dst: Path) -> Path:
    """onnxruntime dynamic quantization (int8 weights)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def calibration_reader(x: np.ndarray, *, batch: int = 64, input_name: str = "x") -> object:
    """A ``CalibrationDataReader`` over ``x`` in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter([{input_name: x[i : i + batch]} for i in range(0, len(x), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return _Reader()


def quantize_onnx_static(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """onnxruntime static quantization, QDQ format, int8, calibrated on ``calibration``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepped = dst.with_name(dst.stem + ".prep.onnx")
    with _quiet():
        quant_pre_process(str(src), str(prepped))
        quantize_static(
            str(prepped),
            str(dst),
            calibration_reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    prepped.unlink()
    return dst


def _dynamic_int8(model: nn.Module) -> nn.Module:
    with _quiet():
        return torch.ao.quantization.quantize_dynamic(  # type: ignore[no-any-return]
            model, {nn.Linear}, dtype=torch.qint8
        )


def make_digits_models(tmp_dir: Path) -> dict[str, Path]:
    """Train a tiny CNN and an MLP on digits:train and write every model format.

    Returns
    -------
    dict of str to Path
        ``fp32_onnx``, ``int8_dynamic_onnx``, ``int8_static_onnx`` (QDQ),
        ``torchscript``, ``torchscript_dynamic_int8``, ``pt2`` (all the CNN),
        ``mlp_onnx``, ``mlp_torchscript``, and ``cnn_state_dict`` (weights of
        ``TinyCNN()`` for ``module:factory`` tests).
    """
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data = digits("train")
    x, y = data.x, data.y
    torch.manual_seed(SEED)  # initial weights
    cnn = train(TinyCNN(in_size=8), x, y, epochs=12)
    mlp = train(MLP(), x, y, epochs=15, seed=SEED + 1)
    out = {
        "fp32_onnx": export_onnx(cnn, x, tmp_dir / "cnn.onnx"),
        "torchscript": save_torchscript(cnn, x, tmp_dir / "cnn.pt"),
        "pt2": save_pt2(cnn, x, tmp_dir / "cnn.pt2"),
        "mlp_onnx": export_onnx(mlp, x, tmp_dir / "mlp.onnx"),
        "mlp_torchscript": save_torchscript(mlp, x, tmp_dir / "mlp.pt"),
    }
    out["int8_dynamic_onnx"] = quantize_onnx_dynamic(
        out["fp32_onnx"], tmp_dir / "cnn_int8_dyn.onnx"
    )
    out["int8_static_onnx"] = quantize_onnx_static(
        out["fp32_onnx"], tmp_dir / "cnn_int8_qdq.onnx", x[:512]
    )
    out["torchscript_dynamic_int8"] = save_torchscript(
        _dynamic_int8(cnn), x, tmp_dir / "cnn_dyn_int8.pt"
    )
    out["cnn_state_dict"] = tmp_dir / "cnn_weights.pth"
    torch.save(cnn.state_dict(), out["cnn_state_dict"])
    return out


def fashion_data_dir() -> Path | None:
    """``$COMPAUDIT_DATA_DIR/fashion-mnist`` when it holds the idx files, else ``None``."""
    root = os.environ.get("COMPAUDIT_DATA_DIR")
    if not root:
        return None
    folder = Path(root) / "fashion-mnist"
    return folder if (folder / "t10k-images-idx3-ubyte.gz").is_file() else None


def fashion(split: str, limit: int) -> Dataset:
    """The first ``limit`` examples of a Fashion-MNIST split (float32 [N, 1, 28, 28] / 255)."""
    folder = fashion_data_dir()
    if folder is None:
        raise FileNotFoundError("Fashion-MNIST not found; set COMPAUDIT_DATA_DIR")
    return load_dataset(f"fashion-mnist:{split}?path={folder}&limit={limit}")


def make_fashion_models(tmp_dir: Path, *, train_limit: int = 4000) -> dict[str, Path]:
    """A CNN trained for 2 epochs on the first ``train_limit`` Fashion-MNIST images.

    Returns ``fp32_onnx``, ``int8_static_onnx`` (QDQ) and ``torchscript``.
    """
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data = fashion("train", train_limit)
    torch.manual_seed(SEED)  # initial weights
    cnn = train(TinyCNN(in_size=28), data.x, data.y, epochs=2, lr=3e-3)
    fp32 = export_onnx(cnn, data.x, tmp_dir / "fcnn.onnx")
    return {
        "fp32_onnx": fp32,
        "int8_static_onnx": quantize_onnx_static(fp32, tmp_dir / "fcnn_qdq.onnx", data.x[:512]),
        "torchscript": save_torchscript(cnn, data.x, tmp_dir / "fcnn.pt"),
    }
