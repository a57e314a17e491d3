"""Adult case study: does compressing an income MLP hurt some sex x race groups more?

    COMPAUDIT_DATA_DIR=../shared/data ./run study adult [--run-dir runs/adult] [--jobs 1]

Trains (or resumes) examples/recipes/adult.yaml: K = 8 MLPs per variant, dense,
pruned to 50% and 90%, and int8 (ONNX Runtime dynamic) copies of the dense
members. Audits the dense population against the others twice with
``compaudit report RUN_DIR`` (the command knows each variant's lineage from the
recipe): over sex x race under examples/policies/fairness-review.yaml (report
in RUN_DIR/report/), and over label x sex as in Hooker et al.'s CelebA table
(RUN_DIR/report-label-sex/). Writes RESULTS.md and figures/ here; the tables and
every sentence of RESULTS.md come from the reports (adult_tables.py), so it is
exactly what this script produces.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adult_tables import build_results, group_rows

import compaudit
from compaudit.study import BETTER, NEUTRAL, WORSE, write_bytes, write_class_figure, write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECIPE = ROOT / "examples/recipes/adult.yaml"
POLICY = ROOT / "examples/policies/fairness-review.yaml"
LABEL_ATTRIBUTES = ("label", "sex")
GROWTH_CLIP = 400.0  # the growth figure's x-limit (%); longer whiskers end in an arrow


def growth_figure(report: Mapping[str, Any], path: Path) -> Path:
    """pct_growth per group, one panel per candidate, with the growth intervals."""
    from matplotlib.figure import Figure

    comps, alpha = report["comparisons"], float(report["settings"]["alpha"])
    thresholds = [g["threshold"] for g in report["gates"] if g["name"].endswith("share_growth")]
    fig = Figure(figsize=(4.3 * len(comps), 4.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(comps), sharey=True, squeeze=False)[0]
    for ax, comp in zip(axes, comps, strict=True):
        rows = group_rows(comp, report["settings"])[::-1]  # first group on top
        y = range(len(rows))
        for i, r in zip(y, rows, strict=True):
            g = r["growth"] if r["growth"] is not None else 0.0
            color = NEUTRAL if r["testable"] == "no" else (WORSE if g > 0 else BETTER)
            ax.barh(i, min(g, GROWTH_CLIP), color=color, height=0.7)
            if r["growth_lo"] is not None:
                hi = min(r["growth_hi"], GROWTH_CLIP)
                ax.plot([r["growth_lo"], hi], [i, i], color="black", linewidth=1)
                if r["growth_hi"] > GROWTH_CLIP:
                    ax.plot(hi, i, marker=">", color="black", markersize=4)
            star = " *" if r["over_p_adj"] is not None and r["over_p_adj"] <= alpha else ""
            label = f"{r['n_pie']}/{r['n']}{star}"
            ax.text(GROWTH_CLIP + 30, i, label, va="center", fontsize=7)
        if thresholds:
            ax.axvline(thresholds[0], color=WORSE, linestyle="--", linewidth=1)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlim(-110, GROWTH_CLIP + 160)
        ax.set_xticks([-100, 0, 100, 200, 300, 400])
        ax.set_yticks(list(y), [r["group"] for r in rows], fontsize=8)
        ax.set_title(f"{comp['candidate']} ({comp['pie']['count']} PIEs)", fontsize=10, loc="left")
        ax.set_xlabel("share growth among PIEs (%)", fontsize=9)
        ax.grid(axis="x", color="#e5e7e9", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle(
        "PIE share growth per sex / race group: bars, 95% interval (lines, arrow: beyond 400%), "
        "n PIE / n at right (*: over-indexes significantly after correction); "
        "dashed: policy limit; grey: not testable",
        fontsize=8.5,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return write_bytes(path, buf.getvalue())


def audit_run(run_dir: Path, out: Path, *options: str) -> dict[str, Any]:
    """``compaudit report RUN_DIR --out OUT OPTIONS...``: its ``report.json``, as a dict.

    The command audits the run's dense variant against every other one, each
    paired by lineage where the recipe says it was made from the dense members.
    """
    command = [sys.executable, "-m", "compaudit", "report", str(run_dir), "--out", str(out)]
    done = subprocess.run([*command, *options], check=False)
    if done.returncode != compaudit.ExitStatus.OK:
        raise compaudit.CompauditError(f"compaudit report {run_dir} exited {done.returncode}")
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Train (resuming), audit twice, write RESULTS.md and figures; 2 on an input error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs/adult")
    parser.add_argument("--jobs", type=int, default=1, help="members trained at once")
    args = parser.parse_args(argv)

    try:
        info = compaudit.train_recipe(RECIPE, args.run_dir, jobs=args.jobs, device="cpu")
        out = args.run_dir / "report"
        report = audit_run(
            args.run_dir, out, "--policy", str(POLICY), "--format", "json,html,markdown"
        )
        s = report["settings"]
        label_out = args.run_dir / "report-label-sex"
        label_report = audit_run(
            args.run_dir,
            label_out,
            *("--alpha", str(s["alpha"]), "--correction", s["correction"]),
            *("--seed", str(s["seed"]), "--min-support", str(s["min_support"])),
            *("--subgroups", ",".join(LABEL_ATTRIBUTES), "--format", "json,markdown"),
        )
    except compaudit.CompauditError as exc:
        print(f"study adult: {exc}", file=sys.stderr)
        return 2
    variants = info.manifest["recipe"]["variants"]
    pruned = [v for v in variants if v["kind"] == "prune"]
    most = max(pruned, key=lambda v: v["prune"]["sparsity"])["name"]
    comp = next(c for c in report["comparisons"] if c["candidate"] == most)
    figs = HERE / "figures"
    class_png = write_class_figure(
        comp, figs / f"classes-{most}.png", title=f"Adult: {most} vs dense, per class"
    )
    growth_png = growth_figure(report, figs / "pie-growth-sex-race.png")
    rel = [
        (f"per-class shift, {most}", f"figures/{class_png.name}"),
        ("PIE share growth per sex x race group", f"figures/{growth_png.name}"),
    ]
    results = HERE / "RESULTS.md"
    write_text(results, build_results(report, label_report, info.manifest, rel))
    print(f"reports: {out}, {label_out}")
    print(
        f"wrote {results.relative_to(ROOT)}, {class_png.relative_to(ROOT)}, "
        f"{growth_png.relative_to(ROOT)}"
    )
    print(f"verdict of {POLICY.relative_to(ROOT)}: {report['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
