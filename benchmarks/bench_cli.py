"""``compaudit report`` end to end at ImageNet scale, against the revision before issue 10 (7b).

Target (issue 10, point 7b): on the 2-core machine, ``compaudit report`` on
predictions files of N = 50,000 examples, C = 1,000 classes, K = 30 models per
side, one reference and five candidates (:func:`benchmarks.bench_audit.synthetic_case`,
saved with :func:`compaudit.population.save_population`) takes at most 0.8 s of
CPU for the default formats (terminal + JSON) and at most 1.5 s with
``--format html`` added. CPU time, not wall time: it is what the command costs,
and other processes on a busy machine hardly change it.

Everything runs in subprocesses, each with ``compaudit`` imported from one tree:
the working tree ("after") and :data:`BASE_REV` extracted with ``git archive``
("before"), on the same files, in the same run:

* the real command (``compaudit.cli.main``), CPU time of the child process;
* a breakdown: the same ``execute()`` call with its stages wrapped in CPU
  timers (imports, loading, audit and its phases, validation, each writer, the
  rest), and which heavy modules (torch, ``scipy.stats``, jsonschema,
  matplotlib, ...) it loaded, beside what importing each costs alone;
* the report validator alone (jsonschema against the compiled one, also on a
  report with 20x the example lists, about 1M examples) and the per-class
  figure alone at 1,000 and 10,000 classes.

Every child writes bytecode and keeps compaudit's cache in the run's temporary
folder, and one untimed run warms both, so the figures are those of an
installed compaudit after its first run (``PYTHONDONTWRITEBYTECODE`` in the
caller's environment would otherwise add the compilation of every module).

``--quick`` (CI smoke test): N = 5,000, C = 100, K = 10, the working tree alone.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_audit import synthetic_case
from benchmarks.bench_audit_baselines import REPO_ROOT, EngineUnavailableError, extract_engine
from benchmarks.common import best_of, row
from compaudit.population import save_population

__all__ = ["BASE_REV", "STAGES", "run", "write_case"]

NAME = "cli"
BASE_REV = "60ecdb6"
"""Last commit before issue 10 point 7b's work (the "before" of every ratio)."""
TARGET_CPU = 0.8
TARGET_CPU_HTML = 1.5
FULL: dict[str, Any] = {
    "n": 50_000,
    "c": 1_000,
    "k": 30,
    "repeat": 3,
    "plot_classes": (1_000, 10_000),
}
QUICK: dict[str, Any] = {"n": 5_000, "c": 100, "k": 10, "repeat": 1, "plot_classes": (100,)}
BIG_REPORT_FACTOR = 20
"""The 1M-example report for the validator: the 50k report's example lists repeated 20x."""
DEFAULT_FORMATS = ("terminal", "json")
ALL_FORMATS = ("terminal", "json", "markdown", "html")
HEAVY_MODULES = (
    "torch",
    "scipy.stats",
    "scipy.special",
    "jsonschema",
    "fastjsonschema",
    "matplotlib",
)
STAGES = ("imports", "load", "audit", "validation", *(f"write_{f}" for f in ALL_FORMATS), "other")
"""Breakdown rows; ``write_json`` excludes the validation it runs; ``other``: the rest of
``execute()`` (settings, the gates module, the registry, the report file set)."""
AUDIT_PHASES = {
    "modal": "Side.of: correctness, top-1/top-5 and the seeded modal predictions (6 sides)",
    "floors": "the seed-noise floors from the reference (splits, split PIEs, group nulls)",
    "class_tests": "_class_rows: per-class shift test and floors, a row per class and candidate",
    "subgroup_tests": "_subgroup_rows: per-group shift test, PIE shares and floors",
    "pie": "_pie_block: the Fisher test per example (pooled modal) and the PIE list",
    "cie": "_cie_block: CIE counts (mean over all member pairs) and list",
    "fairness": "_fairness: per-group rates, disparities and their permutation nulls",
}
"""Sub-rows of ``audit`` (timed where the tree has the function; ``compare``'s rest is small)."""

