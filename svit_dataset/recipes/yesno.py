"""Yes/No questions, told by their answers (paper 5.2).

A QA is a Yes/No QA when its ANSWER starts with the word "yes" or "no" (any case, after leading
punctuation or spaces, followed by a non-word character or the end): "Yes, there is...", "No.",
"yes". The question is not looked at: "Is it red?" answered "It is blue." is not counted, and the
balance recipe only ever drops QAs whose answer says "Yes". "Yesterday..." and "Nobody..." are not
Yes/No answers (word boundary, as in the concept matching).

A QA is a user message and the assistant message after it: messages 2k and 2k+1 of a sample (the
quality gates of the build guarantee user/assistant pairs).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

YES, NO = 1, 2  # answer classes; 0 = neither
_YES_PATTERN = r"^[^\p{L}\p{N}_]*yes(?:[^\p{L}\p{N}_]|$)"
_NO_PATTERN = r"^[^\p{L}\p{N}_]*no(?:[^\p{L}\p{N}_]|$)"


def classify_answers(answers: pa.Array) -> np.ndarray:
    """int8 per answer string: YES, NO or 0."""
    yes = pc.match_substring_regex(answers, _YES_PATTERN, ignore_case=True)
    no = pc.match_substring_regex(answers, _NO_PATTERN, ignore_case=True)
    yes = pc.fill_null(yes, False).to_numpy(zero_copy_only=False)
    no = pc.fill_null(no, False).to_numpy(zero_copy_only=False)
    return (yes * YES + no * NO).astype(np.int8)


def classify_answer(answer: str) -> str | None:
    """'yes', 'no' or None for one answer: the vectorised rule on one string."""
    kind = int(classify_answers(pa.array([answer], pa.string()))[0])
    return {YES: "yes", NO: "no"}.get(kind)


def ratio(yes: int, no: int) -> float | None:
    """Y:N as a number (yes per no); None when there is no "No" answer at all."""
    return yes / no if no else None


def yes_target(no: int, yes_per_no: float) -> int:
    """The most "Yes" answers that keep Y:N at or below `yes_per_no` with `no` "No" answers.

    Y:N = 8 with 50 "No" answers allows exactly 400 "Yes"; a ratio that does not land on an integer
    (Y:N = 2.5 with 3 "No") rounds down, so the reached ratio is never above the target.
    """
    # A small epsilon keeps 8.0 * 50 = 400 from flooring to 399 on float noise.
    return math.floor(yes_per_no * no + 1e-9)


def summary(yes: int, no: int, qas: int) -> dict:
    """The Yes/No numbers a report shows: counts, Y:N, and shares of all QAs."""
    r = ratio(yes, no)
    return {
        "qas": qas,
        "yes": yes,
        "no": no,
        "yes_no_share": round((yes + no) / qas, 4) if qas else 0.0,
        "yes_per_no": round(r, 3) if r is not None else None,
        "yes_share_of_yes_no": round(yes / (yes + no), 4) if yes + no else None,
    }
