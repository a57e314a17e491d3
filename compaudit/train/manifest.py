"""The run directory's ``manifest.json``: what was trained, how, and where it is.

Layout of a run directory::

    RUN_DIR/manifest.json
    RUN_DIR/<variant>/member-000.ckpt   trainer checkpoint
    RUN_DIR/<variant>/member-000.onnx   ONNX export (or the quantized model)
    RUN_DIR/influence/run-0000.npz      one influence run (recipe section ``influence``)
    RUN_DIR/influence/runs.npz          all of them, once finished (``load_runs``)

The manifest holds the recipe, package versions, data fingerprints and, per
variant, the fingerprint of everything that determines its members and one
entry per finished member (files and their sha256, the canonical file, seed,
device, metrics, timings), and an ``influence`` section with one entry per
finished influence run and the consolidated file with its sha256. It is
rewritten atomically after every member and run, so a run killed at any
moment loses at most the members (and influence runs) in progress. A member
counts as finished only when its entry exists, its files hash-match and its
metrics are finite (a NaN metric is never a success; a re-run retries it).

A member's ``timings`` are seconds, each a finite number >= 0: ``setup_s``
(data, model and source weights; the first member of a process also loads the
data), ``train_s`` (training, pruning included), ``export_s`` (checkpoint and
ONNX export), ``eval_s`` (evaluation through the runners and the ONNX
agreement check), ``quantize_s`` (quantized members, instead of train and
export) and ``total_s``.
Manifests written before a key existed load as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compaudit._io import atomic_write_text, sha256_file
from compaudit.errors import InputError
from compaudit.train.recipe import Recipe, recipe_from_dict

__all__ = [
    "INFLUENCE_DIR",
    "INFLUENCE_RUNS",
    "MANIFEST",
    "ONNX_AGREEMENT",
    "RUN_FORMAT",
    "MemberInfo",
    "RunInfo",
    "VariantInfo",
    "check_compatible",
    "influence_file",
    "load_run",
    "member_file",
    "member_finished",
    "new_manifest",
    "read_manifest",
    "record_member",
]

MANIFEST = "manifest.json"
INFLUENCE_DIR = "influence"
INFLUENCE_RUNS = f"{INFLUENCE_DIR}/runs.npz"
RUN_FORMAT = "compaudit.run/v1"

ERR_NO_RUN = (
    "{run}: not a trainer run directory (no {manifest}); "
    "train one with `compaudit train RECIPE --out {run}`"
)
ERR_BAD_MANIFEST = (
    "{path}: unreadable run manifest ({reason}); re-create the run with `compaudit train`"
)
ERR_MANIFEST_MISSING = "{where} is missing"
ERR_MANIFEST_TYPE = "{where} must be {kind}, got {got}"
ERR_OUTSIDE_RUN = (
    "{path}: member file {rel!r} lies outside the run directory {run} (or is a link "
    "that leads out of it); a run manifest may only name files inside its run directory, "
    "re-create the run with `compaudit train`"
)
ERR_CHANGED = (
    "{run}: variant '{variant}' was trained from a different recipe (data, architecture, "
    "training, seed or the variant itself changed); train into a new --out directory, or "
    "delete {run} to start over"
)
ERR_REMOVED = (
    "{run}: holds variant '{variant}' that the recipe no longer has; train into a new --out "
    "directory, or delete {run} to start over"
)
ERR_K_SHRANK = (
    "{run}: variant '{variant}' already has member {member} but the recipe asks for k = {k}; "
    "raise k, or train into a new --out directory"
)
ERR_DATA_CHANGED = (
    "{run}: the {split} data ({spec}) differ from those the run was trained on "
    "(fingerprint changed); train into a new --out directory"
)
ERR_INFLUENCE_CHANGED = (
    "{run}: the influence runs were made from a different recipe (the variant, its "
    "training, subset_fraction or seed changed); train into a new --out directory, or "
    "delete {run}/{dir} to redo them"
)
ERR_INCOMPLETE = (
    "{run}: the run is incomplete ({count} member(s) missing or altered, e.g. {examples}); "
    "finish it with `compaudit train RECIPE --out {run}`"
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions of the packages that affect the trained models."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    from compaudit import __version__

    return {
        "compaudit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def new_manifest(recipe: Recipe, data: dict[str, Any]) -> dict[str, Any]:
    """A manifest with no members yet; ``data`` holds the specs and fingerprints."""
    return {
        "format": RUN_FORMAT,
        "created": _now(),
        "updated": _now(),
        "recipe": recipe.to_dict(),
        "reference": recipe.reference_variant,
        "data": data,
        "versions": package_versions(),
        "variants": {},
    }


MAX_MANIFEST_BYTES = 64 << 20
"""Largest ``manifest.json`` read (64 MiB)."""


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``run_dir``, or None when there is none."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            # Bounded before it is read: 10,000 members take a few MB.
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=exc)) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        reason = f"larger than {MAX_MANIFEST_BYTES:,} bytes"
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=reason))
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        reason = "nested too deeply"
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=reason)) from None
    except ValueError as exc:
        # JSON syntax, bad UTF-8, and a 5,000-digit integer (Python's int limit).
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=f"format is not '{RUN_FORMAT}'"))
    problem = _shape_problem(manifest)
    if problem is not None:
        raise InputError(ERR_BAD_MANIFEST.format(path=path, reason=problem))
    return manifest


def _kind_problem(where: str, value: Any, kind: type | tuple[type, ...], words: str) -> str | None:
    # bool is an int to isinstance, never to a manifest.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        return ERR_MANIFEST_TYPE.format(where=where, kind=words, got=repr(value)[:60])
    if not isinstance(value, kind):
        return ERR_MANIFEST_TYPE.format(where=where, kind=words, got=repr(value)[:60])
    return None


def _member_problem(where: str, entry: Any) -> str | None:
    problem = _kind_problem(where, entry, dict, "an object")
    if problem is not None:
        return problem
    for key, kind, words in (
        ("files", dict, "an object"),
        ("sha256", dict, "an object"),
        ("canonical", str, "a string"),
        ("seed", int, "an integer"),
    ):
        if key not in entry:
            return ERR_MANIFEST_MISSING.format(where=f"{where}.{key}")
        problem = _kind_problem(f"{where}.{key}", entry[key], kind, words)
        if problem is not None:
            return problem
    for key in ("metrics", "timings"):
        if key in entry:
            problem = _kind_problem(f"{where}.{key}", entry[key], dict, "an object")
            if problem is not None:
                return problem
    for name, seconds in entry.get("timings", {}).items():
        problem = _kind_problem(f"{where}.timings.{name}", seconds, (int, float), "seconds")
        if problem is None and not (math.isfinite(seconds) and seconds >= 0):
            problem = ERR_MANIFEST_TYPE.format(
                where=f"{where}.timings.{name}", kind="finite seconds >= 0", got=repr(seconds)
            )
        if problem is not None:
            return problem
    for kind, rel in entry["files"].items():
        problem = _kind_problem(f"{where}.files.{kind}", rel, str, "a relative path")
        if problem is not None or "\x00" in rel:
            return problem or ERR_MANIFEST_TYPE.format(
                where=f"{where}.files.{kind}", kind="a relative path", got=repr(rel)[:60]
            )
    if entry["canonical"] not in entry["files"]:
        return ERR_MANIFEST_TYPE.format(
            where=f"{where}.canonical",
            kind=f"one of files ({', '.join(map(str, entry['files']))})",
            got=repr(entry["canonical"])[:60],
        )
    return None


def _shape_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the manifest's structure (a hand-edited or hostile file), if anything.

    Checked once here so that readers index it without KeyError or TypeError.
    """
    for key in ("recipe", "variants"):
        if key not in manifest:
            return ERR_MANIFEST_MISSING.format(where=key)
        problem = _kind_problem(key, manifest[key], dict, "an object")
        if problem is not None:
            return problem
    if "data" in manifest:
        problem = _kind_problem("data", manifest["data"], dict, "an object")
        if problem is not None:
            return problem
    problem = _influence_problem(manifest.get("influence"))
    if problem is not None:
        return problem
    for name, variant in manifest["variants"].items():
        where = f"variants.{name}"
        problem = _kind_problem(where, variant, dict, "an object")
        if problem is None and "members" in variant:
            problem = _kind_problem(f"{where}.members", variant["members"], dict, "an object")
        if problem is not None:
            return problem
        for index, entry in variant.get("members", {}).items():
            if not str(index).isdigit():
                return ERR_MANIFEST_TYPE.format(
                    where=f"{where}.members", kind="keyed by member index", got=repr(index)[:60]
                )
            problem = _member_problem(f"{where}.members.{index}", entry)
            if problem is not None:
                return problem
    return None


