"""What a model spec is named, and which data a model runs on.

:func:`parse_named_spec` names a ``[NAME=]SPEC`` (by the loaders' suffixes,
never by a glob's pattern); :func:`load_data_for_model` loads evaluation data
with the preprocessing a trainer's files recorded, the one rule for every
command that runs a model on data (``report``, ``check``, ``predict`` and
:func:`compaudit.predict`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from compaudit.errors import InputError

if TYPE_CHECKING:
    from compaudit.data.base import Dataset, Preprocessing

__all__ = ["ERR_EMPTY_SPEC", "load_data_for_model", "parse_named_spec"]

ERR_EMPTY_SPEC = (
    "model spec {text!r} names no file{after}: an empty SPEC would audit whatever lies in "
    "the working directory; give [NAME=]SPEC with a predictions file, model file, glob or "
    "directory (is a CI variable unset?)"
)


def parse_named_spec(text: str, default_name: str | None = None) -> tuple[str, str]:
    """Split ``[NAME=]SPEC`` into ``(name, spec)``.

    A ``NAME=`` prefix is recognised only when NAME has no path separator and
    the whole text is not an existing path. Without a name (and without
    ``default_name``), the file name less the longest suffix a registered
    model loader or the predictions format declares names it
    (``m/int8.pth`` -> ``int8``); a directory is named by itself, and a glob
    by the nearest directory above it without glob characters
    (``models/p50/*.onnx`` -> ``p50``), never by the pattern.

    Raises
    ------
    InputError
        An empty or blank SPEC (``int8=``, as an unset CI variable gives):
        :data:`ERR_EMPTY_SPEC`. ``Path("")`` is the working directory, so it
        would audit whatever lies there.
    """
    from compaudit.models.spec import model_suffixes
    from compaudit.population import PREDICTIONS_SUFFIXES

    if not text.strip():
        raise InputError(ERR_EMPTY_SPEC.format(text=text, after=""))
    # os.path.exists, not Path.exists: it returns False (never raises) on a
    # name too long for the file system, which a hostile NAME=SPEC can be.
    if "=" in text and not os.path.exists(text):
        name, spec = text.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            if not spec.strip():
                raise InputError(ERR_EMPTY_SPEC.format(text=text, after=f" after '{name}='"))
            return name, spec
    if default_name is not None:
        return default_name, text
    suffixes = sorted({*model_suffixes(), *PREDICTIONS_SUFFIXES}, key=len, reverse=True)
    p = Path(text.rstrip("/"))
    stem = p.name
    fit = next((s for s in suffixes if stem.lower().endswith(s)), "")
    stem = stem[: len(stem) - len(fit)]
    if any(ch in stem for ch in "*?["):
        folders = [d for d in reversed(p.absolute().parent.parts) if d not in ("/", ".", "..")]
        stem = next((d for d in folders if not any(ch in d for ch in "*?[")), "")
    return stem or text, text


def _load_dataset(
    spec: str, *, run_dir: Path | None = None, carried: tuple[Preprocessing, str] | None = None
) -> Dataset:
    from compaudit.data.loading import load_dataset
    from compaudit.data.prep import PREP_FILE, read_prep

    # A run directory (or a trainer checkpoint) carries the preprocessing fitted on its
    # training data: the evaluation data get it, never one re-fitted on themselves.
    prep_file = None if run_dir is None else Path(run_dir) / PREP_FILE
    if prep_file is not None and prep_file.is_file():
        carried = read_prep(prep_file), str(prep_file)
    if carried is not None:
        dataset: Dataset = load_dataset(spec, prep=carried[0], prep_source=carried[1])
    else:
        dataset = load_dataset(spec)
    return dataset


def _carried_prep(model_spec: str | None) -> tuple[Preprocessing, str] | None:
    """The preprocessing a reference model carries: its run dir's prep file or a checkpoint's.

    Only trainer files carry one (``RUN_DIR/VARIANT/`` or ``member-*.ckpt``);
    anything else (ONNX, predictions, a spec that does not resolve) gives
    ``None`` and is loaded, and checked, as before.
    """
    import glob

    from compaudit.data.prep import PREP_FILE, prep_from_dict, read_prep

    if not model_spec:
        return None
    _, spec = parse_named_spec(model_spec, default_name="reference")
    path = Path(spec)
    for folder in (path, path.parent) if path.is_dir() else (path.parent, path.parent.parent):
        if (folder / PREP_FILE).is_file() and (folder / "manifest.json").is_file():
            return read_prep(folder / PREP_FILE), str(folder / PREP_FILE)
    if path.is_dir():
        found = sorted(path.glob("*.ckpt"))
    elif path.is_file():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(spec))
    first = next((p for p in found if p.suffix in (".ckpt", ".onnx") and p.is_file()), None)
    if first is None:
        return None
    if first.suffix == ".onnx":
        from compaudit.models.onnx_runner import load_onnx_preprocessing

        recorded = load_onnx_preprocessing(first)
    else:
        from compaudit.models.checkpoint import load_checkpoint

        recorded = load_checkpoint(first)[1].get("preprocessing")
    if not isinstance(recorded, Mapping):
        return None
    return prep_from_dict(recorded, src=str(first)), str(first)


def load_data_for_model(data: str, model_spec: str | None) -> Dataset:
    """Load the dataset spec ``data`` with the preprocessing ``model_spec`` carries, if any.

    The one rule for every command that runs a model on data (``report``,
    ``check``, ``predict``): a trainer run dir, checkpoint or ONNX export that
    records the preprocessing it was trained with gets exactly that, never one
    re-fitted on the evaluation data.
    """
    return _load_dataset(data, carried=_carried_prep(model_spec))
