"""Checks on a parsed response before it is kept (paper section 3.3, plus grounded-box checks).

- Failed generations: the model answered the prompt instead of the task ("It seems like your
  message is empty..."); the pattern is the quality gates' own.
- Source mentions: text that says where its facts came from ("according to the captions", "the
  bounding box", "region descriptions"...). The paper found these by keywords and regenerated them.
- Referring QAs (beyond the paper): tags balanced; every `<st>phrase<ed>` carries at least one box;
  every pair refers to at least one box (the prompt asks it); every box is valid and overlaps some
  object or region box that the prompt showed with IoU >= `iou_threshold`. An invented box fails.

Each check returns a reason code and a short detail, or None; `judge_response` runs them all, with
the parser's shape check, in a fixed order. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from svit_dataset.boxes import BOX_PATTERN, Box, format_box, iou, is_valid_box
from svit_dataset.generation.annotations import Scene
from svit_dataset.generation.parse import ParsedResponse, check_shape, parse_response
from svit_dataset.grounded_text import tags_balanced
from svit_dataset.quality import FAILED_GENERATION_PATTERN
from svit_dataset.schema import REFERRING_QA

TRUNCATED = "truncated"
FAILED_GENERATION = "failed_generation"
SOURCE_MENTION = "source_mention"
UNBALANCED_TAGS = "unbalanced_grounding_tags"
UNGROUNDED = "ungrounded_pair"
BAD_BOX = "bad_box"
BOX_MATCHES_NOTHING = "box_matches_nothing"

DEFAULT_IOU_THRESHOLD = 0.5

# `<st>phrase<ed>` not followed by a box (the grounding format allows one space before `[`).
# The phrase stops at the next `<st>` too (nesting is the tag check's business), so each `<st>` scans only
# up to the next one: linear time on a reply made of unclosed tags.
_PHRASE_WITHOUT_BOX = re.compile(r"<st>((?:[^<\n]|<(?!st>|ed>))*)<ed>(?!\s?\[)")

# Words that give the source away. "description" alone is too common in real answers ("the
# description on the sign"), so it counts only with a word that points at the input. Matched on
# lower-cased text without re.IGNORECASE, and only after a cheap keyword scan: the case-blind
# alternation costs ~0.5 ms a response, more than everything else the client does (bench/generate.py).
SOURCE_MENTION_PATTERN = re.compile(
    r"\bcaptions?\b"
    r"|\bbounding[- ]box(?:es)?\b"
    r"|\bregion descriptions?\b"
    r"|\b(?:given|provided|above|these|those|the image'?s?) (?:descriptions?|annotations?|coordinates|information|data)\b"
    r"|\b(?:based on|according to|from|in) the (?:descriptions?|annotations?|(?:listed |given )?objects list|provided \w+)\b"
    r'|"(?:captions|objects|regions)"'
)
_SOURCE_KEYWORDS = re.compile(
    r"caption|bounding|descript|annotation|coordinates|information|data|objects|provided|\""
)
# The quality gates' pattern (one home), run the same fast way: its text is all lower case.
_FAILED_GENERATION_LOWER = re.compile(FAILED_GENERATION_PATTERN.pattern)


def find_failed_generation(text: str) -> str | None:
    match = _FAILED_GENERATION_LOWER.search(text.lower())
    return match.group(0) if match else None


def find_source_mention(parsed: ParsedResponse) -> str | None:
    """The first source-giving phrase in any question, answer or topic, or None."""
    texts = [t for c in parsed.conversations for t in (c.topic, *(x for pair in c.pairs for x in pair))]
    text = "\n".join(texts).lower()  # one pass: this runs on every response
    match = SOURCE_MENTION_PATTERN.search(text) if _SOURCE_KEYWORDS.search(text) else None
    return match.group(0) if match else None


def reference_boxes(scene: Scene) -> list[Box]:
    """The boxes a referring answer may cite: every object and region box shown in the prompt."""
    return [box for _, box in scene.objects] + [box for _, box in scene.regions]


def best_iou(box: Sequence[float], references: Sequence[Box]) -> float:
    return max((iou(box, ref) for ref in references), default=0.0)


def check_grounding(parsed: ParsedResponse, scene: Scene, iou_threshold: float) -> tuple[str, str] | None:
    """(reason, detail) for the first grounding fault of a referring response, or None."""
    references = reference_boxes(scene)
    # Models mostly copy boxes from the prompt verbatim: a literal the prompt showed is IoU 1 with
    # a shown box, so it needs neither parsing nor a search (this runs on every referring response).
    shown = {format_box(box) for box in references}
    for conversation in parsed.conversations:
        for k, (question, answer) in enumerate(conversation.pairs):
            pair_boxes = 0
            for text in (question, answer):
                if not tags_balanced(text):
                    return UNBALANCED_TAGS, f"pair {k}: {text[:80]!r}"
                bare = _PHRASE_WITHOUT_BOX.search(text)
                if bare:
                    return UNGROUNDED, f"pair {k}: <st>{bare.group(1)}<ed> has no box"
                for match in BOX_PATTERN.finditer(text):
                    pair_boxes += 1
                    if match.group(0) in shown:
                        continue
                    box = tuple(float(v) for v in match.groups())
                    if not is_valid_box(box):
                        return BAD_BOX, f"pair {k}: {list(box)}"
                    score = best_iou(box, references)
                    if score < iou_threshold:
                        return BOX_MATCHES_NOTHING, f"pair {k}: {list(box)} (best IoU {score:.2f})"
            if pair_boxes == 0:
                return UNGROUNDED, f"pair {k} refers to no object"
    return None


def judge_response(
    task: str, text: str, finish_reason: str, scene: Scene, iou_threshold: float
) -> tuple[str | None, str, ParsedResponse | None]:
    """(reason, detail, None) why a response must be regenerated, or (None, "", the shaped response).

    Order: cut off by the token limit, failed generation, wrong shape (too few pairs, empty
    turns), source mention, grounding. The first that fires is the reason.
    """
    if finish_reason == "length":
        return TRUNCATED, "the response hit the max-tokens limit", None
    failed = find_failed_generation(text)
    if failed:
        return FAILED_GENERATION, failed, None
    parsed = parse_response(task, text)
    problem, shaped = check_shape(task, parsed)
    if problem:
        shape = f"{parsed.pairs} pair(s) in {len(parsed.conversations)} conversation(s), {parsed.stray} stray label(s)"
        return problem, shape, None
    mention = find_source_mention(shaped)
    if mention:
        return SOURCE_MENTION, mention, None
    if task == REFERRING_QA:
        fault = check_grounding(shaped, scene, iou_threshold)
        if fault:
            return fault[0], fault[1], None
    return None, "", shaped