STAGE_NOTES = {
    "imports": "build_cli(), the pipeline, audit and JSON modules, the reporter registry "
    "(torch {torch} by the end of the run)",
    "load": "the six predictions files (pipeline._load_side)",
    "audit": "audit() and to_report()",
    "validation": "validate_report() in the JSON writer (the shipped generated validator; "
    "older trees compile it in every process)",
    "other": "the rest of execute(): settings, the gates module (and the policy module when "
    "a policy is given), registry lookups, the report file set",
    "write_json": "the JSON writer less its validation",
    "write_html": "the HTML writer: five class charts and the curve (inline SVG; before: "
    "matplotlib PNGs, its import included)",
}
"""Notes of the breakdown rows (one in-process run of execute(), every format)."""
NOT_MEASURED = "not measured"
ERR_SUBPROCESS = "the {what} subprocess failed (exit {rc}):\n{tail}"
ERR_WRONG_PACKAGE = "the {what} subprocess imported compaudit from {got}, not from {want}"

# Run by `python -c` with PYTHONPATH at one tree and the working directory elsewhere.
# argv: out.json, out_dir, formats, reference, candidates...; stages in process CPU seconds.
_STAGE_SCRIPT = """
import importlib, json, os, sys, time
cpu = time.process_time
t0 = cpu()
import compaudit.cli as cli
getattr(cli, "_one_blas_thread", lambda: None)()  # what the command's main() does first
cli.build_cli()
import compaudit, compaudit.pipeline as pl, compaudit.report.json_report as jr
root = os.path.dirname(compaudit.__file__)
def has(name):  # in this tree: an editable install finds the working tree's copy otherwise
    base = os.path.join(root, *name.split(".")[1:])
    return os.path.exists(base + ".py") or os.path.isdir(base)
AuditResult = importlib.import_module(
    "compaudit.engine" if has("compaudit.engine") else "compaudit.audit").AuditResult
from compaudit.plugins import get_registry
from rich.console import Console
registry = get_registry()
found = registry.reporters()
imports = cpu() - t0
spent = {}
def timed(key, fn):
    def wrapper(*a, **kw):
        start = cpu()
        try:
            return fn(*a, **kw)
        finally:
            spent[key] = spent.get(key, 0.0) + cpu() - start
    return wrapper
class Timed:
    def __init__(self, reporter):
        self._r = reporter
        self.write = timed("write_" + reporter.name, reporter.write)
    def __getattr__(self, name):
        return getattr(self._r, name)
registry.reporters = lambda: {k: Timed(v) for k, v in found.items()}
pl._load_side = timed("load", pl._load_side)
pl.audit = timed("audit", pl.audit)
import importlib.util as iu
cm, eng = (importlib.import_module(m) if has(m) else None
           for m in ("compaudit._comparison", "compaudit.engine"))
for mod, attr, key in ((cm, "_class_rows", "class_tests"), (cm, "_subgroup_rows", "subgroup_tests"),
                       (cm, "_pie_block", "pie"), (cm, "_cie_block", "cie"),
                       (cm, "_fairness", "fairness"), (eng, "_floors", "floors")):
    if hasattr(mod, attr):
        setattr(mod, attr, timed("audit_" + key, getattr(mod, attr)))
if hasattr(cm, "Side"):
    cm.Side.of = classmethod(timed("audit_modal", cm.Side.of.__func__))
AuditResult.to_report = timed("audit", AuditResult.to_report)
jr.validate_report = timed("validation", jr.validate_report)
out_json, out_dir, formats, ref, *cands = sys.argv[1:]
t1 = cpu()
with open(os.devnull, "w") as devnull:
    request = pl.AuditRequest(reference=ref, candidates=cands, out=pl.Path(out_dir),
                              formats=formats.split(","), console=Console(file=devnull))
    pl.execute(request)
spent["execute"] = cpu() - t1
spent["imports"] = imports
top = ("load", "audit", *(k for k in spent if k.startswith("write_")))  # validation: in write_json
spent["other"] = spent["execute"] - sum(spent.get(k, 0.0) for k in top)
spent["write_json"] = spent.get("write_json", 0.0) - spent.get("validation", 0.0)
heavy = {m: m in sys.modules for m in %(heavy)r}
with open(out_json, "w") as f:
    json.dump({"package": compaudit.__file__, "cpu": spent, "total": cpu(), "loaded": heavy}, f)
"""

_MAIN = "from compaudit.cli import main; main()"

