"""Tables and generated sentences of the Adult study, from ``compaudit.report/v1`` documents.

Pure functions (no training, no files), so tests can check them on made-up
reports. ``study.py`` runs the audits and writes what :func:`build_results` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

COMMAND = "COMPAUDIT_DATA_DIR=../shared/data ./run study adult"
CI_LEVEL = 0.95

GROUP_COLUMNS = [
    ("group", "group", ""),
    ("n", "n", ""),
    ("n_non_pie", "n non-PIE", ""),
    ("n_pie", "n PIE", ""),
    ("pct_non_pie", "% of non-PIEs", "pct"),
    ("pct_pie", "% of PIEs", "pct"),
    ("pct_growth", "growth", "pct"),
    ("growth_ci", f"growth {CI_LEVEL:.0%} CI", ""),
    ("over_p", "over-index p adj", ""),
    ("top1_reference", "top-1 dense", "pct"),
    ("top1_candidate", "top-1 cand.", "pct"),
    ("shift_difference", "shift diff (pp)", "pp"),
    ("shift_p", "shift p adj", ""),
    ("testable", "testable", ""),
]
GATE_COLUMNS = [
    ("candidate", "candidate", ""),
    ("name", "gate", ""),
    ("status", "status", ""),
    ("detail", "detail", ""),
]
TABLE_NOTE = (
    "growth = `(pct_pie / pct_non_pie - 1) x 100`; its interval is {level} Clopper-Pearson on "
    "the group's PIE count (uncorrected). over-index p: one-sided Fisher exact test that the "
    "group holds more PIEs than its size predicts. shift diff: the group's top-1 change minus "
    "the overall change, tested against the dense population (Welch). Both p-values are "
    "{correction}-adjusted over the testable groups; `*` marks p adj <= {alpha:g}."
)


# -- numbers -------------------------------------------------------------------------


def growth_interval(
    n_pie: int, total_pie: int, pct_non_pie: float | None, *, level: float = CI_LEVEL
) -> tuple[float | None, float | None]:
    """Clopper-Pearson interval of a group's PIE share growth, in percent.

    The group's share among PIEs, ``n_pie / total_pie``, is a binomial
    proportion over few PIEs; its exact interval, divided by the share among
    non-PIEs (thousands of examples, taken as fixed), bounds ``pct_growth =
    (pct_pie / pct_non_pie - 1) * 100``. ``(None, None)`` without PIEs or non-PIEs.
    """
    from scipy.stats import beta

    if total_pie <= 0 or not pct_non_pie:
        return None, None
    tail = (1.0 - level) / 2.0
    lo = 0.0 if n_pie == 0 else float(beta.ppf(tail, n_pie, total_pie - n_pie + 1))
    hi = 1.0 if n_pie == total_pie else float(beta.ppf(1 - tail, n_pie + 1, total_pie - n_pie))
    return (100 * lo / pct_non_pie - 1) * 100, (100 * hi / pct_non_pie - 1) * 100


def over_index_pvalues(n: Sequence[int], n_pie: Sequence[int]) -> np.ndarray:
    """One-sided Fisher exact p per group: P(at least ``n_pie`` PIEs | PIEs fall at random).

    Under independence of group and PIE status, a group of ``n`` examples
    holds a hypergeometric number of the ``sum(n_pie)`` PIEs out of ``sum(n)``.
    """
    from scipy.stats import hypergeom

    sizes, pies = np.asarray(n, dtype=np.int64), np.asarray(n_pie, dtype=np.int64)
    total, total_pie = int(sizes.sum()), int(pies.sum())
    return np.asarray(hypergeom.sf(pies - 1, total, sizes, total_pie), dtype=float)


def group_label(group: Mapping[str, Any]) -> str:
    """``{"sex": "Male", "race": "White"}`` -> ``"Male / White"``."""
    return " / ".join(str(v) for v in group.values())


def _p_cell(p: float | None, alpha: float) -> str:
    if p is None or not np.isfinite(p):
        return "-"
    return f"{p:.3g}" + (" *" if p <= alpha else "")


def group_rows(comparison: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The comparison's subgroup rows: shares as fractions, growth interval, over-index test.

    ``settings`` is the report's (``alpha``, ``correction``). The over-index
    test is adjusted over the testable groups, the family of the shift tests.
    """
    from compaudit import adjust_pvalues

    groups = comparison["subgroups"]
    total = int(comparison["pie"]["count"])
    alpha = float(settings["alpha"])
    raw = over_index_pvalues([g["n"] for g in groups], [g["n_pie"] for g in groups])
    raw[[not g["testable"] for g in groups]] = np.nan  # outside the family
    over = adjust_pvalues(raw, method=settings["correction"]) if total else raw * np.nan
    rows = []
    for g, p_over in zip(groups, over.tolist(), strict=True):
        lo, hi = growth_interval(g["n_pie"], total, g["pct_non_pie"])
        rows.append(
            {
                **{k: g[k] for k in ("n", "n_non_pie", "n_pie", "top1_reference")},
                **{k: g[k] for k in ("top1_candidate", "shift_difference", "significant")},
                "group": group_label(g["group"]),
                "key": dict(g["group"]),
                **{k: None if g[k] is None else g[k] / 100 for k in ("pct_non_pie", "pct_pie")},
                "pct_growth": None if g["pct_growth"] is None else g["pct_growth"] / 100,
                "growth": g["pct_growth"],
                "growth_lo": lo,
                "growth_hi": hi,
                "growth_ci": "-" if lo is None else f"{lo:+.0f}% to {hi:+.0f}%",
                "over_p_adj": p_over if np.isfinite(p_over) else None,
                "over_p": _p_cell(p_over, alpha),
                "shift_p": _p_cell(g["p_adjusted"], alpha) if g["testable"] else "-",
                "testable": "yes" if g["testable"] else "no",
            }
        )
    return rows


