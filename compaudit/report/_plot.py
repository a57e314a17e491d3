"""The per-class figure of the paper: normalized recall difference, one bar per class.

Drawn with matplotlib's object API (no pyplot state, Agg canvas), imported
lazily so that reports without HTML never load matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

__all__ = ["BETTER", "NEUTRAL", "WORSE", "class_plot_png"]

WORSE = "#c0392b"
BETTER = "#2471a3"
NEUTRAL = "#b8bcc0"
MAX_TICK_LABELS = 60  # above this, only significant classes are named
NAME_CHARS = 18


def _label(name: str) -> str:
    short = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
    return short.replace("$", r"\$")  # a "$" pair would switch matplotlib to mathtext


def class_plot_png(classes: Sequence[dict[str, Any]], *, title: str, dpi: int = 110) -> bytes:
    """Bar chart of normalized recall difference per class, sorted, significant bars starred.

    Parameters
    ----------
    classes : sequence of dict
        The comparison's ``classes`` rows (``compaudit.report/v1``).
    title : str
        Figure title.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    bytes
        A PNG image.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = sorted(
        (r for r in classes if r["normalized_recall_difference"] is not None),
        key=lambda r: r["normalized_recall_difference"],
    )
    n = len(rows)
    values = [100.0 * r["normalized_recall_difference"] for r in rows]
    colors = [
        (WORSE if v < 0 else BETTER) if r["significant"] else NEUTRAL
        for r, v in zip(rows, values, strict=True)
    ]
    width = max(8.0, min(13.0, 2.0 + 0.3 * n))
    fig = Figure(figsize=(width, 4.2), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    x = list(range(n))
    ax.bar(x, values, color=colors, width=0.8 if n < 200 else 1.0, linewidth=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    span = max((abs(v) for v in values), default=1.0) or 1.0
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        if r["significant"]:
            offset = 0.03 * span
            y = v - offset if v < 0 else v + offset
            ax.text(i, y, "*", ha="center", va="top" if v < 0 else "bottom", fontsize=12,
                    color=WORSE if v < 0 else BETTER, fontweight="bold")  # fmt: skip
    ax.set_ylim(-1.18 * span, 1.18 * span)
    ax.set_xlim(-0.7, n - 0.3)
    if n <= MAX_TICK_LABELS:
        labels = [_label(r["name"]) for r in rows]
        if n <= 30 and max(map(len, labels), default=0) <= 4:  # short names read best upright
            ax.set_xticks(x, labels, fontsize=9)
        else:
            ax.set_xticks(x, labels, rotation=60, ha="right", rotation_mode="anchor",
                          fontsize=9 if n <= 30 else 7)  # fmt: skip
    else:
        sig = [i for i, r in enumerate(rows) if r["significant"]][:MAX_TICK_LABELS]
        ax.set_xticks(sig, [_label(rows[i]["name"]) for i in sig], rotation=90, fontsize=7)
        ax.set_xlabel(f"{n} classes, sorted; significant ones named")
    ax.set_ylabel("normalized recall difference (pp)")
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(axis="y", color="#e5e7e9", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    kinds = [
        (WORSE, "* significantly worse", any(c == WORSE for c in colors)),
        (BETTER, "* significantly better", any(c == BETTER for c in colors)),
        (NEUTRAL, "not significant", any(c == NEUTRAL for c in colors)),
    ]
    handles = [Patch(color=color, label=label) for color, label, present in kinds if present]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
