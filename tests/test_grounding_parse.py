"""Grounded model output parsed into Kosmos-2's shape: crafted strings with exact expected results."""

from __future__ import annotations

import pickle

import pytest

from svit_dataset.grounded_text import GroundedEntity, parse_grounded_text

B1 = "[0.125, 0.300, 0.450, 0.812]"
b1 = (0.125, 0.3, 0.45, 0.812)
b2 = (0.6, 0.1, 0.9, 0.5)

# (text, clean_text, entities): boxes as written, no frame change.
CASES = [
    # well-formed
    (f"<st>red ball<ed> {B1}", "red ball", [("red ball", (0, 8), [b1])]),
    (f"The <st>red ball<ed> {B1} is left.", "The red ball is left.", [("red ball", (4, 12), [b1])]),
    (
        f"<st>red ball<ed> {B1} and <st>blue box<ed> [0.600, 0.100, 0.900, 0.500].",
        "red ball and blue box.",
        [("red ball", (0, 8), [b1]), ("blue box", (13, 21), [b2])],
    ),
    # several boxes
    (
        f"<st>two cups<ed> {B1}, [0.600, 0.100, 0.900, 0.500] here",
        "two cups here",
        [("two cups", (0, 8), [b1, b2])],
    ),
    (
        "<st>cups<ed> [0.1,0.2,0.3,0.4],[0.5,0.5,0.6,0.7]",
        "cups",
        [("cups", (0, 4), [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.7)])],
    ),
    (
        "<st>cups<ed> [0.1, 0.2, 0.3, 0.4] [0.5, 0.5, 0.6, 0.7].",
        "cups.",
        [("cups", (0, 4), [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.7)])],
    ),
    # missing space, extra spaces, a newline
    (f"<st>ball<ed>{B1} rolls", "ball rolls", [("ball", (0, 4), [b1])]),
    (
        "<st>ball<ed>   [ 0.1 ,0.2, 0.3 , 0.4 ] rolls",
        "ball rolls",
        [("ball", (0, 4), [(0.1, 0.2, 0.3, 0.4)])],
    ),
    ("<st>ball<ed>\n[0.1, 0.2, 0.3, 0.4]", "ball", [("ball", (0, 4), [(0.1, 0.2, 0.3, 0.4)])]),
    # two decimals, integers
    ("<st>dog<ed> [0.28, 0.34, 0.4, 0.71]", "dog", [("dog", (0, 3), [(0.28, 0.34, 0.4, 0.71)])]),
    ("<st>all<ed> [0, 0, 1, 1]", "all", [("all", (0, 3), [(0.0, 0.0, 1.0, 1.0)])]),
    # whitespace inside the tags: the span covers the phrase only
    (
        "A <st> big dog <ed> [0.1, 0.2, 0.3, 0.4].",
        "A  big dog .",
        [("big dog", (3, 10), [(0.1, 0.2, 0.3, 0.4)])],
    ),
    # phrase without boxes
    ("<st>cat<ed> sleeps", "cat sleeps", [("cat", (0, 3), [])]),
    ("<st>cat<ed>", "cat", [("cat", (0, 3), [])]),
    # unclosed: boxes close the phrase; a phrase never closed is dropped
    (f"<st>dog {B1} barks", "dog barks", [("dog", (0, 3), [b1])]),
    ("<st>dog barks", "dog barks", []),
    # nested: the inner <st> wins, the stray <ed> goes, its boxes stand alone
    (
        "<st>a <st>red<ed> ball<ed> [0.1, 0.2, 0.3, 0.4]",
        "a red ball",
        [("red", (2, 5), []), ("", (10, 10), [(0.1, 0.2, 0.3, 0.4)])],
    ),
    # stray <ed>
    ("a<ed> b", "a b", []),
    ("<ed><st>x<ed> [0.1, 0.2, 0.3, 0.4]", "x", [("x", (0, 1), [(0.1, 0.2, 0.3, 0.4)])]),
    # boxes without a phrase (LLaVA-1.5's RefCOCO answers, untagged text)
    ("[0.28, 0.34, 0.4, 0.71]", "", [("", (0, 0), [(0.28, 0.34, 0.4, 0.71)])]),
    ("The dog [0.1, 0.2, 0.3, 0.4] runs.", "The dog runs.", [("", (7, 7), [(0.1, 0.2, 0.3, 0.4)])]),
    # empty phrase
    ("<st><ed> [0.1, 0.2, 0.3, 0.4]", "", [("", (0, 0), [(0.1, 0.2, 0.3, 0.4)])]),
    # garbage numbers stay text; out-of-range numbers are parsed as written
    ("<st>cat<ed> [0.1, x, 0.3, 0.4]", "cat [0.1, x, 0.3, 0.4]", [("cat", (0, 3), [])]),
    ("<st>cat<ed> [0.1, 0.2, 0.3]", "cat [0.1, 0.2, 0.3]", [("cat", (0, 3), [])]),
    ("<st>cat<ed> [1.2, -0.1, 0.5, 0.5]", "cat", [("cat", (0, 3), [(1.2, -0.1, 0.5, 0.5)])]),
    ("<st>cat<ed> [120, 340, 400, 710]", "cat", [("cat", (0, 3), [(120.0, 340.0, 400.0, 710.0)])]),
    ("<st>cat<ed> [0.1, 0.2, 0.3, 0.4", "cat [0.1, 0.2, 0.3, 0.4", [("cat", (0, 3), [])]),
    # no entities
    ("A plain answer.", "A plain answer.", []),
    ("", "", []),
    ("Pick [a] or [b].", "Pick [a] or [b].", []),
]


