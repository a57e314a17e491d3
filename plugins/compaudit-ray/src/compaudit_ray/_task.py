"""The worker side: one member job in a scratch run directory, its files returned as bytes.

Nothing here assumes the driver's file system. The files a job reads (the
trained member a fine-tuned or quantized variant starts from) arrive as
bytes and are laid out in a temporary directory shaped like the run
directory; the job runs there with the ordinary
:func:`compaudit.train.member.run_job`, and the files its manifest entry names
travel back as bytes for the driver to write.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compaudit.errors import InputError
from compaudit.train.base import MemberJob, MemberResult, ProgressEvent
from compaudit.train.member import run_job
from compaudit.train.recipe import load_data, recipe_from_dict

__all__ = ["ERR_DATA_DIFFERS", "Shipped", "entry_files", "run_member"]

ERR_DATA_DIFFERS = (
    "member {job}: the {split} data loaded on Ray node {node} differs from the driver's "
    "({spec}); install the same dataset (COMPAUDIT_DATA_DIR, or the same file at the "
    "same path) on every node"
)


@dataclasses.dataclass(frozen=True)
class Shipped:
    """What a task returns: the member's result and its files (run-relative path to bytes)."""

    result: MemberResult
    files: dict[str, bytes]


def entry_files(result: MemberResult) -> dict[str, str]:
    """The files a manifest entry names: run-relative path to its sha256.

    A member's entry lists ``files`` and ``sha256`` by kind; an influence run's
    entry (:mod:`compaudit.train.influence`) names one ``file`` and its ``sha256``.
    """
    entry = result.entry
    if "files" in entry:
        sha = entry["sha256"]
        return {str(rel): str(sha[kind]) for kind, rel in entry["files"].items()}
    return {str(entry["file"]): str(entry["sha256"])}


def _check_data(job: MemberJob, fingerprints: tuple[str, str]) -> None:
    recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
    for split, data, want in zip(("train", "eval"), load_data(recipe), fingerprints, strict=True):
        if data.fingerprint() != want:
            import ray

            node = ray.get_runtime_context().get_node_id()
            raise InputError(
                ERR_DATA_DIFFERS.format(job=job.key, split=split, node=node, spec=data.name)
            )


def run_member(
    job: MemberJob,
    inputs: Mapping[str, bytes],
    fingerprints: tuple[str, str],
    sink: Any,
) -> Shipped:
    """Run ``job`` in a scratch directory; return its result and the bytes of its files.

    Parameters
    ----------
    job : MemberJob
        As the run layer made it; ``run_dir`` is the driver's and is only
        replaced by the scratch directory here.
    inputs : mapping
        Run-relative path to bytes of every file the job reads.
    fingerprints : (str, str)
        The driver's train and eval dataset fingerprints; a node that loads
        other data fails the job (a member trained on other data is not the
        recipe's).
    sink : ray.actor.ActorHandle or None
        Progress actor (``put`` of a :class:`~compaudit.train.base.ProgressEvent`).
    """
    _check_data(job, fingerprints)

    def progress(event: ProgressEvent) -> None:
        if sink is not None:
            sink.put.remote(event)  # fire and forget: progress never blocks training

    with tempfile.TemporaryDirectory(prefix="compaudit-ray-") as scratch:
        root = Path(scratch)
        for rel, data in inputs.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        result = run_job(dataclasses.replace(job, run_dir=str(root)), progress)
        files = {rel: (root / rel).read_bytes() for rel in entry_files(result)}
    return Shipped(result, files)