def _influence_problem(section: Any) -> str | None:
    if section is None:
        return None
    problem = _kind_problem("influence", section, dict, "an object")
    if problem is None:
        problem = _kind_problem("influence.done", section.get("done", {}), dict, "an object")
    if problem is not None:
        return problem
    for key in ("file", "sha256"):
        if section.get(key) is not None:
            problem = _kind_problem(f"influence.{key}", section[key], str, "a string")
            if problem is not None:
                return problem
    for index, entry in section.get("done", {}).items():
        where = f"influence.done.{index}"
        if not str(index).isdigit():
            return ERR_MANIFEST_TYPE.format(
                where="influence.done", kind="keyed by run index", got=repr(index)[:60]
            )
        problem = _kind_problem(where, entry, dict, "an object")
        for key in ("file", "sha256"):
            if problem is None and key not in entry:
                problem = ERR_MANIFEST_MISSING.format(where=f"{where}.{key}")
            if problem is None:
                problem = _kind_problem(f"{where}.{key}", entry[key], str, "a string")
        if problem is not None:
            return problem
    return None


def file_matches(run_dir: str | Path, rel: str | None, sha256: str | None) -> bool:
    """Whether the run file ``rel`` exists (inside the run directory) with this sha256."""
    if not rel or not sha256:
        return False
    path = member_file(run_dir, rel)
    return path.is_file() and sha256_file(path) == sha256


