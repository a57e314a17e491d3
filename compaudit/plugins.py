"""Hook specifications and the plugin manager (entry-point group ``compaudit``).

Every extension point is a hook below. Built-in loaders, datasets, reporters,
compressors and executors are ordinary plugins registered through the same
manager that loads third-party packages, so a plugin can add or override
anything a built-in provides.

A plugin is a module (or object) with functions decorated by
:data:`hookimpl`, named after the hook specs here, and is advertised in its
package metadata::

    [project.entry-points.compaudit]
    myplugin = "my_package.compaudit_plugin"

Each ``register_*`` hook returns a list of provider objects (each satisfies
a :class:`typing.Protocol`: :class:`Provider` here, and per hook
:class:`compaudit.models.base.ModelLoader`,
:class:`compaudit.data.base.DatasetProvider`,
:class:`compaudit.train.base.Compressor` / ``Pruner`` / ``Quantizer`` and
:class:`compaudit.train.base.Executor`); the registry collects them by
``name``. Later registrations (third-party plugins) take precedence over
built-ins of the same name: registering under a built-in's name replaces it.

**Resolution rule** (:func:`resolve`), when several providers claim one spec
(model loaders for a model file, dataset providers for a data spec): the
most specific claim wins, where a provider's specificity is the length of
the longest suffix it declares (``suffixes``, e.g. ``(".pt", ".pth")``) that
the spec ends with, case-insensitively, and 0 when it declares none that
fits (pattern matchers such as ``module:factory`` or built-in dataset
names). A tie for the top is an error naming both providers and the
plugins that registered them; nothing is chosen silently.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import click
import pluggy

from compaudit.errors import PluginError

__all__ = [
    "BUILTIN_PLUGINS",
    "ERR_NOT_A_PROVIDER",
    "ERR_TIE",
    "HookSpecs",
    "PluginInfo",
    "Provider",
    "Registry",
    "SpecProvider",
    "best_matches",
    "get_registry",
    "hookimpl",
    "hookspec",
    "resolve",
    "specificity",
]

PROJECT = "compaudit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Built-in plugin modules, registered before third-party entry points.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "compaudit.data.builtin",
    "compaudit.models.builtin",
    "compaudit.report.builtin",
    "compaudit.train.builtin",
)


ERR_NOT_A_PROVIDER = (
    "plugin '{plugin}' returned {item!r} from hook {hook}, which does not satisfy "
    "{contract} (missing: {missing}); fix or uninstall the plugin"
)
ERR_TIE = (
    "{spec}: {kind} {a} and {b} both claim it, equally specifically; uninstall one "
    "of the plugins, or register yours under the built-in's name to replace it"
)


@runtime_checkable
class Provider(Protocol):
    """What every ``register_*`` hook returns a list of: an object with a ``name``."""

    name: str


@runtime_checkable
class SpecProvider(Protocol):
    """A provider picked by the spec it reads (model loaders, dataset providers).

    It may also declare ``suffixes`` (lower-case, with the dot), which rank
    it under the resolution rule (module docstring) and name candidates.
    """

    name: str

    def matches(self, spec: str) -> bool:
        """Whether this provider reads ``spec``."""
        ...


S = TypeVar("S", bound=SpecProvider)


def specificity(provider: object, spec: str) -> int:
    """Length of the longest of ``provider.suffixes`` that ``spec`` ends with (0: none)."""
    low = spec.lower()
    fits = [len(s) for s in getattr(provider, "suffixes", ()) if s and low.endswith(s.lower())]
    return max(fits, default=0)


def best_matches(spec: str, providers: Iterable[S]) -> list[S]:
    """The providers that claim ``spec`` with the highest specificity (ties included)."""
    claims = [(specificity(p, spec), p) for p in providers if p.matches(spec)]
    top = max((rank for rank, _ in claims), default=0)
    return [p for rank, p in claims if rank == top]


def resolve(
    spec: str,
    providers: Iterable[S],
    *,
    kind: str,
    origin: Callable[[str], str] | None = None,
) -> S | None:
    """The provider that reads ``spec`` under the resolution rule (module docstring).

    Parameters
    ----------
    spec : str
        A model file, data spec ...
    providers : iterable of SpecProvider
    kind : str
        What they are, for the message (``"model loaders"``).
    origin : callable, optional
        Provider name -> name of the plugin that registered it.

    Returns
    -------
    SpecProvider or None
        None when no provider claims ``spec``.

    Raises
    ------
    PluginError
        Two providers tie for the most specific claim (:data:`ERR_TIE`).
    """
    found = best_matches(spec, providers)
    if len(found) > 1:

        def label(p: SpecProvider) -> str:
            where = origin(p.name) if origin is not None else ""
            return f"'{p.name}'" + (f" (plugin {where})" if where else "")

        a, b = sorted(found, key=lambda p: p.name)[:2]
        raise PluginError(ERR_TIE.format(spec=spec, kind=kind, a=label(a), b=label(b)))
    return found[0] if found else None


class HookSpecs:
    """The hooks a plugin may implement."""

    @hookspec
    def register_model_loaders(self) -> list[Provider]:  # type: ignore[empty-body]
        """Return model loaders (:class:`compaudit.models.base.ModelLoader`)."""

    @hookspec
    def register_datasets(self) -> list[Provider]:  # type: ignore[empty-body]
        """Return dataset providers (:class:`compaudit.data.base.DatasetProvider`)."""

    @hookspec
    def register_reporters(self) -> list[Provider]:  # type: ignore[empty-body]
        """Return reporters (:class:`compaudit.report.base.Reporter`).

        A reporter has ``name`` (the ``--format`` name), ``filename`` (under
        ``--out``; None for terminal output) and ``write(report, *, out_dir,
        context)``. ``report`` is the typed
        :class:`compaudit.results.AuditReport`, no longer the JSON dict: call
        ``report.to_dict()`` for the ``compaudit.report/v1`` document (what
        ``report.json`` holds), and read the shared rules
        (``row.significantly_worse``, ``comparison.worst_classes()``,
        ``group_set.worst_groups()``) from the typed objects. ``context`` is a
        :class:`compaudit.report.base.ReportContext`; ``write`` returns the
        path written, or None. See ``plugins/README.md`` for an example.
        """

    @hookspec
    def register_compressors(self) -> list[Provider]:  # type: ignore[empty-body]
        """Return compressors (:class:`compaudit.train.base.Pruner` or ``Quantizer``)."""

    @hookspec
    def register_executors(self) -> list[Provider]:  # type: ignore[empty-body]
        """Return executors that run training jobs (:class:`compaudit.train.base.Executor`)."""

    @hookspec
    def register_commands(self, cli: click.Group) -> None:
        """Add commands to ``cli`` (``cli.add_command`` or ``@cli.command``).

        ``cli`` is a group of the plugins' own, read when the CLI lists or
        looks up a command; its commands are merged into ``compaudit``'s (a
        plugin command replaces a built-in of the same name). Only entry-point
        plugins are asked: built-in commands are not plugins.
        """


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as listed by ``compaudit plugins``."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool
    error: str | None = None


T = TypeVar("T")


class Registry:
    """The plugin manager plus typed lookups of what plugins provide."""

    def __init__(self, *, load_entry_points: bool = True, builtins: bool = True) -> None:
        """Register the built-in plugins (unless ``builtins`` is false) and the entry points.

        ``builtins=False`` is what the CLI uses to collect plugin commands:
        built-in commands are not plugins (:data:`compaudit.cli.COMMANDS`), and
        the built-in plugin modules import torch, too slow for ``--help``.
        """
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(HookSpecs)
        self.infos: list[PluginInfo] = []
        self._origins: dict[tuple[str, str], str] = {}
        for modname in BUILTIN_PLUGINS if builtins else ():
            self._register_module(modname, distribution=PROJECT, builtin=True)
        if load_entry_points:
            self._load_entry_points()

    # -- loading ------------------------------------------------------------
    def _register_module(self, modname: str, *, distribution: str, builtin: bool) -> None:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if builtin and exc.name == modname:
                return  # built-in not written yet in this checkout
            raise
        self.register(module, name=modname, distribution=distribution, builtin=builtin)

    def register(
        self, plugin: object, *, name: str, distribution: str = "", builtin: bool = False
    ) -> None:
        """Register a plugin object or module under ``name``."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hook names and signatures
            raise PluginError(f"plugin '{name}' ({distribution}) is invalid: {exc}") from exc
        hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
        self.infos.append(
            PluginInfo(name, distribution, _dist_version(distribution), hooks, builtin)
        )

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name, distribution=dist)
            except Exception as exc:
                # A broken third-party plugin is named, not a deep traceback; it
                # is recorded and raised when the user asks for what it provides.
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                self.infos.append(
                    PluginInfo(ep.name, dist, _dist_version(dist), (), False, error=last)
                )

    @property
    def broken(self) -> list[PluginInfo]:
        """Plugins that failed to load."""
        return [i for i in self.infos if i.error]

    # -- typed lookups ------------------------------------------------------
    def _collect(self, hook: str) -> dict[str, Any]:
        caller = getattr(self.pm.hook, hook)
        found: dict[str, Any] = {}
        # get_hookimpls() lists plugins in registration order, so later
        # registrations (third-party plugins) overwrite built-ins of the same name.
        for impl in caller.get_hookimpls():
            try:
                provided = impl.function()
            except Exception as exc:
                raise PluginError(
                    f"plugin '{impl.plugin_name}' failed in hook {hook}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            for item in provided or []:
                found[item.name] = item
                self._origins[(hook, str(item.name))] = str(impl.plugin_name)
        return found

    def providers(self, hook: str, contract: type) -> dict[str, Any]:
        """What ``hook`` provides, by name, each checked against ``contract``.

        Parameters
        ----------
        hook : str
            A ``register_*`` hook name.
        contract : type
            The ``@runtime_checkable`` Protocol every item must satisfy;
            callers annotate the result with it (mypy does not accept a
            Protocol as ``type[T]``), which this check makes true.

        Raises
        ------
        PluginError
            An item lacks an attribute or method of the contract
            (:data:`ERR_NOT_A_PROVIDER`, naming the plugin).
        """
        found = self._collect(hook)
        for name, item in found.items():
            if not isinstance(item, contract):
                missing = [m for m in _protocol_members(contract) if not hasattr(item, m)]
                raise PluginError(
                    ERR_NOT_A_PROVIDER.format(
                        plugin=self.origin(hook, name),
                        item=item,
                        hook=hook,
                        contract=contract.__qualname__,
                        missing=", ".join(missing) or "?",
                    )
                )
        return found

    def origin(self, hook: str, name: str) -> str:
        """The plugin that registered provider ``name`` of ``hook`` (after a lookup)."""
        return self._origins.get((hook, name), "?")

    def model_loaders(self) -> dict[str, Any]:
        """Model loaders by name."""
        return self._collect("register_model_loaders")

    def datasets(self) -> dict[str, Any]:
        """Dataset providers by name."""
        return self._collect("register_datasets")

    def reporters(self) -> dict[str, Any]:
        """Reporters by format name."""
        return self._collect("register_reporters")

    def compressors(self) -> dict[str, Any]:
        """Compressors by name."""
        return self._collect("register_compressors")

    def executors(self) -> dict[str, Any]:
        """Executors by name."""
        return self._collect("register_executors")

    def add_commands(self, cli: click.Group) -> None:
        """Let plugins add CLI commands."""
        self.pm.hook.register_commands(cli=cli)


def _protocol_members(contract: type) -> list[str]:
    """Public attributes and methods a Protocol declares (its bases' too)."""
    names: set[str] = set()
    for base in contract.__mro__:
        if getattr(base, "_is_protocol", False) and base is not Protocol:
            names.update(getattr(base, "__annotations__", {}))
            names.update(k for k, v in vars(base).items() if callable(v))
    return sorted(n for n in names if not n.startswith("_"))


def _dist_version(distribution: str) -> str:
    if not distribution:
        return "-"
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built-ins plus installed entry points)."""
    return Registry()
