"""ONNX models through onnxruntime (fp32 and quantized, QDQ or integer ops)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compaudit._io import sha256_file
from compaudit.errors import DataNotFoundError, ModelError
from compaudit.models.base import Prediction, RunnerSettings
from compaudit.models.device import check_device, no_cuda
from compaudit.models.inference import describe_array, run_batches, short_error

__all__ = [
    "ERR_INPUT_MISMATCH",
    "ERR_MISSING",
    "ERR_ONNX_INPUTS",
    "ERR_ONNX_RUN",
    "ERR_ONNX_UNREADABLE",
    "OnnxLoader",
    "OnnxRunner",
]

ERR_MISSING = "{path}: no such model file"
ERR_ONNX_PREP = (
    "{path}: metadata '{key}' is not a JSON object (a recorded preprocessing); "
    "re-export the model or remove the metadata entry"
)
ERR_ONNX_UNREADABLE = (
    "{path}: not a readable ONNX model ({reason}); the file is truncated or corrupted, "
    "export it again"
)
ERR_ONNX_INPUTS = (
    "{path}: the model has {n} inputs ({names}); compaudit feeds one input tensor, "
    "export the model with a single input"
)
ERR_INPUT_MISMATCH = (
    "{path}: the model expects input '{name}' as {expected} but the data are {got}; "
    "prepare the data the way the model was exported (see the dataset's preprocessing)"
)
ERR_ONNX_RUN = (
    "{path}: onnxruntime failed on input {got} ({reason}); the model expects "
    "input '{name}' as {expected}"
)

# ONNX tensor element types and the numpy dtype to feed for each.
_ONNX_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


def _format_shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _providers(path: Path, device: str) -> list[str]:
    if check_device(device, subject=path, backend="onnxruntime") == "cpu":
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _session(path: Path, device: str, threads: int | None = None) -> Any:
    import onnxruntime as ort

    providers = _providers(path, device)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; warnings would bury the progress bar
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Exception subclasses
        raise ModelError(ERR_ONNX_UNREADABLE.format(path=path, reason=short_error(exc))) from exc
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        # onnxruntime silently falls back to CPU when the CUDA libraries are missing.
        raise no_cuda(path, "onnxruntime", list(session.get_providers()))
    return session


def onnx_fingerprint(path: Path) -> str:
    """sha256 of the model file plus any external-data files it references."""
    main = sha256_file(path)
    externals = _external_files(path)
    if not externals:
        return main
    h = hashlib.sha256(main.encode())
    for ext in externals:
        h.update(f";{ext.name}:".encode())
        h.update(sha256_file(ext).encode() if ext.is_file() else b"missing")
    return h.hexdigest()


def _external_files(path: Path) -> list[Path]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: loading reports it properly
        return []
    locations: set[str] = set()
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return [path.parent / loc for loc in sorted(locations)]


def _recorded_preprocessing(session: Any, path: Path) -> dict[str, Any]:
    """``{"preprocessing": ...}`` when the trainer recorded it in the model's metadata."""
    from compaudit.data.prep import ONNX_PREP_KEY

    text = session.get_modelmeta().custom_metadata_map.get(ONNX_PREP_KEY)
    if text is None:
        return {}
    try:
        prep = json.loads(text)
    except (ValueError, RecursionError):
        prep = None
    if not isinstance(prep, dict):
        raise ModelError(ERR_ONNX_PREP.format(path=path, key=ONNX_PREP_KEY))
    return {"preprocessing": prep}


def load_onnx_preprocessing(path: Path) -> dict[str, Any] | None:
    """The preprocessing an ONNX file records (trainer exports), without starting a session."""
    import onnx

    from compaudit.data.prep import ONNX_PREP_KEY

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: loading the model reports it properly
        return None
    for entry in proto.metadata_props:
        if entry.key == ONNX_PREP_KEY:
            try:
                prep = json.loads(entry.value)
            except (ValueError, RecursionError):
                prep = None
            if not isinstance(prep, dict):
                raise ModelError(ERR_ONNX_PREP.format(path=path, key=ONNX_PREP_KEY))
            return prep
    return None


