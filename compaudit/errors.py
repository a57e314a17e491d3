"""Errors and the one exit-status enum, decided in one place.

Every error a user can cause is a :class:`CompauditError`; the CLI turns it
into a one-line message and exit code 2. Messages name the file and the fix.
Any other exception is a bug: the CLI reports it as an internal error, also
with exit code 2 (never 1, which means a gate failed). Things worth telling
but not fatal are :class:`CompauditWarning` warnings (``warnings.warn``),
which the CLI renders as ``compaudit: warning: ...`` and ``-q`` hides.
"""

from __future__ import annotations

from enum import IntEnum

PROBLEM_SEP = " | "
"""Between the problems of one file in one error message (a policy's, a recipe's): the
message stays one line, and each problem names its file and line."""


class ExitStatus(IntEnum):
    """Process exit codes shared by every command (ruff/mypy style)."""

    OK = 0
    """Every gate passed (or nothing was gated)."""
    GATE_FAILED = 1
    """At least one gate failed."""
    ERROR = 2
    """Usage or input error, or a gate that could not be evaluated."""


class CompauditError(Exception):
    """Base class of errors the user can fix; the CLI exits with code 2."""

    exit_status: ExitStatus = ExitStatus.ERROR


class InputError(CompauditError, ValueError):
    """Unusable input: wrong shapes, labels out of range, unreadable files."""


class DataNotFoundError(CompauditError, FileNotFoundError):
    """A dataset or model file that could not be found (lists where we looked)."""


class ModelError(CompauditError):
    """A model that cannot be loaded or run, or that produced unusable output."""


class PolicyError(CompauditError):
    """An invalid policy file, or a gate that cannot be evaluated."""


class PluginError(CompauditError):
    """A plugin that failed to load or misbehaved (named in the message)."""


class CompauditWarning(UserWarning):
    """Something the audit could not do, or did differently, without failing.

    Library code warns with this category rather than printing; the CLI
    renders each as one ``compaudit: warning: ...`` line (hidden by ``-q``).
    """
