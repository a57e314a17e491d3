"""Built-in model loaders, registered through the plugin registry like any plugin.

ONNX (``.onnx``), TorchScript (``.pt``, ``.pth``), ``torch.export`` programs
(``.pt2``), trainer checkpoints (``.ckpt``) and ``module:factory`` with weights.
"""

from __future__ import annotations

from typing import Any

from compaudit.models.onnx_runner import OnnxLoader
from compaudit.models.torch_runner import (
    CheckpointLoader,
    ExportedProgramLoader,
    FactoryLoader,
    TorchScriptLoader,
)
from compaudit.plugins import hookimpl

__all__ = ["register_model_loaders"]


@hookimpl
def register_model_loaders() -> list[Any]:
    """Return the built-in model loaders."""
    return [
        OnnxLoader(),
        TorchScriptLoader(),
        ExportedProgramLoader(),
        CheckpointLoader(),
        FactoryLoader(),
    ]
