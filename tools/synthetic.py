"""A synthetic corpus in the released SVIT format, at the paper's scale or any fraction of it.

Benchmarks and statistics tests need files shaped like `BAAI/SVIT` `data/*.json` with the paper's
counts and mean lengths, without downloading 2 GB. `write_corpus(CorpusSpec(scale=...), out_dir)`
writes, for `n = round(108,077 * scale)` Visual-Genome-like image ids:

- `conversation.json`, `complex_reasoning.json`, `referring_qa.json`, `detail_description.json`:
  each ONE JSON list of `{"image_id": int, "conversations": [{"content": [{"from": "user", "value":
  q}, {"from": "gpt", "value": a}, ...]}, ...]}`, one record per image (detail descriptions on a
  subset). Conversation records hold 3 conversations of ~5 QAs, complex reasoning and referring
  records one conversation with all the QAs of the image, detail records one conversation of one QA.
- `image_data.json`: `[{"image_id", "width", "height"}, ...]` as Visual Genome's file.
- `test_image_ids.txt`: the held-out 10% of the image ids, one per line.

Counts. Every QA total is `round(paper count * scale)`, distributed exactly over the images.

Word rule. A text's word count is `len(text.split())`: whitespace-separated tokens of the final
string, punctuation attached. A grounded object `<st>red car<ed> [0.1, 0.2, 0.3, 0.4]` is therefore
2 + 4 = 6 words (a box is 4 tokens, two boxes 8). The total words of each task's questions and of its
answers are exactly `round(mean * count)`, so the per-task means equal the spec's to within
0.5 / count words.

Text. Words are slices of one pre-built pool of lower-case filler words and the concept-set key words
of the paper's table 4 (colour, material, quantity, spatial relation, size), with a concept density
that varies along the pool, so an informativeness score varies between samples. Questions start with
a varied first word and end with "?". A `yes_no_share` of conversation and complex-reasoning QAs are
Yes/No questions (first word Is/Are/Can/...) whose answers start with "Yes," or "No," at `yes_per_no`
to one. Referring answers hold 1-3 grounded objects `<st>phrase<ed> [x1, y1, x2, y2]` (3 decimals,
x1 < x2, y1 < y2, in [0, 1]), and half of the referring questions one.

Speed and memory. Records are streamed: each is dumped with orjson into a buffered `<name>.tmp`, the
list brackets and commas written by hand, and the file renamed into place at the end. Only per-QA
integers (lengths, offsets, starters) are held for a whole task. Tasks run in up to `workers`
processes; the bytes do not depend on `workers`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import orjson

from svit_dataset.errors import SvitInputError
from svit_dataset.recipes.concepts import PAPER_CONCEPTS
from svit_dataset.schema import COMPLEX_REASONING, CONVERSATION, DETAIL_DESCRIPTION, REFERRING_QA, TASKS

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# The spec


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """What to synthesize. Defaults are the paper's numbers (section 3, table 1) at full scale."""

    images: int = 108_077
    conversation_qas: int = 1_565_797
    complex_reasoning_qas: int = 1_556_902
    referring_qas: int = 1_011_338
    detail_descriptions: int = 106_274
    conversation_question_words: float = 9.6
    conversation_answer_words: float = 27.9
    complex_reasoning_question_words: float = 12.6
    complex_reasoning_answer_words: float = 26.6
    referring_question_words: float = 11.3
    referring_answer_words: float = 20.6
    detail_answer_words: float = 361.5
    # Paper 5.2: Yes/No questions are 7.5% of the (conversation + complex reasoning) QAs, Yes:No = 20.
    yes_no_share: float = 0.075
    yes_per_no: float = 20.0
    test_share: float = 0.10
    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise SvitInputError(f"CorpusSpec.scale must be in (0, 1], got {self.scale}.")
        if self.n_images < 1:
            raise SvitInputError(
                f"CorpusSpec.scale={self.scale} leaves no image (round({self.images} * scale) = 0): "
                "use a larger scale."
            )
        if not 0 <= self.yes_no_share <= 1 or self.yes_per_no < 0:
            raise SvitInputError("CorpusSpec.yes_no_share must be in [0, 1] and yes_per_no >= 0.")

    def scaled(self, count: int) -> int:
        return round(count * self.scale)

    @property
    def n_images(self) -> int:
        return self.scaled(self.images)

    @property
    def n_detail(self) -> int:
        # One description per image at most, however the rounding falls.
        return min(self.scaled(self.detail_descriptions), self.n_images)

    def qa_count(self, task: str) -> int:
        return {
            CONVERSATION: self.scaled(self.conversation_qas),
            COMPLEX_REASONING: self.scaled(self.complex_reasoning_qas),
            REFERRING_QA: self.scaled(self.referring_qas),
            DETAIL_DESCRIPTION: self.n_detail,
        }[task]


