"""The per-class figure of the paper as a PNG (studies' figure files), and the
long-tail decile figure.

Drawn with matplotlib's object API (no pyplot state, Agg canvas), imported
lazily so that reports without these figures never load matplotlib. Each kind
of mark is one vectorised artist (every bar in one ``PolyCollection``, every
star in one ``scatter``), names are plain texts rather than tick labels, and
margins are fixed rather than solved by a layout engine: a figure costs about
the same at 10 or at 10,000 classes. What the per-class figure shows is
:func:`~compaudit.report._class_chart.class_chart`, which the HTML report draws
as SVG.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from compaudit._text import for_plot
from compaudit.report._class_chart import (
    BETTER,
    KINDS,
    NEUTRAL,
    SUMMARY_OVER,
    WORSE,
    WORST_SHOWN,
    YLIM,
    ClassChart,
    class_chart,
    class_span,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from compaudit.results import ClassRow, LongTailRow

__all__ = [
    "BETTER",
    "NEUTRAL",
    "SUMMARY_OVER",
    "WORSE",
    "WORST_SHOWN",
    "class_plot_png",
    "class_span",
    "decile_plot_png",
]

NAME_CHARS = 18
HEIGHT = 4.2  # inches
# Average character width and line height as fractions of the font size (DejaVu Sans).
_CHAR_W, _CHAR_H = 0.62, 1.2
_PNG = {"compress_level": 3}  # zlib level 3: as small as the default 6 here, and faster


TITLE_CHARS = 160


def _label(name: str) -> str:
    # Controls escaped, "$" escaped (mathtext), cut: a bar's name is a few words.
    return for_plot(name, max_chars=NAME_CHARS)


def _rects(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Vertices ``[n, 4, 2]`` of the rectangles ``[x0, x1] x [y0, y1]``."""
    corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
    return np.stack([np.stack(c, axis=-1) for c in corners], axis=1)


def _spines(ax: Axes, grid: Literal["x", "y"]) -> None:
    ax.grid(axis=grid, color="#e5e7e9", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _bars(ax: Axes, values: np.ndarray, colors: Sequence[str], span: float) -> None:
    """Bar ``i`` at x = i (one collection); a star beyond each coloured (significant) bar."""
    from matplotlib.collections import PolyCollection

    n = values.size
    x = np.arange(n, dtype=float)
    half = 0.4 if n < 200 else 0.5
    verts = _rects(x - half, x + half, np.zeros(n), values)
    ax.add_collection(PolyCollection(list(verts), facecolors=colors, linewidths=0, zorder=2))
    sig = np.array([c != NEUTRAL for c in colors], dtype=bool)
    if sig.any():
        v = values[sig]
        y = v + np.where(v < 0, -0.07, 0.07) * span
        ax.scatter(x[sig], y, s=36, c=np.array(colors)[sig], marker=(6, 2, 0), linewidths=1.4)
    ax.axhline(0.0, color="black", linewidth=0.8, zorder=2)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-YLIM * span, YLIM * span)
    ax.set_ylabel("normalized recall difference (pp)")
    _spines(ax, "y")


def _names(fig: Figure, ax: Axes, labels: Sequence[str]) -> float:
    """Name bar ``i`` with ``labels[i]``; return the height in inches the names take below.

    Plain texts under the axes, not tick labels: a tick is five artists, and
    creating and drawing them was most of a figure's cost.
    """
    from matplotlib.transforms import blended_transform_factory, offset_copy

    n = len(labels)
    size = 9 if n <= 30 else 7
    ax.set_xticks([])
    under = offset_copy(
        blended_transform_factory(ax.transData, ax.transAxes), fig=fig, y=-4, units="points"
    )
    style: dict[str, Any] = {"fontsize": size, "transform": under, "va": "top", "clip_on": False}
    upright = n <= 30 and max(map(len, labels), default=0) <= 4  # short names read best upright
    style |= {"ha": "center"} if upright else {"rotation": 60, "ha": "right"}
    if not upright:
        style["rotation_mode"] = "anchor"
    for i, text in enumerate(labels):
        ax.text(i, 0, text, **style)
    if upright:
        return (_CHAR_H * size + 8) / 72
    longest = max(map(len, labels), default=0)
    return (longest * _CHAR_W * size * 0.866 + _CHAR_H * size * 0.5 + 8) / 72  # at 60 degrees


def _histogram(ax: Axes, chart: ClassChart) -> None:
    """Horizontal histogram of every class, stacked by kind, on the bars' y scale."""
    from matplotlib.collections import PolyCollection

    edges, counts = chart.histogram()
    left = np.zeros(counts.shape[1])
    verts, faces = [], []
    for (color, _), row in zip(KINDS, counts.astype(float), strict=True):
        keep = row > 0
        verts.append(_rects(left[keep], (left + row)[keep], edges[:-1][keep], edges[1:][keep]))
        faces += [color] * int(keep.sum())
        left = left + row
    ax.add_collection(
        PolyCollection(list(np.concatenate(verts)), facecolors=faces, linewidths=0, zorder=2)
    )
    ax.axhline(0.0, color="black", linewidth=0.8, zorder=2)
    ax.set_xlim(0, max(1.0, float(left.max())) * 1.05)
    ax.set_ylim(edges[0], edges[-1])
    ax.set_yticks([])
    ax.set_xlabel("classes", fontsize=9)
    ax.tick_params(labelsize=8)
    _spines(ax, "x")


