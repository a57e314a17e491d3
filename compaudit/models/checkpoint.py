"""Checkpoints (``.ckpt``): one model with everything needed to rebuild it.

The format belongs to the models layer: the trainer writes it and the
``checkpoint`` runner reads it, and neither needs the other.

A checkpoint is a ``torch.save`` dict, loadable with ``weights_only=True``::

    {"format": "compaudit.checkpoint/v1",
     "arch": "mlp", "arch_kwargs": {...},          # rebuilt via architectures.build
     "state_dict": {...},                          # of the (possibly quantized) model
     "class_names": [...], "preprocessing": {...}, # Preprocessing.to_dict()
     "quantization": None | "dynamic-int8" | "fp16",
     "meta": {...}}                                # variant, member, seed, metrics ...

Pruned models store their final masked weights (zeros baked in, no pruning
re-parametrisation), so loading needs no pruning code. ``"dynamic-int8"``
is torch dynamic quantization of every ``nn.Linear``; ``"fp16"`` is a
half-precision model wrapped in :class:`Float32IO` so that callers keep
passing and receiving float32.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from compaudit._io import atomic_write_with
from compaudit.errors import CompauditError, ModelError
from compaudit.models.architectures import build
from compaudit.models.inference import short_error

__all__ = [
    "CHECKPOINT_FORMAT",
    "QUANTIZATIONS",
    "Float32IO",
    "apply_quantization_structure",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "compaudit.checkpoint/v1"
QUANTIZATIONS = (None, "dynamic-int8", "fp16")

ERR_MISSING = "{path}: no such checkpoint file"
ERR_UNREADABLE = (
    "{path}: not a readable compaudit checkpoint ({reason}); the file is truncated or "
    "corrupted, re-create it with `compaudit train`"
)
ERR_NOT_PLAIN = (
    "{path}: refused: it holds more than tensors and plain values ({reason}); loading it "
    "would mean unpickling, which can run any code, and compaudit never does; re-create it "
    "with `compaudit train`, or export the model to ONNX"
)
ERR_FORMAT = (
    "{path}: unsupported checkpoint format {found!r} (expected '{expected}'); "
    "write it with compaudit.models.checkpoint.save_checkpoint"
)
ERR_KEYS = "{path}: checkpoint lacks required key(s) {missing}; re-create it with `compaudit train`"
ERR_QUANT = "{path}: unknown quantization {found!r}; expected one of {choices}"
ERR_STATE = "{path}: weights do not fit architecture '{arch}' ({reason})"

_REQUIRED = ("format", "arch", "arch_kwargs", "state_dict", "class_names", "preprocessing")


class Float32IO(nn.Module):
    """Run a half-precision module on float32 inputs and return float32 outputs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()  # type: ignore[no-any-return]


