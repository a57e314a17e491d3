"""The one same-examples rule: two populations describe the same, identically prepared examples.

Used by the audit (:func:`compaudit.engine.audit`) and by model-based runs
(:mod:`compaudit.predictions`), so a pair the one accepts the other accepts too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from compaudit.errors import InputError
from compaudit.population import Population

__all__ = [
    "ERR_DIFFERENT_CLASSES",
    "ERR_DIFFERENT_DATA",
    "ERR_DIFFERENT_EXAMPLES",
    "ERR_DIFFERENT_PREPROCESSING",
    "check_same_examples",
    "plain_json",
]


ERR_DIFFERENT_EXAMPLES = (
    "{a} and {b} are not predictions on the same examples ({what}); predict both on the same --data"
)
ERR_DIFFERENT_PREPROCESSING = (
    "{a} and {b} were computed on data prepared differently ({what}); "
    "re-run both with the same --data so they see identical inputs"
)
ERR_DIFFERENT_DATA = (
    "{a} and {b} were computed on different datasets (dataset fingerprints {fa:.12} vs "
    "{fb:.12}); re-run both with the same --data"
)
ERR_DIFFERENT_CLASSES = "{a} has {ca} classes but {b} has {cb}; both must use the same label space"


def plain_json(obj: Any) -> Any:
    """Round-trip through JSON so tuples/lists and numpy scalars compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a.astype(str), b.astype(str)))


def _prep_diff(pa: Mapping[str, Any], pb: Mapping[str, Any]) -> str:
    if isinstance(pa.get("params"), Mapping) and isinstance(pb.get("params"), Mapping):
        # Preprocessing.to_dict() forms: field by field (mean[age]: ...), never whole dicts.
        from compaudit.data.prep import prep_diff

        return prep_diff(pa, pb)
    keys = sorted(set(pa) | set(pb))
    return ", ".join(f"{k}: {pa.get(k)!r} vs {pb.get(k)!r}" for k in keys if pa.get(k) != pb.get(k))


def check_same_examples(a: Population, b: Population, *, classes: bool = True) -> None:
    """Raise unless ``a`` and ``b`` are predictions on the same, identically prepared examples.

    The one rule, used by the audit and by model-based runs: same N, same
    labels, same ids in the same order (a side without ids has ids ``0..N-1``,
    so ids given on one side only must be exactly those); preprocessing and
    dataset fingerprints, where both sides record them, agree; and (with
    ``classes``) the same number of classes.

    Raises
    ------
    InputError
        Naming both sources and what differs.
    """
    src = {"a": a.source, "b": b.source}
    if a.n != b.n:
        raise InputError(ERR_DIFFERENT_EXAMPLES.format(**src, what=f"N = {a.n} vs {b.n}"))
    if not np.array_equal(a.y, b.y):
        bad = int((a.y.astype(np.int64) != b.y.astype(np.int64)).sum())
        what = f"labels differ on {bad} of {a.n} examples"
        raise InputError(ERR_DIFFERENT_EXAMPLES.format(**src, what=what))
    if not _same_values(np.asarray(a.ids), np.asarray(b.ids)):
        raise InputError(ERR_DIFFERENT_EXAMPLES.format(**src, what="example ids differ"))
    pa, pb = a.meta.get("preprocessing"), b.meta.get("preprocessing")
    if isinstance(pa, Mapping) and isinstance(pb, Mapping):
        ja, jb = plain_json(pa), plain_json(pb)
        if ja != jb:
            raise InputError(ERR_DIFFERENT_PREPROCESSING.format(**src, what=_prep_diff(ja, jb)))
    fa, fb = a.meta.get("dataset_fingerprint"), b.meta.get("dataset_fingerprint")
    if fa and fb and fa != fb:
        raise InputError(ERR_DIFFERENT_DATA.format(**src, fa=str(fa), fb=str(fb)))
    if classes and a.num_classes != b.num_classes:
        raise InputError(
            ERR_DIFFERENT_CLASSES.format(a=a.source, ca=a.num_classes, b=b.source, cb=b.num_classes)
        )