def _error_bars(ax: Axes, values: np.ndarray, errors: np.ndarray) -> None:
    """Vertical ``value +- error`` lines at x = i (one collection; NaN errors left out)."""
    from matplotlib.collections import LineCollection

    x = np.arange(values.size, dtype=float)
    keep = np.isfinite(errors)
    if not keep.any():
        return
    lo, hi = values[keep] - errors[keep], values[keep] + errors[keep]
    segs = np.stack([np.stack([x[keep], lo], -1), np.stack([x[keep], hi], -1)], axis=1)
    ax.add_collection(LineCollection(list(segs), colors="#1c2833", linewidths=0.9, zorder=3))


def class_plot_png(
    classes: Sequence[ClassRow],
    *,
    title: str,
    dpi: int = 110,
    span: float | None = None,
    threshold: float | None = None,
    errors: Sequence[float | None] | None = None,
) -> bytes:
    """Bar chart of normalized recall difference per class, sorted, significant bars starred.

    Parameters are those of :func:`~compaudit.report._class_chart.class_chart`
    (the gate's threshold drawn as a dashed line), plus ``title`` (the figure's,
    the user's text) and ``dpi`` (the PNG's resolution).

    Returns
    -------
    bytes
        A PNG image. Up to :data:`SUMMARY_OVER` classes, every class as a named
        bar. Above, :data:`WORST_SHOWN` named bars (the significantly worse
        classes first, then the lowest others) and, on the same scale, a
        histogram of all classes, as the figure states.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    chart = class_chart(classes, span=span, threshold=threshold, errors=errors)
    values, shown, summary = chart.values, chart.shown, chart.summary
    width = 13.0 if summary else max(8.0, min(13.0, 2.0 + 0.3 * values.size))
    fig = Figure(figsize=(width, HEIGHT), dpi=dpi)
    if summary:
        ax, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    else:
        ax, hist = fig.add_subplot(), None
    _bars(ax, values[shown], [chart.colors[i] for i in shown], chart.span)
    _error_bars(ax, values[shown], chart.errors[shown])
    below = _names(fig, ax, [_label(chart.names[i]) for i in shown])
    handles: list[Any] = [Patch(color=color, label=label) for color, label in chart.legend()]
    if threshold is not None:
        from matplotlib.lines import Line2D

        dash = (0, (5, 3))
        ax.axhline(-100.0 * threshold, color=WORSE, linewidth=1.3, linestyle=dash, zorder=1)
        label = f"gate class_recall_drop: -{100 * threshold:.3g} pp"
        handles.append(Line2D([], [], color=WORSE, linewidth=1.3, linestyle=dash, label=label))
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    left = 0.75 / width
    if hist is not None:
        _histogram(hist, chart)
        fig.text(left, 0.08 / HEIGHT, chart.note(), fontsize=9)
        below += 0.25
    fig.subplots_adjust(
        left=left, right=1 - 0.2 / width, top=1 - 0.3 / HEIGHT,
        bottom=min(0.6, (below + 0.1) / HEIGHT), wspace=0.04,
    )  # fmt: skip
    title = for_plot(title, max_chars=TITLE_CHARS)  # names the candidate: the user's text
    fig.suptitle(title, fontsize=11, x=left, ha="left", y=1 - 0.06 / HEIGHT, va="top")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # A name in a script the font lacks is drawn as boxes; no need to say so per glyph.
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buf, format="png", metadata={"Software": None}, pil_kwargs=_PNG)
    return buf.getvalue()


def decile_plot_png(
    rows: Sequence[tuple[LongTailRow, LongTailRow | None]], *, title: str, dpi: int = 110
) -> bytes:
    """Share of flagged examples per score decile, one line per subset (compression
    solid, its seed-noise counterpart dashed in the same colour), base rates dotted.

    Parameters
    ----------
    rows : sequence of (row, seed row or None)
        One score's long-tail rows (:meth:`~compaudit.results.Comparison.long_tail_pairs`).
    title : str
        Figure title (the score's name: the user's text).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    bytes
        A PNG image.
    """
    from matplotlib.figure import Figure

    palette = ("#c0392b", "#2471a3", "#7d3c98", "#1e8449")
    fig = Figure(figsize=(6.4, 3.4), dpi=dpi)
    ax = fig.add_subplot()
    x = np.arange(1, 11)

    def share(r: LongTailRow) -> np.ndarray:
        return np.array([np.nan if d.share_flagged is None else d.share_flagged for d in r.deciles])

    for (r, s), color in zip(rows, palette * 4, strict=False):
        ax.plot(x, 100 * share(r), color=color, marker="o", ms=3, lw=1.5, label=_label(r.subset))
        base = r.deciles[0].base_rate if r.deciles else None
        if base is not None:
            ax.axhline(100 * base, color=color, lw=0.8, ls=":")
        if s is not None:
            ax.plot(x, 100 * share(s), color=color, lw=1.0, ls="--", label=_label(s.subset))
    ax.set_xticks(x)
    ax.set_xlabel("score decile (1 = lowest)", fontsize=9)
    ax.set_ylabel("flagged share (%)", fontsize=9)
    ax.tick_params(labelsize=8)
    _spines(ax, "y")
    ax.legend(fontsize=7, frameon=False, ncol=2, loc="upper left")
    fig.subplots_adjust(left=0.11, right=0.98, top=0.88, bottom=0.16)
    fig.suptitle(for_plot(title, max_chars=TITLE_CHARS), fontsize=10, x=0.11, ha="left")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buf, format="png", metadata={"Software": None}, pil_kwargs=_PNG)
    return buf.getvalue()
