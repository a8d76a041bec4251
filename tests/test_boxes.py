"""Box arithmetic: the padded-square frame and upstream's expand_to_square, on hand-computed cases."""

import pytest

from svit_dataset.boxes import (
    all_boxes_valid,
    find_boxes,
    format_box,
    from_padded_square,
    is_valid_box,
    parse_box,
    to_padded_square,
    upstream_expand_to_square,
    upstream_expand_to_square_text,
)

# (box, width, height, expected): computed by hand with upstream's rule: pixels by Python round()
# (banker's rounding at .5), add (long - short) // 2 to the short axis, divide by the long side,
# round to 3 decimals.
UPSTREAM_CASES = [
    # w > h: 640x480, shift 80 on y. y1 = round(96) + 80 = 176 -> 0.275
    ([0.1, 0.2, 0.3, 0.4], 640, 480, [0.1, 0.275, 0.3, 0.425]),
    # h > w: 480x640, shift 80 on x. x1 = 48 + 80 = 128 -> 0.2; x2 = 144 + 80 = 224 -> 0.35
    ([0.1, 0.2, 0.3, 0.4], 480, 640, [0.2, 0.2, 0.35, 0.4]),
    # odd difference 1: shift 0; 0.5 * 101 = 50.5 rounds to 50 (even); 100/101 = 0.990
    ([0.5, 0.5, 1.0, 1.0], 101, 100, [0.495, 0.495, 1.0, 0.99]),
    # odd difference 51: shift 25 on y; 25/151 = 0.1656 -> 0.166, 125/151 = 0.8278 -> 0.828
    ([0.0, 0.0, 1.0, 1.0], 151, 100, [0.0, 0.166, 1.0, 0.828]),
    # h > w, odd difference 37: shift 18 on x; 0.5 * 137 = 68.5 rounds to 68 (even)
    ([0.25, 0.5, 0.75, 1.0], 100, 137, [0.314, 0.496, 0.679, 1.0]),
    # square: nothing moves, only rounding to pixels: round(0.1234 * 200) = 25 -> 0.125
    ([0.1234, 0.0, 1.0, 0.5], 200, 200, [0.125, 0.0, 1.0, 0.5]),
    # edges of a wide image: the full box maps to the central band
    ([0.0, 0.0, 1.0, 1.0], 640, 480, [0.0, 0.125, 1.0, 0.875]),
]


@pytest.mark.parametrize(("box", "width", "height", "expected"), UPSTREAM_CASES)
def test_upstream_expand_to_square_matches_hand_computed(box, width, height, expected):
    assert upstream_expand_to_square(box, width, height) == expected


def test_upstream_text_conversion_several_boxes_and_python_float_repr():
    text = "The <st>men<ed> [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.7] stand."
    # 0.7 * 480 = 336 + 80 = 416 -> 0.65; written as Python's str(list): 0.1, not 0.100
    assert upstream_expand_to_square_text(text, 640, 480) == (
        "The <st>men<ed> [0.1, 0.275, 0.3, 0.425], [0.5, 0.5, 0.6, 0.65] stand."
    )


def test_upstream_text_moves_every_spelling_of_a_box_and_leaves_what_is_no_box():
    # Upstream's regex moved `[.1, ...]` but not `[0.1,0.2,...]` nor `[1e-1, ...]`: one rule now.
    for text in [
        "[.1, .2, .3, .4]",
        "[0.1,0.2,0.3,0.4]",
        "[1e-1, 2e-1, 3E-1, 4e-1]",
        "[ 0.1 , 0.2,0.3 ,0.4 ]",
    ]:
        assert upstream_expand_to_square_text(text, 640, 480) == "[0.1, 0.275, 0.3, 0.425]", text
    for text in [
        "[1.2.3, 0.1, 0.2, 0.3]",
        "[0.1, 0.2, 0.3]",
        "[nan, 0.2, 0.3, 0.4]",
        "[1e999, 0, 1, 1]",
        "no boxes",
    ]:
        assert upstream_expand_to_square_text(text, 640, 480) == text


