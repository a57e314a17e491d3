"""The PIE gallery of the HTML report (the papers' Fig. 1 and 5).

Each Pruning Identified Exemplar is shown as a thumbnail (when the data are
images) with its true label and the modal reference and candidate
predictions with their vote shares; without images, as a table row with the
example's protected attributes. Both are capped, most confident flips first
(the table at :data:`TABLE_CAP` rows: tabular PIEs can number thousands), and
filtered by CSS alone (no script): lost / gained / swapped, and true class.

With the comparison's ``influencers`` (a trainer run directory with influence
runs), each PIE also shows "what it had memorized": its most influential
training examples, as small thumbnails of the training split (or, for tables,
a cell of rows), each with its label and influence estimate.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from compaudit._text import for_html
from compaudit.errors import InputError
from compaudit.report._common import gallery_order
from compaudit.results import InfluencedExample, Influencer, InfluencersBlock, PieExamples

if TYPE_CHECKING:
    from compaudit.engine import AuditResult

__all__ = [
    "GALLERY_CAP",
    "TABLE_CAP",
    "Kind",
    "check_images",
    "pie_gallery",
    "pie_indices",
    "pie_kind",
]

Kind = Literal["lost", "gained", "swapped"]
KIND_WORDS: dict[str, str] = {"lost": "lost", "gained": "gained", "swapped": "swapped"}
GALLERY_CAP = 120
TABLE_CAP = 20
"""Rows of PIEs shown without images: a table of a few, the rest in report.json."""
FILTER_CLASSES = 30  # class filter chips: the most frequent true classes among those shown
FILTER_ALL_UNDER = 12  # up to this many classes shown, each gets a chip; above, those with 2+
CHIP_ON = "background:var(--fg);color:#fff;border-color:var(--fg)"
THUMB_MAX = 64  # longest side of an embedded thumbnail, in pixels
MINI_MAX = 32  # longest side of an influencer's thumbnail
PIXELATED_MAX = 48  # smaller images are upscaled by CSS without smoothing
NO_PIES = "No PIEs: the modal predictions of both populations agree on every example."

ERR_IMAGES_DTYPE = "report images must be uint8 (0-255), got {dtype}; convert them before reporting"
ERR_IMAGES_SHAPE = "report images must have shape [N, H, W] or [N, H, W, 3], got {shape}"
ERR_IMAGES_COUNT = (
    "there are {got} report images but {n} examples; give one image per example, "
    "in the populations' order"
)


def check_images(images: np.ndarray, n: int) -> np.ndarray:
    """Validate display images (fail closed) and drop a trailing channel axis of 1."""
    if images.dtype != np.uint8:
        raise InputError(ERR_IMAGES_DTYPE.format(dtype=images.dtype))
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise InputError(ERR_IMAGES_SHAPE.format(shape=tuple(images.shape)))
    if images.shape[0] != n:
        raise InputError(ERR_IMAGES_COUNT.format(got=images.shape[0], n=n))
    return images


def pie_indices(result: AuditResult, candidate: str, examples: PieExamples) -> list[int | None]:
    """Example index (row of the images) of each PIE, in ``examples`` order.

    The candidate's PIE mask gives the indices directly when it agrees with
    the report's example ids; otherwise each id is looked up among the
    reference population's ids (None when it is not there).
    """
    ids = result.reference.population.ids
    mask = result.pie_masks.get(candidate)
    wanted = [str(v) for v in examples.columns.get("id", ())]
    if mask is not None:
        idx = np.flatnonzero(mask)
        if len(idx) == len(examples) and [str(v) for v in ids[idx].tolist()] == wanted:
            return [int(i) for i in idx]
    position = {str(v): i for i, v in enumerate(ids.tolist())}
    return [position.get(w) for w in wanted]


def _thumbnail_uri(image: np.ndarray, size: int = THUMB_MAX) -> str:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    if max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pred(label: str, name: str, share: float | None, correct: bool) -> str:
    share_txt = "" if share is None else f" <span class='share'>{100 * share:.0f}%</span>"
    cls = "ok" if correct else "bad"
    return f"<div class='{cls}'>{label} <b>{for_html(name)}</b>{share_txt}</div>"


def pie_kind(label: int, reference: int, candidate: int) -> Kind:
    """``lost``: the reference was right; ``gained``: the candidate is; else ``swapped``."""
    if reference == label:
        return "lost"
    return "gained" if candidate == label else "swapped"


def _classes(e: Mapping[str, Any]) -> str:
    label = int(e["label"])
    kind = pie_kind(label, int(e["modal_reference"]), int(e["modal_candidate"]))
    return f"pie {kind} c{label}"


def _card(
    e: Mapping[str, Any], names: dict[int, str], image: np.ndarray | None, memo: str = ""
) -> str:
    label = int(e["label"])
    ref, cand = int(e["modal_reference"]), int(e["modal_candidate"])
    if image is None:
        pic = "<div class='noimg'>no image</div>"
    else:
        px = " px" if max(image.shape[:2]) <= PIXELATED_MAX else ""
        alt = f"example {for_html(str(e['id']))}"
        pic = f"<img class='thumb{px}' src='{_thumbnail_uri(image)}' alt='{alt}'>"
    return (
        f"<figure class='{_classes(e)}'>{pic}<figcaption>"
        f"<div class='id'>#{for_html(str(e['id']))}</div>"
        f"<div>true <b>{for_html(names.get(label, str(label)))}</b></div>"
        + _pred("ref", names.get(ref, str(ref)), e["share_reference"], ref == label)
        + _pred("cand", names.get(cand, str(cand)), e["share_candidate"], cand == label)
        + f"</figcaption>{memo}</figure>"
    )


def _row(
    e: Mapping[str, Any], names: dict[int, str], attrs: Sequence[str], memo: str | None = None
) -> str:
    label = int(e["label"])
    ref, cand = int(e["modal_reference"]), int(e["modal_candidate"])

    def cell(c: int, share: float) -> str:
        cls = "ok" if c == label else "bad"
        return f"<td class='{cls}'>{for_html(names.get(c, str(c)))} ({100 * share:.0f}%)</td>"

    kind = pie_kind(label, ref, cand)
    extra = "".join(f"<td>{for_html(a)}</td>" for a in attrs)
    return (
        f"<tr class='{_classes(e)}'><td class='num'>{for_html(str(e['id']))}</td>"
        f"<td>{for_html(names.get(label, str(label)))}</td>"
        f"{cell(ref, e['share_reference'])}{cell(cand, e['share_candidate'])}"
        f"<td>{kind}</td>{extra}"
        + ("" if memo is None else f"<td class='memo'>{memo}</td>")
        + "</tr>"
    )


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+z.2f}"


def _influencer_title(inf: Influencer, names: dict[int, str]) -> str:
    se = "" if inf.se is None else f" ± {inf.se:.2f}"
    label = names.get(inf.label, str(inf.label))
    return for_html(
        f"training example {inf.train_id}: {label}, influence {_signed(inf.influence)}{se}"
    )


class _Memo:
    """Renders "what it had memorized" for PIEs: thumbnails of the training split, or text.

    Thumbnails are encoded once per training example (PIEs share influencers).
    """

    def __init__(
        self, block: InfluencersBlock, names: dict[int, str], train_images: np.ndarray | None
    ) -> None:
        self.block = block
        self.by_id = block.by_id()
        self.names = names
        self.images = train_images
        self._uris: dict[int, str] = {}

    def _uri(self, j: int) -> str:
        assert self.images is not None
        if j not in self._uris:
            self._uris[j] = _thumbnail_uri(self.images[j], MINI_MAX)
        return self._uris[j]

    def entry(self, e: Mapping[str, Any]) -> InfluencedExample | None:
        return self.by_id.get(str(e["id"]))

    def card(self, e: Mapping[str, Any]) -> str:
        """The strip under a PIE card (empty when the PIE has no influencers listed)."""
        found = self.entry(e)
        if found is None or not found.influencers:
            return ""
        items = []
        for inf in found.influencers:
            name = for_html(self.names.get(inf.label, str(inf.label)))
            title = _influencer_title(inf, self.names)
            if self.images is not None:
                px = " px" if max(self.images.shape[1:3]) <= PIXELATED_MAX else ""
                pic = f"<img class='mini{px}' src='{self._uri(inf.train_index)}' alt='{title}'>"
            else:
                pic = f"<span class='tid'>#{for_html(str(inf.train_id))}</span>"
            items.append(
                f"<div class='inf' title='{title}'>{pic}<span class='il'>{name}</span>"
                f"<span class='iv'>{_signed(inf.influence)}</span></div>"
            )
        return (
            "<div class='memo'><div class='mhead'>memorized</div>"
            f"<div class='infs'>{''.join(items)}</div></div>"
        )

    def cell(self, e: Mapping[str, Any]) -> str:
        """The table cell of a tabular PIE: one compact row per influencer."""
        found = self.entry(e)
        if found is None or not found.influencers:
            return "-"
        return "<br>".join(
            f"<span title='{_influencer_title(inf, self.names)}'>#{for_html(str(inf.train_id))} "
            f"{for_html(self.names.get(inf.label, str(inf.label)))} "
            f"<b>{_signed(inf.influence)}</b></span>"
            for inf in found.influencers
        )

    def note(self) -> str:
        b = self.block
        return (
            "<p class='note'>What each PIE had memorized: its "
            f"{b.k} most influential training examples (of {b.n_train} in "
            f"{for_html(b.train_data)}), most influential first. Influence: accuracy on the "
            "PIE over the influence runs that trained on the example minus over those that "
            f"did not, from {b.n_runs} runs (hover for the standard error).</p>"
        )


def _filters(
    uid: str, shown: Sequence[Mapping[str, Any]], names: dict[int, str]
) -> tuple[str, str]:
    """CSS-only filters (hidden radio buttons, no script): the controls and their style.

    Each control is a ``<label>`` for a radio button that precedes the items'
    container, so ``:checked ~`` rules can hide what does not match; the two
    groups (kind, class) combine.
    """
    kinds = Counter(_classes(e).split()[1] for e in shown)
    labels = Counter(int(e["label"]) for e in shown).most_common(FILTER_CLASSES)
    if len(labels) > FILTER_ALL_UNDER:  # many classes: a chip per single card is only noise
        labels = [(label, n) for label, n in labels if n >= 2]
    radios: list[str] = []
    rules: list[str] = []
    kind_chips: list[str] = []
    class_chips: list[str] = []

    def add(group: str, value: str, text: str, chips: list[str], hide: str | None) -> None:
        rid = f"f{uid}-{group}-{value}"
        checked = " checked" if value == "all" else ""
        radios.append(f"<input type='radio' class='fr' name='f{uid}-{group}' id='{rid}'{checked}>")
        chips.append(f"<label for='{rid}'>{text}</label>")
        rules.append(f"#{rid}:checked~.fchips label[for={rid}]{{{CHIP_ON}}}")
        if hide is not None:
            rules.append(f"#{rid}:checked~.fbody .pie:not(.{hide}){{display:none}}")

    add("k", "all", f"all ({len(shown)})", kind_chips, None)
    for kind in ("lost", "gained", "swapped"):
        if kinds[kind]:
            add("k", kind, f"{KIND_WORDS[kind]} ({kinds[kind]})", kind_chips, kind)
    add("c", "all", "all classes", class_chips, None)
    for label, count in labels:
        name = for_html(names.get(label, str(label)))
        add("c", str(label), f"{name} ({count})", class_chips, f"c{label}")
    controls = "".join(radios)
    controls += f"<div class='fchips'><span class='flabel'>show</span>{''.join(kind_chips)}</div>"
    if labels:
        chips = "".join(class_chips)
        controls += f"<div class='fchips'><span class='flabel'>true class</span>{chips}</div>"
    return controls, "<style>" + "".join(rules) + "</style>"


def pie_gallery(
    examples: PieExamples,
    names: dict[int, str],
    *,
    images: np.ndarray | None,
    indices: Sequence[int | None] | None,
    attributes: Mapping[str, np.ndarray] | None = None,
    uid: str = "0",
    influencers: InfluencersBlock | None = None,
    train_images: np.ndarray | None = None,
) -> str:
    """HTML of the PIE gallery (thumbnails) or, without images, of the PIE table.

    Parameters
    ----------
    examples : PieExamples
        The comparison's ``pie.examples`` (rows are built only for those shown).
    names : dict of int to str
        Class names by index.
    images : ndarray or None
        Checked display images (see :func:`check_images`), one per example.
    indices : sequence of int or None, optional
        Image row of each example (from :func:`pie_indices`).
    attributes : mapping of str to ndarray, optional
        Protected attributes per example (rows as ``indices``), shown as
        columns of the table (data without images).
    uid : str
        Unique on the page (the candidate's position): names the filters.
    influencers : InfluencersBlock or None
        The comparison's ``influencers``: each PIE listed there shows its top
        influencers ("what it had memorized").
    train_images : ndarray or None
        Checked display images of the training split (rows as the influencers'
        ``train_index``); without them the influencers are shown as text.

    Returns
    -------
    str
        An HTML fragment saying how many PIEs are shown of how many, with
        filters by lost/gained and by true class (CSS only).
    """
    total = len(examples)
    if total == 0:
        return f"<p class='muted'>{NO_PIES}</p>"
    order = gallery_order(examples)
    gallery = images is not None and indices is not None
    shown = order[: GALLERY_CAP if gallery else TABLE_CAP]
    rest = "" if len(shown) >= total else "; report.json lists them all"
    note = (
        f"<p class='note'>Showing {len(shown)} of {total} PIEs, most confident flips first "
        f"(highest candidate vote share, then reference share){rest}. "
        "<span class='ok'>green</span>: matches the true label; "
        "<span class='bad'>red</span>: does not. Lost: the reference was right; gained: the "
        "candidate is right; swapped: both wrong.</p>"
    )
    rows = [examples[i] for i in shown]
    controls, style = _filters(uid, rows, names)
    memo = None if influencers is None else _Memo(influencers, names, train_images)
    if memo is not None:
        note += memo.note()
    if images is not None and indices is not None:
        cards = []
        for i, e in zip(shown, rows, strict=True):
            row = indices[i]
            strip = "" if memo is None else memo.card(e)
            cards.append(_card(e, names, None if row is None else images[row], strip))
        wide = "" if memo is None else " wide"
        body = f"<div class='fbody gallery{wide}'>" + "".join(cards) + "</div>"
    else:
        attrs = dict(attributes or {})
        if indices is None:
            attrs = {}
        head = (
            "<tr><th>id</th><th>true label</th><th>modal reference</th><th>modal candidate</th>"
            "<th>kind</th>"
            + "".join(f"<th>{for_html(a)}</th>" for a in attrs)
            + ("" if memo is None else "<th>memorized (top influencers)</th>")
            + "</tr>"
        )
        cells = []
        for i, e in zip(shown, rows, strict=True):
            row = None if indices is None else indices[i]
            values = ["-" if row is None else str(v[row]) for v in attrs.values()]
            cells.append(_row(e, names, values, None if memo is None else memo.cell(e)))
        table = f"<thead>{head}</thead><tbody>{''.join(cells)}</tbody>"
        body = f"<table class='fbody pies'>{table}</table>"
    return f"{note}{style}<div class='pief'>{controls}{body}</div>"
