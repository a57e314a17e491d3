"""Population predictions: K models x N examples, and their ``.npz`` file form.

A :class:`Population` is what the audit engine consumes. Its file form is the
design's contract, an ``.npz`` with keys

* ``predictions``: int, shape ``[K, N]`` (or ``[N]`` for one model);
* ``y``: int, shape ``[N]``;
* ``topk`` (optional): int, shape ``[K, N, k]``, first column equal to
  ``predictions``;
* ``ids``, ``class_names`` (optional);
* ``attr_<name>`` (optional): one value per example, one array per attribute;
* ``meta`` (optional): a JSON string (members, preprocessing, provenance);
* ``fingerprint``: sha256 of the content above, checked on load.

Labels and predictions are stored as the smallest unsigned integer type that
holds the largest class index.
"""

from __future__ import annotations

import hashlib
import io
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from compaudit._io import atomic_write_bytes
from compaudit._npz import (  # noqa: F401 (re-exported: the predictions tests assert these)
    ENV_MAX_NPZ_BYTES,
    ERR_ENV_LIMIT,
    ERR_NPZ_MEMBER,
    ERR_NPZ_MEMBERS,
    ERR_NPZ_TOO_LARGE,
    ERR_NPZ_UNREADABLE,
    MAX_NPZ_BYTES,
    MAX_NPZ_MEMBERS,
    PROBLEM_ENCRYPTED,
    PROBLEM_METHOD,
    PROBLEM_NOT_NPY,
    PROBLEM_OBJECT,
    PROBLEM_RATIO,
    PROBLEM_SIZE,
    PROBLEM_VERSION,
    PROBLEM_ZERO_ITEMSIZE,
    read_npz,
)
from compaudit._npz import show as _show
from compaudit.errors import InputError

__all__ = [
    "ENV_MAX_NPZ_BYTES",
    "LABEL_ATTRIBUTE",
    "MAX_CLASSES",
    "MAX_NPZ_BYTES",
    "PREDICTIONS_SUFFIXES",
    "Population",
    "attribute_key",
    "load_population",
    "save_population",
    "smallest_uint",
]

ATTR_PREFIX = "attr_"
PREDICTIONS_SUFFIXES = (".npz",)
"""Suffixes of predictions files (``compaudit predict`` output), beside the model loaders'."""
_KNOWN_KEYS = {"predictions", "y", "topk", "ids", "class_names", "meta", "fingerprint"}

# Bounds on what a hostile file can make us allocate (issue 11).
MAX_CLASSES = 100_000
"""Most classes a population may have (ImageNet-21k has 21,841); per-class arrays are O(C)."""
_MAX_META_DEPTH = 64

# Error messages live here so tests can assert them exactly (fairlearn style).
ERR_EMPTY = "{src}: the population has no models (K = 0); give at least one model's predictions"
ERR_NOT_INT = (
    "{src}: '{key}' must hold integer class indices, got dtype {dtype}; "
    "store argmax labels, not scores"
)
ERR_NEGATIVE = "{src}: '{key}' has negative values (min {vmin}); class indices start at 0"
ERR_RANGE = (
    "{src}: '{key}' has labels up to {vmax} but there are only {c} classes "
    "(class_names has {c} entries); fix class_names or the labels"
)
ERR_TOPK_REPEATED = (
    "{src}: 'topk' lists label {label} twice in one top-k row (model {model}, example "
    "{example}; {bad} rows in all); each row must hold k distinct classes, best first, "
    "as written by argsort of the scores"
)
ERR_NOT_1D = "{src}: {what} has shape {shape}; give one value per example (a 1-D array)"
ERR_IDS_KIND = "{src}: 'ids' has dtype {dtype}; ids are integers or (unicode) strings"
ERR_ATTR_LABEL_NAME = (
    "{src}: attribute {name!r} would shadow the true label (the attribute 'label', always "
    "available); rename it"
)
ERR_ATTR_KIND = (
    "{src}: attribute {name!r} has dtype {dtype}; attributes are strings, integers, "
    "booleans or finite numbers"
)
ERR_ATTR_NONFINITE = (
    "{src}: attribute {name!r} has {count} NaN or infinite value(s); give every example "
    "a value (a string such as 'unknown' for a missing one)"
)
ERR_LENGTH = (
    "{src}: '{key}' has {got} examples but 'y' has {n}; every array must have one entry per example"
)
ERR_LABEL_TOO_LARGE = (
    "{src}: '{key}' has a label of {vmax} (dtype {dtype}), above the largest class index "
    "compaudit accepts ({limit:,}); store class indices 0 .. C-1, not ids or hashes"
)
ERR_TOO_MANY_CLASSES = (
    "{src}: {what} gives {c:,} classes, more than the limit of {limit:,}; "
    "store class indices 0 .. C-1, not ids or hashes"
)
ERR_CLASS_NAMES = (
    "{src}: 'class_names' must be a one-dimensional array of strings, got {got}; "
    "store one name per class, e.g. numpy.array(['cat', 'dog'])"
)
ERR_META_JSON = "{src}: 'meta' is not valid JSON ({problem})"
ERR_META_NOT_OBJECT = (
    "{src}: 'meta' must be a JSON object of keys and values, got a JSON {kind}; "
    "re-create the file with `compaudit predict`, or remove 'meta'"
)
ERR_META_DEPTH = "{src}: 'meta' is nested deeper than {limit} levels; flatten it or remove it"
ERR_META_NUM_CLASSES = (
    "{src}: 'meta' gives num_classes {value}, which is not a positive integer; fix it or remove it"
)


