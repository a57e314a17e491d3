"""The one check of a ``--device`` request, shared by the runners and the trainer.

torch and onnxruntime find CUDA differently (``torch.cuda.is_available()``;
onnxruntime's ``CUDAExecutionProvider``), so the check takes the backend,
but the names, the ``auto`` rule and the messages are decided here once.
"""

from __future__ import annotations

from typing import Literal

from compaudit.errors import InputError

__all__ = ["DEVICES", "ERR_NO_CUDA", "ERR_UNKNOWN_DEVICE", "Backend", "check_device", "no_cuda"]

DEVICES = ("cpu", "cuda")
Backend = Literal["torch", "onnxruntime"]

ERR_NO_CUDA = "{subject}: --device cuda was given but {backend} sees no CUDA device{detail}; {fix}"
ERR_UNKNOWN_DEVICE = "{subject}: unknown device '{device}'; use {choices}"

_FIX = {
    "torch": "use --device cpu",
    "onnxruntime": "install onnxruntime-gpu or use --device cpu",
}


def _onnx_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _cuda_available(backend: Backend) -> bool:
    if backend == "onnxruntime":
        return "CUDAExecutionProvider" in _onnx_providers()
    import torch

    return bool(torch.cuda.is_available())


def no_cuda(subject: object, backend: Backend, providers: list[str] | None = None) -> InputError:
    """The error for a CUDA request ``backend`` cannot serve (``providers``: onnxruntime's)."""
    detail = f" (its providers: {', '.join(providers)})" if providers is not None else ""
    return InputError(
        ERR_NO_CUDA.format(subject=subject, backend=backend, detail=detail, fix=_FIX[backend])
    )


def check_device(
    device: str, *, subject: object, backend: Backend = "torch", allow_auto: bool = False
) -> Literal["cpu", "cuda"]:
    """Validate a device request and resolve ``"auto"``.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
        What was asked for; ``"auto"`` only with ``allow_auto``.
    subject : object
        What the request is for (a model file, a recipe), named in messages.
    backend : {"torch", "onnxruntime"}
        Which library must see the device.
    allow_auto : bool
        Accept ``"auto"``: CUDA when ``backend`` sees a device, else CPU.

    Returns
    -------
    {"cpu", "cuda"}

    Raises
    ------
    InputError
        An unknown device name, or ``"cuda"`` where ``backend`` sees none
        (:data:`ERR_NO_CUDA`).
    """
    if device == "auto" and allow_auto:
        return "cuda" if _cuda_available(backend) else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not _cuda_available(backend):
            providers = _onnx_providers() if backend == "onnxruntime" else None
            raise no_cuda(subject, backend, providers)
        return "cuda"
    choices = ", ".join(("auto", *DEVICES) if allow_auto else DEVICES)
    raise InputError(ERR_UNKNOWN_DEVICE.format(subject=subject, device=device, choices=choices))
