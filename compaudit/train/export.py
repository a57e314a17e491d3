"""ONNX export of trained members (float, pruned and fp16 models)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compaudit._io import atomic_path

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "quiet"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 17


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporter's and ONNX Runtime quantization's advisory warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_onnx(
    model: nn.Module,
    example: np.ndarray,
    path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Export ``model`` (eval mode, CPU) to ``path`` atomically.

    The graph takes ``input`` (float32, any batch size) and returns ``logits``.
    The TorchScript-based exporter is used: it needs no extra packages and
    gives a plain graph that ONNX Runtime's quantizers understand.
    ``metadata`` is stored in the model's ``metadata_props`` (the trainer
    records the preprocessing there, so an export copied out of its run
    still carries it).
    """
    model = model.eval().cpu()
    x = torch.from_numpy(np.ascontiguousarray(example[:1], dtype=np.float32))
    with atomic_path(path, suffix=".onnx") as tmp, quiet(), torch.no_grad():
        torch.onnx.export(
            model,
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        if metadata:
            import onnx

            proto = onnx.load(str(tmp))
            for key, value in sorted(metadata.items()):
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(proto, str(tmp))
