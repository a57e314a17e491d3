"""Resuming and parallel draws for the policy tables (policy_calibration.py).

Each draw's judgement under one policy is cached on disk, keyed by a content
hash of everything that decides it: the policy file's bytes, the reference and
candidate populations exactly as audited (predictions, top-k, labels, ids,
attributes), the draw's seed, compaudit's version and a fingerprint of its
source files and the study's scripts (an edited engine or study never reuses a
stale verdict). An interrupted
study therefore re-runs only the draws it had not finished. Entries are JSON,
written atomically, one per (draw, policy); an unreadable entry is recomputed.

Draws run in worker processes (``spawn``-safe: the work is a top-level
function and its shared state travels once per worker) when ``jobs > 1``;
results come back in draw order, so the tables do not depend on ``jobs``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from compaudit import Population
from compaudit.study import write_text

CACHE_FORMAT = 1
HERE = Path(__file__).resolve().parent
Judgement = tuple[str, frozenset[str], frozenset[str], tuple[str, ...]]


def _update_array(h: Any, arr: np.ndarray | None) -> None:
    if arr is None:
        h.update(b"none")
        return
    a = np.ascontiguousarray(arr)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes() if a.dtype.kind != "O" else json.dumps(a.tolist()).encode())


def population_digest(pop: Population) -> str:
    """sha256 of what the audit reads from ``pop``: predictions, top-k, labels, ids,
    class names and attributes (hex)."""
    h = hashlib.sha256()
    for arr in (pop.predictions, pop.topk, pop.y, pop.ids):
        _update_array(h, arr)
    h.update(json.dumps([pop.num_classes, list(pop.class_names or [])]).encode())
    for name in sorted(pop.attributes):
        h.update(name.encode() + b"\0")
        _update_array(h, np.asarray(pop.attributes[name]).astype(str))
    return h.hexdigest()


def source_fingerprint(study: Path = HERE) -> str:
    """sha256 over compaudit's version, its package files (``.py``, ``.json``, ``.yaml``)
    and the study's own scripts (``*.py`` in ``study``): a cached verdict is only reused
    by the code that computed it, the judging rule and the damage planting included."""
    spec = importlib.util.find_spec("compaudit")
    h = hashlib.sha256(importlib.metadata.version("compaudit").encode())
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".json", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    for path in sorted(study.glob("*.py")):
        h.update(b"study/" + path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def draw_key(
    *,
    code: str,
    policy_bytes: bytes,
    reference: str,
    candidates: Mapping[str, str],
    draw_seed: Sequence[int],
) -> str:
    """The cache key of one draw under one policy: sha256 of its inputs (hex).

    ``code`` is :func:`source_fingerprint`, ``reference`` and ``candidates``
    :func:`population_digest` values (candidates by name, in audit order).
    """
    doc = {
        "format": CACHE_FORMAT,
        "code": code,
        "policy": hashlib.sha256(policy_bytes).hexdigest(),
        "reference": reference,
        "candidates": [[name, digest] for name, digest in candidates.items()],
        "seed": [int(s) for s in draw_seed],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class VerdictCache:
    """Per-draw judgements on disk under ``root`` (one JSON file per key).

    Parameters
    ----------
    root : Path
        Directory of the entries (created on first write).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Judgement] | None:
        """The judgements stored under ``key`` (by candidate), or None when absent or
        unreadable (a damaged entry is simply recomputed and overwritten)."""
        try:
            doc = json.loads(self._path(key).read_text(encoding="utf-8"))
            if doc.get("format") != CACHE_FORMAT or doc.get("key") != key:
                return None
            return {
                cand: (str(v), frozenset(f), frozenset(e), tuple(g))
                for cand, (v, f, e, g) in doc["judgements"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key: str, judgements: Mapping[str, Judgement]) -> None:
        """Store ``judgements`` (by candidate) under ``key``, atomically."""
        doc = {
            "format": CACHE_FORMAT,
            "key": key,
            "judgements": {
                cand: [v, sorted(f), sorted(e), list(g)]
                for cand, (v, f, e, g) in judgements.items()
            },
        }
        write_text(self._path(key), json.dumps(doc, indent=1) + "\n")


# -- running draws, in order, on ``jobs`` processes ----------------------------------------------
_STATE: Any = None  # a worker's shared state (set once per worker by _init)


def _init(state: Any) -> None:
    global _STATE
    _STATE = state


def _call(task: tuple[Callable[[Any, int], Any], int]) -> Any:
    fn, i = task
    return fn(_STATE, i)


def map_draws(
    fn: Callable[[Any, int], Any],
    state: Any,
    count: int,
    *,
    jobs: int,
) -> Iterator[Any]:
    """``fn(state, i)`` for ``i`` in ``range(count)``, yielded in that order.

    With ``jobs > 1`` the calls run in ``jobs`` spawned processes; ``fn`` must be a
    module-level function and ``state`` picklable (it is sent once per process).
    """
    if jobs <= 1 or count <= 1:
        for i in range(count):
            yield fn(state, i)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(jobs, count), mp_context=context, initializer=_init, initargs=(state,)
    ) as pool:
        tasks: Iterable[tuple[Callable[[Any, int], Any], int]] = ((fn, i) for i in range(count))
        yield from pool.map(_call, tasks)
