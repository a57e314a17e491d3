"""Shared helpers of the benchmark suite: timing, result rows, machine description.

Every benchmark module ``benchmarks/bench_<name>.py`` exposes
``run(quick: bool = False) -> list[dict]`` and returns rows built with
:func:`row`; ``python -m benchmarks`` collects them into one Markdown table.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ROW_KEYS",
    "Timing",
    "best_of",
    "machine_description",
    "markdown_table",
    "row",
    "time_once",
]

T = TypeVar("T")

ROW_KEYS = ("benchmark", "metric", "value", "unit", "note")
"""Keys of every result row, in table column order."""

# Packages whose versions explain a timing; read from installed metadata so
# that describing the machine never imports (and times) torch.
_VERSIONED = ("numpy", "scipy", "pandas", "torch", "onnxruntime")


def row(
    benchmark: str, metric: str, value: float | int | str, unit: str = "", note: str = ""
) -> dict[str, Any]:
    """One result row ``{"benchmark", "metric", "value", "unit", "note"}``.

    Parameters
    ----------
    benchmark : str
        Benchmark name (the module name without ``bench_``).
    metric : str
        What was measured, e.g. ``"audit_time"``.
    value : float, int or str
        The measurement.
    unit : str
        Unit of ``value`` (``"s"``, ``"x"``, ``"MB"``, ...); empty for counts.
    note : str
        How it was measured (repeats, extrapolation, sizes).
    """
    return {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, "note": note}


@dataclass(frozen=True)
class Timing:
    """Timings of repeated calls, in seconds.

    Wall time (``time.perf_counter``) is the figure of merit. CPU time of this
    process (``time.process_time``, all its threads) is recorded beside it: on
    a busy machine the scheduler stretches wall time but hardly CPU time, so
    the CPU figure tells contention apart from a slow run.

    Attributes
    ----------
    runs : tuple of float
        Wall time of every timed repeat, in order (warm-up calls excluded).
    cpu_runs : tuple of float
        CPU time of the same repeats.
    """

    runs: tuple[float, ...]
    cpu_runs: tuple[float, ...]

    @property
    def best(self) -> float:
        """Fastest wall time (the repeat least disturbed by other processes)."""
        return min(self.runs)

    @property
    def best_cpu(self) -> float:
        """Smallest CPU time."""
        return min(self.cpu_runs)

    def describe(self) -> str:
        """Short text for a row's note, e.g. ``"best of 3 (1.02, 1.05, 1.01 s)"``."""
        listed = ", ".join(f"{t:.3g}" for t in self.runs)
        return f"best of {len(self.runs)} ({listed} s)"


def time_once(fn: Callable[[], T]) -> tuple[float, T]:
    """Call ``fn`` once; return its wall-clock seconds (``time.perf_counter``) and result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn: Callable[[], T], *, repeat: int = 3, warmup: int = 1) -> tuple[Timing, T]:
    """Time ``fn`` ``repeat`` times after ``warmup`` untimed calls.

    Warm-up pays one-time costs (lazy imports, allocator growth, caches) that a
    long-running process pays once, so they do not count against the best run.

    Parameters
    ----------
    fn : callable
        Zero-argument function to time.
    repeat : int
        Number of timed calls (at least 1).
    warmup : int
        Number of untimed calls before them.

    Returns
    -------
    timing : Timing
        Wall and CPU time of every timed call.
    result
        Return value of the last call.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"best_of needs repeat >= 1 and warmup >= 0, got {repeat}, {warmup}")
    for _ in range(warmup):
        fn()
    runs: list[float] = []
    cpu_runs: list[float] = []
    result: list[T] = []  # a list, so the last result needs no Optional
    for _ in range(repeat):
        cpu_start = time.process_time()
        seconds, value = time_once(fn)
        cpu_runs.append(time.process_time() - cpu_start)
        runs.append(seconds)
        result[:] = [value]
    return Timing(tuple(runs), tuple(cpu_runs)), result[0]


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> dict[str, str]:
    """What the timings were taken on: CPU, cores, memory, versions, date (UTC)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical" + (f", {usable} usable" if usable is not None else "")
    desc = {
        "cpu": _cpu_model(),
        "cores": cores,
        "memory": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        # Other processes on a 2-core machine skew timings; record how busy it was.
        desc["load average (1, 5, 15 min)"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    desc.update({pkg: _version(pkg) for pkg in _VERSIONED})
    desc["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return desc


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    else:
        text = str(value)
    # A pipe would split the Markdown cell; a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ROW_KEYS) -> str:
    """Render ``rows`` as a GitHub-flavoured Markdown table with the given columns."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
