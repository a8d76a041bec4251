"""Grounded text: `<st>phrase<ed> [x1, y1, x2, y2]`, several boxes separated by `, `.

Pure text functions used by the quality gates, the LLaVA-1.5 export and the processor. Box numbers
are handled by `svit_dataset.boxes`.
"""

from __future__ import annotations

import re

from svit_dataset.boxes import BOX_PATTERN, Box

START_TAG = "<st>"
END_TAG = "<ed>"

_TAG = re.compile(r"<st>|<ed>")
# A phrase and the boxes right after it; a space before `[` is optional (the paper's figure has none).
GROUNDED_PATTERN = re.compile(
    r"<st>(?P<phrase>.*?)<ed>\s?(?P<boxes>"
    + BOX_PATTERN.pattern
    + r"(?:\s*,\s*"
    + BOX_PATTERN.pattern
    + r")*)?"
)


def tags_balanced(text: str) -> bool:
    """`<st>` and `<ed>` alternate, starting with `<st>` and ending with `<ed>` (no nesting)."""
    expected = START_TAG
    for match in _TAG.finditer(text):
        if match.group(0) != expected:
            return False
        expected = END_TAG if expected == START_TAG else START_TAG
    return expected == START_TAG


def strip_tags(text: str) -> str:
    """Remove `<st>`/`<ed>`, keeping phrases and boxes: the LLaVA-1.5 form."""
    return _TAG.sub("", text)


def grounded_phrases(text: str) -> list[tuple[str, list[Box]]]:
    """(phrase, boxes) for every `<st>phrase<ed>` in well-formed text; boxes may be empty."""
    out = []
    for match in GROUNDED_PATTERN.finditer(text):
        boxes_text = match.group("boxes") or ""
        boxes = [tuple(float(v) for v in m.groups()) for m in BOX_PATTERN.finditer(boxes_text)]
        out.append((match.group("phrase"), boxes))
    return out