def influence_file(run_dir: str | Path, manifest: dict[str, Any], recipe: Recipe) -> Path | None:
    """The consolidated influence runs file, when the recipe's runs are all in it.

    None without an ``influence`` section, when the runs were made from another
    recipe, are not all finished, or the file is missing or altered.
    """
    section = manifest.get("influence")
    cfg = recipe.influence
    if cfg is None or not isinstance(section, dict):
        return None
    if section.get("fingerprint") != recipe.influence_fingerprint():
        return None
    if section.get("n_runs") != cfg.runs:
        return None
    if not file_matches(run_dir, section.get("file"), section.get("sha256")):
        return None
    return member_file(run_dir, section["file"])


def member_file(run_dir: str | Path, rel: str) -> Path:
    """The path of a member file ``rel`` named by the manifest of ``run_dir``.

    Raises
    ------
    InputError
        :data:`ERR_OUTSIDE_RUN`: ``rel`` is absolute, climbs out with ``..``, or
        is (or passes through) a symbolic link that leads outside the run
        directory. A run directory from a pull request must not make
        compaudit load, or hash, a file elsewhere on the machine.
    """
    root = Path(run_dir)
    path = root / rel
    inside = root.resolve()
    if not path.resolve().is_relative_to(inside):
        raise InputError(ERR_OUTSIDE_RUN.format(path=root / MANIFEST, rel=rel, run=root))
    return path


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically."""
    manifest["updated"] = _now()
    atomic_write_text(Path(run_dir) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def check_compatible(
    run_dir: str | Path, manifest: dict[str, Any], recipe: Recipe, data: dict[str, Any]
) -> None:
    """Fail when the existing run cannot be resumed with ``recipe``.

    Variants may be added and ``k`` raised; a variant whose members would
    come out differently (any change to data, architecture, training, seed or
    its own chain of variants), a removed variant, a lowered ``k`` or data
    whose content changed are errors.
    """
    run = str(run_dir)
    names = {v.name for v in recipe.variants}
    for split in ("train", "eval"):
        old = manifest.get("data", {}).get(f"{split}_fingerprint")
        if old is not None and old != data[f"{split}_fingerprint"]:
            raise InputError(ERR_DATA_CHANGED.format(run=run, split=split, spec=data[split]))
    for name, variant in manifest.get("variants", {}).items():
        if not variant.get("members"):
            continue
        if name not in names:
            raise InputError(ERR_REMOVED.format(run=run, variant=name))
        if variant.get("fingerprint") != recipe.variant_fingerprint(name):
            raise InputError(ERR_CHANGED.format(run=run, variant=name))
        top = max(int(m) for m in variant["members"])
        if top >= recipe.k:
            raise InputError(ERR_K_SHRANK.format(run=run, variant=name, member=top, k=recipe.k))
    section = manifest.get("influence")
    if (
        recipe.influence is not None
        and isinstance(section, dict)
        and section.get("done")
        and section.get("fingerprint") != recipe.influence_fingerprint()
    ):
        raise InputError(ERR_INFLUENCE_CHANGED.format(run=run, dir=INFLUENCE_DIR))


def _all_finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return not isinstance(value, float) or math.isfinite(value)


def member_finished(run_dir: str | Path, entry: dict[str, Any] | None) -> bool:
    """Whether a member's entry exists, its metrics are finite and every file it
    lists hash-matches."""
    if not entry or not _all_finite(entry.get("metrics", {})):
        return False
    for kind, rel in entry.get("files", {}).items():
        path = member_file(run_dir, rel)
        if not path.is_file() or sha256_file(path) != entry.get("sha256", {}).get(kind):
            return False
    return bool(entry.get("files"))


def record_member(
    run_dir: str | Path,
    manifest: dict[str, Any],
    recipe: Recipe,
    variant: str,
    entry: dict[str, Any],
) -> None:
    """Add a finished member to the manifest and write it at once."""
    v = manifest["variants"].setdefault(
        variant,
        {
            "kind": recipe.variant(variant).kind,
            "from": recipe.variant(variant).from_,
            "fingerprint": recipe.variant_fingerprint(variant),
            "members": {},
        },
    )
    v["members"][str(entry["member"])] = entry
    write_manifest(run_dir, manifest)


# -- reading a run ----------------------------------------------------------------
ONNX_AGREEMENT = "onnx_eval_agreement"
"""Metric: share of eval examples where a member's ONNX export predicts the
top-1 label its canonical (``.ckpt``) file does, both run on CPU."""


@dataclass(frozen=True)
class MemberInfo:
    """One finished member."""

    variant: str
    index: int
    seed: int
    path: Path
    """The canonical model file (what the manifest's metrics were computed on)."""
    files: dict[str, Path]
    metrics: dict[str, Any]
    timings: dict[str, float]

    def verified_file(self) -> Path:
        """The fastest file known to predict the canonical file's top-1 on the eval split.

        That is the ONNX export beside a ``.ckpt`` when the trainer measured
        :data:`ONNX_AGREEMENT` = 1.0 for it (on CPU, at the recipe's eval
        batch size), else :attr:`path`.
        """
        onnx = self.files.get("onnx")
        if onnx is not None and onnx != self.path and self.metrics.get(ONNX_AGREEMENT) == 1.0:
            return onnx
        return self.path


@dataclass(frozen=True)
class VariantInfo:
    """One variant's population, members in index order."""

    name: str
    kind: str
    source: str | None
    """The variant it derives from (``from``), if any."""
    members: tuple[MemberInfo, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of finished members."""
        return len(self.members)

    @property
    def paths(self) -> list[Path]:
        """Canonical model files, in member order."""
        return [m.path for m in self.members]

    def metric(self, key: str) -> list[float]:
        """One metric over the members (those that have it)."""
        return [float(m.metrics[key]) for m in self.members if key in m.metrics]

    def mean_std(self, key: str) -> tuple[float, float] | None:
        """Mean and sample standard deviation (0 for one member) of a metric."""
        vals = self.metric(key)
        if not vals:
            return None
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


@dataclass(frozen=True)
class RunInfo:
    """A trainer run directory, as ``compaudit report RUN_DIR`` needs it."""

    run_dir: Path
    recipe: Recipe
    variants: dict[str, VariantInfo]
    """Every variant of the recipe, in recipe order (members may be missing)."""
    reference: str
    """The variant audited against the others (the dense one by default)."""
    eval_data: str
    """Data spec of the evaluation split, e.g. ``"digits:test"``."""
    train_data: str
    missing: tuple[str, ...]
    """``variant/member`` of members not (validly) finished."""
    manifest: dict[str, Any]
    influence: Path | None = None
    """The influence runs file (read it with
    :func:`compaudit.analysis.influence.load_runs`), or None: the recipe has no
    ``influence`` section, or its runs are not all finished."""

    @property
    def complete(self) -> bool:
        """Whether every member of every variant is finished."""
        return not self.missing

    @property
    def candidates(self) -> list[str]:
        """Every variant except the reference, in recipe order."""
        return [n for n in self.variants if n != self.reference]


def load_run(run_dir: str | Path, *, require_complete: bool = True) -> RunInfo:
    """Read a run directory written by :func:`compaudit.train.train_recipe`.

    Parameters
    ----------
    run_dir : path-like
        The run directory.
    require_complete : bool
        Raise when a member is missing or its files do not hash-match.

    Raises
    ------
    InputError
        Not a run directory, an unreadable manifest, or (with
        ``require_complete``) an incomplete or altered run.
    """
    root = Path(run_dir)
    manifest = read_manifest(root)
    if manifest is None:
        raise InputError(ERR_NO_RUN.format(run=root, manifest=MANIFEST))
    recipe = recipe_from_dict(manifest["recipe"], source=str(root / MANIFEST))
    variants: dict[str, VariantInfo] = {}
    missing: list[str] = []
    for v in recipe.variants:
        recorded = manifest["variants"].get(v.name, {}).get("members", {})
        members = []
        for i in range(recipe.k):
            entry = recorded.get(str(i))
            if not member_finished(root, entry):
                missing.append(f"{v.name}/{i}")
                continue
            assert entry is not None
            files = {k: member_file(root, rel) for k, rel in entry["files"].items()}
            members.append(
                MemberInfo(
                    variant=v.name,
                    index=i,
                    seed=int(entry["seed"]),
                    path=files[entry["canonical"]],
                    files=files,
                    metrics=dict(entry.get("metrics", {})),
                    timings=dict(entry.get("timings", {})),
                )
            )
        variants[v.name] = VariantInfo(
            name=v.name,
            kind=v.kind,
            source=v.from_,
            members=tuple(members),
            config=v.model_dump(mode="json", by_alias=True),
        )
    if require_complete and missing:
        raise InputError(
            ERR_INCOMPLETE.format(run=root, count=len(missing), examples=", ".join(missing[:3]))
        )
    return RunInfo(
        run_dir=root,
        recipe=recipe,
        variants=variants,
        reference=recipe.reference_variant,
        eval_data=recipe.dataset.spec(recipe.dataset.eval),
        train_data=recipe.dataset.spec(recipe.dataset.train),
        missing=tuple(missing),
        manifest=manifest,
        influence=influence_file(root, manifest, recipe),
    )
