"""The trainer's built-in compressors and executors, registered as an ordinary plugin."""

from __future__ import annotations

from typing import Any

from compaudit.plugins import hookimpl

__all__ = ["register_compressors", "register_executors"]


@hookimpl
def register_compressors() -> list[Any]:
    """Magnitude pruning and the four post-training quantizers."""
    from compaudit.train.pruning import MagnitudePruner
    from compaudit.train.quantization import (
        Fp16Quantizer,
        OnnxDynamicQuantizer,
        OnnxStaticQuantizer,
        TorchDynamicQuantizer,
    )

    return [
        MagnitudePruner(),
        OnnxDynamicQuantizer(),
        OnnxStaticQuantizer(),
        TorchDynamicQuantizer(),
        Fp16Quantizer(),
    ]


@hookimpl
def register_executors() -> list[Any]:
    """In-process (``local``) and process-pool (``pool``) executors."""
    from compaudit.train.executors import InProcessExecutor, ProcessPoolExecutor

    return [InProcessExecutor(), ProcessPoolExecutor()]
