"""Fashion-MNIST case study: Hooker et al.'s population experiment, in small, on CPU.

    ./run study fashion-mnist [--run-dir runs/fashion-mnist] [--jobs 2]

Trains (or resumes) examples/recipes/fashion-mnist.yaml: K = 10 small CNNs per
variant, dense, pruned to 50%, 80% and 95% on Zhu & Gupta's schedule, and int8
(ONNX Runtime static) copies of the dense members. Then audits the dense
population against every other one with this folder's policy and writes
RESULTS.md and figures/ here. Every sentence about the paper's claims below is
computed from the numbers, so RESULTS.md is exactly what this script produces.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECIPE = ROOT / "examples/recipes/fashion-mnist.yaml"
POLICY = HERE / "policy.yaml"
COMMAND = "./run study fashion-mnist"

LEVEL_COLUMNS = [
    ("population", "population", ""),
    ("k", "K", ""),
    ("top1", "top-1", "pct"),
    ("top1_std", "std", "pct"),
    ("top1_delta", "Δ top-1 (pp)", "pp"),
    ("sig_classes", "classes sig. (Holm)", ""),
    ("sig_classes_worse", "of which worse", ""),
    ("sig_classes_raw", "classes sig. (raw p)", ""),
    ("pies", "PIEs", ""),
    ("pie_rate", "PIE rate", "pct"),
]
SUBSET_COLUMNS = [
    ("candidate", "candidate", ""),
    ("n_pie", "n PIE", ""),
    ("pie_reference", "PIE: dense", "pct"),
    ("pie_candidate", "PIE: compressed", "pct"),
    ("non_pie_reference", "non-PIE: dense", "pct"),
    ("non_pie_candidate", "non-PIE: compressed", "pct"),
    ("random_reference", "random: dense", "pct"),
    ("random_candidate", "random: compressed", "pct"),
]


def claims(
    levels: list[dict[str, Any]], subsets: list[dict[str, Any]]
) -> list[tuple[str, bool, str]]:
    """The paper's claims, each judged from this run's numbers: (claim, holds, evidence)."""
    pruned = [r for r in levels if r["population"].startswith("prune-")]
    pruned.sort(key=lambda r: float(r["population"].split("-")[1]))
    int8 = next((r for r in levels if r["population"] == "int8"), None)
    out: list[tuple[str, bool, str]] = []

    moderate = [r for r in pruned if float(r["population"].split("-")[1]) <= 80]
    deltas = ", ".join(f"{r['population']} {100 * r['top1_delta']:+.2f} pp" for r in pruned)
    out.append(
        (
            "Top-1 barely moves (under 1 point up to 80% sparsity)",
            all(abs(r["top1_delta"]) < 0.01 for r in moderate),
            f"Δ top-1: {deltas}.",
        )
    )
    counts = ", ".join(f"{r['population']} {r['sig_classes_worse']}" for r in pruned)
    out.append(
        (
            "A few classes move significantly more than the model does",
            any(r["sig_classes_worse"] > 0 for r in pruned)
            and all(r["sig_classes_worse"] <= 5 for r in pruned),
            f"classes significantly worse than the overall shift after Holm: {counts} (of 10).",
        )
    )
    harder = [
        s
        for s in subsets
        if s["n_pie"]
        and s["pie_reference"] < s["random_reference"]
        and s["pie_candidate"] < s["random_candidate"]
    ]
    with_pies = [s for s in subsets if s["n_pie"]]
    out.append(
        (
            "PIEs are harder for every model (dense and compressed)",
            bool(with_pies) and len(harder) == len(with_pies),
            "top-1 on PIEs vs a random subset of equal size, dense / compressed: "
            + "; ".join(
                f"{s['candidate']} {100 * s['pie_reference']:.1f}% vs "
                f"{100 * s['random_reference']:.1f}% / {100 * s['pie_candidate']:.1f}% vs "
                f"{100 * s['random_candidate']:.1f}%"
                for s in with_pies
            )
            + ".",
        )
    )
    pies = [r["pies"] for r in pruned]
    out.append(
        (
            "PIEs grow with sparsity",
            all(a < b for a, b in itertools.pairwise(pies)),
            "PIEs: " + ", ".join(f"{r['population']} {r['pies']}" for r in pruned) + ".",
        )
    )
    if int8 is not None and pruned:
        least = pruned[0]
        out.append(
            (
                "Quantization damages less than pruning",
                int8["pies"] < least["pies"]
                and abs(int8["top1_delta"]) <= abs(least["top1_delta"]),
                f"int8: {int8['pies']} PIEs, Δ top-1 {100 * int8['top1_delta']:+.2f} pp; "
                f"least pruned ({least['population']}): {least['pies']} PIEs, "
                f"Δ top-1 {100 * least['top1_delta']:+.2f} pp.",
            )
        )
    return out


def render(report: dict[str, Any], info: Any, figures: dict[str, str]) -> str:
    """RESULTS.md from the report."""
    from compaudit.study import level_rows, markdown_table, subset_rows

    levels, subsets = level_rows(report), subset_rows(report)
    recipe = info.recipe
    t = recipe.training
    lines = [
        "# Fashion-MNIST: what do compressed CNNs forget?",
        "",
        f"Generated by `{COMMAND}` (examples/fashion-mnist/study.py); do not edit by hand.",
        "",
        "## Setup",
        "",
        f"- Data: Fashion-MNIST, {report['data']['n']:,} test images, 10 classes "
        "(models train on the 60,000 training images).",
        f"- Models: `{recipe.architecture.name}` {dict(recipe.architecture.kwargs)}, "
        f"{t.epochs} epochs, batch {t.batch_size}, {t.optimizer} lr {t.lr}; "
        f"K = {recipe.k} members per variant, seeds {recipe.seed}..{recipe.seed + recipe.k - 1} "
        "(member i of every variant shares seed i).",
        "- Variants: dense; gradual magnitude pruning (Zhu & Gupta) to 50%, 80%, 95%, trained "
        "from scratch; int8: ONNX Runtime static quantization (QDQ) of each dense member.",
        f"- Statistics: per-class Welch t-tests on mean-shifted recall (the paper's test), "
        f"alpha {report['settings']['alpha']}, {report['settings']['correction']} correction "
        "over the 10 classes; raw-p counts are what the paper reported.",
        "- Recipe: `examples/recipes/fashion-mnist.yaml`; "
        "policy: `examples/fashion-mnist/policy.yaml`.",
        "",
        "## Top-1, impacted classes and PIEs per level",
        "",
        markdown_table(levels, LEVEL_COLUMNS),
        "",
        "## Top-1 on PIEs, non-PIEs and a random subset (the paper's Fig. 3)",
        "",
        markdown_table(subsets, SUBSET_COLUMNS),
        "",
        "## The paper's claims, here",
        "",
    ]
    for claim, holds, evidence in claims(levels, subsets):
        lines.append(f"- **{claim}: {'holds' if holds else 'does not hold'}.** {evidence}")
    lines += ["", "## Policy gates", "", f"Verdict: **{report['verdict']}**.", ""]
    lines.append("| gate | candidate | value | threshold | result |")
    lines.append("|---|---|---:|---:|---|")
    for g in report["gates"]:
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        result = {True: "pass", False: "FAIL", None: "not evaluable"}[g["passed"]]
        lines.append(
            f"| {g['name']} | {g['candidate']} | {value} | {g['threshold']:.4g} | {result} |"
        )
    lines += ["", "## Figures", ""]
    for caption, rel in figures.items():
        lines += [f"**{caption}**", "", f"![{caption}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Train (resuming), audit, write RESULTS.md and figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs/fashion-mnist")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    from compaudit._io import atomic_write_text
    from compaudit.data.loading import load_dataset
    from compaudit.pipeline import AuditRequest, execute
    from compaudit.study import pie_gallery_png, write_class_figure
    from compaudit.train.manifest import load_run
    from compaudit.train.run import train_recipe

    train_recipe(RECIPE, args.run_dir, jobs=args.jobs, progress=True)
    info = load_run(args.run_dir)
    outcome = execute(
        AuditRequest(
            run_dir=args.run_dir,
            policy=str(POLICY),
            out=args.run_dir / "report",
            formats=("terminal", "json", "markdown", "html"),
            require_policy=True,
        )
    )
    report = outcome.report
    fig_dir = HERE / "figures"
    figures: dict[str, str] = {}
    for comp in report["comparisons"]:
        name = comp["candidate"]
        path = write_class_figure(comp, fig_dir / f"classes-{name}.png")
        figures[f"Per-class normalized recall difference, {name} vs dense"] = f"figures/{path.name}"
    data = load_dataset(info.eval_data)
    assert data.images is not None
    worst = max(report["comparisons"], key=lambda c: c["pie"]["count"])
    path = pie_gallery_png(
        worst, data.images, data.ids, data.class_names, fig_dir / f"pies-{worst['candidate']}.png"
    )
    figures[f"PIE gallery, {worst['candidate']} vs dense"] = f"figures/{path.name}"
    atomic_write_text(HERE / "RESULTS.md", render(report, info, figures))
    print(f"wrote {HERE / 'RESULTS.md'}, {len(figures)} figures in {fig_dir}", file=sys.stderr)
    print(f"full reports: {args.run_dir / 'report'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
