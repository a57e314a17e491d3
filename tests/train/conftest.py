"""Fixtures for the trainer tests: tiny digits recipes that train in about a second."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from compaudit.train.recipe import Recipe, recipe_from_dict

# digits:train has 1,257 examples: batch 64 gives 20 steps per epoch, 40 in all.
TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits", "train": "train", "eval": "test"},
    "architecture": {"name": "mlp", "kwargs": {"hidden": [16]}},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.2, "weight_decay": 0.0005},
    "k": 3,
    "seed": 0,
    "variants": [
        {"name": "dense", "kind": "dense"},
        {
            "name": "p50",
            "kind": "prune",
            "prune": {"sparsity": 0.5, "begin_step": 4, "end_step": 28, "frequency": 4},
        },
        {
            "name": "int8s",
            "kind": "quantize",
            "from": "dense",
            "quantize": {"method": "onnx-static", "calibration_examples": 64},
        },
        {
            "name": "int8d",
            "kind": "quantize",
            "from": "p50",
            "quantize": {"method": "onnx-dynamic"},
        },
        {
            "name": "tdyn",
            "kind": "quantize",
            "from": "dense",
            "quantize": {"method": "torch-dynamic"},
        },
        {"name": "half", "kind": "quantize", "from": "dense", "quantize": {"method": "fp16"}},
    ],
}


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread (and the machine is shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_dict(**changes: Any) -> dict[str, Any]:
    """A deep copy of the tiny recipe with top-level keys replaced."""
    d = copy.deepcopy(TINY)
    d.update(changes)
    return d


def tiny_recipe(**changes: Any) -> Recipe:
    """The tiny recipe, validated."""
    return recipe_from_dict(tiny_dict(**changes))


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    """Write a recipe dict as YAML."""
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe trained once (shared by the read-only tests)."""
    from compaudit.train import train_recipe

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_recipe(tiny_recipe(), out, progress=False)
    return out


def predict_file(path: Path, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Top-1 labels of a model file through the project's runners (onnxruntime
    or load_checkpoint directly when the runners are not importable).

    Dynamically quantized models scale activations per batch, so their
    predictions depend on the batch: use the trainer's eval batch size (1024).
    """
    try:
        from compaudit.models.base import RunnerSettings
        from compaudit.models.spec import find_loader
    except ImportError:
        loader = None
    else:
        loader = find_loader(str(path))
    if loader is not None:
        runner = loader.load(str(path))
        return np.asarray(runner.predict(x, RunnerSettings(k=1, batch_size=batch_size)).topk[:, 0])
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {"input": x})[0].argmax(1))
    from compaudit.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy()
