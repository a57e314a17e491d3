"""The built-in trainer: recipes in, populations of dense, pruned and quantized models out.

Public surface (everything else is private to the sub-modules):

* :func:`train_recipe` -- train a recipe into a run directory (resumable);
* :func:`load_run` / :class:`RunInfo` -- read a run directory back;
* :func:`load_recipe` / :class:`Recipe` -- validated YAML recipes.

The architectures and the ``.ckpt`` format the trainer writes belong to the
models layer (:mod:`compaudit.models.architectures`,
:mod:`compaudit.models.checkpoint`), which reads them without the trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compaudit.train.manifest import MemberInfo, RunInfo, VariantInfo, load_run
    from compaudit.train.recipe import Recipe, load_recipe
    from compaudit.train.run import train_recipe

__all__ = [
    "MemberInfo",
    "Recipe",
    "RunInfo",
    "VariantInfo",
    "load_recipe",
    "load_run",
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
    # Lazy, so that importing one sub-module does not import the whole trainer (torch).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compaudit.train' has no attribute {name!r}")
