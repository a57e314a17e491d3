"""The PIE gallery of the HTML report (the papers' Fig. 1 and 5).

Each Pruning Identified Exemplar is shown as a thumbnail (when the data are
images) with its true label and the modal reference and candidate
predictions with their vote shares; without images, as a table row. Both are
capped, most confident flips first.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit._text import for_html
from compaudit.errors import InputError
from compaudit.report._common import gallery_order
from compaudit.results import PieExamples

if TYPE_CHECKING:
    from compaudit.engine import AuditResult

__all__ = ["GALLERY_CAP", "TABLE_CAP", "check_images", "pie_gallery", "pie_indices"]

GALLERY_CAP = 120
TABLE_CAP = 500
THUMB_MAX = 64  # longest side of an embedded thumbnail, in pixels
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


def _thumbnail_uri(image: np.ndarray) -> str:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    if max(im.size) > THUMB_MAX:
        im.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pred(label: str, name: str, share: float | None, correct: bool) -> str:
    share_txt = "" if share is None else f" <span class='share'>{100 * share:.0f}%</span>"
    cls = "ok" if correct else "bad"
    return f"<div class='{cls}'>{label} <b>{for_html(name)}</b>{share_txt}</div>"


def _card(e: Mapping[str, Any], names: dict[int, str], image: np.ndarray | None) -> str:
    label = int(e["label"])
    ref, cand = int(e["modal_reference"]), int(e["modal_candidate"])
    if image is None:
        pic = "<div class='noimg'>no image</div>"
    else:
        px = " px" if max(image.shape[:2]) <= PIXELATED_MAX else ""
        alt = f"example {for_html(str(e['id']))}"
        pic = f"<img class='thumb{px}' src='{_thumbnail_uri(image)}' alt='{alt}'>"
    return (
        f"<figure class='pie'>{pic}<figcaption>"
        f"<div class='id'>#{for_html(str(e['id']))}</div>"
        f"<div>true <b>{for_html(names.get(label, str(label)))}</b></div>"
        + _pred("ref", names.get(ref, str(ref)), e["share_reference"], ref == label)
        + _pred("cand", names.get(cand, str(cand)), e["share_candidate"], cand == label)
        + "</figcaption></figure>"
    )


def _row(e: Mapping[str, Any], names: dict[int, str]) -> str:
    label = int(e["label"])
    ref, cand = int(e["modal_reference"]), int(e["modal_candidate"])

    def cell(c: int, share: float) -> str:
        cls = "ok" if c == label else "bad"
        return f"<td class='{cls}'>{for_html(names.get(c, str(c)))} ({100 * share:.0f}%)</td>"

    return (
        f"<tr><td class='num'>{for_html(str(e['id']))}</td>"
        f"<td>{for_html(names.get(label, str(label)))}</td>"
        f"{cell(ref, e['share_reference'])}{cell(cand, e['share_candidate'])}</tr>"
    )


def pie_gallery(
    examples: PieExamples,
    names: dict[int, str],
    *,
    images: np.ndarray | None,
    indices: Sequence[int | None] | None,
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

    Returns
    -------
    str
        An HTML fragment saying how many PIEs are shown of how many.
    """
    total = len(examples)
    if total == 0:
        return f"<p class='muted'>{NO_PIES}</p>"
    order = gallery_order(examples)
    cap = TABLE_CAP if images is None or indices is None else GALLERY_CAP
    shown = order[:cap]
    note = (
        f"<p class='note'>Showing {len(shown)} of {total} PIEs, most confident flips first "
        "(highest candidate vote share, then reference share). "
        "<span class='ok'>green</span>: matches the true label; "
        "<span class='bad'>red</span>: does not.</p>"
    )
    if images is not None and indices is not None:
        cards = []
        for i in shown:
            row = indices[i]
            cards.append(_card(examples[i], names, None if row is None else images[row]))
        return note + "<div class='gallery'>" + "".join(cards) + "</div>"
    head = "<tr><th>id</th><th>true label</th><th>modal reference</th><th>modal candidate</th></tr>"
    rows = "".join(_row(examples[i], names) for i in shown)
    return note + f"<table class='pies'><thead>{head}</thead><tbody>{rows}</tbody></table>"
