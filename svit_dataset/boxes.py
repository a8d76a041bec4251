"""The one home of box arithmetic.

Convention, the same in every svit module and file (ARCHITECTURE.md, at the root of svit's repository): a box
is `[x1, y1, x2, y2]`, floats in [0, 1], normalized to the ORIGINAL image, top-left and bottom-right corners,
written with 3 decimals in canonical output.

LLaVA-1.5 pads every image to a square of side max(w, h), centred (`expand2square`), so a model
trained on LLaVA-1.5 data sees boxes in that padded frame. Only this module converts between the
two frames; the processor and the LLaVA-1.5 export both call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import chain

Box = tuple[float, float, float, float]

# THE box syntax, for every reader of boxes in text: the quality gate, the LLaVA-1.5 export, the
# grounded-text parser, the processor and the generation checks. A number is what Python's float()
# reads, without its words: signed, leading or trailing dot, exponent (`.1`, `1.`, `1e-1`).
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# A box literal: four numbers, spaces optional around the commas and brackets.
BOX_PATTERN = re.compile(rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
# What a writer of boxes meant as one: a bracketed list of three to five number-like items (a box with a
# number missing or one too many), or a list of two or more holding the words float() reads (nan, inf,
# infinity). Each must be a BOX_PATTERN match of a valid box; one that is not (`[nan, ...]`, `[inf, ...]`,
# three or five numbers) makes the text's boxes bad. A bracketed number or pair (`[1]`, a reference mark;
# `[0.45, 0.30]`, a point) is no box.
_NUMBER_LIKE = rf"(?:{_NUMBER}|[-+]?(?:nan|inf(?:inity)?))"
_NOT_FINITE = r"[-+]?(?:nan|inf(?:inity)?)"
BOX_LIKE_PATTERN = re.compile(
    rf"\[\s*{_NUMBER_LIKE}(?:\s*,\s*{_NUMBER_LIKE}){{2,4}}\s*\]"
    rf"|\[\s*(?:{_NUMBER}\s*,\s*)*{_NOT_FINITE}(?:\s*,\s*{_NUMBER_LIKE})*\s*\]",
    re.IGNORECASE,
)


def format_box(box: Sequence[float], decimals: int = 3) -> str:
    """Canonical text of a box: `[0.125, 0.300, 0.450, 0.812]`."""
    return "[" + ", ".join(f"{v:.{decimals}f}" for v in box) + "]"


def parse_box(text: str) -> Box:
    """Parse one box literal; raises ValueError when `text` is not one."""
    match = BOX_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a box literal: {text!r}; expected '[x1, y1, x2, y2]'")
    return tuple(float(v) for v in match.groups())  # type: ignore[return-value]


def find_boxes(text: str) -> list[Box]:
    """Every box literal in `text`, in order."""
    return [tuple(float(v) for v in m.groups()) for m in BOX_PATTERN.finditer(text)]  # type: ignore[misc]


def is_valid_box(box: Sequence[float]) -> bool:
    """Inside [0, 1] with ordered corners (a zero-width box is allowed: it happens at 3 decimals)."""
    x1, y1, x2, y2 = box
    return 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0


def all_boxes_valid(text: str) -> bool:
    """Whether every box-like list in `text` (BOX_LIKE_PATTERN) is a box literal of a valid box (see
    `is_valid_box`): NaN, infinities and a wrong count of numbers are not. The quality gates' hot path."""
    literals = BOX_PATTERN.findall(text)
    if len(literals) != len(BOX_LIKE_PATTERN.findall(text)):
        return False  # every literal is box-like, so some box-like list is not a literal
    numbers = iter(list(map(float, chain.from_iterable(literals))))
    # zip of one iterator four times: the boxes' (x1, y1, x2, y2), without a Python call per number
    return all(
        0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0
        for x1, y1, x2, y2 in zip(*[numbers] * 4, strict=False)
    )


def clamp_box(box: Sequence[float]) -> Box:
    """Clamp to [0, 1] and order the corners."""
    x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def to_pixels(box: Sequence[float], width: int, height: int) -> Box:
    """Normalized box to pixel coordinates of a `width` x `height` image (floats, unrounded)."""
    x1, y1, x2, y2 = box
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def from_pixels(box: Sequence[float], width: int, height: int) -> Box:
    """Pixel box to normalized coordinates of a `width` x `height` image."""
    x1, y1, x2, y2 = box
    return (x1 / width, y1 / height, x2 / width, y2 / height)


def xywh_to_xyxy(x: float, y: float, w: float, h: float) -> Box:
    """Visual Genome / COCO `x, y, w, h` to corners."""
    return (x, y, x + w, y + h)


def square_padding(width: int, height: int) -> tuple[int, int, int]:
    """(side, left, top) of LLaVA-1.5's centred padded square; integer offsets as in `expand2square`."""
    side = max(width, height)
    return side, (side - width) // 2, (side - height) // 2