@pytest.mark.parametrize(("text", "clean", "entities"), CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_parse_grounded_text(text, clean, entities):
    got_clean, got = parse_grounded_text(text)
    assert got_clean == clean
    assert got == entities
    for phrase, (start, end), _ in got:
        assert got_clean[start:end] == phrase


@pytest.fixture(scope="module")
def processors(tiny_processor_unpadded, tiny_processor):
    return tiny_processor_unpadded, tiny_processor


@pytest.mark.parametrize(("text", "clean", "entities"), CASES[:20], ids=[repr(c[0])[:40] for c in CASES[:20]])
def test_post_process_without_padding_returns_the_parse(processors, text, clean, entities):
    plain, _ = processors
    got_clean, got = plain.post_process_generation(text)
    assert (got_clean, got) == (clean, entities)
    assert all(isinstance(e, GroundedEntity) and not e.clamped for e in got)


def test_post_process_clamps_and_flags(processors):
    plain, _ = processors
    clean, entities = plain.post_process_generation(
        "<st>a<ed> [1.2, -0.1, 0.5, 0.5] <st>b<ed> [0.5, 0.5, 0.1, 0.2] <st>c<ed> [0.1, 0.2, 0.3, 0.4]"
    )
    assert clean == "a b c"
    assert entities == [
        ("a", (0, 1), [(0.5, 0.0, 1.0, 0.5)]),
        ("b", (2, 3), [(0.1, 0.2, 0.5, 0.5)]),
        ("c", (4, 5), [(0.1, 0.2, 0.3, 0.4)]),
    ]
    assert [e.clamped for e in entities] == [True, True, False]
    assert (
        entities[0].phrase == "a"
        and entities[0].span == (0, 1)
        and entities[0].boxes == [(0.5, 0.0, 1.0, 0.5)]
    )
    copy = pickle.loads(pickle.dumps(entities[0]))
    assert copy == entities[0] and copy.clamped


def test_post_process_pixels_and_padding(processors):
    plain, padded = processors
    # No padding: pixels of the image.
    assert plain.post_process_generation("<st>a<ed> [0.25, 0.5, 0.75, 1.0]", image_size=(200, 100))[1] == [
        ("a", (0, 1), [(50.0, 50.0, 150.0, 100.0)])
    ]
    # Padding: a 200x100 image sits in a 200x200 square 50 px from the top.
    text = "<st>a<ed> [0.25, 0.5, 0.75, 0.75]"
    assert padded.post_process_generation(text, image_size=(200, 100))[1] == [
        ("a", (0, 1), [(50.0, 50.0, 150.0, 100.0)])
    ]
    assert padded.post_process_generation(text, image_size=(200, 100), normalized=True)[1] == [
        ("a", (0, 1), [(0.25, 0.5, 0.75, 1.0)])
    ]
    # A box reaching into the padding is clipped to the image, not flagged: the numbers were in range.
    (entity,) = padded.post_process_generation("<st>a<ed> [0.0, 0.0, 1.0, 1.0]", image_size=(200, 100))[1]
    assert entity == ("a", (0, 1), [(0.0, 0.0, 200.0, 100.0)]) and not entity.clamped
    with pytest.raises(ValueError, match="image_size"):
        padded.post_process_generation(text)
    assert padded.post_process_generation(text, padded=False)[1] == [("a", (0, 1), [(0.25, 0.5, 0.75, 0.75)])]
    batch = padded.batch_post_process_generation([text, text], [(200, 100), (100, 200)], normalized=True)
    assert batch[0][1][0][2] == [(0.25, 0.5, 0.75, 1.0)]
    assert batch[1][1][0][2] == [(0.0, 0.5, 1.0, 0.75)]
