"""The policy tables' figure: fail rate against the planted magnitude (policy_calibration.py)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from calibration_tables import DAMAGE_WORDS, FAIL_TARGET, PASS_TARGET, _png

if TYPE_CHECKING:
    from policy_calibration import Cell


def power_figure(cells: Sequence[Cell], path: Path) -> Path:
    """Fail rate against the planted magnitude (0: seed-only), one panel per dataset and
    kind of damage, one line per policy and shape."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(c.dataset for c in cells))
    kinds = ("class", "group")
    fig = Figure(figsize=(4.4 * len(kinds), 2.7 * len(datasets) + 0.6))
    FigureCanvasAgg(fig)
    policies = list(dict.fromkeys(c.policy for c in cells))
    palette = ("#2471a3", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#5d6d7e")
    colors = dict(zip(policies, itertools.cycle(palette), strict=False))
    shapes = list(dict.fromkeys((c.k_ref, c.k_cand) for c in cells))
    for i, dataset in enumerate(datasets):
        for j, kind in enumerate(kinds):
            ax = fig.add_subplot(len(datasets), len(kinds), i * len(kinds) + j + 1)
            for policy, shape in itertools.product(policies, shapes):
                sel = sorted(
                    (
                        c
                        for c in cells
                        if (c.dataset, c.policy, (c.k_ref, c.k_cand)) == (dataset, policy, shape)
                        and c.damage.kind in ("none", kind)
                    ),
                    key=lambda c: c.damage.fraction,
                )
                if len(sel) < 2:
                    continue
                ax.plot(
                    [100 * c.damage.fraction for c in sel],
                    [c.rate("fail") for c in sel],
                    marker="o",
                    ms=3,
                    lw=1,
                    color=colors[policy],
                    ls="--" if shape[1] == 1 else "-",  # dashed: one candidate model
                    label=f"{policy}, {shape[0]} vs {shape[1]}",
                )
            ax.axhline(FAIL_TARGET, color="#7f8c8d", lw=0.8, ls="--")
            ax.axhline(1 - PASS_TARGET, color="#7f8c8d", lw=0.8, ls=":")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{dataset}: {DAMAGE_WORDS[kind]}", fontsize=8)
            ax.set_xlabel("share of the target's correct examples lost (%)", fontsize=7)
            ax.set_ylabel("comparisons failed", fontsize=7)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.legend(fontsize=5.5, frameon=False, loc="center right")
    fig.suptitle(
        "Shipped policies: fail rate on seed-only (0%) and planted-damage comparisons\n"
        "solid: candidate population, dashed: one candidate model; grey: 90% target and "
        "5% false-fail budget",
        fontsize=8.5,
    )
    fig.tight_layout()
    return _png(fig, path)