@contextmanager
def _quiet_quantization() -> Iterator[None]:
    # torch.ao dynamic quantization warns that it is deprecated on every call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def apply_quantization_structure(model: nn.Module, quantization: str | None) -> nn.Module:
    """Turn a float model into the structure a quantized checkpoint describes.

    Parameters
    ----------
    model : torch.nn.Module
        A float32 model (its weights are converted, not discarded).
    quantization : {None, "dynamic-int8", "fp16"}
        ``"dynamic-int8"``: ``quantize_dynamic`` on every ``nn.Linear``
        (int8 weights, activations quantized per batch at run time);
        ``"fp16"``: ``.half()`` wrapped in :class:`Float32IO`.

    Returns
    -------
    torch.nn.Module
        The converted model in eval mode.
    """
    model = model.eval()
    if quantization is None:
        return model
    if quantization == "dynamic-int8":
        with _quiet_quantization():
            return torch.ao.quantization.quantize_dynamic(  # type: ignore[no-any-return,no-untyped-call]
                model, {nn.Linear}, dtype=torch.qint8
            ).eval()
    if quantization == "fp16":
        return Float32IO(model.half()).eval()
    raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    arch_kwargs: Mapping[str, Any],
    class_names: Sequence[str],
    preprocessing: Mapping[str, Any],
    quantization: str | None,
    meta: Mapping[str, Any],
) -> None:
    """Write ``model`` to ``path`` as a compaudit checkpoint, atomically.

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``*.ckpt``.
    model : torch.nn.Module
        The model as it should run; for ``quantization="fp16"`` either the
        :class:`Float32IO` wrapper or the bare half-precision module.
    arch, arch_kwargs
        How to rebuild the float architecture (:func:`~compaudit.models.architectures.build`).
    class_names : sequence of str
        One name per output logit.
    preprocessing : mapping
        ``Preprocessing.to_dict()`` of the data the model expects.
    quantization : {None, "dynamic-int8", "fp16"}
        Structure to re-apply before loading the weights.
    meta : mapping
        Provenance (JSON-like: str, int, float, bool, lists, dicts).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    inner = model.inner if isinstance(model, Float32IO) else model
    raw = inner.state_dict()
    # Keep the OrderedDict and its ``_metadata``: quantized modules read their
    # serialisation version from it when the weights are loaded back.
    state = type(raw)((k, v.detach().cpu() if torch.is_tensor(v) else v) for k, v in raw.items())
    state._metadata = getattr(raw, "_metadata", None)  # type: ignore[attr-defined]
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "arch_kwargs": _plain(dict(arch_kwargs)),
        "state_dict": state,
        "class_names": [str(c) for c in class_names],
        "preprocessing": _plain(dict(preprocessing)),
        "quantization": quantization,
        "meta": _plain(dict(meta)),
    }

    def write(fh: IO[bytes]) -> None:
        torch.save(payload, fh)

    atomic_write_with(path, write, suffix=".ckpt")


def _plain(obj: Any) -> Any:
    """Tuples to lists, recursively, so ``weights_only`` loading accepts the dict."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _refused_by_weights_only(exc: BaseException) -> str | None:
    """What ``torch.load(weights_only=True)`` refused ("Unsupported global: ..."), if that
    is why it failed: the file is a pickle of more than tensors, not a damaged file."""
    text = str(exc)
    if not isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" not in text:
        return None
    after = text.split("WeightsUnpickler error:", 1)[-1]
    reason = next((ln.strip() for ln in after.splitlines() if ln.strip()), "")
    return " ".join(reason.split())[:200] or "objects other than tensors"


def _read(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    try:
        with _quiet_quantization():
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        AttributeError,
        KeyError,
    ) as exc:
        unsafe = _refused_by_weights_only(exc)
        if unsafe is not None:
            raise ModelError(ERR_NOT_PLAIN.format(path=path, reason=unsafe)) from None
        raise ModelError(ERR_UNREADABLE.format(path=path, reason=short_error(exc, 200))) from exc
    if not isinstance(obj, dict):
        raise ModelError(ERR_UNREADABLE.format(path=path, reason=f"holds a {type(obj).__name__}"))
    return obj


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path-like
        A ``.ckpt`` file.

    Returns
    -------
    model : torch.nn.Module
        The rebuilt model (quantization structure applied) in eval mode,
        on CPU, taking float32 input.
    info : dict
        Every checkpoint field except ``state_dict``: ``format``, ``arch``,
        ``arch_kwargs``, ``class_names``, ``preprocessing``,
        ``quantization``, ``meta``.

    Raises
    ------
    ModelError
        Missing, truncated or corrupted file, unknown format, or weights that
        do not fit the recorded architecture; the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(ERR_MISSING.format(path=p))
    obj = _read(p)
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise ModelError(ERR_KEYS.format(path=p, missing=missing))
    if obj["format"] != CHECKPOINT_FORMAT:
        raise ModelError(ERR_FORMAT.format(path=p, found=obj["format"], expected=CHECKPOINT_FORMAT))
    quant = obj.get("quantization")
    if quant not in QUANTIZATIONS:
        raise ModelError(ERR_QUANT.format(path=p, found=quant, choices=list(QUANTIZATIONS)))
    arch = str(obj["arch"])
    try:
        model = apply_quantization_structure(build(arch, **dict(obj["arch_kwargs"])), quant)
        target = model.inner if isinstance(model, Float32IO) else model
        with _quiet_quantization():
            target.load_state_dict(obj["state_dict"], strict=True)
    except CompauditError as exc:
        raise ModelError(f"{p}: {exc}") from exc
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise ModelError(ERR_STATE.format(path=p, arch=arch, reason=short_error(exc, 200))) from exc
    info = {k: v for k, v in obj.items() if k != "state_dict"}
    info.setdefault("meta", {})
    return model.eval(), info