LABEL_ATTRIBUTE = "label"
"""The attribute that means the true label: always available, never a carried array."""


def attribute_key(name: str) -> str:
    """What makes two attribute names one in a reader's eyes: NFKC, case-folded (so
    ``Label`` and a full-width ``ＬＡＢＥＬ`` are the true label's name too)."""
    return unicodedata.normalize("NFKC", name).casefold()


def _attribute(name: str, values: npt.ArrayLike, n: int, src: str) -> np.ndarray:
    """One protected attribute, checked: 1-D, N values, strings or finite numbers, and
    not named like the true label (a predictions file could otherwise choose the groups
    that ``-g label`` judges)."""
    if attribute_key(name) == LABEL_ATTRIBUTE:
        raise InputError(ERR_ATTR_LABEL_NAME.format(src=src, name=name))
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype(str)
    if arr.ndim != 1:
        raise InputError(ERR_NOT_1D.format(src=src, what=f"attribute {name!r}", shape=arr.shape))
    if arr.shape[0] != n:
        raise InputError(
            f"{src}: attribute {name!r} has {arr.shape[0]} values but there are {n} "
            "examples; give one value per example"
        )
    if arr.dtype.kind not in "biufU":
        raise InputError(ERR_ATTR_KIND.format(src=src, name=name, dtype=arr.dtype))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(ERR_ATTR_NONFINITE.format(src=src, name=name, count=bad))
    return arr


