"""The "what it had memorized" table of the terminal and Markdown reports.

The first few PIEs (most confident flips first, as the gallery shows them)
that the comparison's ``influencers`` block lists, each with its top
influencers on one line; the HTML gallery shows them all, with thumbnails,
and ``report.json`` lists every flagged example's.
"""

from __future__ import annotations

from compaudit.report._common import gallery_order
from compaudit.results import Comparison, Influencer

__all__ = ["MEMORIZED_CAPTION", "MEMORIZED_HEADER", "MEMORIZED_SHOWN", "memorized_rows"]

MEMORIZED_SHOWN = 5
"""PIEs in the table (the gallery and report.json hold the rest)."""
MEMORIZED_HEADER = ("PIE", "true label", "top influencers (training id label influence)")
MEMORIZED_CAPTION = (
    "What the first PIEs had memorized: their most influential training examples, "
    "most influential first (influence: accuracy on the PIE over influence runs that "
    "trained on the example minus over those that did not)."
)


def _influencer(inf: Influencer, names: dict[int, str]) -> str:
    value = "n/a" if inf.influence is None else f"{inf.influence:+z.2f}"
    return f"#{inf.train_id} {names.get(inf.label, str(inf.label))} {value}"


def memorized_rows(c: Comparison, limit: int = MEMORIZED_SHOWN) -> list[tuple[str, str, str]]:
    """Plain cells (:data:`MEMORIZED_HEADER`) for up to ``limit`` PIEs; none without
    influencers. Sanitising is the caller's (each format escapes its own way)."""
    if c.influencers is None:
        return []
    names = {r.class_index: r.name for r in c.classes}
    listed = c.influencers.by_id()
    rows: list[tuple[str, str, str]] = []
    for i in gallery_order(c.pie.examples):
        e = c.pie.examples[i]
        found = listed.get(str(e["id"]))
        if found is None or not found.influencers:
            continue
        label = int(e["label"])
        cells = ", ".join(_influencer(inf, names) for inf in found.influencers)
        rows.append((str(e["id"]), names.get(label, str(label)), cells))
        if len(rows) >= limit:
            break
    return rows