def over_indexing(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Testable groups whose share grows among PIEs, largest growth first."""
    up = [r for r in rows if r["testable"] == "yes" and (r["growth"] or 0) > 0]
    return sorted(up, key=lambda r: -float(r["growth"]))


def one_pie_step(total_pie: int, pct_non_pie: float) -> float:
    """Growth points (%) that one PIE more or less moves a group (``pct_non_pie`` in %)."""
    return 1e4 / (total_pie * pct_non_pie)


# -- sentences -----------------------------------------------------------------------


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _cite(r: Mapping[str, Any]) -> str:
    p = r["over_p_adj"]
    return (
        f"{r['group']} ({r['growth']:+.0f}%, n={r['n']}, n_pie={r['n_pie']}, "
        f"CI {r['growth_ci']}, p adj {'-' if p is None else f'{p:.2g}'})"
    )


def findings(
    report: Mapping[str, Any], label_report: Mapping[str, Any], kinds: Mapping[str, str]
) -> list[str]:
    """The "What this shows" bullets, each computed from the two reports.

    ``kinds`` maps each candidate to its variant kind (``prune``, ``quantize``).
    """
    from compaudit.study import level_rows, subset_rows

    levels = level_rows(dict(report))
    ref, cands = levels[0], levels[1:]
    worst = max(cands, key=lambda r: abs(r["top1_delta"]))
    small = abs(worst["top1_delta"]) <= ref["top1_std"]
    out = [
        f"Top-1 {'barely moves' if small else 'moves'}: the largest change is "
        f"{_pp(worst['top1_delta'])} ({worst['population']}), against a spread of "
        f"{100 * ref['top1_std']:.2f} pp (std) across the {ref['k']} dense models."
    ]
    pies = {r["population"]: r["pies"] for r in cands}
    pruned = {n: c for n, c in pies.items() if kinds.get(n) == "prune"}
    for q in (n for n in pies if kinds.get(n) == "quantize"):
        if pruned:
            least = min(pruned, key=lambda n: pruned[n])
            less = pies[q] < pruned[least]
            out.append(
                f"Quantization disturbs {'less' if less else 'not less'} than pruning: {q} "
                f"has {pies[q]} PIEs, against {pruned[least]} for the least disturbing pruned "
                f"variant ({least}); " + ", ".join(f"{n}: {c}" for n, c in pies.items()) + "."
            )
    subsets = subset_rows(dict(report))
    hard = all(s["pie_reference"] < s["random_reference"] for s in subsets)
    out.append(
        f"PIEs are {'harder' if hard else 'not always harder'} than random rows: the dense "
        "models score "
        + ", ".join(
            f"{100 * s['pie_reference']:.1f}% on {s['candidate']}'s {s['n_pie']} PIEs "
            f"(random subset {100 * s['random_reference']:.1f}%)"
            for s in subsets
        )
        + f"; chance on {len(report['comparisons'][0]['classes'])} classes is "
        f"{100 / len(report['comparisons'][0]['classes']):.0f}%."
    )
    for comp in report["comparisons"]:
        sig = [c for c in comp["classes"] if c["significant"]]
        if sig:
            listed = ", ".join(f"{c['name']} {_pp(c['normalized_recall_difference'])}" for c in sig)
            out.append(
                f"{comp['candidate']}: class recall shifts beyond the overall change are "
                f"significant after correction ({listed}); with two classes they mirror each other."
            )
    for comp in report["comparisons"]:
        out.append(_group_finding(comp, report, "sex x race"))
    out.extend(_label_findings(label_report))
    out.extend(_gate_findings(report))
    return out


def _group_finding(comp: Mapping[str, Any], report: Mapping[str, Any], what: str) -> str:
    rows = group_rows(comp, report["settings"])
    name, total = comp["candidate"], comp["pie"]["count"]
    testable = [r for r in rows if r["testable"] == "yes"]
    up = over_indexing(rows)
    text = f"{name} ({total} PIEs): {len(up)} of {len(testable)} testable {what} groups over-index"
    if not up:
        return text + " among PIEs."
    top = up[0]
    step = one_pie_step(total, 100 * top["pct_non_pie"])
    text += (
        f"; the largest growth is {_cite(top)}; one PIE more or less moves it by {step:.0f} points."
    )
    sig = [
        r
        for r in up
        if r["over_p_adj"] is not None and r["over_p_adj"] <= report["settings"]["alpha"]
    ]
    if sig:
        text += " Significant over-indexing after correction: " + "; ".join(map(_cite, sig)) + "."
    else:
        text += " No group over-indexes significantly after correction."
    shifted = [r for r in testable if r["significant"]]
    if shifted:
        listed = ", ".join(f"{r['group']} ({_pp(r['shift_difference'])})" for r in shifted)
        text += f" Significant top-1 shift differences: {listed}."
    else:
        text += " No group's top-1 shift differs significantly from the overall change."
    return text


def _label_findings(label_report: Mapping[str, Any]) -> list[str]:
    out = []
    for comp in label_report["comparisons"]:
        rows = group_rows(comp, label_report["settings"])
        shares: dict[str, list[float]] = {}
        for r in rows:
            acc = shares.setdefault(str(r["key"]["label"]), [0.0, 0.0])
            acc[0] += r["pct_non_pie"] or 0.0
            acc[1] += r["pct_pie"] or 0.0
        rare = min(shares, key=lambda k: shares[k][0])
        text = (
            f"Crossed with the label ({comp['candidate']}): rows labelled {rare} are "
            f"{100 * shares[rare][0]:.1f}% of non-PIEs but {100 * shares[rare][1]:.1f}% of PIEs"
        )
        up = over_indexing(rows)
        if up:
            text += "; over-indexing: " + "; ".join(map(_cite, up))
        out.append(text + ".")
    rows = label_report["comparisons"][0]["subgroups"] if label_report["comparisons"] else []
    male = {str(g["group"]["label"]): 0 for g in rows}
    size = dict(male)
    for g in rows:
        size[str(g["group"]["label"])] += g["n"]
        male[str(g["group"]["label"])] += g["n"] if g["group"].get("sex") == "Male" else 0
    if size:
        mix = ", ".join(f"{100 * male[k] / size[k]:.0f}% of {k} rows" for k in size)
        out.append(
            f"Men are {mix}: a group's growth in the sex x race table carries its label mix, "
            "so read it next to the label-crossed table."
        )
    return out


def _gate_findings(report: Mapping[str, Any]) -> list[str]:
    gates, s = report["gates"], report["settings"]
    bad = [g for g in gates if g["status"] in ("failed", "error")]
    text = f"Policy verdict: **{report['verdict']}**"
    if bad:
        text += (
            " (" + "; ".join(f"{g['candidate']}: `{g['name']}` {g['status']}" for g in bad) + ")"
        )
    ok = sorted({g["name"] for g in gates} - {g["name"] for g in bad})
    if ok:
        text += "; passed for every candidate: " + ", ".join(f"`{n}`" for n in ok)
    out = [text + "."]
    small = {
        r["group"]: r["n"]
        for comp in report["comparisons"]
        for r in group_rows(comp, s)
        if r["testable"] == "no"
    }
    if small:
        listed = ", ".join(f"{g} (n={n})" for g, n in small.items())
        why = (
            "a gate is an error only when no group reaches min_support, so they do not make "
            "the verdict an error"
            if report["verdict"] != "error"
            else "the verdict is an error because a gate could not be evaluated"
        )
        out.append(
            f"Below min_support ({s['min_support']}) and listed as not testable, never as "
            f"fine: {listed}; {why}."
        )
    growth = {g["candidate"]: g for g in bad if g["name"] == "subgroups.pie_share_growth"}
    for comp in report["comparisons"]:
        gate = growth.get(comp["candidate"])
        up = over_indexing(group_rows(comp, s))
        if gate is None or not up:
            continue
        top, limit = up[0], float(gate["threshold"])
        step = one_pie_step(comp["pie"]["count"], 100 * top["pct_non_pie"])
        real = top["over_p_adj"] is not None and top["over_p_adj"] <= s["alpha"]
        out.append(
            f"{comp['candidate']} fails the growth gate on {top['group']}'s {top['n_pie']} of "
            f"{comp['pie']['count']} PIEs; one PIE there is worth {step:.0f} growth points "
            f"against a limit of {limit:g}, and the over-indexing is "
            + ("significant" if real else "not significant")
            + " after correction: "
            + ("a measured disparity." if real else "a point estimate from too few PIEs.")
        )
    return out


# -- RESULTS.md ----------------------------------------------------------------------


def setup_lines(manifest: Mapping[str, Any], report: Mapping[str, Any]) -> list[str]:
    """The study's setup, from the run manifest and the report's settings."""
    recipe, data, s = manifest["recipe"], manifest["data"], report["settings"]
    arch, tr = recipe["architecture"], recipe["training"]
    variants = []
    for v in recipe["variants"]:
        extra = v["prune"] and f"sparsity {v['prune']['sparsity']:g}"
        extra = extra or (v["quantize"] and f"{v['quantize']['method']} of {v['from']}")
        variants.append(f"{v['name']} ({extra})" if extra else v["name"])
    return [
        f"- Recipe: `examples/recipes/adult.yaml`, K = {recipe['k']} models per variant, "
        f"seed {recipe['seed']}: {', '.join(variants)}.",
        f"- Model: {arch['name']} ({', '.join(f'{k} {v}' for k, v in arch['kwargs'].items())}), "
        f"{tr['epochs']} epochs, batch "
        f"{tr['batch_size']}, {tr['optimizer']} lr {tr['lr']:g} ({tr['lr_schedule']}).",
        f"- Data: UCI Adult, trained on `{data['train']}` ({data['train_n']:,} rows), audited on "
        f"`{data['eval']}` ({data['eval_n']:,} rows); sex, race and age are kept out of the "
        "features (relationship, e.g. Husband or Wife, still encodes sex).",
        "- Policy: `examples/policies/fairness-review.yaml` (alpha "
        f"{s['alpha']:g}, {s['correction']} correction, min_support {s['min_support']}, "
        f"seed {s['seed']}). PIE counts are few: the growth intervals and over-index tests "
        "treat the PIE set as fixed and do not cover its seed-to-seed variation.",
    ]


def _escape(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v.replace("|", "\\|") if isinstance(v, str) else v for k, v in r.items()}
            for r in rows]  # fmt: skip


def build_results(
    report: Mapping[str, Any],
    label_report: Mapping[str, Any],
    manifest: Mapping[str, Any],
    figures: Sequence[tuple[str, str]],
) -> str:
    """RESULTS.md, entirely from the two reports, the run manifest and the figure paths."""
    from compaudit.study import (
        LEVEL_COLUMNS,
        SUBSET_COLUMNS,
        level_rows,
        markdown_table,
        subset_rows,
    )

    s = report["settings"]
    kinds = {v["name"]: v["kind"] for v in manifest["recipe"]["variants"]}
    gates = [{**g, "name": f"`{g['name']}`"} for g in report["gates"]]
    parts = [
        "# Adult: what compressing an income MLP does to sex x race groups",
        f"Generated by `{COMMAND}` (examples/adult/study.py); do not edit by hand.",
        "## Setup",
        "\n".join(setup_lines(manifest, report)),
        "## Populations (paper's table)",
        markdown_table(level_rows(dict(report)), LEVEL_COLUMNS),
        "Top-1 on PIEs, on a seeded random subset of the same size, and on non-PIEs:",
        markdown_table(subset_rows(dict(report)), SUBSET_COLUMNS),
        "## What this shows",
        "\n".join(f"- {line}" for line in findings(report, label_report, kinds)),
        "## Policy gates (`examples/policies/fairness-review.yaml`)",
        markdown_table(_escape(gates), GATE_COLUMNS),
    ]
    note = TABLE_NOTE.format(
        level=f"{CI_LEVEL:.0%}", correction=s["correction"].capitalize(), alpha=s["alpha"]
    )
    for title, doc in (("sex x race", report), ("label x sex (paper's CelebA form)", label_report)):
        parts += [f"## Subgroups: {title}", note]
        for comp in doc["comparisons"]:
            parts.append(f"### {comp['candidate']} vs {comp['reference']}")
            parts.append(markdown_table(_escape(group_rows(comp, doc["settings"])), GROUP_COLUMNS))
    parts.append("## Figures")
    parts.extend(f"![{alt}]({rel})" for alt, rel in figures)
    return "\n\n".join(parts) + "\n"