# argv: out.json, n_classes, repeat; times the HTML report's per-class chart on seeded
# rows: inline SVG where the tree has it, else (older trees) the matplotlib PNG.
_PLOT_SCRIPT = """
import json, sys, time
import numpy as np
import compaudit
try:
    from compaudit.report._svg import class_plot_svg as class_plot_png
except ImportError:
    from compaudit.report._plot import class_plot_png
out, c, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
d = rng.normal(-0.01, 0.03, size=c)
sig = rng.random(c) < 0.03
class Row(dict):  # rows by key (older engines) and by attribute (typed ClassRow)
    __getattr__ = dict.__getitem__
rows = [Row(name=f"class_{i}", normalized_recall_difference=float(v), significant=bool(s))
        for i, (v, s) in enumerate(zip(d, sig))]
class_plot_png(rows[:10], title="warm-up")
runs = []
for _ in range(repeat):
    t = time.process_time()
    png = class_plot_png(rows, title="plot")
    runs.append(time.process_time() - t)
with open(out, "w") as f:
    json.dump({"package": compaudit.__file__, "cpu": min(runs), "png_bytes": len(png)}, f)
"""


def write_case(directory: Path, *, n: int, c: int, k: int, seed: int = 0) -> list[Path]:
    """Save the seeded ImageNet-like grid as predictions files; return their paths.

    Reference first (with the ``sex`` and ``age`` attributes), then the five
    candidates ``pruned_0.1`` .. ``pruned_0.9``. Reference top-1 is about 75%.
    """
    directory.mkdir(parents=True, exist_ok=True)
    case = synthetic_case(n, c, k, seed=seed)
    paths = []
    for name, pop in case.populations.items():
        path = directory / f"{name}.npz"
        save_population(pop, path)
        paths.append(path)
    return paths


def _check_package(what: str, out: Mapping[str, Any], tree: Path) -> None:
    got = Path(out["package"]).resolve()
    if not got.is_relative_to(tree.resolve()):
        raise RuntimeError(ERR_WRONG_PACKAGE.format(what=what, got=got, want=tree))


def _child(what: str, cmd: Sequence[str], tree: Path, cwd: Path) -> tuple[float, str]:
    """Run ``cmd`` with compaudit from ``tree``; return its CPU seconds (user + sys) and stderr.

    Bytecode is written (to a ``pycache`` folder beside ``cwd``, even where the caller
    sets ``PYTHONDONTWRITEBYTECODE``) and compaudit's cache lives beside ``cwd`` too, so
    a run after the first measures what an installed compaudit costs after its first
    run, not the compilation of every module.
    """
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "100"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")
    env["COMPAUDIT_CACHE_DIR"] = str(cwd / "compaudit-cache")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = proc.stderr[-3000:]
        raise RuntimeError(ERR_SUBPROCESS.format(what=what, rc=proc.returncode, tail=tail))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, proc.stderr


def _specs(paths: Sequence[Path]) -> list[str]:
    return [str(paths[0]), *(f"{p.stem}={p}" for p in paths[1:])]


def cli_cpu(tree: Path, paths: Sequence[Path], out: Path, formats: Sequence[str]) -> float:
    """CPU seconds of one real ``compaudit report`` run with compaudit from ``tree``."""
    ref, *cands = _specs(paths)
    cmd = [sys.executable, "-c", _MAIN, "report", "-r", ref, *(a for c in cands for a in ("-c", c))]
    cmd += ["-o", str(out), "-f", ",".join(formats)]
    return _child("compaudit report", cmd, tree, out.parent)[0]


def stages(tree: Path, paths: Sequence[Path], out: Path) -> dict[str, Any]:
    """CPU seconds per stage of ``execute()`` (every format) with compaudit from ``tree``."""
    result = out.parent / f"{out.name}-stages.json"
    script = _STAGE_SCRIPT % {"heavy": HEAVY_MODULES}
    cmd = [sys.executable, "-c", script, str(result), str(out), ",".join(ALL_FORMATS)]
    _child("stage breakdown", [*cmd, *_specs(paths)], tree, out.parent)
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    _check_package("stage breakdown", data, tree)
    return data