def to_padded_square(box: Sequence[float], width: int, height: int) -> Box:
    """Original-image box to LLaVA-1.5's padded-square frame (exact floats, no rounding)."""
    side, left, top = square_padding(width, height)
    x1, y1, x2, y2 = to_pixels(box, width, height)
    return ((x1 + left) / side, (y1 + top) / side, (x2 + left) / side, (y2 + top) / side)


def from_padded_square(box: Sequence[float], width: int, height: int) -> Box:
    """Padded-square box back to the original-image frame: the inverse of `to_padded_square`."""
    side, left, top = square_padding(width, height)
    x1, y1, x2, y2 = (v * side for v in box)
    return from_pixels((x1 - left, y1 - top, x2 - left, y2 - top), width, height)


def upstream_expand_to_square(box: Sequence[float], width: int, height: int) -> list[float]:
    """Upstream's conversion of one box, bit for bit: pixels by Python `round`, integer offset, 3 decimals.

    Rounding to whole pixels first is upstream's choice; keeping it makes our LLaVA-1.5 export equal
    to the released SVIT-mix-665K.
    """
    return list(_upstream_square_converter(width, height)(*box))


def _upstream_square_converter(width: int, height: int):
    """(x1, y1, x2, y2) -> upstream's padded-square box, for one image size (set up once per text)."""
    side = max(width, height)
    dx = (height - width) // 2 if height > width else 0
    dy = (width - height) // 2 if width > height else 0

    def convert(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
        return (
            round((round(x1 * width) + dx) / side, 3),
            round((round(y1 * height) + dy) / side, 3),
            round((round(x2 * width) + dx) / side, 3),
            round((round(y2 * height) + dy) / side, 3),
        )

    return convert


def upstream_expand_to_square_text(text: str, width: int, height: int) -> str:
    """Rewrite every box literal in `text` into the padded frame with upstream's arithmetic, written as
    Python's `str(list)`.

    Upstream's own regex (`\\[[0-9.]+, [0-9.]+, [0-9.]+, [0-9.]+\\]`) wants exactly ", " and no
    exponent, so it left `[0.1,0.2,0.3,0.4]` or `[1e-1, ...]` in the original frame while moving
    `[.1, .2, .3, .4]`: a box the model then learns in the wrong frame. Every BOX_PATTERN literal is
    moved here; on boxes written as released (", ", 3 decimals) the two agree bit for bit.
    """
    if "[" not in text:
        return text
    to_square = _upstream_square_converter(width, height)

    def rewrite(match: re.Match[str]) -> str:
        box = tuple(map(float, match.groups()))
        if not all(map(math.isfinite, box)):  # `1e999`: no pixel to round; the gate drops such text
            return match.group(0)
        a, b, c, d = to_square(*box)
        return f"[{a!r}, {b!r}, {c!r}, {d!r}]"  # str(list) of floats: Python's shortest repr

    return BOX_PATTERN.sub(rewrite, text)


def normalize_xywh(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """A Visual Genome / COCO pixel box (`x, y, w, h`) as a normalized `[x1, y1, x2, y2]`, clamped to the image."""
    return clamp_box(from_pixels(xywh_to_xyxy(x, y, w, h), width, height))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two `[x1, y1, x2, y2]` boxes in the same frame (0 when both are empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_as_written(predicted: Sequence[float], reference: Sequence[float]) -> float:
    """IoU of a predicted box taken as written, corners unordered and unclipped, as lmms-eval's RefCOCO task
    and the papers' scripts score it: a box with swapped corners has no intersection (0), a box reaching past
    the image keeps its area. `reference` is a valid box; 0 when the union is not positive (where lmms-eval
    divides by zero)."""
    ix = max(0.0, min(predicted[2], reference[2]) - max(predicted[0], reference[0]))
    iy = max(0.0, min(predicted[3], reference[3]) - max(predicted[1], reference[1]))
    inter = ix * iy
    area_p = (predicted[2] - predicted[0]) * (predicted[3] - predicted[1])
    area_r = (reference[2] - reference[0]) * (reference[3] - reference[1])
    union = area_p + area_r - inter
    return inter / union if union > 0 else 0.0


def move_boxes_in_text(
    text: str, width: int, height: int, *, to_padded: bool, decimals: int = 3
) -> tuple[str, list[tuple[tuple[int, int], tuple[int, int]]]]:
    """Rewrite every box literal of `text` into LLaVA-1.5's padded square (`to_padded`) or back out of it.

    Exact arithmetic (`to_padded_square` / `from_padded_square`), written with `decimals` decimals. Returns
    the new text and, for each box, its `(start, end)` span in `text` and in the new text: callers that
    hold character offsets into `text` (an assistant mask, say) shift them with it.
    """
    convert = to_padded_square if to_padded else from_padded_square
    pieces: list[str] = []
    spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
    last = gained = 0
    for match in BOX_PATTERN.finditer(text):
        start, end = match.span()
        box = convert(tuple(float(v) for v in match.groups()), width, height)
        written = format_box(box, decimals)
        pieces += [text[last:start], written]
        spans.append(((start, end), (start + gained, start + gained + len(written))))
        gained += len(written) - (end - start)
        last = end
    pieces.append(text[last:])
    return "".join(pieces), spans
