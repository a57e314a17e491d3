"""compaudit: audit compressed neural networks against their reference.

The public API (everything else is internal and may change)::

    import compaudit
    report = compaudit.audit(ref_preds, {"int8": int8_preds}, y=y_test)
    report.to_frame("classes")          # pandas
    report                               # inline HTML in Jupyter
    report.write("out/", formats=["html", "json"])

Populations of models come from the trainer and run through the same front
door: :func:`train_recipe` trains a recipe (:func:`load_recipe`) into a run
directory, :func:`load_run` reads it back, :func:`load_dataset` loads a dataset
spec and :func:`predict` runs model files on it; :func:`adjust_pvalues` is the
multiple-testing correction the audit applies.

Two modules are public as a whole: :mod:`compaudit.results` (the typed report
:func:`audit` returns) and :mod:`compaudit.study` (paper-form tables, figures
and file helpers for population studies, as ``examples/`` uses them).

Names are loaded on first use, so ``import compaudit`` (and the command
line's ``--version``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from compaudit.analysis.stats import (
        adjust_pvalues as adjust_pvalues,
    )
    from compaudit.api import (
        Report as Report,
    )
    from compaudit.api import (
        audit as audit,
    )
    from compaudit.api import (
        check as check,
    )
    from compaudit.api import (
        load_predictions as load_predictions,
    )
    from compaudit.api import (
        predict as predict,
    )
    from compaudit.data.loading import (
        load_dataset as load_dataset,
    )
    from compaudit.errors import (
        CompauditError as CompauditError,
    )
    from compaudit.errors import (
        ExitStatus as ExitStatus,
    )
    from compaudit.errors import (
        InputError as InputError,
    )
    from compaudit.policy import Policy as Policy
    from compaudit.policy import load_policy as load_policy
    from compaudit.population import Population as Population
    from compaudit.results import (
        AuditReport as AuditReport,
    )
    from compaudit.results import (
        ClassRow as ClassRow,
    )
    from compaudit.results import (
        Comparison as Comparison,
    )
    from compaudit.results import (
        GateResult as GateResult,
    )
    from compaudit.results import (
        GroupRow as GroupRow,
    )
    from compaudit.settings import AuditSettings as AuditSettings
    from compaudit.train.manifest import load_run as load_run
    from compaudit.train.recipe import load_recipe as load_recipe
    from compaudit.train.run import train_recipe as train_recipe


# name -> module that defines it
_EXPORTS = {
    "audit": "compaudit.api",
    "check": "compaudit.api",
    "load_predictions": "compaudit.api",
    "predict": "compaudit.api",
    "Report": "compaudit.api",
    "AuditReport": "compaudit.results",
    "Comparison": "compaudit.results",
    "ClassRow": "compaudit.results",
    "GroupRow": "compaudit.results",
    "GateResult": "compaudit.results",
    "Population": "compaudit.population",
    "AuditSettings": "compaudit.settings",
    "Policy": "compaudit.policy",
    "load_policy": "compaudit.policy",
    "CompauditError": "compaudit.errors",
    "InputError": "compaudit.errors",
    "ExitStatus": "compaudit.errors",
    "adjust_pvalues": "compaudit.analysis.stats",
    "load_dataset": "compaudit.data.loading",
    "train_recipe": "compaudit.train.run",
    "load_recipe": "compaudit.train.recipe",
    "load_run": "compaudit.train.manifest",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compaudit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