def standalone_import_cpu(module: str) -> float:
    """CPU seconds ``import module`` adds to a process that has imported numpy (best of 2)."""
    base = [sys.executable, "-c", "import numpy"]
    with_module = [sys.executable, "-c", f"import numpy, {module}"]
    # A folder of its own: the children's bytecode goes beside their cwd, never the checkout.
    with tempfile.TemporaryDirectory(prefix="compaudit-bench-import-") as name:
        cwd = Path(name)
        cost = [_child("import", with_module, REPO_ROOT, cwd)[0] for _ in range(2)]
        floor = [_child("import", base, REPO_ROOT, cwd)[0] for _ in range(2)]
    return max(0.0, min(cost) - min(floor))


def plot_cpu(tree: Path, cwd: Path, n_classes: int) -> float:
    """CPU seconds of the HTML class chart at ``n_classes`` classes (best of 2; above 1,000: 1)."""
    result = cwd / f"plot-{n_classes}.json"
    repeat = "2" if n_classes <= 1_000 else "1"  # the old figure took 5 s at 10,000 classes
    cmd = [sys.executable, "-c", _PLOT_SCRIPT, str(result), str(n_classes), repeat]
    _child("plot", cmd, tree, cwd)
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    _check_package("plot", data, tree)
    return float(data["cpu"])


def _big_report(report: Mapping[str, Any], factor: int) -> dict[str, Any]:
    """``report`` with every comparison's PIE and CIE example lists repeated ``factor`` times."""
    big: dict[str, Any] = json.loads(json.dumps(report))
    for comp in big["comparisons"]:
        for key in ("pie", "cie"):
            part = comp.get(key)
            if isinstance(part, dict) and isinstance(part.get("examples"), list):
                part["examples"] = part["examples"] * factor
    return big


def validator_cpu(report: Mapping[str, Any], repeat: int) -> tuple[float, float]:
    """CPU seconds of jsonschema's full validation and of ``validate_report`` on ``report``."""
    import jsonschema

    from compaudit.report.base import report_schema, validate_report

    validator = jsonschema.Draft202012Validator(report_schema())
    validate_report(dict(report))  # compiles the fast validator once, outside the timing
    slow, _ = best_of(lambda: list(validator.iter_errors(report)), repeat=repeat, warmup=0)
    fast, _ = best_of(lambda: validate_report(dict(report)), repeat=repeat, warmup=0)
    return slow.best_cpu, fast.best_cpu


def _ratio_note(after: float, before: float | None) -> str:
    if before is None:
        return f"before ({BASE_REV}): not measured"
    ratio = after / before if before > 0 else float("nan")
    return f"before ({BASE_REV}) {before:.3g} s; after/before {ratio:.2g}x"


