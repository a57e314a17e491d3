"""Population specs: which model files make up a population, and how to load each.

A spec is a model file, a glob (``models/*.onnx``), a directory (every model
file directly inside it, sorted by name), a ``package.module:factory``, or a
list of any of these. Loaders come from the plugin registry, so a plugin
that registers a loader for a new suffix extends specs too.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from compaudit import plugins
from compaudit.errors import DataNotFoundError, InputError
from compaudit.models.base import MemberSpec, ModelLoader, Runner, RunnerSettings
from compaudit.population import PREDICTIONS_SUFFIXES

__all__ = [
    "ERR_BLANK_SPEC",
    "ERR_EMPTY_SPEC",
    "ERR_NOT_A_FILE",
    "ERR_NO_LOADER",
    "ERR_NO_SUCH_MODEL",
    "ERR_PREDICTIONS_NOT_MODELS",
    "HOOK",
    "find_loader",
    "load_member",
    "member_fingerprint",
    "model_loaders",
    "model_suffixes",
    "resolve_members",
]

HOOK = "register_model_loaders"

ERR_EMPTY_SPEC = (
    "{spec}: no model files found (looked for {suffixes}); give a model file, a glob such as "
    "'models/*.onnx', or a directory of model files"
)
ERR_BLANK_SPEC = (
    "model spec {spec!r} names no file: an empty SPEC would run whatever lies in the working "
    "directory; give a model file, a glob such as 'models/*.onnx', a directory of model files "
    "or a module:factory (is a CI variable unset?)"
)
ERR_NO_SUCH_MODEL = "{spec}: no such model file or directory"
ERR_NOT_A_FILE = (
    "{spec}: not a regular file (a pipe, a device or a broken link); give the model file itself"
)
ERR_PREDICTIONS_NOT_MODELS = (
    "{spec}: holds .npz files but no model files; a predictions .npz (compaudit predict) is "
    "a whole population: give each as its own --reference/--candidate NAME=FILE.npz"
)
ERR_SAME_MODEL_TWICE = (
    "{spec}: holds the same model in several formats ({files}), which would count it "
    "twice; choose one format with a glob such as '{example}'"
)
ERR_NO_LOADER = (
    "{spec}: no model loader understands this file (built-in formats: {suffixes}); "
    "`compaudit plugins` lists installed loaders"
)
_GLOB_CHARS = frozenset("*?[")


def model_loaders() -> dict[str, ModelLoader]:
    """The registered model loaders by name, each checked against :class:`ModelLoader`."""
    found: dict[str, ModelLoader] = plugins.get_registry().providers(HOOK, ModelLoader)
    return found


def model_suffixes() -> tuple[str, ...]:
    """Every file suffix a registered model loader declares, longest first."""
    found = {s.lower() for loader in model_loaders().values() for s in loader.suffixes}
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def _known_suffixes() -> str:
    return ", ".join(sorted(model_suffixes())) or "none"


def find_loader(path: str) -> ModelLoader | None:
    """The loader that reads ``path`` (a file or a ``module:factory``), if any.

    Raises
    ------
    PluginError
        Two loaders claim ``path`` equally specifically
        (the rule: :func:`compaudit.plugins.resolve`).
    """
    registry = plugins.get_registry()
    loaders: dict[str, ModelLoader] = registry.providers(HOOK, ModelLoader)
    return plugins.resolve(
        path, loaders.values(), kind="model loaders", origin=lambda n: registry.origin(HOOK, n)
    )


def _is_non_file_spec(spec: str) -> bool:
    """A spec some loader reads without a file (``module:factory``); file loaders
    declare ``suffixes``, so a missing ``x.onnx`` is reported as missing."""
    loader = find_loader(spec)
    return loader is not None and not loader.suffixes


def _expand_one(spec: str) -> list[str]:
    if not spec.strip():  # Path("") and Path(" /") are folders: the working directory, or /
        raise InputError(ERR_BLANK_SPEC.format(spec=spec))
    if any(ch in _GLOB_CHARS for ch in spec):
        listed = sorted(p for p in glob.glob(spec) if Path(p).is_file())
        found = [p for p in listed if find_loader(p) is not None]
    elif Path(spec).is_dir():
        listed = sorted(str(p) for p in Path(spec).iterdir() if p.is_file())
        found = [p for p in listed if find_loader(p) is not None]
    elif Path(spec).is_file():
        if find_loader(spec) is None:
            raise InputError(ERR_NO_LOADER.format(spec=spec, suffixes=_known_suffixes()))
        return [spec]
    elif _is_non_file_spec(spec):
        return [spec]
    elif os.path.lexists(spec):  # a FIFO, a device, a dangling link: there, but no file
        raise InputError(ERR_NOT_A_FILE.format(spec=spec))
    else:
        raise DataNotFoundError(ERR_NO_SUCH_MODEL.format(spec=spec))
    if not found:
        if any(p.lower().endswith(PREDICTIONS_SUFFIXES) for p in listed):  # most likely
            raise InputError(ERR_PREDICTIONS_NOT_MODELS.format(spec=spec))
        raise InputError(ERR_EMPTY_SPEC.format(spec=spec, suffixes=_known_suffixes()))
    _refuse_duplicate_formats(spec, found)
    return found


def _refuse_duplicate_formats(spec: str, found: Sequence[str]) -> None:
    # A trainer variant folder holds member-000.ckpt and its member-000.onnx
    # export: one model, two files. Counting both would double K silently.
    by_stem: dict[Path, list[Path]] = {}
    for p in map(Path, found):
        by_stem.setdefault(p.with_suffix(""), []).append(p)
    for files in by_stem.values():
        if len(files) > 1:
            folder = files[0].parent
            raise InputError(
                ERR_SAME_MODEL_TWICE.format(
                    spec=spec,
                    files=", ".join(f.name for f in files),
                    example=str(folder / f"*{files[-1].suffix}"),
                )
            )


def _names(paths: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    def base(p: str) -> str:
        if Path(p).exists():
            return Path(p).stem
        weights = options.get("weights")  # module:factory: name it after its weights
        return Path(str(weights)).stem if weights else p.rsplit(":", 1)[-1]

    names = [base(p) for p in paths]
    counts = Counter(names)
    # Same stem twice (a.onnx and a.pt, or two folders): fall back to longer names.
    names = [Path(p).name if counts[n] > 1 else n for p, n in zip(paths, names, strict=True)]
    counts = Counter(names)
    return [p if counts[n] > 1 else n for p, n in zip(paths, names, strict=True)]


def resolve_members(
    spec: str | Sequence[str], *, options: Mapping[str, Any] | None = None
) -> list[MemberSpec]:
    """Expand a population spec into its members.

    Parameters
    ----------
    spec : str or sequence of str
        A model file, a glob, a directory (non-recursive, sorted), a
        ``package.module:factory``, or a list of these.
    options : mapping, optional
        Loader options given to every member (``{"weights": FILE}`` for a
        ``module:factory``).

    Returns
    -------
    list of MemberSpec
        In spec order; names are file stems, made unique when they collide.

    Raises
    ------
    InputError
        A blank spec (:data:`ERR_BLANK_SPEC`: ``""`` would be the working
        directory), a glob or directory with no model files, or a file no
        loader reads.
    DataNotFoundError
        A path that does not exist.
    """
    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise InputError(ERR_EMPTY_SPEC.format(spec="[]", suffixes=_known_suffixes()))
    paths: list[str] = []
    for one in specs:
        for p in _expand_one(str(one)):
            if p not in paths:
                paths.append(p)
    opts = dict(options or {})
    return [
        MemberSpec(path=p, name=n, options=dict(opts))
        for p, n in zip(paths, _names(paths, opts), strict=True)
    ]


def _loader_for(member: MemberSpec) -> ModelLoader:
    loader = find_loader(member.path)
    if loader is None:
        raise InputError(ERR_NO_LOADER.format(spec=member.path, suffixes=_known_suffixes()))
    return loader


def _loader_options(member: MemberSpec, settings: RunnerSettings | None) -> dict[str, Any]:
    settings = settings or RunnerSettings()
    options: dict[str, Any] = {"device": settings.device}
    options.update(member.options)
    # The settings decide, never a member's options: trust is the user's to give.
    options["trust_model_code"] = settings.trust_model_code
    return options


def member_fingerprint(member: MemberSpec, settings: RunnerSettings | None = None) -> str | None:
    """The model's fingerprint without loading it, when its loader can tell.

    ``settings.trust_model_code`` is passed as for :func:`load_member`: finding
    a ``module:factory``'s source imports its parent packages.
    """
    fingerprint = getattr(_loader_for(member), "fingerprint", None)
    if fingerprint is None:
        return None
    return str(fingerprint(member.path, options=_loader_options(member, settings)))


def load_member(member: MemberSpec, settings: RunnerSettings | None = None) -> Runner:
    """Load one member with the loader that matches it.

    Parameters
    ----------
    member : MemberSpec
    settings : RunnerSettings, optional
        ``device`` and ``trust_model_code`` are passed to the loader as options.
    """
    return _loader_for(member).load(member.path, options=_loader_options(member, settings))