class OnnxRunner:
    """An onnxruntime session that predicts top-k labels in batches.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    fingerprint : str
        sha256 of the file(s).
    device : {"cpu", "cuda"}
        Execution provider to start with; :meth:`predict` switches when the
        settings ask for another device.
    threads : int, optional
        onnxruntime intra-op threads (default: its own choice, every core);
        the trainer passes its per-job share so parallel jobs do not
        oversubscribe the machine.
    """

    def __init__(
        self, path: Path, fingerprint: str, device: str = "cpu", threads: int | None = None
    ) -> None:
        self.path = path
        self.name = path.stem
        self.fingerprint = fingerprint
        self._device = device
        self._threads = threads
        self._session = _session(path, device, threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelError(ERR_ONNX_INPUTS.format(path=path, n=len(inputs), names=names))
        self._input = inputs[0]
        self._output_name: str = self._session.get_outputs()[0].name
        self.meta: Mapping[str, Any] = {
            "format": "onnx",
            "path": str(path),
            "input": {"name": self._input.name, "type": self._input.type},
            **_recorded_preprocessing(self._session, path),
        }

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` in use."""
        return self._session

    @property
    def expected(self) -> str:
        """What the model accepts, e.g. ``tensor(float) [batch, 1, 8, 8]``."""
        return f"{self._input.type} {_format_shape(self._input.shape)}"

    def _check_input(self, x: np.ndarray) -> int | None:
        """Fail before running on a dtype or shape the model rejects; return a fixed batch."""
        name, shape = self._input.name, list(self._input.shape)
        want = _ONNX_DTYPES.get(self._input.type)
        bad = want is not None and x.dtype != want
        bad = bad or len(shape) != x.ndim
        if not bad:
            bad = any(
                isinstance(d, int) and d > 0 and d != s
                for d, s in zip(shape[1:], x.shape[1:], strict=True)
            )
        if bad:
            raise ModelError(
                ERR_INPUT_MISMATCH.format(
                    path=self.path, name=name, expected=self.expected, got=describe_array(x)
                )
            )
        fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        return fixed

    def predict(
        self, x: np.ndarray, settings: RunnerSettings, *, num_classes: int | None = None
    ) -> Prediction:
        """Top-k predictions for every row of ``x``.

        Parameters
        ----------
        x : ndarray of shape (N, ...)
            Preprocessed inputs, in the dtype the model declares.
        settings : RunnerSettings
        num_classes : int, optional
            Expected output width (the dataset's number of classes).

        Raises
        ------
        ModelError
            Input dtype/shape the model rejects, onnxruntime failures, or
            unusable outputs; the message names the file.
        """
        if settings.device != self._device:
            self._session = _session(self.path, settings.device, self._threads)
            self._device = settings.device
        x = np.ascontiguousarray(x)
        fixed = self._check_input(x)
        session, in_name, out_names = self._session, self._input.name, [self._output_name]

        def run_batch(batch: np.ndarray) -> np.ndarray:
            b = batch.shape[0]
            if fixed is not None and b < fixed:
                # A model exported with a fixed batch size: pad the last batch.
                pad = np.zeros((fixed - b, *batch.shape[1:]), dtype=batch.dtype)
                batch = np.concatenate([batch, pad])
            try:
                out = session.run(out_names, {in_name: batch})[0]
            except Exception as exc:  # onnxruntime's own exception types
                raise ModelError(
                    ERR_ONNX_RUN.format(
                        path=self.path,
                        got=describe_array(x),
                        reason=short_error(exc),
                        name=in_name,
                        expected=self.expected,
                    )
                ) from exc
            return out[:b] if fixed is not None else out  # type: ignore[no-any-return]

        return run_batches(
            self.path, x, run_batch, settings, num_classes=num_classes, batch_size=fixed
        )


class OnnxLoader:
    """Loads ``.onnx`` files (``register_model_loaders``)."""

    name = "onnx"
    suffixes: tuple[str, ...] = (".onnx",)

    def matches(self, path: str) -> bool:
        """Whether ``path`` names an ONNX file."""
        return Path(path).suffix.lower() in self.suffixes

    def fingerprint(self, path: str, *, options: Mapping[str, Any] | None = None) -> str:
        """sha256 of the model file and its external-data files, without loading it."""
        p = Path(path)
        if not p.is_file():
            raise DataNotFoundError(ERR_MISSING.format(path=p))
        return onnx_fingerprint(p)

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> OnnxRunner:
        """Start an onnxruntime session.

        Options: ``device`` (``"cpu"`` or ``"cuda"``) and ``threads``
        (intra-op threads; neither changes what the model computes).
        """
        opts = options or {}
        p = Path(path)
        fp = self.fingerprint(path)
        threads = opts.get("threads")
        return OnnxRunner(
            p,
            fp,
            device=str(opts.get("device", "cpu")),
            threads=int(threads) if threads is not None else None,
        )
