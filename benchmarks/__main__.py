"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME...] [--out FILE.md]``.

Every module ``benchmarks/bench_<name>.py`` that exists is imported and its
``run(quick)`` called; the rows of all of them, with a description of the
machine, are written as Markdown to stdout and (atomically) to ``--out``. A
module that fails to import or run becomes an ``error`` row and makes the exit
status 1, after the others have run.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import ROW_KEYS, machine_description, markdown_table, row
from compaudit._io import atomic_write_text

PREFIX = "bench_"
DESCRIPTION = "Run compaudit's benchmarks and write a Markdown table of the results."
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.md"

ERR_UNKNOWN = "unknown benchmark(s) {names}; available: {available}"
ERR_ROWS = "run() must return a list of dicts with keys {keys}; got {got!r}"


def available() -> list[str]:
    """Names of the benchmark modules present (``bench_audit.py`` is ``audit``), sorted."""
    here = [str(Path(__file__).resolve().parent)]
    return sorted(
        m.name.removeprefix(PREFIX) for m in pkgutil.iter_modules(here) if m.name.startswith(PREFIX)
    )


def _check_rows(rows: Any) -> list[dict[str, Any]]:
    ok = isinstance(rows, list) and all(
        isinstance(r, dict) and set(ROW_KEYS) <= r.keys() for r in rows
    )
    if not ok:
        raise TypeError(ERR_ROWS.format(keys=list(ROW_KEYS), got=rows))
    return list(rows)


def run_one(name: str, *, quick: bool) -> tuple[list[dict[str, Any]], float, bool]:
    """Import and run ``bench_<name>``; return its rows, seconds taken and success.

    A failure is returned as one ``error`` row (its traceback goes to stderr),
    so one broken module does not hide the others' results.
    """
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
        rows = _check_rows(module.run(quick=quick))
        ok = True
    except Exception as exc:  # any failure of a benchmark is reported, not raised
        traceback.print_exc(file=sys.stderr)
        rows = [row(name, "error", "", "", f"{type(exc).__name__}: {exc}")]
        ok = False
    return rows, time.perf_counter() - start, ok


def render(rows: Sequence[dict[str, Any]], machine: dict[str, str], *, quick: bool) -> str:
    """The Markdown document: machine description, then one table of all rows."""
    mode = "quick (smoke-test sizes; targets apply to full size)" if quick else "full"
    lines = ["# compaudit benchmarks", "", f"Mode: {mode}", "", "## Machine", ""]
    lines.append(
        markdown_table([{"item": k, "value": v} for k, v in machine.items()], ("item", "value"))
    )
    lines += ["", "## Results", "", markdown_table(rows), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 all ran, 1 a benchmark failed, 2 usage)."""
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="small smoke-test sizes")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(names)})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write")
    args = parser.parse_args(argv)

    selected = list(dict.fromkeys(args.only or names))  # each once, in the order given
    unknown = sorted(set(selected) - set(names))
    if unknown:
        parser.error(ERR_UNKNOWN.format(names=unknown, available=names))  # exits 2

    machine = machine_description()  # before the runs: the load average is the background's
    all_rows: list[dict[str, Any]] = []
    failed = False
    for name in selected:
        print(f"benchmarks: running {name} ...", file=sys.stderr, flush=True)
        rows, seconds, ok = run_one(name, quick=args.quick)
        print(
            f"benchmarks: {name} {'done' if ok else 'FAILED'} in {seconds:.1f} s", file=sys.stderr
        )
        all_rows += rows
        failed |= not ok

    text = render(all_rows, machine, quick=args.quick)
    sys.stdout.write(text)
    atomic_write_text(args.out, text)
    print(f"benchmarks: wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
