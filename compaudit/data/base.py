"""The dataset contract shared by loaders, runners, the trainer and reports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """How raw data became model inputs; recorded with every prediction.

    Two populations whose preprocessing differs cannot be compared silently.

    Attributes
    ----------
    layout : str
        Input layout, e.g. ``"NCHW"`` for images or ``"NF"`` for feature rows.
    dtype : str
        Input dtype, e.g. ``"float32"``.
    scaling : str
        How values were scaled, e.g. ``"divide:255"``, ``"standardize"``, ``"none"``.
    encoding : str
        Categorical encoding for tables, e.g. ``"onehot"``; ``"none"`` otherwise.
    params : mapping
        Anything else a model needs to receive identical inputs (means,
        category lists, image size ...), JSON-serialisable.
    """

    layout: str
    dtype: str = "float32"
    scaling: str = "none"
    encoding: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "layout": self.layout,
            "dtype": self.dtype,
            "scaling": self.scaling,
            "encoding": self.encoding,
            "params": dict(self.params),
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON form."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True, eq=False)
class Dataset:
    """An evaluation (or training) set, already preprocessed for the model.

    Attributes
    ----------
    name : str
        Spec it was loaded from, e.g. ``"digits:test"``.
    x : ndarray of shape (N, ...)
        Model inputs after preprocessing.
    y : ndarray of shape (N,)
        Integer class labels in ``[0, C)``.
    ids : ndarray of shape (N,)
        Unique example ids (ints or strings).
    class_names : tuple of str
        One name per class; ``C = len(class_names)``.
    attributes : mapping of str to ndarray
        Protected attributes, one value per example (kept out of ``x``).
    preprocessing : Preprocessing
        What was done to the raw data.
    images : ndarray or None
        Displayable images (uint8, ``[N, H, W]`` or ``[N, H, W, 3]``) for the
        PIE gallery, when the data are images.
    source : str
        Where it was read from (paths), used in messages.
    subset : str
        How a ``?subset=`` selected these examples (``""``: all of them);
        part of the fingerprint.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    class_names: tuple[str, ...]
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=lambda: Preprocessing(layout="NF"))
    images: np.ndarray | None = None
    source: str = "<memory>"
    subset: str = ""

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.y.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def fingerprint(self) -> str:
        """sha256 of inputs, labels, ids, preprocessing and subset (not attributes)."""
        h = hashlib.sha256()
        for key, arr in (("x", self.x), ("y", self.y), ("ids", self.ids)):
            a = np.ascontiguousarray(arr)
            h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
        h.update(self.preprocessing.fingerprint().encode())
        if self.subset:  # only when set, so fingerprints of whole datasets are unchanged
            h.update(f"subset:{self.subset}".encode())
        return h.hexdigest()


@runtime_checkable
class DatasetProvider(Protocol):
    """What a dataset plugin registers (``register_datasets`` hook).

    Several providers claiming one spec are resolved by
    :func:`compaudit.plugins.best_matches` (the longest declared ``suffixes``
    wins). The built-ins declare none, so two of them claiming a spec is a
    tie, reported as ambiguous (pick one with ``?provider=NAME``).

    A loader whose ``load`` also takes the keywords ``prep`` (a
    :class:`Preprocessing` to apply, or ``None``) and ``fit`` (the data are
    training data) is given both by :func:`~compaudit.data.loading.load_dataset`
    and handles ``?prep=`` itself (the built-in CSV, image folder and ``.npz``
    loaders do); for any other loader, the data it returns must match the prep.
    """

    name: str
    """Short name, e.g. ``"digits"``, ``"npz"``, ``"csv"``."""

    def matches(self, spec: str) -> bool:
        """Whether this provider understands ``spec`` (a path or a built-in name)."""
        ...

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        """Load ``spec`` (``name[:split]`` or a path); raise ``InputError`` or
        ``DataNotFoundError`` naming every place searched when it cannot."""
        ...
