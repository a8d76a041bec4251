"""Quality gates: why a released conversation is not turned into a sample, and the build report.

Each gate is a small pure check returning a reason code. Every drop is counted in a `QualityReport`
with a few examples, so nothing is lost silently.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat

from svit_dataset.boxes import all_boxes_valid
from svit_dataset.grounded_text import END_TAG, START_TAG, find_tags, tag_sequence_alternates
from svit_dataset.llava_format import LLAVA_ROLES
from svit_dataset.release import RELEASE_SPEAKERS
from svit_dataset.schema import ASSISTANT, USER

# Reason codes, in the order the gates run. A conversation is dropped for the first that fires.
MALFORMED_RECORD = "malformed_record"
UNKNOWN_SPEAKER = "unknown_speaker"
EMPTY_TURN = "empty_turn"
UNPAIRED_TURNS = "unpaired_turns"
FAILED_GENERATION = "failed_generation"
UNBALANCED_GROUNDING_TAGS = "unbalanced_grounding_tags"
BAD_BOX = "bad_box"
DUPLICATE_SAMPLE = "duplicate_sample"
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"  # the file is there but is not an image (empty, garbage, truncated)

REASONS: tuple[str, ...] = (
    MALFORMED_RECORD,
    UNKNOWN_SPEAKER,
    EMPTY_TURN,
    UNPAIRED_TURNS,
    FAILED_GENERATION,
    UNBALANCED_GROUNDING_TAGS,
    BAD_BOX,
    DUPLICATE_SAMPLE,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
)

# The release's speakers (upstream's user/gpt); LLaVA's human/gpt and chat-style user/assistant mean the same.
SPEAKER_ROLES = {
    **{speaker: role for role, speaker in RELEASE_SPEAKERS.items()},
    **LLAVA_ROLES,
    USER: USER,
    ASSISTANT: ASSISTANT,
}

_KNOWN_SPEAKERS = frozenset(SPEAKER_ROLES)
_USER_SPEAKERS = frozenset(s for s, role in SPEAKER_ROLES.items() if role == USER)
_ASSISTANT_SPEAKERS = frozenset(s for s, role in SPEAKER_ROLES.items() if role == ASSISTANT)

# Failed generations answer the prompt instead of the task (upstream issue #5: "It seems like your
# message is empty..."). Matched on content, so failures beyond upstream's list of ids are caught too.
FAILED_GENERATION_PATTERN = re.compile(
    r"your message (?:is|was|seems) empty"
    r"|you (?:haven't|have not|didn't|did not) (?:provide|include|share)"
    r"|please provide (?:the |some |more )?(?:captions?|objects?|regions?|information|details|image|description)"
    r"|as an ai (?:language )?model"
    r"|i'?m sorry,? but i (?:can'?t|cannot|am unable|don'?t have)",
    re.IGNORECASE,
)
# Every alternative of the pattern contains one of these: a cheap test before the regex.
_FAILED_GENERATION_HINTS = ("empty", "provide", "include", "share", "as an ai", "sorry")


def check_turns(turns: Sequence[tuple[str, str]]) -> str | None:
    """Reason code for a conversation of (speaker, text) turns, or None when it passes.

    `speaker` is the raw label from the file; text has already been type-checked.
    """
    texts = [text for _, text in turns]
    return check_conversation([speaker for speaker, _ in turns], texts, list(map(str.strip, texts)))


def check_conversation(speakers: list[str], texts: list[str], stripped: list[str]) -> str | None:
    """`check_turns` of the turns' speakers and texts, given as the reader holds them (`stripped`: each
    text with `str.strip`, which the reader keeps as the message content).

    This runs on every conversation of a 4M-QA release: per-turn work stays in C (set and map calls),
    and cheap substring tests guard the regexes.
    """
    if not _KNOWN_SPEAKERS.issuperset(speakers):
        return UNKNOWN_SPEAKER
    if not all(stripped):
        return EMPTY_TURN
    if (
        not speakers
        or len(speakers) % 2
        or not _USER_SPEAKERS.issuperset(speakers[0::2])
        or not _ASSISTANT_SPEAKERS.issuperset(speakers[1::2])
    ):
        return UNPAIRED_TURNS
    answers = " ".join(texts[1::2]).lower()
    if any(hint in answers for hint in _FAILED_GENERATION_HINTS) and FAILED_GENERATION_PATTERN.search(
        answers
    ):
        return FAILED_GENERATION
    joined = "\n\n".join(texts)  # no tag or box literal spans a blank line, so one scan serves all turns
    # "<" first: one scan, not two, for the three tasks without grounding tags
    if (
        "<" in joined
        and ("<st>" in joined or "<ed>" in joined)
        and not _tags_balanced_per_turn(joined, texts)
    ):
        return UNBALANCED_GROUNDING_TAGS
    if "[" in joined and not _boxes_valid(joined):
        return BAD_BOX
    return None


# A box as the release writes it: 3 decimals, unsigned, ", " between (a strict subset of BOX_PATTERN).
_RELEASED_NUMBER = r"([01]\.[0-9]{3})"
_RELEASED_BOX = re.compile(
    rf"\[{_RELEASED_NUMBER}, {_RELEASED_NUMBER}, {_RELEASED_NUMBER}, {_RELEASED_NUMBER}\]"
)


def _boxes_valid(text: str) -> bool:
    """`boxes.all_boxes_valid(text)`, quicker on boxes written as released (a third of referring QA's
    gate time went to float() of box numbers)."""
    released = _RELEASED_BOX.findall(text)
    if len(released) != text.count("["):
        return all_boxes_valid(text)
    # Every `[` opens a released box, so BOX_PATTERN would find exactly these; numbers of one fixed
    # width in [0, 2) order as their strings do, so the check needs no float().
    return all(x1 <= x2 <= "1.000" and y1 <= y2 <= "1.000" for x1, y1, x2, y2 in released)


def _tags_balanced_per_turn(joined: str, texts: list[str]) -> bool:
    """`tags_balanced` of every turn, in one scan: the tags of all turns alternate and each turn holds as
    many `<st>` as `<ed>`, so each turn's tags are a whole run of pairs of the alternating sequence."""
    return tag_sequence_alternates(find_tags(joined)) and list(
        map(str.count, texts, repeat(START_TAG))
    ) == list(map(str.count, texts, repeat(END_TAG)))  # the per-turn counts in C


@dataclasses.dataclass
class QualityReport:
    """Counts of kept and dropped samples for one (config, split), with a few examples per reason."""

    kept: int = 0
    excluded: int = 0  # left out on purpose (e.g. held-out images of an export), not a defect
    dropped: Counter = dataclasses.field(default_factory=Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    max_examples: int = 5

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(where)

    @property
    def seen(self) -> int:
        return self.kept + sum(self.dropped.values())

    def to_dict(self) -> dict:
        return {
            "seen": self.seen,
            "kept": self.kept,
            **({"excluded": self.excluded} if self.excluded else {}),
            "dropped": dict(sorted(self.dropped.items())),
            "examples": {k: v for k, v in sorted(self.examples.items())},
        }


def format_report_table(reports: Iterable[tuple[str, str, dict]]) -> str:
    """A plain-text table of (config, split, report dict) rows for the console."""
    rows = [("config", "split", "seen", "kept", "dropped (reason: n)")]
    for config, split, rep in reports:
        dropped = ", ".join(f"{k}: {v}" for k, v in rep["dropped"].items()) or "-"
        rows.append((config, split, str(rep["seen"]), str(rep["kept"]), dropped))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    return "\n".join(lines)
