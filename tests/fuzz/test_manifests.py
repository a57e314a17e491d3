"""Hostile trainer run directories: a manifest names files only inside its run dir, and has a shape.

A run directory from a pull request carries its own ``manifest.json``, sha256
sums included, so a manifest naming ``../../elsewhere/member.ckpt`` with that
file's hash passed every check and had a file outside the run loaded. Each
case spoils one thing of an otherwise well-formed manifest and expects
``compaudit report RUN_DIR`` to fail closed with the exact message.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compaudit.train.manifest import (
    ERR_BAD_MANIFEST,
    ERR_MANIFEST_MISSING,
    ERR_MANIFEST_TYPE,
    ERR_OUTSIDE_RUN,
    MANIFEST,
    RUN_FORMAT,
)

from ._expect import assert_error
from .conftest import fails_closed

RECIPE: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits", "train": "train", "eval": "test"},
    "architecture": {"name": "mlp", "kwargs": {"hidden": [16]}},
    "training": {"epochs": 1, "batch_size": 64, "lr": 0.2},
    "k": 1,
    "seed": 0,
    "variants": [
        {"name": "dense", "kind": "dense"},
        {
            "name": "tdyn",
            "kind": "quantize",
            "from": "dense",
            "quantize": {"method": "torch-dynamic"},
        },
    ],
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _member(files: dict[str, str], run: Path) -> dict[str, Any]:
    sums = {k: _sha(run / rel) if (run / rel).is_file() else "0" * 64 for k, rel in files.items()}
    return {"files": files, "sha256": sums, "canonical": "ckpt", "seed": 0, "member": 0}


def _manifest(run: Path) -> dict[str, Any]:
    """A well-formed manifest whose members' files exist (their content does not matter here)."""
    for variant in ("dense", "tdyn"):
        (run / variant).mkdir(parents=True, exist_ok=True)
        (run / variant / "member-000.ckpt").write_bytes(variant.encode())
    return {
        "format": RUN_FORMAT,
        "recipe": copy.deepcopy(RECIPE),
        "data": {},
        "variants": {
            v: {"kind": v, "members": {"0": _member({"ckpt": f"{v}/member-000.ckpt"}, run)}}
            for v in ("dense", "tdyn")
        },
    }


Spoil = Callable[[dict[str, Any], Path], tuple[str, dict[str, Any]]]


def _outside(rel: str) -> Spoil:
    """The dense member's checkpoint is ``rel``, a file outside the run (hash recorded)."""

    def spoil(m: dict[str, Any], run: Path) -> tuple[str, dict[str, Any]]:
        target = run.parent / "elsewhere" / "member.ckpt"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(b"not yours")
        rel_ = rel.format(abs=target)
        m["variants"]["dense"]["members"]["0"] = _member({"ckpt": rel_}, run)
        return ERR_OUTSIDE_RUN, {"rel": rel_}

    return spoil


def _symlink_out(m: dict[str, Any], run: Path) -> tuple[str, dict[str, Any]]:
    target = run.parent / "secret.ckpt"
    target.write_bytes(b"not yours")
    (run / "dense" / "member-000.ckpt").unlink()
    os.symlink(target, run / "dense" / "member-000.ckpt")
    m["variants"]["dense"]["members"]["0"] = _member({"ckpt": "dense/member-000.ckpt"}, run)
    return ERR_OUTSIDE_RUN, {"rel": "dense/member-000.ckpt"}


def _symlinked_folder(m: dict[str, Any], run: Path) -> tuple[str, dict[str, Any]]:
    elsewhere = run.parent / "other-run"
    elsewhere.mkdir()
    (elsewhere / "member-000.ckpt").write_bytes(b"not yours")
    os.symlink(elsewhere, run / "linked")
    m["variants"]["dense"]["members"]["0"] = _member({"ckpt": "linked/member-000.ckpt"}, run)
    return ERR_OUTSIDE_RUN, {"rel": "linked/member-000.ckpt"}


def _drop(*keys: str) -> Spoil:
    def spoil(m: dict[str, Any], run: Path) -> tuple[str, dict[str, Any]]:
        node = m
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return ERR_MANIFEST_MISSING, {"where": ".".join(keys)}

    return spoil


def _set(value: Any, kind: str, *keys: str) -> Spoil:
    def spoil(m: dict[str, Any], run: Path) -> tuple[str, dict[str, Any]]:
        node = m
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return ERR_MANIFEST_TYPE, {"where": ".".join(keys), "kind": kind, "got": repr(value)}

    return spoil


