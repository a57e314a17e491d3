"""Content-addressed cache of model predictions.

An entry holds one model's top-k labels and probabilities on one dataset. Its
key is the sha256 of everything that decides them: the model fingerprint,
the dataset and preprocessing fingerprints, the runner settings that change
results, and :data:`CACHE_FORMAT_VERSION` (bumped whenever runners change
what they compute). Entries are ``.npz`` files written atomically (a
temporary file renamed over the target), so concurrent writers of one key
leave one complete entry, never a torn one; each embeds a checksum of its
content, so a damaged entry is detected (read with the bounded
:func:`compaudit._npz.read_npz`: a forged header allocates nothing), reported (a
:class:`~compaudit.errors.CompauditWarning`), deleted and recomputed.

Location: ``$COMPAUDIT_CACHE_DIR/predictions`` when set, else
``$XDG_CACHE_HOME/compaudit/predictions``, else
``~/.cache/compaudit/predictions``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compaudit._io import atomic_write_bytes
from compaudit._npz import npz_limit, read_npz
from compaudit.errors import CompauditWarning
from compaudit.models.base import Prediction
from compaudit.population import smallest_uint

__all__ = [
    "CACHE_FORMAT_VERSION",
    "ENV_CACHE_DIR",
    "WARN_CORRUPT",
    "WARN_UNWRITABLE",
    "PredictionCache",
    "cache_key",
    "cache_root",
]

CACHE_FORMAT_VERSION = 1
ENV_CACHE_DIR = "COMPAUDIT_CACHE_DIR"
_ENTRY_KEYS = ("topk", "probs", "key", "checksum")

# Warning messages (CompauditWarning; the CLI prefixes "compaudit: warning: ").
WARN_CORRUPT = "prediction cache entry {path} is damaged ({reason}); deleted it, recomputing"
WARN_UNWRITABLE = (
    "could not write prediction cache entry {path} ({reason}); "
    "continuing without caching (set {env} to a writable directory)"
)


def cache_root() -> Path:
    """The compaudit cache directory (read from the environment on every call)."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "compaudit"


def cache_key(
    *,
    model_fingerprint: str,
    dataset_fingerprint: str,
    preprocessing_fingerprint: str,
    settings_key: Mapping[str, Any],
) -> str:
    """sha256 over everything that decides a model's predictions on a dataset."""
    blob = json.dumps(
        {
            "format": CACHE_FORMAT_VERSION,
            "model": model_fingerprint,
            "dataset": dataset_fingerprint,
            "preprocessing": preprocessing_fingerprint,
            "runner": dict(settings_key),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _checksum(key: str, topk: np.ndarray, probs: np.ndarray) -> str:
    h = hashlib.sha256(f"{key};".encode())
    for name, arr in (("topk", topk), ("probs", probs)):
        a = np.ascontiguousarray(arr)
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class PredictionCache:
    """Prediction entries under one directory.

    Parameters
    ----------
    directory : path-like, optional
        Where entries live; default ``cache_root() / "predictions"``.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_root() / "predictions"

    def path(self, key: str) -> Path:
        """File of entry ``key`` (sharded by its first two hex digits)."""
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Prediction | None:
        """The cached prediction, or ``None`` when absent or damaged (then deleted).

        A damaged entry (truncated, not an ``.npz``, wrong key, checksum
        mismatch) is reported as a :class:`~compaudit.errors.CompauditWarning`
        (:data:`WARN_CORRUPT`), removed, and treated as a miss.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        limit = npz_limit("cache entry")  # a bad $COMPAUDIT_MAX_NPZ_BYTES is an error, not damage
        try:
            npz = read_npz(path, what="cache entry", limit=limit, allowed=_ENTRY_KEYS)
            missing = [name for name in _ENTRY_KEYS if name not in npz]
            if missing:
                raise ValueError(f"missing array(s) {missing}")
            topk, probs = npz["topk"], npz["probs"]
            stored_key, checksum = str(npz["key"]), str(npz["checksum"])
            if stored_key != key:
                raise ValueError("entry belongs to another key")
            if topk.ndim != 2 or probs.shape != topk.shape:
                raise ValueError(f"bad shapes {topk.shape} and {probs.shape}")
            if _checksum(key, topk, probs) != checksum:
                raise ValueError("checksum mismatch")
        except (OSError, ValueError, EOFError) as exc:  # InputError is a ValueError
            reason = str(exc).removeprefix(f"{path}: ")
            warnings.warn(
                WARN_CORRUPT.format(path=path, reason=reason), CompauditWarning, stacklevel=2
            )
            path.unlink(missing_ok=True)
            return None
        return Prediction(topk=topk.astype(np.int64), probs=probs)

    def put(self, key: str, prediction: Prediction) -> Path | None:
        """Store ``prediction`` atomically; return its path, ``None`` when unwritable.

        An unwritable cache is reported as a
        :class:`~compaudit.errors.CompauditWarning` (:data:`WARN_UNWRITABLE`).
        """
        path = self.path(key)
        topk = np.asarray(prediction.topk)
        topk = topk.astype(smallest_uint(int(topk.max()) if topk.size else 0))
        probs = np.asarray(prediction.probs, dtype=np.float32)
        buf = io.BytesIO()
        np.savez(
            buf,
            topk=topk,
            probs=probs,
            key=np.asarray(key),
            checksum=np.asarray(_checksum(key, topk, probs)),
        )
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as exc:
            warnings.warn(
                WARN_UNWRITABLE.format(path=path, reason=exc, env=ENV_CACHE_DIR),
                CompauditWarning,
                stacklevel=2,
            )
            return None
        return path

    def clear(self) -> int:
        """Delete every entry; return how many were removed."""
        removed = 0
        if self.directory.is_dir():
            for entry in self.directory.glob("*/*.npz"):
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
