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

Each ``register_*`` hook returns a list of provider objects; the registry
collects them by ``name``. Later registrations (third-party plugins) take
precedence over built-ins of the same name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import traceback
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import pluggy

from compaudit.errors import PluginError

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


class HookSpecs:
    """The hooks a plugin may implement."""

    @hookspec
    def register_model_loaders(self) -> list[Any]:  # type: ignore[empty-body]
        """Return model loaders (objects with ``name``, ``matches(spec)``, ``load(...)``).

        See :class:`compaudit.models.base.ModelLoader`.
        """

    @hookspec
    def register_datasets(self) -> list[Any]:  # type: ignore[empty-body]
        """Return dataset providers (``name``, ``matches(spec)``, ``load(...)``).

        See :class:`compaudit.data.base.DatasetProvider`.
        """

    @hookspec
    def register_reporters(self) -> list[Any]:  # type: ignore[empty-body]
        """Return reporters (``name``, ``write(report, out_dir, context)``)."""

    @hookspec
    def register_compressors(self) -> list[Any]:  # type: ignore[empty-body]
        """Return compressors used by the trainer (pruning, quantization, ...)."""

    @hookspec
    def register_executors(self) -> list[Any]:  # type: ignore[empty-body]
        """Return executors that run training jobs (in-process, process pool, ...)."""

    @hookspec
    def register_commands(self, cli: click.Group) -> None:
        """Add commands to the ``compaudit`` CLI group."""


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

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(HookSpecs)
        self.infos: list[PluginInfo] = []
        for modname in BUILTIN_PLUGINS:
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
        return found

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
