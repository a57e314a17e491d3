"""PyTorch models: TorchScript, ``torch.export`` programs, checkpoints, factories.

torch is imported inside functions so that listing plugins or reading a
predictions file does not pay for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit._io import sha256_file
from compaudit.errors import CompauditError, DataNotFoundError, ModelError
from compaudit.models.base import Prediction, RunnerSettings
from compaudit.models.device import check_device
from compaudit.models.inference import describe_array, run_batches, short_error
from compaudit.models.pt2 import ERR_PT2_UNREADABLE, load_exported_program

if TYPE_CHECKING:
    import torch

__all__ = [
    "ERR_BAD_OUTPUT",
    "ERR_FACTORY",
    "ERR_MISSING",
    "ERR_NOT_TORCHSCRIPT",
    "ERR_NO_WEIGHTS",
    "ERR_PT2_UNREADABLE",
    "ERR_TORCH_INPUT",
    "ERR_TS_UNREADABLE",
    "ERR_UNTRUSTED_CODE",
    "ERR_WEIGHTS",
    "CheckpointLoader",
    "ExportedProgramLoader",
    "FactoryLoader",
    "TorchRunner",
    "TorchScriptLoader",
]

ERR_MISSING = "{path}: no such model file"
ERR_TS_UNREADABLE = (
    "{path}: not a readable TorchScript archive ({reason}); the file is truncated or "
    "corrupted, save it again with torch.jit.save"
)
ERR_NOT_TORCHSCRIPT = (
    "{path}: not TorchScript: it is a pickle (torch.save of a state dict or a module); "
    "save the model with torch.jit.script(model).save(...), or load it as "
    "'module:factory --weights {path}'"
)
ERR_TORCH_INPUT = (
    "{path}: the model rejected input {got} ({reason}); prepare the data the way the "
    "model was trained (see the dataset's preprocessing)"
)
ERR_BAD_OUTPUT = (
    "{path}: the model returned {kind}; it must return class scores [batch, classes] "
    "(a tensor, a tuple whose first item is one, or a dict with 'logits')"
)
ERR_NO_WEIGHTS = (
    "{spec}: a module:factory model needs its weights; give --weights FILE "
    "(a state dict saved with torch.save(model.state_dict(), FILE))"
)
ERR_FACTORY = (
    "{spec}: {reason}; give an importable 'package.module:function' returning a torch.nn.Module"
)
ERR_WEIGHTS = "{spec}: the weights in {weights} do not fit the model the factory built ({reason})"

ERR_UNTRUSTED_CODE = (
    "{spec}: refusing to run {kind}: it is code, not data, and can do anything when loaded "
    "or called (e.g. torch.from_file overwriting one of your files); if you trust it, pass "
    "--trust-model-code (Python: trust_model_code=True), or export the model to ONNX or "
    ".pt2, which compaudit loads as data"
)
TORCHSCRIPT_KIND = "a TorchScript model"
FACTORY_KIND = "a module:factory model (its module is imported and its factory called)"

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _device(path: object, device: str) -> torch.device:
    import torch

    return torch.device(check_device(device, subject=path, backend="torch"))


def _scores(path: object, out: Any) -> torch.Tensor:
    import torch

    if isinstance(out, list | tuple) and out:
        out = out[0]
    elif isinstance(out, Mapping):
        out = out.get("logits", next(iter(out.values())) if len(out) == 1 else None)
    if not isinstance(out, torch.Tensor):
        raise ModelError(ERR_BAD_OUTPUT.format(path=path, kind=type(out).__name__))
    return out


class TorchRunner:
    """A torch module (eager, TorchScript or exported) run under ``inference_mode``.

    Parameters
    ----------
    module : torch.nn.Module
        The model, in eval mode.
    path : str
        File or spec it came from (messages).
    name : str
        Member name.
    fingerprint : str
        sha256 of the file(s).
    meta : mapping
        Provenance (format, class names and preprocessing for checkpoints).
    """

    def __init__(
        self, module: Any, *, path: str, name: str, fingerprint: str, meta: Mapping[str, Any]
    ) -> None:
        self.module = module
        self.path = path
        self.name = name
        self.fingerprint = fingerprint
        self.meta = meta

    def predict(
        self, x: np.ndarray, settings: RunnerSettings, *, num_classes: int | None = None
    ) -> Prediction:
        """Top-k predictions for every row of ``x`` (see :class:`~compaudit.models.base.Runner`).

        Raises
        ------
        ModelError
            The model rejects the input (shape or dtype, reported with the
            data's), the device is unavailable, or the outputs are unusable.
        """
        import torch

        device = _device(self.path, settings.device)
        module = self.module
        if device.type != "cpu":
            try:
                module = module.to(device)
            except Exception as exc:  # e.g. dynamic-quantized layers are CPU-only
                raise ModelError(f"{self.path}: cannot move the model to {device} ({exc})") from exc
        path, got = self.path, describe_array(x)

        def run_batch(batch: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(batch)
            if device.type != "cpu":
                t = t.to(device, non_blocking=True)
            try:
                out = module(t)
            except Exception as exc:  # RuntimeError, or AssertionError from export guards
                raise ModelError(
                    ERR_TORCH_INPUT.format(path=path, got=got, reason=short_error(exc))
                ) from exc
            scores = _scores(path, out)
            return scores.detach().to("cpu", torch.float32).numpy()

        with torch.inference_mode(), warnings.catch_warnings():
            # Read-only datasets (memory-mapped .npz) are never written to here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return run_batches(
                path, np.ascontiguousarray(x), run_batch, settings, num_classes=num_classes
            )


def require_trust(spec: object, kind: str, options: Mapping[str, Any] | None) -> None:
    """Raise unless the user trusted model code (``options["trust_model_code"]``).

    Raises
    ------
    ModelError
        :data:`ERR_UNTRUSTED_CODE`, naming ``spec`` and why it is refused.
    """
    if (options or {}).get("trust_model_code") is not True:
        raise ModelError(ERR_UNTRUSTED_CODE.format(spec=spec, kind=kind))


def _check_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(ERR_MISSING.format(path=p))
    return p


class _FileLoader:
    """Shared ``matches``/``fingerprint`` for single-file torch formats."""

    name = ""
    suffixes: tuple[str, ...] = ()

    def matches(self, path: str) -> bool:
        """Whether ``path`` has one of this loader's suffixes."""
        return Path(path).suffix.lower() in self.suffixes

    def fingerprint(self, path: str, *, options: Mapping[str, Any] | None = None) -> str:
        """sha256 of the file, without loading it."""
        return sha256_file(_check_file(path))


def _check_archive(p: Path) -> None:
    """Refuse a file that is not a TorchScript archive, from its zip directory alone.

    Before the trust check: a ``torch.save`` file (a state dict or a pickled module,
    zipped or a bare pickle) is named as what it is, and the user is never told to
    pass ``--trust-model-code`` for something no TorchScript loader would read.
    Nothing in the file is unpickled or run.
    """
    try:
        with zipfile.ZipFile(p) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        with contextlib.suppress(OSError), p.open("rb") as f:
            if f.read(1) == b"\x80":  # a pickle's PROTO opcode: torch.save's legacy format
                raise ModelError(ERR_NOT_TORCHSCRIPT.format(path=p)) from None
        raise ModelError(ERR_TS_UNREADABLE.format(path=p, reason=short_error(exc))) from exc
    if not any(n.endswith("constants.pkl") for n in names) and any(
        n.endswith("data.pkl") for n in names
    ):
        raise ModelError(ERR_NOT_TORCHSCRIPT.format(path=p))


class TorchScriptLoader(_FileLoader):
    """TorchScript archives (``.pt``, ``.pth``) via ``torch.jit.load``."""

    name = "torchscript"
    suffixes = (".pt", ".pth")

    def fingerprint(self, path: str, *, options: Mapping[str, Any] | None = None) -> str:
        """sha256 of the file; refused untrusted, like :meth:`load` (a cache hit
        must not pass a run that the same run with a cold cache refuses)."""
        p = _check_file(path)
        _check_archive(p)
        require_trust(p, TORCHSCRIPT_KIND, options)
        return sha256_file(p)

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> TorchRunner:
        """Load the archive on CPU; a ``torch.save`` file is named as such.

        Raises
        ------
        ModelError
            Without ``options["trust_model_code"]`` (TorchScript is code), or
            an unreadable archive.
        """
        import torch

        p = _check_file(path)
        _check_archive(p)
        require_trust(p, TORCHSCRIPT_KIND, options)
        fp = sha256_file(p)
        try:
            with warnings.catch_warnings():
                # torch >= 2.9 marks TorchScript deprecated; it still loads and runs.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(p), map_location="cpu")  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ModelError(ERR_TS_UNREADABLE.format(path=p, reason=short_error(exc))) from exc
        meta = {"format": "torchscript", "path": str(p)}
        return TorchRunner(module.eval(), path=str(p), name=p.stem, fingerprint=fp, meta=meta)


class ExportedProgramLoader(_FileLoader):
    """``torch.export`` programs (``.pt2``) via ``torch.export.load(...).module()``."""

    name = "torch-export"
    suffixes = (".pt2",)

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> TorchRunner:
        """Load the exported program and unlift it into a callable module."""
        p = _check_file(path)
        fp = sha256_file(p)
        try:
            # Data only: no pickle is unpickled and no compiled code loaded (see pt2.py).
            module = load_exported_program(p)
        except CompauditError:
            raise
        except Exception as exc:
            raise ModelError(ERR_PT2_UNREADABLE.format(path=p, reason=short_error(exc))) from exc
        meta = {"format": "torch-export", "path": str(p)}
        return TorchRunner(module, path=str(p), name=p.stem, fingerprint=fp, meta=meta)


class CheckpointLoader(_FileLoader):
    """compaudit checkpoints (``.ckpt``, :mod:`compaudit.models.checkpoint`)."""

    name = "checkpoint"
    suffixes = (".ckpt",)

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> TorchRunner:
        """Rebuild the model with :func:`compaudit.models.checkpoint.load_checkpoint`."""
        # Imported here: the checkpoint module imports torch.
        from compaudit.models.checkpoint import load_checkpoint

        p = _check_file(path)
        fp = sha256_file(p)
        module, info = load_checkpoint(p)
        meta = {"format": "checkpoint", "path": str(p), **info}
        return TorchRunner(module, path=str(p), name=p.stem, fingerprint=fp, meta=meta)


def _module_source(spec: str) -> Path | None:
    modname = spec.split(":", 1)[0]
    try:
        found = importlib.util.find_spec(modname)
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin else None


class FactoryLoader:
    """``package.module:factory`` plus ``options["weights"]`` (a state dict file)."""

    name = "module-factory"
    suffixes: tuple[str, ...] = ()  # not a file: matched by pattern

    def matches(self, path: str) -> bool:
        """Whether ``path`` looks like ``package.module:function``."""
        return bool(_FACTORY_RE.match(path))

    def _weights(self, spec: str, options: Mapping[str, Any] | None) -> Path:
        weights = (options or {}).get("weights")
        if not weights:
            raise ModelError(ERR_NO_WEIGHTS.format(spec=spec))
        return _check_file(str(weights))

    def fingerprint(self, spec: str, *, options: Mapping[str, Any] | None = None) -> str:
        """sha256 of the spec, the weights file and the module's source file.

        Refused without ``options["trust_model_code"]``: finding the module's
        source imports its parent packages.
        """
        require_trust(spec, FACTORY_KIND, options)
        h = hashlib.sha256(f"factory:{spec};".encode())
        h.update(sha256_file(self._weights(spec, options)).encode())
        source = _module_source(spec)
        if source is None or not source.is_file():
            raise ModelError(ERR_FACTORY.format(spec=spec, reason="module not found"))
        h.update(f";{source.name}:".encode())
        h.update(sha256_file(source).encode())
        return h.hexdigest()

    def load(self, spec: str, *, options: Mapping[str, Any] | None = None) -> TorchRunner:
        """Import the module, call the factory, load the weights (strict).

        Raises
        ------
        ModelError
            Without ``options["trust_model_code"]`` (importing a module runs
            it), no weights, or a factory or weights that do not work.
        """
        import torch

        require_trust(spec, FACTORY_KIND, options)
        weights = self._weights(spec, options)
        fp = self.fingerprint(spec, options=options)
        modname, attr = spec.split(":", 1)
        try:
            factory = getattr(importlib.import_module(modname), attr)
        except Exception as exc:  # ImportError, AttributeError, or the module's own error
            raise ModelError(ERR_FACTORY.format(spec=spec, reason=short_error(exc))) from exc
        try:
            module = factory()
        except CompauditError:
            raise
        except Exception as exc:
            reason = f"calling {attr}() failed: {short_error(exc)}"
            raise ModelError(ERR_FACTORY.format(spec=spec, reason=reason)) from exc
        if not isinstance(module, torch.nn.Module):
            reason = f"{attr}() returned {type(module).__name__}, not a torch.nn.Module"
            raise ModelError(ERR_FACTORY.format(spec=spec, reason=reason))
        try:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
            if isinstance(state, Mapping) and "state_dict" in state:
                state = state["state_dict"]
            module.load_state_dict(state, strict=True)
        except Exception as exc:
            raise ModelError(
                ERR_WEIGHTS.format(spec=spec, weights=weights, reason=short_error(exc))
            ) from exc
        meta = {"format": "module-factory", "spec": spec, "weights": str(weights)}
        return TorchRunner(module.eval(), path=spec, name=weights.stem, fingerprint=fp, meta=meta)
