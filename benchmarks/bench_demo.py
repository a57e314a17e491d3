"""Wall time of ``compaudit demo`` from nothing (issue 5's target: at most 90 s on 2 cores).

Runs the digits demo end to end in a fresh temporary directory with an empty
prediction cache: trains dense, 50%- and 90%-pruned and int8 populations,
audits them with the demo policy and writes terminal, JSON, Markdown and HTML
reports. The terminal output is discarded.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.common import row

TARGET_S = 90.0


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One timed demo run (the same in quick mode: the demo is already small)."""
    from compaudit.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("COMPAUDIT_CACHE_DIR")
        os.environ["COMPAUDIT_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            start = time.perf_counter()
            result = run_demo(Path(tmp) / "demo", console=Console(file=io.StringIO()))
            took = time.perf_counter() - start
        finally:
            if old is None:
                os.environ.pop("COMPAUDIT_CACHE_DIR", None)
            else:
                os.environ["COMPAUDIT_CACHE_DIR"] = old
        verdict = result.outcome.report["verdict"]
        members = sum(p["k"] for p in result.outcome.report["populations"].values())
    met = "met" if took <= TARGET_S else "NOT met"
    return [
        row(
            "demo",
            "wall_time",
            round(took, 2),
            "s",
            f"compaudit demo from scratch: {members} models trained and audited, verdict "
            f"{verdict}; target <= {TARGET_S:.0f} s: {met}",
        )
    ]


if __name__ == "__main__":
    from benchmarks.common import markdown_table

    print(markdown_table(run()))