# (text, the gate's verdict): every spelling of a valid box passes; NaN, infinities, a wrong count of
# numbers and out-of-range or unordered boxes fail; a bracketed single number is no box, nor a reference mark
# `[1, 2]` or a point `[0.45, 0.30]` a generated answer may cite (neither is a box gone wrong).
GATE_CASES = [
    ("at <st>a<ed> [0.100, 0.200, 0.300, 0.400]", True),
    ("at <st>a<ed> [.1, .2, .3, .4]", True),
    ("at <st>a<ed> [0.1,0.2,0.3,0.4]", True),
    ("at <st>a<ed> [1e-1, 2e-1, 3e-1, 4e-1]", True),
    ("see [1] and [2]", True),
    ("no boxes at all", True),
    ("see reference [1, 2]", True),
    ("The centre is at [0.45, 0.30].", True),
    ("[0.1, 0.2, 0.3, 0.4] and [0.5, 0.6]", True),
    ("[0.1, 0.2, 0.3]", False),
    ("[0.1, 0.2, 0.3, 0.4, 0.5]", False),
    ("[inf, 0.2]", False),
    ("[0.2, NaN]", False),
    ("[nan]", False),
    ("at <st>a<ed> [NaN, 0.2, 0.3, 0.4]", False),
    ("at <st>a<ed> [0.1, nan, 0.3, 0.4]", False),
    ("at <st>a<ed> [inf, 0.2, 0.3, 0.4]", False),
    ("at <st>a<ed> [0.1, 0.2, -Infinity, 0.4]", False),
    ("at <st>a<ed> [1e999, 0.2, 0.3, 0.4]", False),
    ("at <st>a<ed> [0.1, 0.2, 0.3]", False),
    ("at <st>a<ed> [0.1, 0.2, 0.3, 0.4, 0.5]", False),
    ("at <st>a<ed> [0.100, 0.200, 0.300, 0.400], [0.1, 0.2, 0.3]", False),
    ("at <st>a<ed> [.5, .2, .3, .4]", False),  # x2 < x1
    ("at <st>a<ed> [0.1,0.2,1.3,0.4]", False),
]


@pytest.mark.parametrize(("text", "valid"), GATE_CASES)
def test_one_box_rule_for_the_gate_the_export_and_the_parser(text, valid):
    from svit_dataset.boxes import BOX_PATTERN
    from svit_dataset.grounded_text import parse_grounded_text
    from svit_dataset.quality import BAD_BOX, check_turns

    verdict = check_turns([("user", "Where is it?"), ("gpt", text)])
    assert all_boxes_valid(text) is valid
    assert verdict == (None if valid else BAD_BOX)
    if valid:  # what the gate lets through, the export moves and the parser reads: the same boxes
        boxes = find_boxes(text)
        moved = upstream_expand_to_square_text(text, 640, 480)
        assert len(BOX_PATTERN.findall(moved)) == len(boxes)
        assert (moved != text) == bool(boxes)  # 640x480: every box moves down
        _, entities = parse_grounded_text(text)
        assert [b for e in entities for b in e[2]] == boxes


@pytest.mark.parametrize(("width", "height"), [(640, 480), (480, 640), (151, 100), (100, 137), (300, 300)])
def test_padded_frame_round_trip_and_agreement_with_upstream(width, height):
    box = (0.123, 0.456, 0.789, 0.987)
    padded = to_padded_square(box, width, height)
    back = from_padded_square(padded, width, height)
    assert all(abs(a - b) < 1e-9 for a, b in zip(back, box, strict=True))
    # Upstream rounds to whole pixels first: it agrees with the exact frame within half a pixel.
    upstream = upstream_expand_to_square(box, width, height)
    side = max(width, height)
    assert all(abs(a - b) * side <= 0.5 + side * 0.0005 for a, b in zip(upstream, padded, strict=True))


def test_parse_format_find_and_validity():
    assert format_box((0.125, 0.3, 0.45, 0.8125)) == "[0.125, 0.300, 0.450, 0.812]"
    assert parse_box("[0.1,0.2, 0.3 ,0.4]") == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match="not a box literal"):
        parse_box("[0.1, 0.2]")
    assert find_boxes("a [0.1, 0.2, 0.3, 0.4] b [1, 2, 3, 4]") == [(0.1, 0.2, 0.3, 0.4), (1.0, 2.0, 3.0, 4.0)]
    assert is_valid_box((0.0, 0.0, 1.0, 1.0))
    assert not is_valid_box((0.7, 0.1, 0.2, 0.5))  # x2 < x1
    assert not is_valid_box((0.1, 0.1, 1.2, 0.5))  # outside [0, 1]
    assert not is_valid_box((-0.1, 0.1, 0.2, 0.5))


def test_iou_and_vg_normalization():
    from svit_dataset.boxes import iou, normalize_xywh

    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 0.5, 1), (0.5, 0, 1, 1)) == 0.0
    assert iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.0625 / 0.4375)
    assert iou((0.2, 0.2, 0.2, 0.2), (0.2, 0.2, 0.2, 0.2)) == 0.0
    # VG pixel x, y, w, h on a 200 x 100 image; a box spilling past the edge is clamped
    assert normalize_xywh(20, 10, 50, 40, 200, 100) == (0.1, 0.1, 0.35, 0.5)
    assert normalize_xywh(180, 90, 50, 40, 200, 100) == (0.9, 0.9, 1.0, 1.0)