# ----------------------------------------------------------------------------------------------
# Vocabulary

# The recipe's concept set (paper table 4), plus a few common words it lacks, so that the text
# mixes concept hits with near misses.
_EXTRA_WORDS = {"color": ("blue", "yellow", "orange"), "spatial relation": ("right",)}
CONCEPT_WORDS: dict[str, tuple[str, ...]] = {
    concept: words + _EXTRA_WORDS.get(concept, ()) for concept, words in PAPER_CONCEPTS.items()
}

# Neutral words, none of them a concept key nor yes/no/not (they would blur the Yes/No statistics).
FILLER_WORDS: tuple[str, ...] = (
    "the", "a", "of", "and", "is", "in", "with", "to", "are", "that", "it", "there", "at", "as",
    "for", "from", "by", "this", "which", "while", "can", "be", "seen", "appears", "has", "its",
    "their", "man", "woman", "person", "people", "car", "tree", "street", "building", "table",
    "plate", "food", "dog", "cat", "sky", "grass", "window", "wall", "sign", "road", "water",
    "boat", "train", "bus", "shirt", "hat", "chair", "room", "field", "horse", "bird", "clock",
    "light", "pole", "fence", "door", "scene", "image", "picture", "area", "background",
    "foreground", "standing", "sitting", "holding", "wearing", "walking", "looking", "playing",
    "parked", "covered", "filled", "suggests", "indicates", "likely", "possibly", "probably",
    "because", "might", "could", "would", "may", "also", "some", "other", "several", "each",
    "both", "many", "more", "very", "quite", "setting", "activity", "view", "outdoor", "indoor",
    "sunny", "busy", "calm", "day", "time", "together", "enjoying", "group", "part", "side",
    "top", "bottom", "corner", "front", "behind", "next", "around", "along", "over", "into",
    "through", "during", "such", "these", "those", "them", "they", "he", "she", "his", "her",
    "an", "or", "but", "if", "so", "what", "where", "how", "why", "who", "when",
)  # fmt: skip

# Question first words. Open questions never start like a Yes/No question, so the first word alone
# tells them apart (as the balance recipe needs).
OPEN_QUESTION_STARTERS: tuple[str, ...] = (
    "What", "How", "Where", "Why", "Which", "Describe", "Who", "Explain",
)  # fmt: skip
OPEN_QUESTION_WEIGHTS: tuple[float, ...] = (0.40, 0.16, 0.10, 0.10, 0.09, 0.06, 0.05, 0.04)
YES_NO_STARTERS: tuple[str, ...] = ("Is", "Are", "Can", "Does", "Do", "Could")
QUESTION_STARTERS: tuple[str, ...] = OPEN_QUESTION_STARTERS + YES_NO_STARTERS

OPEN_ANSWER_STARTERS: tuple[str, ...] = (
    "The", "There", "In", "It", "This", "A", "Based on the image,", "From the picture,",
)  # fmt: skip
ANSWER_STARTERS: tuple[str, ...] = OPEN_ANSWER_STARTERS + ("Yes,", "No,")
_YES = len(OPEN_ANSWER_STARTERS)
_NO = _YES + 1

DETAIL_INSTRUCTIONS: tuple[str, ...] = (
    "Can you describe the image in detail?",
    "What is happening in this picture, in full detail?",
    "Could you give a thorough description of the scene?",
    "What do you see in this image, in as much detail as possible?",
    "Can you walk me through every element of the picture?",
    "How would you describe this photograph to someone who cannot see it?",
    "What are the details of the scene shown here?",
    "Would you elaborate on the contents of this image?",
)
DETAIL_STARTERS: tuple[str, ...] = (
    "The image shows", "In the image,", "This picture depicts", "The scene features", "The photo captures",
)  # fmt: skip

# Grounded objects: (singular, plural) nouns and optional adjectives; phrases are 1-3 words.
OBJECT_NOUNS: tuple[tuple[str, str], ...] = (
    ("man", "men"), ("woman", "women"), ("person", "people"), ("car", "cars"), ("tree", "trees"),
    ("building", "buildings"), ("table", "tables"), ("plate", "plates"), ("dog", "dogs"),
    ("cat", "cats"), ("window", "windows"), ("sign", "signs"), ("boat", "boats"), ("bus", "buses"),
    ("shirt", "shirts"), ("hat", "hats"), ("chair", "chairs"), ("horse", "horses"),
    ("bird", "birds"), ("clock", "clocks"), ("street light", "street lights"),
    ("traffic cone", "traffic cones"), ("tennis racket", "tennis rackets"), ("pizza", "pizzas"),
    ("umbrella", "umbrellas"), ("bench", "benches"), ("cup", "cups"), ("laptop", "laptops"),
)  # fmt: skip
OBJECT_ADJECTIVES: tuple[str, ...] = (
    "", "", "", "", "", "", "red", "blue", "white", "black", "green", "wooden", "metal", "large",
    "small", "tall", "old", "young", "striped", "parked",
)  # fmt: skip
OBJECT_SLOTS = 8  # objects per image; the QAs of an image draw from them, as GPT-4 did from VG boxes

