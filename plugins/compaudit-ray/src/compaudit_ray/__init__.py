"""compaudit-ray: the ``ray`` executor for ``compaudit train`` (a first-party plugin).

``compaudit train RECIPE --executor ray [--ray-address auto|HOST:PORT]`` runs
each member (and influence run) as a Ray task; :mod:`compaudit_ray.executor`
says how resources, retries and results work. Registered through the
``compaudit`` entry-point group like any third-party plugin. Importing this
module is cheap (the CLI loads it for ``--help``): torch and ray are imported
only when the executor is asked for.
"""

from __future__ import annotations

from typing import Any

from compaudit.plugins import hookimpl

__all__ = ["register_executors"]
__version__ = "0.1.0"


@hookimpl
def register_executors() -> list[Any]:
    """The ``ray`` executor (address from ``--ray-address`` / ``RAY_ADDRESS``)."""
    from compaudit_ray.executor import RayExecutor

    return [RayExecutor()]
