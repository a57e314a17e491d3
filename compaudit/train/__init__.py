"""The built-in trainer: recipes in, populations of dense, pruned and quantized models out.

Public surface (everything else is private to the sub-modules):

* :func:`train_recipe` -- train a recipe into a run directory (resumable);
* :func:`load_run` / :class:`RunInfo` -- read a run directory back;
* :func:`load_recipe` / :class:`Recipe` -- validated YAML recipes;
* :func:`build` -- built-in architectures by name;
* :func:`save_checkpoint` / :func:`load_checkpoint` -- the ``.ckpt`` format
  that the model runners load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compaudit.train.architectures import build
from compaudit.train.checkpoint import load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from compaudit.train.manifest import MemberInfo, RunInfo, VariantInfo, load_run
    from compaudit.train.recipe import Recipe, load_recipe
    from compaudit.train.run import train_recipe

__all__ = [
    "MemberInfo",
    "Recipe",
    "RunInfo",
    "VariantInfo",
    "build",
    "load_checkpoint",
    "load_recipe",
    "load_run",
    "save_checkpoint",
    "train_recipe",
]

_LAZY = {
    "MemberInfo": "compaudit.train.manifest",
    "RunInfo": "compaudit.train.manifest",
    "VariantInfo": "compaudit.train.manifest",
    "load_run": "compaudit.train.manifest",
    "Recipe": "compaudit.train.recipe",
    "load_recipe": "compaudit.train.recipe",
    "train_recipe": "compaudit.train.run",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that loading a checkpoint does not import the whole trainer.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compaudit.train' has no attribute {name!r}")