# ----------------------------------------------------------------------------------------------
# Word pool: one long string of words; a text of n words is one slice of it.

POOL_TOKENS = 600_000
_SEGMENT = 48  # tokens sharing one concept density: informative and plain stretches alternate


@dataclasses.dataclass(frozen=True)
class WordPool:
    text: str
    offsets: np.ndarray  # int64 [n_words + 1]: start of each word; offsets[-1] = len(text) + 1
    raw: np.ndarray  # uint8 view of `text` (ASCII), to look at characters without Python loops
    offset_list: list[int]  # `offsets` as Python ints, for per-text loops (numpy scalars are slow)

    @property
    def n_words(self) -> int:
        return len(self.offsets) - 1

    def spans(self, start: np.ndarray, n_words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Character spans [a, b) of the n words from `start`, minus a final '.' or ',' (the caller
        closes the text), and whether the first character is upper case."""
        a = self.offsets[start]
        b = self.offsets[start + n_words] - 1
        last = self.raw[b - 1]
        b = b - ((last == ord(".")) | (last == ord(",")))
        first = self.raw[a]
        return a, b, (first >= ord("A")) & (first <= ord("Z"))


def build_word_pool(seed: int, n_tokens: int = POOL_TOKENS) -> WordPool:
    """Filler words with concept words mixed in at a density that varies by segment; some words
    carry a ',' or end a sentence with '.' (the next word then capitalised). Multi-word concept keys
    stay adjacent."""
    rng = np.random.default_rng([seed, 7919])
    concept = [w for words in CONCEPT_WORDS.values() for w in words]
    vocab = list(FILLER_WORDS) + concept
    # Zipf-like filler frequencies: a few function words dominate, as in English.
    filler_p = 1.0 / np.arange(2, len(FILLER_WORDS) + 2) ** 0.8
    filler_p /= filler_p.sum()
    density = rng.beta(1.2, 5.0, size=n_tokens // _SEGMENT + 1)[np.arange(n_tokens) // _SEGMENT]
    is_concept = rng.random(n_tokens) < density
    tokens = np.where(
        is_concept,
        len(FILLER_WORDS) + rng.integers(0, len(concept), n_tokens),
        rng.choice(len(FILLER_WORDS), size=n_tokens, p=filler_p),
    )
    punct = rng.choice(3, size=n_tokens, p=[1 - 1 / 16 - 1 / 12, 1 / 16, 1 / 12])  # none, '.', ','
    capital = np.concatenate([[True], punct[:-1] == 1])
    # Six spellings per token, chosen by index: (plain, Capitalised) x (no mark, '.', ',').
    upper = [w[0].upper() + w[1:] for w in vocab]
    table = np.array(
        [
            vocab,
            upper,
            [w + "." for w in vocab],
            [w + "." for w in upper],
            [w + "," for w in vocab],
            [w + "," for w in upper],
        ],
        dtype=object,
    )
    words = table[capital.astype(np.int64) + 2 * punct, tokens]
    text = " ".join(words.tolist())
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    offsets = np.concatenate([[0], np.flatnonzero(raw == ord(" ")) + 1, [len(text) + 1]]).astype(np.int64)
    return WordPool(text=text, offsets=offsets, raw=raw, offset_list=offsets.tolist())


def _lower_first(words: str) -> str:
    # A slice may begin at a sentence start; after our own first word it continues the sentence.
    return words[0].lower() + words[1:] if "A" <= words[0] <= "Z" else words


# ----------------------------------------------------------------------------------------------
# Exact totals


def fix_total(rng: np.random.Generator, values: np.ndarray, target: int, low, high) -> np.ndarray:
    """Move random entries by one, within [low, high] (scalars or arrays), until sum == target."""
    values = values.astype(np.int64, copy=True)
    low_sum = int(np.broadcast_to(low, values.shape).sum())
    high_sum = int(np.broadcast_to(high, values.shape).sum())
    if not low_sum <= target <= high_sum:
        raise SvitInputError(
            f"Cannot reach a total of {target} with {values.size} entries in [{low_sum}, {high_sum}]."
        )
    values = np.clip(values, low, high)
    diff = target - int(values.sum())
    while diff:
        room = np.flatnonzero(values < high) if diff > 0 else np.flatnonzero(values > low)
        pick = rng.choice(room, size=min(abs(diff), room.size), replace=False)
        values[pick] += 1 if diff > 0 else -1
        diff = target - int(values.sum())
    return values


def exact_lengths(
    rng: np.random.Generator, mean: float, low: np.ndarray, high: int, sigma: float = 0.35
) -> np.ndarray:
    """Log-normal lengths around `mean`, at least `low` each, summing to exactly round(mean * n)."""
    n = low.size
    mu = math.log(mean) - sigma**2 / 2  # so that the log-normal's mean is `mean`
    drawn = np.rint(rng.lognormal(mu, sigma, n))
    high_arr = np.maximum(low, high)
    return fix_total(rng, drawn, round(mean * n), low, high_arr)


def split_total(
    rng: np.random.Generator, n: int, total: int, mean_low: int, mean_high: int, sd: float
) -> np.ndarray:
    """n counts around total/n summing to `total`; bounds widened if the total needs it."""
    mean = total / n
    low = min(mean_low, total // n)
    high = max(mean_high, -(-total // n))
    drawn = np.rint(rng.normal(mean, sd, n))
    return fix_total(rng, drawn, total, low, high)


# ----------------------------------------------------------------------------------------------
# Layouts: every number of a task's texts, decided before any string is built.


@dataclasses.dataclass
class PlainTexts:
    """n texts 'starter + pool slice + punctuation'."""

    starter: np.ndarray  # index into the starter table
    fill: np.ndarray  # pool words
    start: np.ndarray  # first pool word
    words: int  # total words, by the word rule


def layout_plain(
    rng, starter: np.ndarray, starter_words: np.ndarray, mean: float, high: int, pool_words: int
) -> PlainTexts:
    fixed = starter_words[starter]
    lengths = exact_lengths(rng, mean, fixed + 1, high)
    fill = lengths - fixed
    start = (rng.random(fill.size) * (pool_words - fill + 1)).astype(np.int64)
    return PlainTexts(starter=starter, fill=fill, start=start, words=int(lengths.sum()))


def _word_counts(table: tuple[str, ...]) -> np.ndarray:
    return np.array([len(s.split()) for s in table], dtype=np.int64)


@dataclasses.dataclass
class PlainQAs:
    questions: PlainTexts
    answers: PlainTexts
    yes_no: int
    yes: int


def layout_plain_qas(
    rng, n: int, q_mean: float, a_mean: float, spec: CorpusSpec, pool_words: int
) -> PlainQAs:
    """Conversation / complex reasoning QAs: a share are Yes/No questions answered 'Yes,' or 'No,'."""
    yes_no = rng.random(n) < spec.yes_no_share
    yes = yes_no & (rng.random(n) < spec.yes_per_no / (spec.yes_per_no + 1))
    n_open = len(OPEN_QUESTION_STARTERS)
    q_starter = np.where(
        yes_no,
        n_open + rng.integers(0, len(YES_NO_STARTERS), n),
        rng.choice(n_open, size=n, p=np.array(OPEN_QUESTION_WEIGHTS) / sum(OPEN_QUESTION_WEIGHTS)),
    )
    a_starter = np.where(yes_no, np.where(yes, _YES, _NO), rng.integers(0, len(OPEN_ANSWER_STARTERS), n))
    questions = layout_plain(rng, q_starter, _word_counts(QUESTION_STARTERS), q_mean, 60, pool_words)
    answers = layout_plain(rng, a_starter, _word_counts(ANSWER_STARTERS), a_mean, 160, pool_words)
    return PlainQAs(questions, answers, yes_no=int(yes_no.sum()), yes=int(yes.sum()))


@dataclasses.dataclass
class ImageObjects:
    """OBJECT_SLOTS objects per image; words = phrase words + 4 per box."""

    noun: np.ndarray  # [n_images * OBJECT_SLOTS]
    adjective: np.ndarray
    boxes: np.ndarray  # 1 or 2
    words: np.ndarray


def layout_objects(rng, n_images: int) -> ImageObjects:
    m = n_images * OBJECT_SLOTS
    noun = rng.integers(0, len(OBJECT_NOUNS), m)
    adjective = rng.integers(0, len(OBJECT_ADJECTIVES), m)
    boxes = 1 + (rng.random(m) < 0.12)
    noun_words = np.array([len(s.split()) for s, _ in OBJECT_NOUNS])
    adjective_words = np.array([len(a.split()) for a in OBJECT_ADJECTIVES])
    words = noun_words[noun] + adjective_words[adjective] + 4 * boxes
    return ImageObjects(noun, adjective, boxes, words)


@dataclasses.dataclass
class GroundedTexts:
    """Texts 'starter + (object + pool words) * k + punctuation'. `slots` [n, 3] are object slots of
    the QA's image, the first `k` used."""

    starter: np.ndarray
    k: np.ndarray
    slots: np.ndarray
    fill: np.ndarray
    start: np.ndarray
    words: int


def layout_grounded(
    rng, image_of_qa, objects: ImageObjects, k, starter, starter_table, mean, min_fill, pool_words
):
    n = k.size
    base = rng.integers(0, OBJECT_SLOTS, n)
    # Offsets 0, 3, 6 mod 8: the (up to 3) objects of one text are distinct.
    slots = (base[:, None] + np.array([0, 3, 6])[None, :]) % OBJECT_SLOTS + image_of_qa[
        :, None
    ] * OBJECT_SLOTS
    used = np.arange(3)[None, :] < k[:, None]
    grounded = (objects.words[slots] * used).sum(axis=1)
    fixed = _word_counts(starter_table)[starter] + grounded
    lengths = exact_lengths(rng, mean, fixed + min_fill, high=120)
    fill = lengths - fixed
    start = (rng.random(n) * (pool_words - fill + 1)).astype(np.int64)
    return GroundedTexts(starter, k, slots, fill, start, words=int(lengths.sum()))


# ----------------------------------------------------------------------------------------------
# Rendering


def _box(coords: list[int]) -> str:
    return f"[{_MILLI[coords[0]]}, {_MILLI[coords[1]]}, {_MILLI[coords[2]]}, {_MILLI[coords[3]]}]"


_MILLI = [f"{i / 1000:.3f}" for i in range(1001)]


def draw_boxes(rng, n: int) -> np.ndarray:
    """n boxes [x1, y1, x2, y2] in thousandths: x1 < x2, y1 < y2, all in [0, 1000]."""
    lo = rng.integers(0, 981, size=(n, 2))
    size = 20 + (rng.random((n, 2)) * (1000 - lo - 20 + 1)).astype(np.int64)
    return np.concatenate([lo, lo + size], axis=1)


def render_objects(rng, objects: ImageObjects, first: int, last: int) -> list[str]:
    """Grounded strings of the object slots [first, last): `<st>phrase<ed> [box]` or `[box], [box]`."""
    n = last - first
    boxes = draw_boxes(rng, 2 * n).reshape(n, 2, 4).tolist()
    out = []
    for i, (noun, adjective, n_boxes) in enumerate(
        zip(
            objects.noun[first:last].tolist(),
            objects.adjective[first:last].tolist(),
            objects.boxes[first:last].tolist(),
            strict=True,
        )
    ):
        name = OBJECT_NOUNS[noun][n_boxes - 1]
        adj = OBJECT_ADJECTIVES[adjective]
        phrase = f"{adj} {name}" if adj else name
        box_text = _box(boxes[i][0]) if n_boxes == 1 else f"{_box(boxes[i][0])}, {_box(boxes[i][1])}"
        out.append(f"<st>{phrase}<ed> {box_text}")
    return out


def _plain_strings(
    pool: WordPool, texts: PlainTexts, lo: int, hi: int, starters: tuple[str, ...], end: str
) -> list[str]:
    a, b, upper = pool.spans(texts.start[lo:hi], texts.fill[lo:hi])
    text = pool.text
    return [
        f"{starters[s]} {text[i].lower() + text[i + 1 : j] if u else text[i:j]}{end}"
        for s, i, j, u in zip(
            texts.starter[lo:hi].tolist(), a.tolist(), b.tolist(), upper.tolist(), strict=True
        )
    ]


def _grounded_strings(
    pool, texts: GroundedTexts, lo, hi, starters, end, object_text: list[str], slot0: int, question: bool
):
    """Answers: starter obj1 words obj2 words ... end. Questions (k <= 1): starter words obj words end."""
    text, offsets = pool.text, pool.offset_list
    out = []
    for s, k, slots, fill, start in zip(
        texts.starter[lo:hi].tolist(),
        texts.k[lo:hi].tolist(),
        texts.slots[lo:hi].tolist(),
        texts.fill[lo:hi].tolist(),
        texts.start[lo:hi].tolist(),
        strict=True,
    ):
        parts = [starters[s]]
        if question and k:
            head = fill // 2
            if head:
                parts.append(_lower_first(text[offsets[start] : offsets[start + head] - 1]))
            parts.append(object_text[slots[0] - slot0])
            parts.append(_lower_first(text[offsets[start + head] : offsets[start + fill] - 1].rstrip(".,")))
        elif question:
            parts.append(_lower_first(text[offsets[start] : offsets[start + fill] - 1].rstrip(".,")))
        else:
            chunk = fill // k
            pos = start
            for j in range(k):
                size = chunk if j < k - 1 else fill - chunk * (k - 1)
                parts.append(object_text[slots[j] - slot0])
                parts.append(_lower_first(text[offsets[pos] : offsets[pos + size] - 1]))
                pos += size
            parts[-1] = parts[-1].rstrip(".,")
        out.append(" ".join(parts) + end)
    return out


def _turns(questions: list[str], answers: list[str]) -> list[dict]:
    turns = []
    for q, a in zip(questions, answers, strict=True):
        turns.append({"from": "user", "value": q})
        turns.append({"from": "gpt", "value": a})
    return turns


# ----------------------------------------------------------------------------------------------
# Per-task record streams

_CHUNK_IMAGES = 2048  # images rendered per vectorised step


def _progress(task: str, done: int, total: int) -> None:
    if done == total or done % (_CHUNK_IMAGES * 16) == 0:
        logger.info("%s: %d / %d images", task, done, total)


def conversation_records(
    spec: CorpusSpec, image_ids: np.ndarray, pool: WordPool, stats: dict
) -> Iterator[dict]:
    rng = _task_rng(spec, CONVERSATION)
    n_img = image_ids.size
    per_conv = split_total(rng, 3 * n_img, spec.qa_count(CONVERSATION), 4, 6, 0.45)
    qas = layout_plain_qas(
        rng,
        int(per_conv.sum()),
        spec.conversation_question_words,
        spec.conversation_answer_words,
        spec,
        pool.n_words,
    )
    stats.update(_plain_stats(n_img, 3 * n_img, qas))
    first_qa = np.concatenate([[0], np.cumsum(per_conv)])
    ids = image_ids.tolist()
    for lo in range(0, n_img, _CHUNK_IMAGES):
        hi = min(lo + _CHUNK_IMAGES, n_img)
        q0, q1 = int(first_qa[3 * lo]), int(first_qa[3 * hi])
        turns = _turns(
            _plain_strings(pool, qas.questions, q0, q1, QUESTION_STARTERS, "?"),
            _plain_strings(pool, qas.answers, q0, q1, ANSWER_STARTERS, "."),
        )
        bounds = (2 * (first_qa[3 * lo : 3 * hi + 1] - q0)).tolist()
        for i in range(lo, hi):
            c = 3 * (i - lo)
            yield {
                "image_id": ids[i],
                "conversations": [{"content": turns[bounds[c + j] : bounds[c + j + 1]]} for j in range(3)],
            }
        _progress(CONVERSATION, hi, n_img)


def complex_reasoning_records(
    spec: CorpusSpec, image_ids: np.ndarray, pool: WordPool, stats: dict
) -> Iterator[dict]:
    rng = _task_rng(spec, COMPLEX_REASONING)
    n_img = image_ids.size
    per_img = split_total(rng, n_img, spec.qa_count(COMPLEX_REASONING), 10, 15, 1.0)
    qas = layout_plain_qas(
        rng,
        int(per_img.sum()),
        spec.complex_reasoning_question_words,
        spec.complex_reasoning_answer_words,
        spec,
        pool.n_words,
    )
    stats.update(_plain_stats(n_img, n_img, qas))
    yield from _one_conversation_per_image(
        COMPLEX_REASONING,
        image_ids,
        per_img,
        lambda q0, q1, lo, hi: _turns(
            _plain_strings(pool, qas.questions, q0, q1, QUESTION_STARTERS, "?"),
            _plain_strings(pool, qas.answers, q0, q1, ANSWER_STARTERS, "."),
        ),
    )


def referring_records(spec: CorpusSpec, image_ids: np.ndarray, pool: WordPool, stats: dict) -> Iterator[dict]:
    rng = _task_rng(spec, REFERRING_QA)
    n_img = image_ids.size
    per_img = split_total(rng, n_img, spec.qa_count(REFERRING_QA), 7, 10, 1.0)
    n = int(per_img.sum())
    image_of_qa = np.repeat(np.arange(n_img), per_img)
    objects = layout_objects(rng, n_img)
    n_open = len(OPEN_QUESTION_STARTERS)
    q_starter = rng.choice(n_open, size=n, p=np.array(OPEN_QUESTION_WEIGHTS) / sum(OPEN_QUESTION_WEIGHTS))
    q_k = (rng.random(n) < 0.5).astype(np.int64)
    questions = layout_grounded(
        rng,
        image_of_qa,
        objects,
        q_k,
        q_starter,
        QUESTION_STARTERS,
        spec.referring_question_words,
        1,
        pool.n_words,
    )
    a_k = rng.choice(np.array([1, 2, 3]), size=n, p=[0.5, 0.32, 0.18])
    a_starter = rng.integers(0, len(OPEN_ANSWER_STARTERS), n)
    answers = layout_grounded(
        rng,
        image_of_qa,
        objects,
        a_k,
        a_starter,
        ANSWER_STARTERS,
        spec.referring_answer_words,
        a_k,
        pool.n_words,
    )
    stats.update(
        images=n_img,
        records=n_img,
        conversations=n_img,
        qas=n,
        question_words=questions.words,
        answer_words=answers.words,
        grounded_objects=int(q_k.sum() + a_k.sum()),
    )
    box_rng = np.random.default_rng([spec.seed, 4, 1])

    def turns(q0, q1, lo, hi):
        slot0 = lo * OBJECT_SLOTS
        object_text = render_objects(box_rng, objects, slot0, hi * OBJECT_SLOTS)
        return _turns(
            _grounded_strings(
                pool, questions, q0, q1, QUESTION_STARTERS, "?", object_text, slot0, question=True
            ),
            _grounded_strings(
                pool, answers, q0, q1, ANSWER_STARTERS, ".", object_text, slot0, question=False
            ),
        )

    yield from _one_conversation_per_image(REFERRING_QA, image_ids, per_img, turns)


def detail_records(spec: CorpusSpec, image_ids: np.ndarray, pool: WordPool, stats: dict) -> Iterator[dict]:
    rng = _task_rng(spec, DETAIL_DESCRIPTION)
    # 106,274 of the 108,077 images have a description: keep a random subset, in id order.
    chosen = np.sort(rng.choice(image_ids.size, size=spec.n_detail, replace=False))
    ids = image_ids[chosen]
    n = ids.size
    instruction = rng.integers(0, len(DETAIL_INSTRUCTIONS), n)
    starter = rng.integers(0, len(DETAIL_STARTERS), n)
    answers = layout_plain(
        rng, starter, _word_counts(DETAIL_STARTERS), spec.detail_answer_words, 1200, pool.n_words
    )
    stats.update(
        images=n,
        records=n,
        conversations=n,
        qas=n,
        question_words=int(_word_counts(DETAIL_INSTRUCTIONS)[instruction].sum()),
        answer_words=answers.words,
    )
    ones = np.ones(n, dtype=np.int64)
    instructions = instruction.tolist()

    def turns(q0, q1, lo, hi):
        return _turns(
            [DETAIL_INSTRUCTIONS[i] for i in instructions[q0:q1]],
            _plain_strings(pool, answers, q0, q1, DETAIL_STARTERS, "."),
        )

    yield from _one_conversation_per_image(DETAIL_DESCRIPTION, ids, ones, turns)


def _one_conversation_per_image(task, image_ids, per_img, make_turns) -> Iterator[dict]:
    """Records of one conversation holding all the QAs of the image (make_turns(q0, q1, lo, hi))."""
    n_img = image_ids.size
    first_qa = np.concatenate([[0], np.cumsum(per_img)])
    ids = image_ids.tolist()
    for lo in range(0, n_img, _CHUNK_IMAGES):
        hi = min(lo + _CHUNK_IMAGES, n_img)
        q0, q1 = int(first_qa[lo]), int(first_qa[hi])
        turns = make_turns(q0, q1, lo, hi)
        bounds = (2 * (first_qa[lo : hi + 1] - q0)).tolist()
        for i in range(lo, hi):
            yield {
                "image_id": ids[i],
                "conversations": [{"content": turns[bounds[i - lo] : bounds[i - lo + 1]]}],
            }
        _progress(task, hi, n_img)


def _plain_stats(n_img: int, n_conv: int, qas: PlainQAs) -> dict:
    return {
        "images": n_img,
        "records": n_img,
        "conversations": n_conv,
        "qas": int(qas.questions.fill.size),
        "question_words": qas.questions.words,
        "answer_words": qas.answers.words,
        "yes_no_qas": qas.yes_no,
        "yes_answers": qas.yes,
    }


def _task_rng(spec: CorpusSpec, task: str) -> np.random.Generator:
    # One stream per task: files are identical whichever process or order writes them.
    return np.random.default_rng([spec.seed, TASKS.index(task)])


_RECORDS = {
    CONVERSATION: conversation_records,
    COMPLEX_REASONING: complex_reasoning_records,
    REFERRING_QA: referring_records,
    DETAIL_DESCRIPTION: detail_records,
}

# ----------------------------------------------------------------------------------------------
# Images and files


def draw_image_ids(spec: CorpusSpec) -> np.ndarray:
    """Unique, sorted, VG-like ids in 1..2,420,000."""
    rng = np.random.default_rng([spec.seed, 101])
    return np.sort(rng.choice(2_420_000, size=spec.n_images, replace=False) + 1).astype(np.int64)


def draw_image_sizes(spec: CorpusSpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """VG-like sizes: long side mostly 500 or 800; about 62% wide, 28% tall, 10% square."""
    rng = np.random.default_rng([spec.seed, 102])
    long_side = rng.choice([500, 640, 800, 1024], size=n, p=[0.5, 0.1, 0.32, 0.08])
    ratio = rng.choice([4 / 3, 3 / 2, 16 / 9, 5 / 4, 2.0], size=n, p=[0.45, 0.3, 0.1, 0.1, 0.05])
    short_side = np.rint(long_side / ratio).astype(np.int64)
    shape = rng.choice(3, size=n, p=[0.62, 0.28, 0.10])  # 0 wide, 1 tall, 2 square
    width = np.where(shape == 1, short_side, long_side)
    height = np.where(shape == 0, short_side, long_side)
    return width, height


def write_json_list(path: Path, records: Iterator[dict]) -> int:
    """Stream records into ONE JSON list at `path` (atomic); return the bytes written."""
    tmp = path.with_name(path.name + ".tmp")
    dumps = orjson.dumps
    try:
        with open(tmp, "wb", buffering=1 << 22) as f:
            f.write(b"[")
            sep = b"\n"
            for record in records:
                f.write(sep)
                f.write(dumps(record))
                sep = b",\n"
            f.write(b"\n]\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The records hold no reference cycles, yet the collector's passes over millions of fresh
    lists and dicts cost up to half the run time (measured on referring QAs): pause it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_task(spec: CorpusSpec, task: str, image_ids: np.ndarray, out_dir: Path) -> dict:
    """Write `<task>.json` and return its counts. Runs in a worker process."""
    started = time.perf_counter()
    pool = build_word_pool(spec.seed)
    stats: dict = {}
    with _no_cyclic_gc():
        stats["bytes"] = write_json_list(
            out_dir / f"{task}.json", _RECORDS[task](spec, image_ids, pool, stats)
        )
    stats["mean_question_words"] = round(stats["question_words"] / max(stats["qas"], 1), 4)
    stats["mean_answer_words"] = round(stats["answer_words"] / max(stats["qas"], 1), 4)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    logger.info("%s: %d QAs, %.1f MB in %.1f s", task, stats["qas"], stats["bytes"] / 1e6, stats["seconds"])
    return stats


def write_image_files(spec: CorpusSpec, image_ids: np.ndarray, out_dir: Path) -> int:
    width, height = draw_image_sizes(spec, image_ids.size)
    rows = (
        {"image_id": i, "width": w, "height": h}
        for i, w, h in zip(image_ids.tolist(), width.tolist(), height.tolist(), strict=True)
    )
    write_json_list(out_dir / "image_data.json", rows)
    rng = np.random.default_rng([spec.seed, 103])
    n_test = round(spec.test_share * image_ids.size)
    test = np.sort(rng.choice(image_ids, size=n_test, replace=False))
    tmp = out_dir / "test_image_ids.txt.tmp"
    tmp.write_text("".join(f"{i}\n" for i in test.tolist()))
    os.replace(tmp, out_dir / "test_image_ids.txt")
    return n_test


def write_corpus(spec: CorpusSpec, out_dir: str | os.PathLike, workers: int | None = None) -> dict:
    """Write the synthetic corpus into `out_dir`; return what was written, per task.

    Returns {"images", "test_images", "seconds", "tasks": {task: {"images", "records",
    "conversations", "qas", "question_words", "answer_words", "mean_question_words",
    "mean_answer_words", "bytes", ... }}}.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = min(len(TASKS), os.cpu_count() or 1) if workers is None else max(1, workers)
    image_ids = draw_image_ids(spec)
    logger.info(
        "Synthetic SVIT corpus: %d images, scale %g, seed %d -> %s",
        image_ids.size,
        spec.scale,
        spec.seed,
        out,
    )
    n_test = write_image_files(spec, image_ids, out)
    # Longest first (measured cost per QA: referring ~2x the plain tasks), so the workers finish together.
    cost = {CONVERSATION: 1.0, COMPLEX_REASONING: 1.0, REFERRING_QA: 1.6, DETAIL_DESCRIPTION: 1.5}
    order = sorted(TASKS, key=lambda t: -spec.qa_count(t) * cost[t])
    if workers == 1:
        tasks = {t: write_task(spec, t, image_ids, out) for t in order}
    else:
        with ProcessPoolExecutor(max_workers=workers) as executor:
            futures = {t: executor.submit(write_task, spec, t, image_ids, out) for t in order}
            tasks = {t: futures[t].result() for t in order}
    return {
        "images": int(image_ids.size),
        "test_images": n_test,
        "seconds": round(time.perf_counter() - started, 2),
        "tasks": {t: tasks[t] for t in TASKS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.synthetic",
        description="Write a synthetic corpus in the released SVIT format (paper counts and mean lengths).",
    )
    parser.add_argument(
        "out_dir", help="folder to write conversation.json, ..., image_data.json, test_image_ids.txt"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the paper's 108,077 images (0, 1]"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: one per core, at most 4)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = CorpusSpec(scale=args.scale, seed=args.seed)
    except SvitInputError as err:
        parser.error(str(err))
    summary = write_corpus(spec, args.out_dir, workers=args.workers)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