def smallest_uint(max_value: int) -> np.dtype[Any]:
    """Return the smallest unsigned integer dtype that holds ``max_value``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _as_labels(a: npt.ArrayLike, key: str, src: str) -> np.ndarray:
    """Class indices as int64, validated in their own dtype before the cast.

    A cast first would wrap a uint64 above 2**63 negative and turn a float
    of 1e20 into int64's minimum, both of which then pass later checks.
    """
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr).all()
        if not finite or not np.array_equal(arr, np.round(arr)):
            raise InputError(ERR_NOT_INT.format(src=src, key=key, dtype=arr.dtype))
    elif arr.dtype.kind not in "iub":
        raise InputError(ERR_NOT_INT.format(src=src, key=key, dtype=arr.dtype))
    if arr.size:
        vmin, vmax = arr.min(), arr.max()
        if vmin < 0:
            raise InputError(ERR_NEGATIVE.format(src=src, key=key, vmin=vmin))
        # Python numbers compare exactly, whatever the dtype (uint64, float64, bool).
        top = float(vmax) if arr.dtype.kind == "f" else int(vmax)
        if top > MAX_CLASSES - 1:
            raise InputError(
                ERR_LABEL_TOO_LARGE.format(
                    src=src, key=key, vmax=top, dtype=arr.dtype, limit=MAX_CLASSES - 1
                )
            )
    return arr.astype(np.int64, copy=False)


def _class_names(names: Any, src: str) -> tuple[str, ...]:
    """``names`` as a tuple of str; a bare string, a 2-D array or a non-string is refused."""
    if isinstance(names, np.ndarray) and names.ndim != 1:
        got = f"an array of shape {names.shape}"
        raise InputError(ERR_CLASS_NAMES.format(src=src, got=got))
    if isinstance(names, str | bytes):
        raise InputError(ERR_CLASS_NAMES.format(src=src, got="a single string"))
    out = tuple(names)
    for c in out:
        if not isinstance(c, str):
            got = f"an entry of type {type(c).__name__}"
            raise InputError(ERR_CLASS_NAMES.format(src=src, got=got))
    return tuple(str(c) for c in out)


@dataclass(frozen=True, eq=False)
class Population:
    """Top-1 (and optionally top-k) predictions of K models on N examples.

    Build one with :meth:`Population.create`, which validates and normalises
    its inputs; the dataclass constructor assumes already-valid arrays.

    Attributes
    ----------
    predictions : ndarray of shape (K, N)
        Top-1 class index predicted by each model for each example.
    y : ndarray of shape (N,)
        True class index of each example.
    num_classes : int
        Number of classes C; every label lies in ``[0, C)``.
    topk : ndarray of shape (K, N, k) or None
        Top-k class indices, best first; ``topk[..., 0] == predictions``.
    ids : ndarray of shape (N,)
        Example identifiers (ints or strings), used to join attributes.
    class_names : tuple of str or None
        Human-readable class names, one per class.
    attributes : mapping of str to ndarray of shape (N,)
        Protected attributes, one value per example.
    meta : dict
        Provenance: member names, model fingerprints, dataset and
        preprocessing fingerprints, runner settings.
    source : str
        Where the population came from (a file name), used in messages.
    """

    predictions: np.ndarray
    y: np.ndarray
    num_classes: int
    topk: np.ndarray | None = None
    ids: np.ndarray = field(default_factory=lambda: np.arange(0))
    class_names: tuple[str, ...] | None = None
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    # -- construction -----------------------------------------------------
    @classmethod
    def create(
        cls,
        predictions: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        topk: npt.ArrayLike | None = None,
        ids: npt.ArrayLike | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        attributes: Mapping[str, npt.ArrayLike] | None = None,
        meta: Mapping[str, Any] | None = None,
        source: str = "<memory>",
    ) -> Population:
        """Validate inputs and build a population (fails closed with ``InputError``).

        Parameters
        ----------
        predictions : array-like of int, shape (K, N) or (N,)
            Top-1 labels; a 1-D array is one model.
        y : array-like of int, shape (N,)
            Ground truth.
        topk : array-like of int, shape (K, N, k), optional
            Top-k labels, best first; the first column must equal ``predictions``.
        ids : array-like, shape (N,), optional
            Example ids; default ``0 .. N-1``.
        class_names : sequence of str, optional
            One name per class; fixes the number of classes.
        num_classes : int, optional
            Number of classes when no names are given; default ``max label + 1``.
        attributes : mapping of str to array-like, optional
            Protected attributes, one value per example.
        meta : mapping, optional
            Provenance recorded with the population.
        source : str
            Name used in error messages (usually the file path).
        """
        src = source
        yy = _as_labels(y, "y", src)
        if yy.ndim != 1:
            raise InputError(f"{src}: 'y' must be one-dimensional [N], got shape {yy.shape}")
        n = yy.shape[0]
        if n == 0:
            raise InputError(f"{src}: there are no examples (N = 0)")
        preds = _as_labels(predictions, "predictions", src)
        if preds.ndim == 1:
            preds = preds[None, :]
        if preds.ndim != 2:
            raise InputError(
                f"{src}: 'predictions' must have shape [K, N] (or [N] for one model), "
                f"got {preds.shape}"
            )
        if preds.shape[0] == 0:
            raise InputError(ERR_EMPTY.format(src=src))
        if preds.shape[1] != n:
            raise InputError(ERR_LENGTH.format(src=src, key="predictions", got=preds.shape[1], n=n))

        names: tuple[str, ...] | None = None
        if class_names is not None:
            names = _class_names(class_names, src)
            if len(set(names)) != len(names):
                raise InputError(
                    f"{src}: 'class_names' has duplicates; give each class a unique name"
                )
        vmax = int(max(yy.max(), preds.max()))
        if names is not None:
            c = len(names)
            if num_classes is not None and num_classes != c:
                raise InputError(f"{src}: num_classes={num_classes} disagrees with {c} class_names")
        else:
            c = num_classes if num_classes is not None else vmax + 1
        if c < 1:
            raise InputError(f"{src}: there must be at least one class")
        if c > MAX_CLASSES:
            what = "class_names" if names is not None else "num_classes"
            raise InputError(
                ERR_TOO_MANY_CLASSES.format(src=src, what=what, c=c, limit=MAX_CLASSES)
            )
        for key, arr in (("y", yy), ("predictions", preds)):
            if arr.max() >= c:
                raise InputError(ERR_RANGE.format(src=src, key=key, vmax=int(arr.max()), c=c))

        dt = smallest_uint(c - 1)
        tk: np.ndarray | None = None
        if topk is not None:
            tk = _as_labels(topk, "topk", src)
            if tk.ndim == 2:
                tk = tk[None, :, :]
            if tk.ndim != 3 or tk.shape[:2] != preds.shape:
                raise InputError(
                    f"{src}: 'topk' must have shape [K, N, k] = [{preds.shape[0]}, {n}, k], "
                    f"got {tk.shape}"
                )
            if tk.shape[2] == 0:
                raise InputError(f"{src}: 'topk' has k = 0 columns")
            if tk.max() >= c:
                raise InputError(ERR_RANGE.format(src=src, key="topk", vmax=int(tk.max()), c=c))
            if tk.shape[2] > 1:
                srt = np.sort(tk, axis=2)
                rep = (srt[:, :, 1:] == srt[:, :, :-1]).any(axis=2)
                if rep.any():
                    m, i = (int(v[0]) for v in np.nonzero(rep))
                    row = srt[m, i]
                    label = int(row[1:][row[1:] == row[:-1]][0])
                    raise InputError(
                        ERR_TOPK_REPEATED.format(
                            src=src, label=label, model=m, example=i, bad=int(rep.sum())
                        )
                    )
            if not np.array_equal(tk[:, :, 0], preds):
                bad = int((tk[:, :, 0] != preds).sum())
                raise InputError(
                    f"{src}: the first column of 'topk' must equal 'predictions' "
                    f"({bad} entries differ); store top-k best first"
                )
            tk = tk.astype(dt)

        if ids is None:
            id_arr = np.arange(n, dtype=smallest_uint(max(n - 1, 0)))
        else:
            id_arr = np.asarray(ids)
            if id_arr.dtype == object:
                id_arr = id_arr.astype(str)
            if id_arr.ndim != 1:
                raise InputError(ERR_NOT_1D.format(src=src, what="'ids'", shape=id_arr.shape))
            if id_arr.shape != (n,):
                raise InputError(ERR_LENGTH.format(src=src, key="ids", got=id_arr.shape[0], n=n))
            if id_arr.dtype.kind not in "iuU":
                raise InputError(ERR_IDS_KIND.format(src=src, dtype=id_arr.dtype))
            # Strictly increasing ids (the usual case) are unique: O(N) instead of a sort.
            increasing = n < 2 or (
                id_arr.dtype.kind in "iu" and bool(np.all(id_arr[1:] > id_arr[:-1]))
            )
            if not increasing and len(np.unique(id_arr)) != n:
                raise InputError(f"{src}: 'ids' has duplicates; each example needs a unique id")

        attrs: dict[str, np.ndarray] = {}
        for name, values in (attributes or {}).items():
            attrs[str(name)] = _attribute(str(name), values, n, src)

        return cls(
            predictions=preds.astype(dt),
            y=yy.astype(dt),
            num_classes=c,
            topk=tk,
            ids=id_arr,
            class_names=names,
            attributes=attrs,
            meta=dict(meta or {}),
            source=src,
        )

    # -- views --------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of models K."""
        return int(self.predictions.shape[0])

    @property
    def n(self) -> int:
        """Number of examples N."""
        return int(self.predictions.shape[1])

    def class_name(self, c: int) -> str:
        """Name of class ``c`` (its index as a string when there are no names)."""
        return self.class_names[c] if self.class_names is not None else str(c)

    def with_attributes(self, attributes: Mapping[str, npt.ArrayLike]) -> Population:
        """Return a copy with ``attributes`` added (validated like :meth:`create`)."""
        merged: dict[str, npt.ArrayLike] = dict(self.attributes)
        merged.update(attributes)
        return Population.create(
            self.predictions,
            self.y,
            topk=self.topk,
            ids=self.ids,
            class_names=self.class_names,
            num_classes=self.num_classes,
            attributes=merged,
            meta=self.meta,
            source=self.source,
        )

    # -- identity -----------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "predictions": self.predictions,
            "y": self.y,
            "ids": self.ids,
        }
        if self.topk is not None:
            arrays["topk"] = self.topk
        if self.class_names is not None:
            arrays["class_names"] = np.asarray(self.class_names, dtype=str)
        for name in sorted(self.attributes):
            arrays[ATTR_PREFIX + name] = self.attributes[name]
        return arrays

    def fingerprint(self) -> str:
        """sha256 of the content (arrays, dtypes, shapes, number of classes, meta)."""
        h = hashlib.sha256()
        h.update(f"C={self.num_classes};".encode())
        for key, arr in self._arrays().items():
            a = np.ascontiguousarray(arr)
            h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
        h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
        return h.hexdigest()