def _measure(
    tree: Path, paths: Sequence[Path], tmp: Path, *, label: str, size: Mapping[str, Any]
) -> dict[str, Any]:
    """Every measurement of one tree: the command twice, the breakdown, imports, plots."""
    out, repeat = tmp / f"out-{label}", int(size["repeat"])
    with_html = (*DEFAULT_FORMATS, "html")
    cli_cpu(tree, paths, out, with_html)  # warm-up: bytecode, matplotlib's font cache
    return {
        "cli": min(cli_cpu(tree, paths, out, DEFAULT_FORMATS) for _ in range(repeat)),
        "cli_html": min(cli_cpu(tree, paths, out, with_html) for _ in range(repeat)),
        "stages": stages(tree, paths, out),
        "plots": {m: plot_cpu(tree, tmp, m) for m in size["plot_classes"]},
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time ``compaudit report`` before and after; return the result rows (nothing asserted)."""
    size = QUICK if quick else FULL
    n, c, k, repeat = int(size["n"]), int(size["c"]), int(size["k"]), int(size["repeat"])
    rows = [
        row(NAME, "n_examples", n, "", "predictions .npz files (save_population), seeded"),
        row(NAME, "n_classes", c, "", "reference + 5 candidates (pruned_0.1 .. pruned_0.9)"),
        row(NAME, "k_per_population", k, "", "reference top-1 about 75%; attributes sex, age"),
    ]
    with tempfile.TemporaryDirectory(prefix="compaudit-bench-cli-") as tmp_name:
        tmp = Path(tmp_name)
        paths = write_case(tmp / "case", n=n, c=c, k=k)
        trees: dict[str, Path] = {"after": REPO_ROOT}
        why = ""
        try:
            if quick:
                why = "quick mode: the working tree alone"
            else:
                trees["before"] = extract_engine(tmp / "before-tree", BASE_REV)
        except EngineUnavailableError as exc:
            why = str(exc)
        got = {
            label: _measure(tree, paths, tmp, label=label, size=size)
            for label, tree in trees.items()
        }
        report = json.loads((tmp / "out-after" / "report.json").read_text(encoding="utf-8"))
    rows += _rows(got, report, quick=quick, repeat=repeat, why=why)
    return rows


def _rows(
    got: Mapping[str, Mapping[str, Any]],
    report: Mapping[str, Any],
    *,
    quick: bool,
    repeat: int,
    why: str,
) -> list[dict[str, Any]]:
    after, before = got["after"], got.get("before")
    rows: list[dict[str, Any]] = []
    met = "not applicable at quick size" if quick else None

    def compare(metric: str, value: float, old: float | None, note: str) -> None:
        rows.append(row(NAME, metric, value, "s", f"{note}; {_ratio_note(value, old)}"))

    how = f"CPU of the child process, best of {repeat}"
    for key, fmts, target in (
        ("cli", DEFAULT_FORMATS, TARGET_CPU),
        ("cli_html", (*DEFAULT_FORMATS, "html"), TARGET_CPU_HTML),
    ):
        ok = met or ("met" if after[key] <= target else "NOT met")
        old = before[key] if before else None
        note = f"compaudit report -f {','.join(fmts)}, {how}; target <= {target} s: {ok}"
        compare(f"{key}_cpu", after[key], old, note)
    cpu_after = after["stages"]["cpu"]
    cpu_before = before["stages"]["cpu"] if before else {}
    torch = "loaded" if after["stages"]["loaded"]["torch"] else "not loaded"
    for stage in STAGES:
        note = STAGE_NOTES.get(stage, "the writer's write()").format(torch=torch)
        compare(f"{stage}_cpu", cpu_after.get(stage, 0.0), cpu_before.get(stage), note)
        if stage != "audit":
            continue
        for phase, what in AUDIT_PHASES.items():
            key = f"audit_{phase}"
            if key in cpu_after:
                compare(f"{key}_cpu", cpu_after[key], cpu_before.get(key), f"of audit: {what}")
    total_old = before["stages"]["total"] if before else None
    compare("breakdown_total_cpu", after["stages"]["total"], total_old, "the breakdown's process")
    for module in HEAVY_MODULES:
        used = [label for label in ("after", "before") if label in got]
        yes = {label: got[label]["stages"]["loaded"][module] for label in used}
        cost: float | str = NOT_MEASURED if quick else standalone_import_cpu(module)
        words = {True: "imported", False: "not imported"}
        note = "; ".join(f"{label}: {words[yes[label]]}" for label in used)
        note = f"CPU of `import {module}` after numpy, alone; by the breakdown's run: {note}"
        rows.append(row(NAME, f"import_{module}_cpu", cost, "s", note))
    for classes, t_new in after["plots"].items():
        t_old = before["plots"].get(classes) if before else None
        note = (
            "the HTML report's class chart alone (after: SVG, class_plot_svg; before: the "
            "matplotlib PNG), after a warm-up, best of 2 (1 above 1,000 classes)"
        )
        compare(f"plot_{classes}_classes_cpu", t_new, t_old, note)
    slow, fast = validator_cpu(report, repeat)
    note = f"the report above: jsonschema {slow:.3g} s; jsonschema/compiled {slow / fast:.3g}x"
    rows.append(row(NAME, "validation_compiled_cpu", fast, "s", note))
    if not quick:
        big = _big_report(report, BIG_REPORT_FACTOR)
        slow, fast = validator_cpu(big, 1)
        note = (
            f"report with {BIG_REPORT_FACTOR}x the example lists (~1M examples): jsonschema "
            f"{slow:.3g} s; jsonschema/compiled {slow / fast:.3g}x"
        )
        rows.append(row(NAME, "validation_1m_compiled_cpu", fast, "s", note))
    if before is None:
        rows.append(row(NAME, "before", NOT_MEASURED, "", why))
    return rows


if __name__ == "__main__":  # python -m benchmarks.bench_cli [--quick]: the rows as JSON
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=1))
