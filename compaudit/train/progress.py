"""Terminal output of a training run: live progress and the closing summary table."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from compaudit._io import progress_enabled
from compaudit.train.base import ProgressEvent
from compaudit.train.manifest import RunInfo

__all__ = ["RunProgress", "summary_rows", "summary_table"]


class RunProgress:
    """One overall bar (in epochs, so its ETA is meaningful) and one bar per running member.

    Parameters
    ----------
    total_units : int
        Epochs still to run over all pending members (a quantization counts one).
    total_members : int
        Pending members.
    enabled : bool
        Show nothing when False (``on_progress`` is then a no-op). Nothing
        shows either unless :func:`~compaudit._io.progress_enabled` (the
        ``compaudit`` logger is enabled for INFO: not under ``-q``); whether the
        console is a terminal is left to rich (a non-terminal console gets
        the final state once).
    """

    def __init__(
        self,
        total_units: int,
        total_members: int,
        *,
        enabled: bool = True,
        console: Console | None = None,
    ) -> None:
        self.enabled = enabled and total_members > 0 and progress_enabled(terminal=False)
        self.total_members = total_members
        self.members_done = 0
        self._done: dict[str, int] = {}
        self._tasks: dict[str, TaskID] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs" if total_units else ""),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not self.enabled,
        )
        self._overall = self._progress.add_task(self._title(), total=max(total_units, 1))

    def _title(self) -> str:
        return f"training: {self.members_done}/{self.total_members} members"

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def on_progress(self, event: ProgressEvent) -> None:
        """Update the bars from an executor's event."""
        if not self.enabled:
            return
        if event.kind == "start":
            self._done[event.job] = 0
            self._tasks[event.job] = self._progress.add_task(f"  {event.job}", total=event.total)
            return
        last = self._done.get(event.job, 0)
        self._progress.advance(self._overall, max(0, event.done - last))
        self._done[event.job] = event.done
        task = self._tasks.get(event.job)
        if task is not None:
            self._progress.update(task, completed=event.done)
        if event.kind == "end":
            self.members_done += 1
            self._progress.update(self._overall, description=self._title())
            console = self._progress.console
            if not console.is_terminal:
                # A log (CI, nohup) gets no live bar: a line per member, so a long run is
                # never silent until it ends (and no-output timeouts do not trip).
                elapsed = self._progress.tasks[self._overall].elapsed or 0.0
                console.print(
                    f"finished {event.job} ({self.members_done}/{self.total_members} members,"
                    f" {elapsed:.0f} s)",
                    highlight=False,
                    markup=False,
                )
            if task is not None:
                self._progress.remove_task(task)
                del self._tasks[event.job]


def _fmt(ms: tuple[float, float] | None, scale: float = 100.0) -> str:
    if ms is None:
        return "-"
    return f"{ms[0] * scale:.2f} ± {ms[1] * scale:.2f}"


def summary_rows(info: RunInfo) -> list[dict[str, Any]]:
    """One row per variant: kind, source, k, top-1 (mean, std), sparsity, seconds."""
    rows: list[dict[str, Any]] = []
    for v in info.variants.values():
        sparsity = v.mean_std("sparsity") or v.mean_std("source_sparsity")
        rows.append(
            {
                "variant": v.name,
                "kind": v.kind,
                "from": v.source,
                "k": v.k,
                "eval_top1": v.mean_std("eval_top1"),
                "train_top1": v.mean_std("train_top1"),
                "sparsity": sparsity[0] if sparsity else 0.0,
                "seconds": sum(m.timings.get("total_s", 0.0) for m in v.members),
                "reference": v.name == info.reference,
            }
        )
    return rows


def summary_table(info: RunInfo) -> Table:
    """The closing table: variant, k, mean eval top-1 ± std, sparsity, and the members'
    seconds summed (fits 80 columns)."""
    table = Table(
        title=f"{info.recipe.name}: {info.eval_data} top-1 over k members (mean ± std)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for col in ("variant", "kind", "k", "top-1 %", "sparsity", "time s (sum)"):
        table.add_column(col, justify="left" if col in ("variant", "kind") else "right")
    for row in summary_rows(info):
        kind = "reference" if row["reference"] else str(row["kind"])
        if row["from"]:
            kind += f" of {row['from']}"
        table.add_row(
            str(row["variant"]),
            kind,
            str(row["k"]),
            _fmt(row["eval_top1"]),
            f"{float(row['sparsity']):.3f}",
            f"{float(row['seconds']):.1f}",
        )
    return table