def save_population(population: Population, path: str | Path) -> str:
    """Write ``population`` to ``path`` (``.npz``) atomically; return its fingerprint.

    Every write is checked and fsynced (:func:`compaudit._io.atomic_write_bytes`):
    on a full or read-only disk ``path`` is left as it was, with no temporary
    beside it, and the :class:`OSError` names ``path`` (``compaudit predict``
    turns it into its one-line error).
    """
    arrays = population._arrays()
    meta = dict(population.meta)
    meta["num_classes"] = population.num_classes
    fp = population.fingerprint()
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True, default=str))
    arrays["fingerprint"] = np.asarray(fp)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())
    return fp


def _json_depth_ok(value: Any) -> bool:
    """Whether ``value`` nests at most ``_MAX_META_DEPTH`` levels (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if depth > _MAX_META_DEPTH:
            return False
        if isinstance(cur, dict):
            stack.extend((v, depth + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, depth + 1) for v in cur)
    return True


def _read_meta(data: Mapping[str, np.ndarray], src: str) -> tuple[dict[str, Any], int | None]:
    """The ``meta`` JSON object and its ``num_classes`` (None when absent)."""
    if "meta" not in data:
        return {}, None
    try:
        meta = json.loads(str(data["meta"]))
    except (ValueError, RecursionError) as exc:
        # ValueError: also a 5,000-digit integer (Python's int limit); RecursionError: deep arrays.
        problem = _show(str(exc) or "nested too deeply")
        raise InputError(ERR_META_JSON.format(src=src, problem=problem)) from None
    if not isinstance(meta, dict):
        kinds = {list: "array", str: "string", bool: "boolean", type(None): "null"}
        kind = kinds.get(type(meta), "number")
        raise InputError(ERR_META_NOT_OBJECT.format(src=src, kind=kind))
    if not _json_depth_ok(meta):
        raise InputError(ERR_META_DEPTH.format(src=src, limit=_MAX_META_DEPTH))
    num_classes = meta.pop("num_classes", None)
    if num_classes is not None and (
        not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1
    ):
        value = _show(json.dumps(num_classes))
        raise InputError(ERR_META_NUM_CLASSES.format(src=src, value=value))
    return meta, num_classes


def load_population(
    path: str | Path, *, verify: bool = True, max_bytes: int | None = None
) -> Population:
    """Read a predictions ``.npz`` written by :func:`save_population` or by hand.

    Files written by hand need only ``predictions`` and ``y``; unknown keys
    are rejected (a misspelled ``attr_`` prefix would otherwise vanish).
    A recorded fingerprint that does not match the content means the file
    was altered or corrupted, and is an error.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    verify : bool
        Check the recorded fingerprint against the content.
    max_bytes : int, optional
        Limit on the arrays' total uncompressed size; default
        ``$COMPAUDIT_MAX_NPZ_BYTES``, else :data:`MAX_NPZ_BYTES` (2 GiB).
        Every array is checked against it and against its own zip member
        before anything is allocated.
    """
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{src}: no such predictions file")
    data = read_npz(p, what="predictions file", limit=max_bytes)
    missing = {"predictions", "y"} - data.keys()
    if missing:
        raise InputError(
            f"{src}: missing required array(s) {sorted(missing)}; a predictions file needs "
            "'predictions' [K, N] and 'y' [N]"
        )
    unknown = sorted(k for k in data if k not in _KNOWN_KEYS and not k.startswith(ATTR_PREFIX))
    if unknown:
        shown = ", ".join(_show(k) for k in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InputError(
            f"{src}: unknown array(s) [{shown}]{more}; allowed: {sorted(_KNOWN_KEYS)} and "
            f"'{ATTR_PREFIX}<name>' for protected attributes"
        )
    meta, num_classes = _read_meta(data, src)
    class_names: list[str] | None = None
    if "class_names" in data:
        names = data["class_names"]
        if names.ndim != 1 or names.dtype.kind != "U":
            got = f"an array of shape {names.shape} and dtype {names.dtype}"
            raise InputError(ERR_CLASS_NAMES.format(src=src, got=got))
        class_names = [str(c) for c in names.tolist()]
    pop = Population.create(
        data["predictions"],
        data["y"],
        topk=data.get("topk"),
        ids=data.get("ids"),
        class_names=class_names,
        num_classes=num_classes if class_names is None else None,
        attributes={k[len(ATTR_PREFIX) :]: v for k, v in data.items() if k.startswith(ATTR_PREFIX)},
        meta=meta,
        source=src,
    )
    if verify and "fingerprint" in data:
        recorded = str(data["fingerprint"])
        if recorded != pop.fingerprint():
            raise InputError(
                f"{src}: content does not match its recorded fingerprint; the file was "
                "modified or corrupted. Re-create it with `compaudit predict`, or delete "
                "the 'fingerprint' array if you edited it on purpose"
            )
    return pop
