"""Checkpoints: exact round trips for every architecture and quantization."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compaudit.errors import InputError, ModelError
from compaudit.models.architectures import ARCHITECTURES, ERR_UNKNOWN_ARCH, build
from compaudit.models.checkpoint import (
    CHECKPOINT_FORMAT,
    ERR_MISSING,
    ERR_UNREADABLE,
    apply_quantization_structure,
    load_checkpoint,
    save_checkpoint,
)
from tests.conftest import UnpickleMarker

CASES = [
    ("mlp", {"in_features": 64, "hidden": [16], "num_classes": 10}, (4, 1, 8, 8)),
    ("mlp", {"in_features": 95, "hidden": [8, 4], "num_classes": 2, "dropout": 0.1}, (4, 95)),
    ("cnn28", {"in_size": 8, "channels": [4, 8], "hidden": 16}, (4, 1, 8, 8)),
    ("cnn28", {"channels": [4, 8], "hidden": 16}, (4, 1, 28, 28)),
    ("resnet20", {"width": 4, "blocks_per_stage": 1}, (2, 3, 32, 32)),
]


def _save(
    path: Path, model: torch.nn.Module, arch: str, kw: dict[str, object], q: str | None
) -> None:
    save_checkpoint(
        path,
        model,
        arch=arch,
        arch_kwargs=kw,
        class_names=[str(i) for i in range(10)],
        preprocessing={"layout": "NCHW", "scaling": "divide:16"},
        quantization=q,
        meta={"seed": 3, "shape": (1, 2)},
    )


@pytest.mark.parametrize("quantization", [None, "dynamic-int8", "fp16"])
@pytest.mark.parametrize(("arch", "kw", "shape"), CASES, ids=[f"{a}-{s[-1]}" for a, _, s in CASES])
def test_round_trip_is_exact(
    tmp_path: Path,
    arch: str,
    kw: dict[str, object],
    shape: tuple[int, ...],
    quantization: str | None,
) -> None:
    torch.manual_seed(0)
    model = apply_quantization_structure(build(arch, **kw), quantization)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "m.ckpt"
    _save(path, model, arch, kw, quantization)
    loaded, info = load_checkpoint(path)
    with torch.no_grad():
        got = loaded(x)
    assert got.dtype == torch.float32  # fp16 models take and give float32
    assert torch.equal(got, expected)
    assert info["quantization"] == quantization
    assert info["meta"] == {"seed": 3, "shape": [1, 2]}
    assert not loaded.training
    # The file is a plain dict that weights_only loading accepts.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    assert raw["arch"] == arch


def test_architectures_output_shapes() -> None:
    for arch, kw, shape in CASES:
        out = build(arch, **kw)(torch.randn(*shape))
        assert out.shape == (shape[0], kw.get("num_classes", 10)), arch
    # ResNet-20 with option-A shortcuts has 0.27M parameters (He et al. 2016, Table 6).
    assert sum(p.numel() for p in build("resnet20").parameters()) == 269_722


def test_unknown_architecture() -> None:
    with pytest.raises(InputError) as info:
        build("vgg")
    assert str(info.value) == ERR_UNKNOWN_ARCH.format(arch="vgg", choices=sorted(ARCHITECTURES))


def test_truncated_and_missing_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    _save(
        path,
        build("mlp", in_features=4, num_classes=2),
        "mlp",
        {"in_features": 4, "num_classes": 2},
        None,
    )
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: not a readable compaudit checkpoint")
    assert ERR_UNREADABLE.split("(")[0].format(path=path) in str(info.value)
    with pytest.raises(ModelError) as info:
        load_checkpoint(tmp_path / "none.ckpt")
    assert str(info.value) == ERR_MISSING.format(path=tmp_path / "none.ckpt")


def test_weights_that_do_not_fit_are_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    _save(
        path,
        build("mlp", in_features=4, num_classes=2),
        "mlp",
        {"in_features": 5, "num_classes": 2},
        None,
    )
    with pytest.raises(ModelError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: weights do not fit architecture 'mlp'")


def test_step_macs_hand_computed() -> None:
    from compaudit.train.trainer import SMALL_STEP_MACS, auto_threads, step_macs

    mlp = build("mlp", in_features=64, hidden=[128], num_classes=10)
    assert step_macs(mlp, torch.zeros(1, 1, 8, 8), 32) == (64 * 128 + 128 * 10) * 32
    cnn = build("cnn28", channels=[8, 16], hidden=64)
    per_example = 9 * 8 * 28 * 28 + 72 * 16 * 14 * 14 + 784 * 64 + 64 * 10
    assert step_macs(cnn, torch.zeros(1, 1, 28, 28), 128) == per_example * 128
    assert step_macs(mlp, torch.zeros(1, 1, 8, 8), 32) < SMALL_STEP_MACS
    assert auto_threads(mlp, torch.zeros(4, 1, 8, 8), 32) == 1


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_with_code_is_refused_as_such(tmp_path: Path, protocol: int) -> None:
    """Before: "the file is truncated or corrupted", with torch's advice cut mid-word."""
    import pickle

    marker, path = tmp_path / "ran.txt", tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(UnpickleMarker(marker), protocol=protocol))
    with pytest.raises(ModelError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: it holds more than tensors and plain values (")
    assert "Unsupported" in message  # torch's reason: a global or an opcode it refuses
    assert "truncated" not in message
    assert not marker.exists()


def test_short_error_cuts_at_a_word() -> None:
    from compaudit.models.inference import short_error

    text = short_error(ValueError("alpha beta gamma delta"), limit=24)
    assert text == "ValueError: alpha..."
    assert len(text) <= 24
    assert short_error(ValueError("short"), limit=24) == "ValueError: short"
