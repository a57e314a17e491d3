"""Post-training quantization of trained members (no retraining).

* ``onnx-dynamic``: ONNX Runtime dynamic quantization of the float ONNX
  export (int8 weights; activations quantized per batch at run time).
* ``onnx-static``: ONNX Runtime static quantization in QDQ format (int8
  weights and activations); activation ranges are calibrated (min-max) on
  ``calibration_examples`` training examples drawn with ``seed``. The same
  draw is used for every member, so members differ only through their own
  training seeds.
* ``torch-dynamic``: ``torch.ao`` dynamic int8 quantization of every
  ``nn.Linear`` (conv layers stay float); saved as a checkpoint, since
  quantized torch modules do not export to ONNX.
* ``fp16``: half-precision weights and activations, float32 in and out;
  saved as a checkpoint and exported to ONNX.

The ``onnx-*`` methods write only the quantized ``.onnx`` (canonical); the
others write a ``.ckpt`` (canonical) and, for fp16, an ``.onnx`` too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from compaudit._io import atomic_path
from compaudit.data.prep import onnx_prep_metadata
from compaudit.errors import ModelError
from compaudit.models.checkpoint import apply_quantization_structure, save_checkpoint
from compaudit.train.base import QuantizedFiles, SourceMember
from compaudit.train.export import INPUT_NAME, export_onnx, quiet
from compaudit.train.recipe import QuantizeConfig

__all__ = [
    "Fp16Quantizer",
    "OnnxDynamicQuantizer",
    "OnnxStaticQuantizer",
    "TorchDynamicQuantizer",
    "draw_calibration",
]

ERR_NO_ONNX = "{method}: the source member {ckpt} has no float ONNX export to quantize"


def draw_calibration(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``min(count, len(x))`` rows of ``x`` drawn without replacement with ``seed``."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(x.shape[0], size=min(count, x.shape[0]), replace=False)
    return np.ascontiguousarray(x[np.sort(idx)], dtype=np.float32)


def _source_onnx(source: SourceMember, method: str) -> Path:
    if source.onnx is None or not source.onnx.is_file():
        raise ModelError(ERR_NO_ONNX.format(method=method, ckpt=source.checkpoint))
    return source.onnx


def _ckpt_args(source: SourceMember, method: str, extra: dict[str, Any]) -> dict[str, Any]:
    info = source.info
    return {
        "arch": info["arch"],
        "arch_kwargs": info["arch_kwargs"],
        "class_names": info["class_names"],
        "preprocessing": info["preprocessing"],
        "meta": {**dict(info.get("meta", {})), "quantization_method": method, **extra},
    }


class OnnxDynamicQuantizer:
    """ONNX Runtime dynamic int8 quantization."""

    name = "onnx-dynamic"
    kind: Literal["quantize"] = "quantize"

    def quantize(
        self, source: SourceMember, config: QuantizeConfig, calibration: np.ndarray, out_stem: Path
    ) -> QuantizedFiles:
        """Quantize the source's float ONNX export; writes ``out_stem.onnx``."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        src = _source_onnx(source, self.name)
        out = out_stem.with_suffix(".onnx")
        with atomic_path(out, suffix=".onnx") as tmp, quiet():
            quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=config.per_channel)
        return QuantizedFiles(files={"onnx": str(out)}, canonical="onnx")


class _Reader:
    """ONNX Runtime calibration reader over fixed batches."""

    def __init__(self, x: np.ndarray, batch: int = 64) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{INPUT_NAME: x[i : i + batch]} for i in range(0, x.shape[0], batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by min-max calibration
        raise NotImplementedError


class OnnxStaticQuantizer:
    """ONNX Runtime static int8 quantization (QDQ), min-max calibrated."""

    name = "onnx-static"
    kind: Literal["quantize"] = "quantize"

    def quantize(
        self, source: SourceMember, config: QuantizeConfig, calibration: np.ndarray, out_stem: Path
    ) -> QuantizedFiles:
        """Quantize the source's float ONNX export; writes ``out_stem.onnx``."""
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
            pass

        src = _source_onnx(source, self.name)
        out = out_stem.with_suffix(".onnx")
        with atomic_path(out, suffix=".onnx") as tmp, quiet():
            quantize_static(
                src,
                tmp,
                Reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=config.per_channel,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return QuantizedFiles(
            files={"onnx": str(out)},
            canonical="onnx",
            meta={"calibration_examples": int(calibration.shape[0]), "seed": config.seed},
        )


class TorchDynamicQuantizer:
    """``torch.ao`` dynamic int8 quantization of the linear layers."""

    name = "torch-dynamic"
    kind: Literal["quantize"] = "quantize"

    def quantize(
        self, source: SourceMember, config: QuantizeConfig, calibration: np.ndarray, out_stem: Path
    ) -> QuantizedFiles:
        """Write ``out_stem.ckpt`` with ``quantization="dynamic-int8"``."""
        model = apply_quantization_structure(copy.deepcopy(source.model).cpu(), "dynamic-int8")
        out = out_stem.with_suffix(".ckpt")
        save_checkpoint(
            out, model, quantization="dynamic-int8", **_ckpt_args(source, self.name, {})
        )
        return QuantizedFiles(files={"ckpt": str(out)}, canonical="ckpt")


class Fp16Quantizer:
    """Half precision (float32 in and out)."""

    name = "fp16"
    kind: Literal["quantize"] = "quantize"

    def quantize(
        self, source: SourceMember, config: QuantizeConfig, calibration: np.ndarray, out_stem: Path
    ) -> QuantizedFiles:
        """Write ``out_stem.ckpt`` (``quantization="fp16"``) and ``out_stem.onnx``."""
        model = apply_quantization_structure(copy.deepcopy(source.model).cpu(), "fp16")
        ckpt, onnx_path = out_stem.with_suffix(".ckpt"), out_stem.with_suffix(".onnx")
        save_checkpoint(ckpt, model, quantization="fp16", **_ckpt_args(source, self.name, {}))
        # Carried like the float export's, so the fp16 file audits on its own too.
        prep = onnx_prep_metadata(source.info["preprocessing"])
        export_onnx(model, source.example_input, onnx_path, metadata=prep)
        return QuantizedFiles(files={"ckpt": str(ckpt), "onnx": str(onnx_path)}, canonical="ckpt")