MEMBER = ("variants", "dense", "members", "0")
CASES: dict[str, Spoil] = {
    "member-file-climbs-out-with-dotdot": _outside("../../elsewhere/member.ckpt"),
    "member-file-climbs-out-from-a-subfolder": _outside("dense/../../elsewhere/member.ckpt"),
    "member-file-is-an-absolute-path": _outside("{abs}"),
    "member-file-is-a-symlink-out-of-the-run": _symlink_out,
    "member-file-under-a-symlinked-folder": _symlinked_folder,
    "recipe-missing": _drop("recipe"),
    "variants-missing": _drop("variants"),
    "member-seed-missing": _drop(*MEMBER, "seed"),
    "member-files-missing": _drop(*MEMBER, "files"),
    "member-canonical-missing": _drop(*MEMBER, "canonical"),
    "variants-is-a-list": _set([], "an object", "variants"),
    "recipe-is-a-string": _set("tiny", "an object", "recipe"),
    "data-is-a-list": _set([1], "an object", "data"),
    "variant-is-a-number": _set(3, "an object", "variants", "dense"),
    "members-is-a-list": _set([], "an object", "variants", "dense", "members"),
    "member-is-a-string": _set("x", "an object", *MEMBER),
    "member-seed-is-a-string": _set("0", "an integer", *MEMBER, "seed"),
    "member-seed-is-a-bool": _set(True, "an integer", *MEMBER, "seed"),
    "member-files-is-a-list": _set(["a.ckpt"], "an object", *MEMBER, "files"),
    "member-file-path-is-a-number": _set(7, "a relative path", *MEMBER, "files", "ckpt"),
    "member-sha256-is-a-string": _set("abc", "an object", *MEMBER, "sha256"),
    "member-metrics-is-a-list": _set([], "an object", *MEMBER, "metrics"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_hostile_manifest_fails_closed(tmp_path: Path, case: str) -> None:
    run = tmp_path / "work" / "run"
    run.mkdir(parents=True)
    manifest = _manifest(run)
    template, fields = CASES[case](manifest, run)
    (run / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    result = fails_closed(["report", str(run), "-o", str(tmp_path / "out")], names=str(run))
    if template is ERR_OUTSIDE_RUN:
        assert_error(result.error_lines[0], template, path=run / MANIFEST, run=run, **fields)
    else:
        reason = template.format(**fields)
        assert_error(result.error_lines[0], ERR_BAD_MANIFEST, path=run / MANIFEST, reason=reason)


def test_canonical_must_name_one_of_the_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    manifest = _manifest(run)
    manifest["variants"]["dense"]["members"]["0"]["canonical"] = "onnx"
    (run / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    result = fails_closed(["report", str(run), "-o", str(tmp_path / "out")], names=str(run))
    reason = ERR_MANIFEST_TYPE.format(
        where="variants.dense.members.0.canonical", kind="one of files (ckpt)", got="'onnx'"
    )
    assert_error(result.error_lines[0], ERR_BAD_MANIFEST, path=run / MANIFEST, reason=reason)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000, "nested too deeply"),  # was a RecursionError: an internal error
        ('{"format": ' + "9" * 5000 + "}", "Exceeds the limit"),  # Python's int digits limit
    ],
    ids=["deep", "huge-int"],
)
def test_a_manifest_that_json_cannot_hold_is_one_line(
    tmp_path: Path, text: str, reason: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / MANIFEST).write_text(text, encoding="utf-8")
    result = fails_closed(["report", str(run), "-o", str(tmp_path / "out")], names=str(run))
    assert result.error_lines[0].startswith(f"compaudit: error: {run / MANIFEST}: unreadable")
    assert reason in result.error_lines[0]


def test_a_huge_manifest_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compaudit.train import manifest as manifest_mod

    run = tmp_path / "run"
    run.mkdir()
    (run / MANIFEST).write_text(json.dumps(_manifest(run)), encoding="utf-8")
    monkeypatch.setattr(manifest_mod, "MAX_MANIFEST_BYTES", 100)
    result = fails_closed(["report", str(run), "-o", str(tmp_path / "out")], names=str(run))
    reason = "larger than 100 bytes"
    assert_error(result.error_lines[0], ERR_BAD_MANIFEST, path=run / MANIFEST, reason=reason)
