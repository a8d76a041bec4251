"""The grounded-text format: `<st>phrase<ed> [x1, y1, x2, y2]`, several boxes separated by `, `.

Pure text functions used by the quality gates, the LLaVA-1.5 export and the processor. Box numbers
are handled by `svit_dataset.boxes`. (Grounding as a benchmark and as a metric, which score answers in
this format, are `svit_model.evaluation`'s.)
"""

from __future__ import annotations

import re

from svit_dataset.boxes import BOX_PATTERN, Box

START_TAG = "<st>"
END_TAG = "<ed>"

_TAG = re.compile(r"<st>|<ed>")


def tags_balanced(text: str) -> bool:
    """`<st>` and `<ed>` alternate, starting with `<st>` and ending with `<ed>` (no nesting)."""
    return tag_sequence_alternates(_TAG.findall(text))


def tag_sequence_alternates(tags: list[str]) -> bool:
    """`tags` is `<st>`, `<ed>`, `<st>`, `<ed>`, ... (counted in C: this runs on every referring QA)."""
    half, odd = divmod(len(tags), 2)
    return not odd and tags[0::2].count(START_TAG) == half and tags[1::2].count(END_TAG) == half


def find_tags(text: str) -> list[str]:
    return _TAG.findall(text)


def strip_tags(text: str) -> str:
    """Remove `<st>`/`<ed>`, keeping phrases and boxes: the LLaVA-1.5 form."""
    return _TAG.sub("", text)


# --- Tolerant parsing of model output -----------------------------------------------------------------------

# One or more boxes; consecutive boxes are separated by a comma, or by spaces alone. Every part is
# unambiguous (no two adjacent `\s*`, no leading `\s*`), so a scan is linear in the text's length even on
# long runs of whitespace: model output is untrusted input. The whitespace before the boxes goes with
# them when they leave the text; the parser strips it from the text before them.
_BOX_GROUP = re.compile(BOX_PATTERN.pattern + r"(?:\s*(?:,\s*)?" + BOX_PATTERN.pattern + r")*")
_GROUNDING_EVENT = re.compile(r"(?P<tag><st>|<ed>)|(?P<boxes>" + _BOX_GROUP.pattern + r")")

Span = tuple[int, int]


class GroundedEntity(tuple):
    """`(phrase, (start, end), boxes)`: one grounded entity, the shape of Kosmos-2's `post_process_generation`.

    A plain 3-tuple for unpacking and equality; `clamped` is True when a box of it was written out of range
    or with swapped corners and was repaired.
    """

    def __new__(cls, phrase: str, span: Span, boxes: list[Box], clamped: bool = False):
        entity = super().__new__(cls, (phrase, tuple(span), list(boxes)))
        entity.clamped = clamped
        return entity

    @property
    def phrase(self) -> str:
        return self[0]

    @property
    def span(self) -> Span:
        return self[1]

    @property
    def boxes(self) -> list[Box]:
        return self[2]

    def __reduce__(self):
        return (type(self), (*self, self.clamped))

    def __repr__(self) -> str:
        flag = ", clamped=True" if self.clamped else ""
        return f"GroundedEntity({self[0]!r}, {self[1]!r}, {self[2]!r}{flag})"


def _stripped_span(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def parse_grounded_text(text: str) -> tuple[str, list[tuple[str, Span, list[Box]]]]:
    """`(clean_text, [(phrase, (start, end), boxes), ...])` of grounded text as models really write it.

    `clean_text` is `text` without `<st>`/`<ed>` and without the boxes (and the whitespace before them);
    spans index `clean_text`; boxes are the numbers as written (no clamping, no frame change). Rules, in the
    order text is read:

    - `<st>phrase<ed>` followed by boxes (a space or none before `[`, several boxes): one entity; with no
      boxes right after `<ed>`, an entity with an empty box list.
    - `<st>phrase` followed by boxes without `<ed>`: the boxes close the phrase.
    - A second `<st>` before `<ed>` (nesting): the inner one starts the phrase, the outer one is dropped.
      An `<st>` never closed, and an `<ed>` never opened, are dropped (their text stays).
    - Boxes attached to no phrase: an entity with phrase `""` and an empty span where the boxes were.
    - Bracketed text that is not four numbers stays in the clean text as is.
    """
    pieces: list[str] = []
    length = 0
    found: list[tuple[Span, list[Box]]] = []
    open_at: int | None = None  # clean-text offset of an `<st>` not yet closed
    closed: Span | None = None  # a phrase closed by `<ed>`, waiting for boxes

    def flush_closed() -> None:
        nonlocal closed
        if closed is not None:
            found.append((closed, []))
            closed = None

    last = 0
    for match in _GROUNDING_EVENT.finditer(text):
        plain = text[last : match.start()]
        if match.group("boxes") is not None:
            plain = plain.rstrip()
        if plain:
            flush_closed()
            pieces.append(plain)
            length += len(plain)
        last = match.end()
        if match.group("tag") == START_TAG:
            flush_closed()
            open_at = length
        elif match.group("tag") == END_TAG:
            flush_closed()
            if open_at is not None:
                closed, open_at = (open_at, length), None
        else:
            boxes = [tuple(float(v) for v in m.groups()) for m in BOX_PATTERN.finditer(match.group("boxes"))]
            if closed is not None:
                found.append((closed, boxes))
                closed = None
            elif open_at is not None:
                found.append(((open_at, length), boxes))
                open_at = None
            else:
                found.append(((length, length), boxes))
    flush_closed()
    pieces.append(text[last:])
    clean = "".join(pieces)
    entities = []
    for (start, end), boxes in found:
        start, end = _stripped_span(clean, start, end)
        entities.append((clean[start:end], (start, end), boxes))
    return clean, entities  # type: ignore[return-value]
