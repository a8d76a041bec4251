"""Every parser of untrusted text runs in linear time: model output and generated replies are input.

Each parser meets adversarial shapes (runs of every kind of whitespace, unclosed tags, brackets,
digits, stars) at 64 KB, then at 1 MB, within a budget per character. A quadratic parser takes
seconds at 64 KB and minutes at 1 MB, so the small size fails it fast; one that passes at 64 KB within a
sixteenth of the budget still fails at 1 MB, where its time per character is 16 times larger.
"""

import time

import pytest

from svit_dataset.boxes import all_boxes_valid, find_boxes, move_boxes_in_text, upstream_expand_to_square_text
from svit_dataset.generation.annotations import Scene
from svit_dataset.generation.parse import parse_conversations, parse_detail, parse_pairs
from svit_dataset.generation.verify import judge_response
from svit_dataset.grounded_text import parse_grounded_text, strip_tags, tags_balanced
from svit_dataset.quality import check_turns
from svit_dataset.schema import CONVERSATION, REFERRING_QA
from svit_dataset.secrets import redact

SCENE = Scene(1, 640, 480, "VG_100K/1.jpg", objects=(("ball", (0.1, 0.2, 0.3, 0.4)),))

PARSERS = {
    "parse_grounded_text": parse_grounded_text,
    "tags_balanced": tags_balanced,
    "strip_tags": strip_tags,
    "find_boxes": find_boxes,
    "all_boxes_valid": all_boxes_valid,
    "upstream_expand_to_square_text": lambda t: upstream_expand_to_square_text(t, 640, 480),
    "move_boxes_in_text": lambda t: move_boxes_in_text(t, 640, 480, to_padded=True),
    "check_turns": lambda t: check_turns([("user", "Where?"), ("gpt", t)]),
    "parse_pairs": parse_pairs,
    "parse_conversations": parse_conversations,
    "parse_detail": parse_detail,
    "judge_referring": lambda t: judge_response(REFERRING_QA, t, "stop", SCENE, 0.5),
    "judge_conversation": lambda t: judge_response(CONVERSATION, t, "stop", SCENE, 0.5),
    "redact": redact,  # every log record passes through it
}

# Repeated units (and a prefix) that make backtracking regexes and naive loops go quadratic.
SHAPES = {
    "spaces": ("x", " "),
    "tabs_newlines": ("", " \t\n"),
    "unicode_spaces": ("a", "\u00a0\u2003\u3000"),
    "spaces_after_box": ("<st>a<ed> [0.1, 0.2, 0.3, 0.4]", " "),
    "spaces_after_tag": ("<st>a<ed>", " "),
    "unclosed_st": ("", "<st>"),
    "unclosed_st_words": ("", "<st>a "),
    "stray_ed": ("", "<ed>"),
    "open_brackets": ("", "["),
    "box_prefixes": ("", "[0.1, "),
    "digits_after_bracket": ("[", "1"),
    "dots_after_bracket": ("[1", "."),
    "number_list": ("[", "0.1, "),  # box-like lists: one unclosed list of numbers
    "nan_list": ("[", "nan,"),
    "leading_dots": ("[", ".1"),
    "exponents": ("[1", "e1"),
    "boxes_no_phrase": ("", "[0.1, 0.2, 0.3, 0.4] "),
    "boxes_comma_spaces": ("<st>a<ed> [0.1, 0.2, 0.3, 0.4]", " , "),
    "stars": ("", "*"),
    "dashes_then_spaces": ("- ", " "),
    "label_then_spaces": ("Question", " "),
    "many_labels": ("", "User: "),
    "star_lines": ("", "**\n"),
    "detail_spaces": ("Description", " \t"),
    "letters": ("", "a"),
    "schemes": ("", "a://"),
    "query_keys": ("x?", "key=1&"),
}

SMALL, LARGE = 64 * 1024, 1024 * 1024
BUDGET_S_PER_CHAR = 3e-6  # 3 s for 1 MB; linear parsers here take well under a tenth of that


def make_text(shape: str, size: int) -> str:
    prefix, unit = SHAPES[shape]
    return (prefix + unit * (size // len(unit) + 1))[:size]


def seconds(parser, text: str) -> float:
    """CPU seconds of this process: what other processes on the machine run (a second pytest-xdist worker, the
    notebooks' kernels) does not count against the budget."""
    started = time.process_time()
    parser(text)
    return time.process_time() - started


@pytest.mark.timeout(180)  # a quadratic parser hangs at 64 KB: fail, do not wait
@pytest.mark.parametrize("parser_name", list(PARSERS))
def test_parser_is_linear_on_adversarial_text(parser_name):
    parser = PARSERS[parser_name]
    slow = {}
    for shape in SHAPES:
        took = seconds(parser, make_text(shape, SMALL))
        if took > BUDGET_S_PER_CHAR * SMALL:
            slow[shape] = f"{took:.2f}s for 64 KB"
    assert not slow, f"{parser_name} is not linear: {slow}"
    for shape in SHAPES:
        took = seconds(parser, make_text(shape, LARGE))
        if took > BUDGET_S_PER_CHAR * LARGE:
            slow[shape] = f"{took:.2f}s for 1 MB ({took / LARGE * 1e6:.2f} us/char)"
    assert not slow, f"{parser_name} over budget: {slow}"


def test_whitespace_before_boxes_still_leaves_the_text():
    clean, entities = parse_grounded_text(
        "The <st>ball<ed>  \t[0.1, 0.2, 0.3, 0.4] and  [0.5, 0.5, 0.6, 0.6] here."
    )
    assert clean == "The ball and here."
    assert entities == [("ball", (4, 8), [(0.1, 0.2, 0.3, 0.4)]), ("", (12, 12), [(0.5, 0.5, 0.6, 0.6)])]
