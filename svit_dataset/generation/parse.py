"""Parse LLM responses in the paper's formats and check their shape.

- Conversation: `Topic: ...` then `User: ...` / `GPT: ...` turns, three times (Figure 2). A
  `Conversation 2` header line also starts a new conversation.
- Complex reasoning and referring QAs: `Question: ...` / `Answer: ...` pairs (Figures 7, 8).
- Detail description: the whole text.

Labels are found at the start of a line, tolerating what models add around them: list numbers and
bullets, markdown emphasis or headings, and a number after the label ("Question 3:"). A turn runs
until the next label, so multi-line answers stay whole. Pure functions; no I/O.
"""

from __future__ import annotations

import dataclasses
import re

from svit_dataset.generation.prompts import EXPECTED_SHAPE
from svit_dataset.schema import CONVERSATION, DETAIL_DESCRIPTION

# Labels as models write them: "Question 3:", "**User:**", "- Answer:", "1. GPT:". Every repetition and
# whitespace run is bounded: unbounded adjacent runs (`[ \t]*` next to `\**[ \t]*`) backtrack
# quadratically on long runs of spaces or stars, and replies are untrusted input.
_SP = r"[ \t]{0,16}"
_LABEL = re.compile(
    rf"^{_SP}(?:[-*#>]{{1,8}}{_SP}|\d{{1,4}}[.)]{_SP}){{0,4}}\*{{0,4}}{_SP}"
    rf"(?P<label>topic|user|gpt|question|answer)(?:{_SP}\d{{1,4}})?{_SP}\*{{0,4}}{_SP}:{_SP}\*{{0,4}}{_SP}",
    re.IGNORECASE | re.MULTILINE,
)
_CONVERSATION_HEADER = re.compile(
    rf"^{_SP}[#*]{{0,8}}{_SP}(?:[Cc]onversation|CONVERSATION){_SP}\d+.*$", re.MULTILINE
)
_DETAIL_LABEL = re.compile(
    rf"^{_SP}\*{{0,4}}{_SP}(?:detail(?:ed)? )?description{_SP}\*{{0,4}}{_SP}:{_SP}\*{{0,4}}{_SP}",
    re.IGNORECASE,
)

# Parse problems: why a response cannot be used as it is.
MALFORMED = "malformed"
TOO_FEW_PAIRS = "too_few_pairs"


@dataclasses.dataclass
class Conversation:
    topic: str
    pairs: list[tuple[str, str]]


@dataclasses.dataclass
class ParsedResponse:
    conversations: list[Conversation]
    stray: int = 0  # labels out of order (an answer without a question...), dropped

    @property
    def pairs(self) -> int:
        return sum(len(c.pairs) for c in self.conversations)


def _clean(text: str) -> str:
    return text.strip().rstrip("*").rstrip()


def _segments(text: str) -> list[tuple[str, str]]:
    """(label, text) for every labelled segment; `conversation` marks a header line."""
    marks = [(m.start(), m.end(), m.group("label").lower()) for m in _LABEL.finditer(text)]
    if "onversation" in text or "ONVERSATION" in text:
        marks += [(m.start(), m.end(), "conversation") for m in _CONVERSATION_HEADER.finditer(text)]
        marks.sort()
    out = []
    for k, (_, end, label) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(text)
        out.append((label, _clean(text[end:stop]) if label != "conversation" else ""))
    return out


def parse_pairs(text: str, question: str = "question", answer: str = "answer") -> ParsedResponse:
    """`Question:`/`Answer:` pairs as one conversation (no topic)."""
    conversation = Conversation("", [])
    parsed = ParsedResponse([conversation])
    pending: str | None = None
    for label, body in _segments(text):
        if label == question:
            parsed.stray += pending is not None
            pending = body
        elif label == answer and pending is not None:
            conversation.pairs.append((pending, body))
            pending = None
        elif label in (answer, question):
            parsed.stray += 1
    parsed.stray += pending is not None
    return parsed


def parse_conversations(text: str) -> ParsedResponse:
    """`Topic:` + `User:`/`GPT:` conversations; a topic line or a `Conversation N` header starts one."""
    parsed = ParsedResponse([])
    current: Conversation | None = None
    pending: str | None = None
    for label, body in _segments(text):
        if label in ("topic", "conversation"):
            parsed.stray += pending is not None
            pending = None
            if current is not None and not current.pairs and label == "topic":
                current.topic = body  # "Conversation 1:" then "Topic: ..." is one conversation
                continue
            current = Conversation(body if label == "topic" else "", [])
            parsed.conversations.append(current)
        elif label == "user":
            parsed.stray += pending is not None
            pending = body
        elif label == "gpt" and pending is not None:
            if current is None:
                current = Conversation("", [])
                parsed.conversations.append(current)
            current.pairs.append((pending, body))
            pending = None
        elif label in ("gpt", "question", "answer"):
            parsed.stray += 1
    parsed.stray += pending is not None
    parsed.conversations = [c for c in parsed.conversations if c.pairs]
    return parsed


def parse_detail(text: str) -> ParsedResponse:
    description = _DETAIL_LABEL.sub("", text.strip(), count=1).strip()
    return ParsedResponse([Conversation("", [("", description)] if description else [])])


def parse_response(task: str, text: str) -> ParsedResponse:
    if task == CONVERSATION:
        return parse_conversations(text)
    if task == DETAIL_DESCRIPTION:
        return parse_detail(text)
    return parse_pairs(text)


def check_shape(task: str, parsed: ParsedResponse) -> tuple[str | None, ParsedResponse]:
    """(problem or None, the response cut to the asked shape: 3x5, 15, 10 or 1).

    Fewer conversations or pairs than asked is `too_few_pairs` (the paper regenerates those); more
    are cut to the asked number, first ones kept. Any empty turn is `malformed`.
    """
    n_conversations, n_pairs = EXPECTED_SHAPE[task]
    usable = [c for c in parsed.conversations if len(c.pairs) >= n_pairs]
    if len(usable) < n_conversations:
        return TOO_FEW_PAIRS, parsed
    shaped = ParsedResponse(
        [Conversation(c.topic, c.pairs[:n_pairs]) for c in usable[:n_conversations]], parsed.stray
    )
    for conversation in shaped.conversations:
        for question, answer in conversation.pairs:
            if not answer or (task != DETAIL_DESCRIPTION and not question):
                return MALFORMED, parsed
    return None, shaped
