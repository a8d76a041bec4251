"""Deterministic maker of the bundled format sample in `svit_dataset/sample/`.

The sample is NOT SVIT data. It is a small, self-consistent sample written for the svit project so
that tests and the demo can exercise every reader, quality gate and recipe offline. One procedural
"scene" per image (a background and 3-7 drawn objects, each with a name, a colour, a material, a size
and a pixel box) is the single source of truth: the JPEG, the Visual Genome and COCO annotations,
the four released SVIT task files and the tiny LLaVA-1.5 pair are all derived from it, so every
colour, count, size, relation and box in the text is true of the picture (materials are part of the
scene but are not drawn).

Everything is a pure function of the seed: `build_sample(seed)` returns `{relative path: bytes}` and
two runs give byte-identical files. I/O lives only in `write_sample` and `main`.

The maker deliberately does its own (tiny) box arithmetic instead of importing the project's box
module: the sample is the oracle the box code is tested against, so it must not share its bugs.

Regenerate with `python -m tools.sample_maker` (see `--help`).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "svit_dataset" / "sample"
DEFAULT_SEED = 0
JPEG_QUALITY = 85

QA = tuple[str, str]

# ---------------------------------------------------------------------------------------------
# Vocabulary: what a scene can contain. Colours and materials are restricted per kind so that
# the templated text stays plausible ("a wooden dog" never happens).
# ---------------------------------------------------------------------------------------------

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "blue": (30, 60, 200),
    "green": (40, 150, 50),
    "yellow": (230, 200, 30),
    "orange": (240, 130, 20),
    "purple": (120, 50, 160),
    "pink": (240, 130, 180),
    "black": (25, 25, 25),
    "white": (250, 250, 250),
    "brown": (120, 75, 35),
    "gray": (110, 110, 110),
}

# Adjective as written in text -> the noun of "made of ...".
MATERIAL_NOUNS: dict[str, str] = {
    "wooden": "wood",
    "metal": "metal",
    "plastic": "plastic",
    "glass": "glass",
    "ceramic": "ceramic",
    "rubber": "rubber",
    "paper": "paper",
    "cardboard": "cardboard",
}
FRAGILE_MATERIALS = ("glass", "ceramic")
STURDY_MATERIALS = ("wooden", "metal", "plastic", "rubber")

FALL_OUTCOMES: dict[str, str] = {
    "glass": "it would probably shatter, because glass is fragile",
    "ceramic": "it could chip or break, because ceramic is brittle",
    "metal": "it would most likely survive, perhaps with a small dent, because metal is strong",
    "wooden": "it would probably survive with a scratch or two, because wood is sturdy",
    "plastic": "it would most likely survive, because plastic is light and hard to break",
    "rubber": "it would simply bounce, because rubber is elastic",
    "paper": "it would not break, although the paper could crease or tear",
    "cardboard": "it would not break, although the cardboard could dent or crease",
}


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    shape: str  # "rect", "ellipse", "triangle", "diamond", "chair", "vase"
    aspect: float  # width / height of the box
    materials: tuple[str, ...]  # empty for animals
    colors: tuple[str, ...]
    settings: tuple[str, ...]
    use: str  # completes "The <x> ..."


KINDS: tuple[Kind, ...] = (
    Kind("ball", "balls", "ellipse", 1.0, ("plastic", "rubber"), ("red", "blue", "yellow", "orange", "green"),
         ("room", "park"), "could be used for games such as catch, or kicked around for fun"),
    Kind("table", "tables", "rect", 1.8, ("wooden", "metal", "glass"), ("brown", "white", "black", "gray"),
         ("room",), "is where people put things such as dishes, books or a laptop"),
    Kind("cup", "cups", "rect", 0.75, ("glass", "plastic", "ceramic", "metal"),
         ("red", "blue", "white", "green", "yellow", "pink"), ("room",),
         "is meant for holding a drink such as tea, coffee or water"),
    Kind("dog", "dogs", "ellipse", 1.5, (), ("brown", "black", "white"), ("room", "park"),
         "is most likely a pet; it needs food, water, walks and attention"),
    Kind("cat", "cats", "ellipse", 1.3, (), ("black", "white", "gray", "orange"), ("room",),
         "is most likely a pet; it needs food, water and a quiet place to sleep"),
    Kind("chair", "chairs", "chair", 0.8, ("wooden", "metal", "plastic"), ("brown", "black", "white", "red", "blue"),
         ("room", "park"), "is for sitting on"),
    Kind("book", "books", "rect", 1.35, ("paper",), ("red", "blue", "green", "yellow", "black"), ("room",),
         "is for reading"),
    Kind("vase", "vases", "vase", 0.6, ("glass", "ceramic"), ("blue", "white", "pink", "green", "purple"), ("room",),
         "could hold flowers and water"),
    Kind("plate", "plates", "ellipse", 2.2, ("ceramic", "plastic", "metal"), ("white", "blue", "yellow"), ("room",),
         "is for serving food"),
    Kind("lamp", "lamps", "triangle", 0.8, ("metal", "glass"), ("yellow", "white", "black"), ("room",),
         "gives light, for example for reading in the evening"),
    Kind("box", "boxes", "rect", 1.2, ("wooden", "cardboard", "plastic", "metal"), ("brown", "red", "blue", "white"),
         ("room", "park"), "could be used to store or carry things"),
    Kind("bottle", "bottles", "rect", 0.4, ("glass", "plastic"), ("green", "blue", "white", "brown"),
         ("room", "park"), "could hold water or another drink"),
    Kind("kite", "kites", "diamond", 0.8, ("plastic", "paper"), ("red", "yellow", "orange", "purple", "pink"),
         ("park",), "is flown in the wind on a long string"),
    Kind("sign", "signs", "rect", 1.4, ("metal", "wooden"), ("red", "blue", "green", "yellow", "white"), ("park",),
         "shows information or directions to people passing by"),
    Kind("bench", "benches", "rect", 2.4, ("wooden", "metal"), ("brown", "green", "black", "gray"), ("park",),
         "is for sitting on and resting"),
)  # fmt: skip
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
ANIMALS = ("dog", "cat")
FLYING_KINDS = ("kite",)


@dataclass(frozen=True)
class Setting:
    name: str
    place: str  # "an indoor room"
    upper: str  # phrase of the upper background band
    upper_rgb: tuple[int, int, int]
    lower: str
    lower_rgb: tuple[int, int, int]
    scene_phrase: str  # "an indoor room with a beige wall and a gray floor"
    closing: str  # last sentence of a detail description


SETTINGS: dict[str, Setting] = {
    "room": Setting(
        "room", "an indoor room", "beige wall", (232, 222, 200), "gray floor", (176, 176, 168),
        "an indoor room with a beige wall and a gray floor",
        "Altogether, the picture shows a quiet, uncluttered corner of a home.",
    ),
    "park": Setting(
        "park", "a park", "blue sky", (160, 205, 240), "green grass", (110, 175, 90),
        "a park under a blue sky, with green grass below",
        "Altogether, the picture shows a calm outdoor spot with plenty of open space.",
    ),
}  # fmt: skip

# Box area as a fraction of the image: the size word is read off the drawn geometry, and the
# placement targets sit well inside each band so that clamping rarely changes the word.
SIZE_BANDS = (("small", 0.0, 0.05), ("medium size", 0.05, 0.15), ("large", 0.15, 1.01))
SIZE_TARGETS = {"small": (0.015, 0.04), "medium size": (0.06, 0.12), "large": (0.17, 0.28)}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

DETAIL_INSTRUCTIONS = (
    "Describe the following image in detail.",
    "Provide a detailed description of the given image.",
    "Give an elaborate explanation of the image you see.",
    "Share a comprehensive rundown of the presented image.",
    "Offer a thorough analysis of the image.",
    "Explain the various aspects of the image before you.",
    "Clarify the contents of the displayed image with great detail.",
    "Characterize the image using a well-detailed description.",
    "Break down the elements of the image in a detailed manner.",
    "Walk through the important details of the image.",
    "Portray the image with a rich, descriptive narrative.",
    "Narrate the contents of the image with precision.",
    "Analyze the image in a comprehensive and detailed manner.",
    "Illustrate the image through a descriptive explanation.",
    "Examine the image closely and share its details.",
    "Write an exhaustive depiction of the given image.",
)

CONVERSATION_TOPICS = ("The objects and their looks", "Where things are", "Sizes and quantities")

# ---------------------------------------------------------------------------------------------
# The image plan: fixed Visual Genome-style ids and sizes, independent of the seed.
# Small ids live in VG_100K/, ids above 2,000,000 in VG_100K_2/. None of them is on upstream's
# list of failed generations, so quality gates must find the planted failure by its content.
# ---------------------------------------------------------------------------------------------

VG_100K_IDS = (1, 2, 3, 10, 24, 51, 107, 285, 497, 713, 1160, 1593, 2046, 2417, 3101, 4418, 61512, 150344)
VG_100K_2_IDS = (
    2315352, 2316001, 2320455, 2326141, 2333919, 2338720, 2344103, 2355781, 2361290,
    2368310, 2373344, 2380112, 2391028, 2395566, 2400761, 2407112, 2412260, 2416983,
)  # fmt: skip
# Wide, tall, square and odd width-height differences (151-100, 100-137...), which matter for the
# (w - h) // 2 offset of LLaVA-1.5's padded square.
IMAGE_SIZES = (
    (160, 96), (96, 160), (128, 128), (151, 100), (100, 137), (144, 108),
    (120, 160), (160, 120), (137, 100), (100, 151), (112, 112), (160, 107),
)  # fmt: skip

TEST_IMAGE_IDS = (2, 713, 2333919, 2412260)


@dataclass(frozen=True)
class BadRecord:
    reason: str
    file: str
    image_id: int
    what: str


FAILED_GENERATION_TEXT = (
    "It seems like your message is empty. Could you please provide the captions and object information?"
)
BAD_BOX = "[0.700, 0.100, 0.200, 0.500]"

BAD_RECORDS: tuple[BadRecord, ...] = (
    BadRecord("failed_generation", "detail_description.json", 24,
              "the only answer is the model's refusal 'It seems like your message is empty...'"),
    BadRecord("empty_turn", "complex_reasoning.json", 497, "the 7th answer is an empty string"),
    BadRecord("unknown_speaker", "conversation.json", 2046,
              "2nd conversation: the 2nd answer has \"from\": \"bot\""),
    BadRecord("bad_box", "referring_qa.json", 2326141, f"the first box of an answer is {BAD_BOX} (x2 < x1)"),
    BadRecord("unbalanced_grounding_tags", "referring_qa.json", 2355781,
              "the first grounded answer lost its first <ed> tag"),
    BadRecord("unpaired_turns", "conversation.json", 2391028,
              "3rd conversation ends with a user question and no answer"),
    BadRecord("duplicate_sample", "referring_qa.json", 150344,
              "the image's record appears twice, verbatim (the copy is the last record of the file)"),
)  # fmt: skip


@dataclass(frozen=True)
class ImagePlan:
    index: int
    image_id: int
    folder: str
    width: int
    height: int
    coco_id: int | None
    flickr_id: int | None


def image_plans(seed: int) -> list[ImagePlan]:
    """The 36 images, in release order (ascending id). COCO ids on two thirds of them."""
    rng = random.Random(f"svit-sample:{seed}:plan")
    ids = [(i, "VG_100K") for i in VG_100K_IDS] + [(i, "VG_100K_2") for i in VG_100K_2_IDS]
    coco_ids = rng.sample(range(9, 581_929), len(ids))
    plans = []
    for index, (image_id, folder) in enumerate(ids):
        width, height = IMAGE_SIZES[index % len(IMAGE_SIZES)]
        plans.append(
            ImagePlan(
                index=index,
                image_id=image_id,
                folder=folder,
                width=width,
                height=height,
                coco_id=coco_ids[index] if index % 3 != 2 else None,
                flickr_id=rng.randrange(10**8, 10**10) if index % 4 != 3 else None,
            )
        )
    return plans


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneObject:
    object_id: int
    kind: Kind
    color: str
    material: str | None
    x: int
    y: int
    w: int
    h: int
    size: str

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def name(self) -> str:
        """Unique within a scene: repeated kinds always get different colours."""
        return f"{self.color} {self.kind.name}"

    @property
    def full_name(self) -> str:
        material = f" {self.material}" if self.material else ""
        return f"{self.size} {self.color}{material} {self.kind.name}"


@dataclass(frozen=True)
class Scene:
    image_id: int
    folder: str
    width: int
    height: int
    setting: Setting
    horizon: int  # y where the upper background band ends
    objects: tuple[SceneObject, ...]  # drawing order: a later object is in front of an earlier one
    coco_id: int | None = None
    flickr_id: int | None = None


def size_word(area_fraction: float) -> str:
    for word, low, high in SIZE_BANDS:
        if low <= area_fraction < high:
            return word
    return "large"


def _color_distance(a: Sequence[int], b: Sequence[int]) -> float:
    return math.dist(a, b)


def usable_colors(kind: Kind, setting: Setting) -> list[str]:
    """Colours of `kind` that stay visible on both background bands."""
    return [
        c
        for c in kind.colors
        if _color_distance(COLORS[c], setting.upper_rgb) > 60
        and _color_distance(COLORS[c], setting.lower_rgb) > 60
    ]


def _overlap_area(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    dx = min(ax + aw, bx + bw) - max(ax, bx)
    dy = min(ay + ah, by + bh) - max(ay, by)
    return max(dx, 0) * max(dy, 0)


def _acceptable(box: tuple[int, int, int, int], placed: Iterable[tuple[int, int, int, int]]) -> bool:
    """At most a third of the smaller object may be hidden, so every object stays recognisable."""
    for other in placed:
        smaller = min(box[2] * box[3], other[2] * other[3])
        if _overlap_area(box, other) > smaller / 3:
            return False
    return True


def _place_box(
    kind: Kind, target: str, width: int, height: int, horizon: int, rng: random.Random, placed: list
) -> tuple[int, int, int, int] | None:
    for attempt in range(80):
        band = target if attempt < 50 else "small"
        area = rng.uniform(*SIZE_TARGETS[band]) * width * height
        w = min(width, max(6, round(math.sqrt(area * kind.aspect))))
        h = min(height, max(6, round(area / w)))
        x = rng.randint(0, width - w)
        # Things stand on the floor or grass (their bottom edge is below the horizon), kites fly
        # above it: so "lower in the picture" means "nearer", as the painter's order assumes.
        if kind.name in FLYING_KINDS:
            low, high = 0, max(0, horizon - h)
        else:
            low, high = max(0, horizon - h), height - h
        y = rng.randint(low, high)
        # Some objects touch the border, so normalized boxes with 0.000 / 1.000 occur.
        edge = rng.random()
        if edge < 0.1:
            x = 0
        elif edge < 0.2:
            x = width - w
        elif edge < 0.3:
            y = high
        elif edge < 0.35:
            y = low
        box = (x, y, w, h)
        if _acceptable(box, placed):
            return box
    return None


def make_scene(plan: ImagePlan, seed: int, first_object_id: int) -> Scene:
    """A random but reproducible scene for one image."""
    rng = random.Random(f"svit-sample:{seed}:scene:{plan.image_id}")
    setting = SETTINGS[rng.choice(sorted(SETTINGS))]
    horizon = round(plan.height * rng.uniform(0.5, 0.65))
    candidates = [k for k in KINDS if setting.name in k.settings and len(usable_colors(k, setting)) >= 3]
    n_objects = rng.randint(3, 7)
    n_kinds = n_objects
    # Most scenes repeat one kind 2-3 times, so counts above one and multi-box phrases occur.
    repeats = 0
    if rng.random() < 0.65:
        repeats = rng.choice((1, 1, 2))
        n_kinds = max(2, n_objects - repeats)
    kinds = rng.sample(candidates, n_kinds)
    wanted = list(kinds) + [kinds[0]] * (n_objects - n_kinds)

    specs = []
    used_colors: dict[str, set[str]] = {}
    for kind in wanted:
        free = [c for c in usable_colors(kind, setting) if c not in used_colors.setdefault(kind.name, set())]
        color = rng.choice(free)
        used_colors[kind.name].add(color)
        material = rng.choice(kind.materials) if kind.materials else None
        target = rng.choice(("small", "small", "medium size", "medium size", "large"))
        specs.append((kind, color, material, target))
    # Large things first: they are the hardest to fit.
    specs.sort(key=lambda s: ("large", "medium size", "small").index(s[3]))

    placed: list[tuple] = []
    for kind, color, material, target in specs:
        box = _place_box(kind, target, plan.width, plan.height, horizon, rng, [p[4] for p in placed])
        if box is not None:
            placed.append((kind, color, material, target, box))
    # Painter's order by bottom edge: the object standing lower is nearer the viewer, drawn later,
    # and so really is "in front of" whatever it overlaps.
    placed.sort(key=lambda p: (p[4][1] + p[4][3], p[4][0]))
    objects = tuple(
        SceneObject(
            object_id=first_object_id + k,
            kind=kind,
            color=color,
            material=material,
            x=box[0],
            y=box[1],
            w=box[2],
            h=box[3],
            size=size_word(box[2] * box[3] / (plan.width * plan.height)),
        )
        for k, (kind, color, material, _target, box) in enumerate(placed)
    )
    return Scene(
        image_id=plan.image_id,
        folder=plan.folder,
        width=plan.width,
        height=plan.height,
        setting=setting,
        horizon=horizon,
        objects=objects,
        coco_id=plan.coco_id,
        flickr_id=plan.flickr_id,
    )


def render_scene(scene: Scene) -> bytes:
    """The scene as JPEG bytes (PIL's encoder is deterministic for identical pixels)."""
    image = Image.new("RGB", (scene.width, scene.height), scene.setting.upper_rgb)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, scene.horizon, scene.width - 1, scene.height - 1], fill=scene.setting.lower_rgb)
    for obj in scene.objects:
        fill = COLORS[obj.color]
        outline = tuple(max(0, c - 70) for c in fill) if obj.color != "black" else (90, 90, 90)
        x1, y1, x2, y2 = obj.x, obj.y, obj.x2 - 1, obj.y2 - 1  # PIL corners are inclusive
        if obj.kind.shape == "ellipse":
            draw.ellipse([x1, y1, x2, y2], fill=fill, outline=outline)
        elif obj.kind.shape == "triangle":
            draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=fill, outline=outline)
        elif obj.kind.shape == "diamond":
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            draw.polygon([(mx, y1), (x2, my), (mx, y2), (x1, my)], fill=fill, outline=outline)
        elif obj.kind.shape == "chair":
            back = x1 + max(2, obj.w * 0.3)
            seat = y1 + obj.h * 0.55
            draw.polygon(
                [(x1, y1), (back, y1), (back, seat), (x2, seat), (x2, y2), (x1, y2)],
                fill=fill,
                outline=outline,
            )
        elif obj.kind.shape == "vase":
            neck = obj.w * 0.3
            draw.polygon(
                [
                    (x1 + neck, y1),
                    (x2 - neck, y1),
                    (x2, (y1 + y2) / 2),
                    (x2 - neck / 2, y2),
                    (x1 + neck / 2, y2),
                    (x1, (y1 + y2) / 2),
                ],
                fill=fill,
                outline=outline,
            )
        else:
            draw.rectangle([x1, y1, x2, y2], fill=fill, outline=outline)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Scene facts: small pure helpers every text template is built from.
# ---------------------------------------------------------------------------------------------


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_words(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def kind_counts(scene: Scene) -> dict[str, int]:
    """Kind name -> count, in order of first appearance."""
    counts: dict[str, int] = {}
    for obj in scene.objects:
        counts[obj.kind.name] = counts.get(obj.kind.name, 0) + 1
    return counts


def objects_of_kind(scene: Scene, kind_name: str) -> list[SceneObject]:
    return [o for o in scene.objects if o.kind.name == kind_name]


def is_unique_kind(scene: Scene, obj: SceneObject) -> bool:
    return kind_counts(scene)[obj.kind.name] == 1


def overlaps(a: SceneObject, b: SceneObject) -> bool:
    return _overlap_area((a.x, a.y, a.w, a.h), (b.x, b.y, b.w, b.h)) > 0


def in_front(a: SceneObject, b: SceneObject) -> bool:
    """`a` overlaps `b` and was drawn after it (ids follow drawing order)."""
    return overlaps(a, b) and a.object_id > b.object_id


OPPOSITE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
    "in front of": "in back of",
    "in back of": "in front of",
}


def relation(a: SceneObject, b: SceneObject) -> str:
    """The clearest true relation of `a` to `b`. Boxes that do not overlap are separated on one axis."""
    if a.x2 <= b.x:
        return "to the left of"
    if a.x >= b.x2:
        return "to the right of"
    if a.y2 <= b.y:
        return "above"
    if a.y >= b.y2:
        return "below"
    return "in front of" if in_front(a, b) else "in back of"


def pairs(scene: Scene) -> list[tuple[SceneObject, SceneObject]]:
    return [(a, b) for a in scene.objects for b in scene.objects if a is not b]


def location(scene: Scene, obj: SceneObject) -> str:
    """Where the object's centre falls on a 3x3 grid, with its preposition: 'on the left side of the image'."""
    col = min(2, int(3 * obj.cx / scene.width))
    row = min(2, int(3 * obj.cy / scene.height))
    horizontal = ("left", "center", "right")[col]
    vertical = ("top", "middle", "bottom")[row]
    if vertical == "middle":
        return (
            "in the center of the image"
            if horizontal == "center"
            else f"on the {horizontal} side of the image"
        )
    if horizontal == "center":
        return f"at the {vertical} center of the image"
    return f"in the {vertical} {horizontal} part of the image"


def size_clause(obj: SceneObject) -> str:
    return "of medium size" if obj.size == "medium size" else obj.size


def object_list(scene: Scene) -> str:
    """'a red ball, two cups and a wooden table' (kinds grouped, in order of appearance)."""
    parts = []
    for name, count in kind_counts(scene).items():
        if count == 1:
            parts.append(with_article(objects_of_kind(scene, name)[0].name))
        else:
            parts.append(f"{number_word(count)} {KINDS_BY_NAME[name].plural}")
    return join_words(parts)


def there_is(count: int, kind: Kind) -> str:
    if count == 1:
        return f"there is one {kind.name}"
    return f"there are {number_word(count)} {kind.plural}"


def left_to_right(scene: Scene) -> list[SceneObject]:
    return sorted(scene.objects, key=lambda o: (o.cx, o.object_id))


def by_area(scene: Scene) -> list[SceneObject]:
    return sorted(scene.objects, key=lambda o: (o.area, o.object_id))


# ---------------------------------------------------------------------------------------------
# Boxes (kept here on purpose, see the module docstring)
# ---------------------------------------------------------------------------------------------


def normalized_box(obj: SceneObject, width: int, height: int) -> tuple[float, float, float, float]:
    """[x1, y1, x2, y2] in [0, 1] of the ORIGINAL image, from a VG pixel box x, y, w, h."""
    return (obj.x / width, obj.y / height, obj.x2 / width, obj.y2 / height)


def format_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


def padded_square_box(obj: SceneObject, width: int, height: int, digits: int = 2) -> str:
    """A box in LLaVA-1.5's padded-square frame, as mix-665K writes VG boxes (`[0.28, 0.34, 0.4, 0.71]`)."""
    x1, y1, x2, y2 = obj.x, obj.y, obj.x2, obj.y2
    if width > height:
        y1, y2 = y1 + (width - height) // 2, y2 + (width - height) // 2
    elif height > width:
        x1, x2 = x1 + (height - width) // 2, x2 + (height - width) // 2
    side = max(width, height)
    return "[" + ", ".join(str(round(v / side, digits)) for v in (x1, y1, x2, y2)) + "]"


def grounded(scene: Scene, objs: Sequence[SceneObject], phrase: str) -> str:
    """`<st>phrase<ed> [x1, y1, x2, y2], [...]`."""
    boxes = ", ".join(format_box(normalized_box(o, scene.width, scene.height)) for o in objs)
    return f"<st>{phrase}<ed> {boxes}"


def grounded_names(scene: Scene, objs: Sequence[SceneObject]) -> list[str]:
    """`<st>The red ball<ed> [...]`, `<st>the cup<ed> [...]`...: a sentence-initial list, capitalized
    inside the tag (capitalize() would only see the `<`)."""
    return [grounded(scene, [o], f"{'The' if k == 0 else 'the'} {o.name}") for k, o in enumerate(objs)]


# ---------------------------------------------------------------------------------------------
# Conversation QAs (three themes, one per conversation) and Yes/No QAs
# ---------------------------------------------------------------------------------------------


def appearance_qas(scene: Scene) -> list[QA]:
    qas: list[QA] = []
    for name, count in kind_counts(scene).items():
        kind = KINDS_BY_NAME[name]
        group = objects_of_kind(scene, name)
        if count == 1:
            obj = group[0]
            qas.append((f"What color is the {name}?", f"The {name} is {obj.color}."))
        else:
            colors = join_words([f"one is {o.color}" for o in group])
            qas.append(
                (
                    f"What colors are the {kind.plural}?",
                    f"There are {number_word(count)} {kind.plural}: {colors}.",
                )
            )
    for obj in scene.objects:
        if obj.material:
            subject = obj.kind.name if is_unique_kind(scene, obj) else obj.name
            noun = MATERIAL_NOUNS[obj.material]
            answer = f"The {subject} is made of {noun}."
            if obj.material != noun:
                answer += f" It is {with_article(obj.material)} {obj.kind.name}."
            qas.append((f"What is the {subject} made of?", answer))
        qas.append(
            (
                f"What does the {obj.name} look like?",
                f"It is {with_article(obj.full_name)}, {location(scene, obj)}.",
            )
        )
    qas.append(("What objects can be seen in the image?", f"The image shows {object_list(scene)}."))
    qas.append(
        (
            "Where does this scene take place?",
            f"The scene takes place in {scene.setting.place}: there is a {scene.setting.upper} in the upper "
            f"part of the picture and {scene.setting.lower} below it.",
        )
    )
    return qas


def position_qas(scene: Scene) -> list[QA]:
    qas: list[QA] = []
    for a, b in pairs(scene):
        qas.append(
            (
                f"Where is the {a.name} relative to the {b.name}?",
                f"The {a.name} is {relation(a, b)} the {b.name}.",
            )
        )
    for obj in scene.objects:
        qas.append(
            (f"Where is the {obj.name} located in the image?", f"The {obj.name} is {location(scene, obj)}.")
        )
        others = [o for o in scene.objects if o is not obj]
        nearest = min(others, key=lambda o: (math.dist((o.cx, o.cy), (obj.cx, obj.cy)), o.object_id))
        qas.append(
            (
                f"Which object is closest to the {obj.name}?",
                f"The {nearest.name} is the closest object to the {obj.name}.",
            )
        )
        front = [o for o in scene.objects if in_front(o, obj)]
        if front:
            names = join_words([f"the {o.name}" for o in front])
            verb = "is" if len(front) == 1 else "are"
            qas.append(
                (
                    f"What is in front of the {obj.name}?",
                    f"{capitalize(names)} {verb} in front of the {obj.name}.",
                )
            )
    order = left_to_right(scene)
    qas.append(
        ("Which object is farthest to the left?", f"The {order[0].name} is the leftmost object in the image.")
    )
    qas.append(
        (
            "Which object is farthest to the right?",
            f"The {order[-1].name} is the rightmost object in the image.",
        )
    )
    return qas


def quantity_qas(scene: Scene) -> list[QA]:
    qas: list[QA] = []
    for name, count in kind_counts(scene).items():
        kind = KINDS_BY_NAME[name]
        qas.append(
            (
                f"How many {kind.plural} are there in the image?",
                f"{capitalize(there_is(count, kind))} in the image.",
            )
        )
    qas.append(
        (
            "How many objects are in the image?",
            f"There are {number_word(len(scene.objects))} objects in the image: {object_list(scene)}.",
        )
    )
    for obj in scene.objects:
        qas.append((f"How big is the {obj.name}?", f"The {obj.name} is {size_clause(obj)}."))
    ranked = by_area(scene)
    qas.append(("What is the largest object in the image?", f"The largest object is the {ranked[-1].name}."))
    qas.append(("What is the smallest object in the image?", f"The smallest object is the {ranked[0].name}."))
    for a, b in pairs(scene):
        if a.object_id < b.object_id and max(a.area, b.area) > 1.2 * min(a.area, b.area):
            big, small = (a, b) if a.area > b.area else (b, a)
            qas.append(
                (
                    f"Which is larger, the {a.name} or the {b.name}?",
                    f"The {big.name} is larger than the {small.name}.",
                )
            )
    return qas


def absent_kinds(scene: Scene) -> list[Kind]:
    present = kind_counts(scene)
    return [k for k in KINDS if scene.setting.name in k.settings and k.name not in present]


def conversation_yes_no(scene: Scene) -> tuple[list[QA], list[QA]]:
    """(Yes QAs, No QAs), all true of the scene."""
    yes: list[QA] = []
    no: list[QA] = []
    counts = kind_counts(scene)
    for name, count in counts.items():
        kind = KINDS_BY_NAME[name]
        if count == 1:
            obj = objects_of_kind(scene, name)[0]
            yes.append(
                (
                    f"Is there {with_article(name)} in the image?",
                    f"Yes, there is {with_article(obj.name)} in the image.",
                )
            )
            yes.append((f"Is the {name} {obj.color}?", f"Yes, the {name} is {obj.color}."))
            wrong = [c for c in kind.colors if c != obj.color]
            no.append((f"Is the {name} {wrong[0]}?", f"No, the {name} is {obj.color}, not {wrong[0]}."))
        else:
            yes.append(
                (f"Are there any {kind.plural} in the image?", f"Yes, {there_is(count, kind)} in the image.")
            )
            no.append(
                (
                    f"Are there {number_word(count + 1)} {kind.plural} in the image?",
                    f"No, {there_is(count, kind)} in the image.",
                )
            )
    for kind in absent_kinds(scene)[:3]:
        no.append(
            (
                f"Is there {with_article(kind.name)} in the image?",
                f"No, there is no {kind.name} in the image.",
            )
        )
    for a, b in pairs(scene):
        rel = relation(a, b)
        yes.append((f"Is the {a.name} {rel} the {b.name}?", f"Yes, the {a.name} is {rel} the {b.name}."))
        no.append(
            (f"Is the {a.name} {OPPOSITE[rel]} the {b.name}?", f"No, the {a.name} is {rel} the {b.name}.")
        )
    for obj in scene.objects:
        if obj.material:
            noun = MATERIAL_NOUNS[obj.material]
            yes.append((f"Is the {obj.name} made of {noun}?", f"Yes, the {obj.name} is made of {noun}."))
            other = [m for m in obj.kind.materials if m != obj.material]
            if other:
                no.append(
                    (
                        f"Is the {obj.name} made of {MATERIAL_NOUNS[other[0]]}?",
                        f"No, the {obj.name} is made of {noun}.",
                    )
                )
        if obj.size == "medium size":
            yes.append((f"Is the {obj.name} of medium size?", f"Yes, the {obj.name} is of medium size."))
        else:
            yes.append((f"Is the {obj.name} {obj.size}?", f"Yes, the {obj.name} is {obj.size}."))
            wrong_size = "small" if obj.size == "large" else "large"
            no.append((f"Is the {obj.name} {wrong_size}?", f"No, the {obj.name} is {obj.size}."))
    return yes, no


# ---------------------------------------------------------------------------------------------
# Complex reasoning QAs
# ---------------------------------------------------------------------------------------------


def reasoning_qas(scene: Scene) -> list[QA]:
    qas: list[QA] = []
    for obj in scene.objects:
        qas.append((f"What could the {obj.name} be used for?", f"The {obj.name} {obj.kind.use}."))
        if obj.material:
            noun = MATERIAL_NOUNS[obj.material]
            qas.append(
                (
                    f"What would happen if the {obj.name} fell to the ground?",
                    f"Since the {obj.name} is made of {noun}, {FALL_OUTCOMES[obj.material]}.",
                )
            )
        front = [o for o in scene.objects if in_front(o, obj)]
        if front:
            names = join_words([f"the {o.name}" for o in front])
            verb = "stands" if len(front) == 1 else "stand"
            answer = f"{capitalize(names)} {verb} in front of the {obj.name} and partly covers it, so they might first need to move {names}."
            if len(front) > 1:
                answer = answer.replace("partly covers", "partly cover")
        else:
            # Never start an open answer with "No...": Yes/No detectors look at the first word.
            answer = f"The {obj.name} has nothing in front of it, so they could reach it directly."
        qas.append((f"What would someone need to do to reach the {obj.name}?", answer))
    order = left_to_right(scene)
    qas.append(
        (
            "How are the objects arranged from left to right?",
            f"From left to right, there are {join_words([f'the {o.name}' for o in order])}.",
        )
    )
    highest = min(scene.objects, key=lambda o: (o.y, o.object_id))
    lowest = max(scene.objects, key=lambda o: (o.y2, o.object_id))
    if highest is not lowest:
        qas.append(
            (
                "Which object is positioned highest in the image, and which is lowest?",
                f"The {highest.name} reaches highest in the image, and the {lowest.name} reaches lowest.",
            )
        )
    counts = kind_counts(scene)
    top = max(counts.values())
    most = [n for n, c in counts.items() if c == top]
    if top > 1 and len(most) == 1:
        kind = KINDS_BY_NAME[most[0]]
        qas.append(
            (
                "Which kind of object appears most often in the image?",
                f"The {kind.plural} appear most often: there are {number_word(top)} of them.",
            )
        )
        group = objects_of_kind(scene, most[0])
        colors = join_words([f"one is {o.color}" for o in group])
        qas.append(
            (
                f"What do the {kind.plural} have in common, and how do they differ?",
                f"They are all {kind.plural}, but they differ in color: {colors}.",
            )
        )
    materials: dict[str, list[SceneObject]] = {}
    for obj in scene.objects:
        if obj.material:
            materials.setdefault(obj.material, []).append(obj)
    for material, group in materials.items():
        noun = MATERIAL_NOUNS[material]
        names = join_words([f"the {o.name}" for o in group])
        n = len(group)
        head = f"{capitalize(number_word(n))} object{'s are' if n > 1 else ' is'} made of {noun}"
        qas.append((f"How many objects in the image are made of {noun}?", f"{head}: {names}."))
    by_color: dict[str, list[SceneObject]] = {}
    for obj in scene.objects:
        by_color.setdefault(obj.color, []).append(obj)
    shared = [(c, g) for c, g in by_color.items() if len(g) > 1]
    if shared:
        color, group = shared[0]
        names = join_words([f"the {o.kind.name}" for o in group])
        qas.append(
            ("Which objects in the image share the same color?", f"{capitalize(names)} are all {color}.")
        )
    qas.append(
        (
            "What colors stand out in the scene?",
            f"The objects are {join_words(list(by_color))}, set against a {scene.setting.upper} "
            f"and {scene.setting.lower}.",
        )
    )
    typical = [o for o in scene.objects if o.kind.settings == (scene.setting.name,)]
    reason = f" and {with_article(typical[0].name)} is typical of such a place" if typical else ""
    qas.append(
        (
            "What kind of place could this be, and why?",
            f"It looks like {scene.setting.place}: there is a {scene.setting.upper} behind the objects and "
            f"{scene.setting.lower} below them{reason}.",
        )
    )
    ranked = by_area(scene)
    for small in ranked[:2]:
        big = ranked[-1]
        if big.area > 2 * small.area and big.size != small.size:
            qas.append(
                (
                    f"Why might the {small.name} look smaller than the {big.name}?",
                    f"The {small.name} takes up much less of the picture than the {big.name}: the {small.name} is "
                    f"{size_clause(small)}, while the {big.name} is {size_clause(big)}.",
                )
            )
    return qas


def reasoning_yes_no(scene: Scene) -> tuple[list[QA], list[QA]]:
    yes: list[QA] = []
    no: list[QA] = []
    for obj in scene.objects:
        if obj.material in FRAGILE_MATERIALS:
            noun = MATERIAL_NOUNS[obj.material]
            yes.append(
                (
                    f"Could the {obj.name} break if it fell to the ground?",
                    f"Yes, the {obj.name} is made of {noun}, which is fragile, so it could break.",
                )
            )
        elif obj.material in STURDY_MATERIALS:
            noun = MATERIAL_NOUNS[obj.material]
            no.append(
                (
                    f"Could the {obj.name} break if it fell to the ground?",
                    f"No, the {obj.name} is made of {noun}, which is hard to break, so it would probably survive the fall.",
                )
            )
    for a, b in pairs(scene):
        if a.area > 1.2 * b.area:
            yes.append(
                (
                    f"Is the {a.name} larger than the {b.name}?",
                    f"Yes, the {a.name} takes up more of the image than the {b.name}.",
                )
            )
            no.append(
                (
                    f"Is the {b.name} larger than the {a.name}?",
                    f"No, the {b.name} is smaller than the {a.name}.",
                )
            )
        if in_front(a, b):
            yes.append(
                (
                    f"Would someone need to move the {a.name} to reach the {b.name}?",
                    f"Yes, the {a.name} is in front of the {b.name} and partly covers it.",
                )
            )
    counts = kind_counts(scene)
    for n1, c1 in counts.items():
        for n2, c2 in counts.items():
            if c1 > c2:
                k1, k2 = KINDS_BY_NAME[n1], KINDS_BY_NAME[n2]
                yes.append(
                    (
                        f"Are there more {k1.plural} than {k2.plural} in the image?",
                        f"Yes, {there_is(c1, k1)} but only one {k2.name}."
                        if c2 == 1
                        else f"Yes, {there_is(c1, k1)} but only {number_word(c2)} {k2.plural}.",
                    )
                )
                no.append(
                    (
                        f"Are there more {k2.plural} than {k1.plural} in the image?",
                        f"No, {there_is(c2, k2)} and {number_word(c1)} {k1.plural}.",
                    )
                )
    animals = [o for o in scene.objects if o.kind.name in ANIMALS]
    if animals:
        yes.append(
            (
                "Is there an animal in the image?",
                f"Yes, there is {with_article(animals[0].name)} in the image.",
            )
        )
    else:
        no.append(
            (
                "Is there an animal in the image?",
                f"No, there are no animals in the image; it shows only objects such as {object_list(scene)}.",
            )
        )
    return yes, no


# ---------------------------------------------------------------------------------------------
# Referring QAs (grounded answers, some grounded questions)
# ---------------------------------------------------------------------------------------------


def referring_qas(scene: Scene) -> list[QA]:
    qas: list[QA] = []
    for obj in scene.objects:
        qas.append(
            (
                f"Where is the {obj.name}?",
                f"{grounded(scene, [obj], f'The {obj.name}')} is {location(scene, obj)}.",
            )
        )
        qas.append(
            (
                f"What is {grounded(scene, [obj], 'this object')}?",
                f"{grounded(scene, [obj], 'This object')} is {with_article(obj.full_name)}.",
            )
        )
        if is_unique_kind(scene, obj):
            qas.append(
                (
                    f"What color is {grounded(scene, [obj], f'the {obj.kind.name}')}?",
                    f"{grounded(scene, [obj], f'The {obj.kind.name}')} is {obj.color}.",
                )
            )
    for name, count in kind_counts(scene).items():
        kind = KINDS_BY_NAME[name]
        group = objects_of_kind(scene, name)
        if count == 1:
            answer = f"There is one {grounded(scene, group, name)} in the image."
        else:
            answer = f"There are {number_word(count)} {grounded(scene, group, kind.plural)} in the image."
        qas.append((f"How many {kind.plural} are there?", answer))
    for a, b in pairs(scene):
        if a.object_id < b.object_id:
            qas.append(
                (
                    f"How are the {a.name} and the {b.name} positioned relative to each other?",
                    f"{grounded(scene, [a], f'The {a.name}')} is {relation(a, b)} "
                    f"{grounded(scene, [b], f'the {b.name}')}.",
                )
            )
    for obj in scene.objects:
        front = [o for o in scene.objects if in_front(o, obj)]
        if len(front) == 1:
            qas.append(
                (
                    f"What is in front of the {obj.name}?",
                    f"{grounded(scene, front, f'The {front[0].name}')} is in front of "
                    f"{grounded(scene, [obj], f'the {obj.name}')}.",
                )
            )
    materials: dict[str, list[SceneObject]] = {}
    for obj in scene.objects:
        if obj.material:
            materials.setdefault(obj.material, []).append(obj)
    for material, group in materials.items():
        parts = grounded_names(scene, group)
        verb = "is" if len(group) == 1 else "are"
        qas.append(
            (
                f"Which objects are made of {MATERIAL_NOUNS[material]}?",
                f"{join_words(parts)} {verb} made of {MATERIAL_NOUNS[material]}.",
            )
        )
    largest = by_area(scene)[-1]
    qas.append(
        (
            "Which is the largest object in the image?",
            f"{grounded(scene, [largest], f'The {largest.name}')} is the largest object in the image.",
        )
    )
    listed = []
    for name, count in kind_counts(scene).items():
        group = objects_of_kind(scene, name)
        phrase = (
            with_article(group[0].name)
            if count == 1
            else f"{number_word(count)} {KINDS_BY_NAME[name].plural}"
        )
        listed.append(grounded(scene, group, phrase))
    qas.append(("What objects can you see in the image?", f"I can see {join_words(listed)}."))
    left = [o for o in left_to_right(scene) if o.cx < scene.width / 2]
    if left:
        parts = grounded_names(scene, left)
        verb = "is" if len(left) == 1 else "are"
        qas.append(
            (
                "Which objects are in the left half of the image?",
                f"{join_words(parts)} {verb} in the left half of the image.",
            )
        )
    return qas


# ---------------------------------------------------------------------------------------------
# Detail description, COCO captions, VG regions
# ---------------------------------------------------------------------------------------------


def detail_description(scene: Scene, rng: random.Random) -> str:
    n = len(scene.objects)
    sentences = [
        f"The image shows {scene.setting.scene_phrase}.",
        f"There are {number_word(n)} objects in the scene: {object_list(scene)}.",
    ]
    templates = (
        "{A} sits {loc}.",
        "{Loc}, there is {a}.",
        "{A} can be seen {loc}.",
    )
    for obj in left_to_right(scene):
        phrase = with_article(obj.full_name)
        template = rng.choice(templates)
        loc = location(scene, obj)
        sentences.append(template.format(A=capitalize(phrase), a=phrase, loc=loc, Loc=capitalize(loc)))
    for name, count in kind_counts(scene).items():
        if count > 1:
            group = objects_of_kind(scene, name)
            colors = join_words([f"one {o.color}" for o in group])
            sentences.append(
                f"The {number_word(count)} {KINDS_BY_NAME[name].plural} differ in color: {colors}."
            )
    side_by_side = [(a, b) for a, b in pairs(scene) if relation(a, b) in ("to the left of", "above")]
    for a, b in side_by_side[:2]:
        sentences.append(f"The {a.name} is {relation(a, b)} the {b.name}.")
    for a, b in [(a, b) for a, b in pairs(scene) if in_front(a, b)][:3]:
        sentences.append(f"The {a.name} stands in front of the {b.name}, partly hiding it.")
    largest = by_area(scene)[-1]
    sentences.append(
        f"The {largest.name} is the largest object, while the {by_area(scene)[0].name} is the smallest."
    )
    sentences.append(scene.setting.closing)
    return " ".join(sentences)


def coco_captions(scene: Scene) -> list[str]:
    ranked = list(reversed(by_area(scene)))
    a, b = ranked[0], ranked[1]
    place = scene.setting.place
    rel = relation(a, b)
    return [
        f"{capitalize(with_article(a.name))} and {with_article(b.name)} in {place}.",
        f"{capitalize(number_word(len(scene.objects)))} objects arranged in {place}.",
        f"A view of {place} with {object_list(scene)}.",
        f"{capitalize(with_article(a.full_name))} {rel} {with_article(b.name)}.",
        f"Several things under a {scene.setting.upper} and on {scene.setting.lower}, including {with_article(ranked[-1].name)}."
        if scene.setting.name == "park"
        else f"Several things in front of a {scene.setting.upper}, including {with_article(ranked[-1].name)}.",
    ]


def vg_regions(scene: Scene, first_region_id: int) -> list[dict]:
    """Region descriptions: one per object, a few relations (union box), and the two background bands."""
    regions: list[tuple[str, int, int, int, int]] = []
    for obj in scene.objects:
        material = f" {obj.material}" if obj.material else ""
        regions.append((f"{with_article(obj.color)}{material} {obj.kind.name}", obj.x, obj.y, obj.w, obj.h))
    for a, b in pairs(scene)[:4]:
        x1, y1 = min(a.x, b.x), min(a.y, b.y)
        x2, y2 = max(a.x2, b.x2), max(a.y2, b.y2)
        regions.append((f"{a.name} {relation(a, b)} {b.name}", x1, y1, x2 - x1, y2 - y1))
    regions.append((scene.setting.upper, 0, 0, scene.width, scene.horizon))
    regions.append((scene.setting.lower, 0, scene.horizon, scene.width, scene.height - scene.horizon))
    return [
        {
            "region_id": first_region_id + k,
            "image_id": scene.image_id,
            "phrase": phrase,
            "x": x,
            "y": y,
            "width": w,
            "height": h,
        }
        for k, (phrase, x, y, w, h) in enumerate(regions)
    ]


# ---------------------------------------------------------------------------------------------
# Release records
# ---------------------------------------------------------------------------------------------


def pick(candidates: Sequence[QA], k: int, rng: random.Random, exclude: Iterable[QA] = ()) -> list[QA]:
    """`k` distinct QAs when there are enough, else all of them then repeats (still deterministic)."""
    taken = set(exclude)
    pool = [qa for qa in candidates if qa not in taken]
    if len(pool) >= k:
        return rng.sample(pool, k)
    return pool + [rng.choice(list(candidates)) for _ in range(k - len(pool))]


def interleave(open_qas: list[QA], yes_no: list[QA], rng: random.Random) -> list[QA]:
    qas = list(open_qas)
    for qa in yes_no:
        qas.insert(rng.randint(1, len(qas)), qa)
    return qas


def turns(qas: Sequence[QA], user: str = "user", assistant: str = "gpt") -> list[dict]:
    content = []
    for question, answer in qas:
        content.append({"from": user, "value": question})
        content.append({"from": assistant, "value": answer})
    return content


# Yes/No QAs per image: 4 in the conversations (2 + 1 + 1), 4 in complex reasoning. One of them is
# a No on four images out of five, which lands near Yes:No = 9 overall (the paper's SVIT-80K-B
# found ~8 best; the raw data is far more Yes-heavy).
CONVERSATION_YES_NO = (2, 1, 1)
REASONING_YES_NO = 4


def no_answers(plan: ImagePlan) -> tuple[int, int]:
    """(No QAs in the conversations, No QAs in complex reasoning) for one image."""
    if plan.index % 5 == 0:
        return 0, 0
    return (1, 0) if plan.index % 2 == 0 else (0, 1)


def yes_no_mix(yes: list[QA], no: list[QA], total: int, n_no: int, rng: random.Random) -> list[QA]:
    n_no = min(n_no, len(no))
    chosen = pick(no, n_no, rng) + pick(yes, total - n_no, rng)
    rng.shuffle(chosen)
    return chosen


def conversation_record(scene: Scene, plan: ImagePlan, seed: int) -> dict:
    rng = random.Random(f"svit-sample:{seed}:conversation:{scene.image_id}")
    themes = (appearance_qas(scene), position_qas(scene), quantity_qas(scene))
    yes, no = conversation_yes_no(scene)
    yes_no = yes_no_mix(yes, no, sum(CONVERSATION_YES_NO), no_answers(plan)[0], rng)
    conversations = []
    start = 0
    for k, (candidates, n_yes_no) in enumerate(zip(themes, CONVERSATION_YES_NO, strict=True)):
        qas = interleave(pick(candidates, 5 - n_yes_no, rng), yes_no[start : start + n_yes_no], rng)
        start += n_yes_no
        conversation: dict = {"content": turns(qas)}
        # The topic line is optional upstream: carry it on about one conversation in four.
        if (plan.index + k) % 4 == 0:
            conversation = {"topic": CONVERSATION_TOPICS[k], **conversation}
        conversations.append(conversation)
    return {"image_id": scene.image_id, "conversations": conversations}


def complex_reasoning_record(scene: Scene, plan: ImagePlan, seed: int) -> dict:
    rng = random.Random(f"svit-sample:{seed}:complex_reasoning:{scene.image_id}")
    yes, no = reasoning_yes_no(scene)
    yes_no = yes_no_mix(yes, no, REASONING_YES_NO, no_answers(plan)[1], rng)
    qas = interleave(pick(reasoning_qas(scene), 15 - REASONING_YES_NO, rng), yes_no, rng)
    return {"image_id": scene.image_id, "conversations": [{"content": turns(qas)}]}


def referring_record(scene: Scene, seed: int) -> dict:
    rng = random.Random(f"svit-sample:{seed}:referring_qa:{scene.image_id}")
    return {
        "image_id": scene.image_id,
        "conversations": [{"content": turns(pick(referring_qas(scene), 10, rng))}],
    }


def detail_record(scene: Scene, seed: int) -> dict:
    rng = random.Random(f"svit-sample:{seed}:detail_description:{scene.image_id}")
    question = rng.choice(DETAIL_INSTRUCTIONS)
    return {
        "image_id": scene.image_id,
        "conversations": [{"content": turns([(question, detail_description(scene, rng))])}],
    }


def plant_bad_records(release: dict[str, list[dict]]) -> None:
    """Corrupt exactly one conversation per BAD_RECORDS entry (in place), as documented in README.md."""
    for bad in BAD_RECORDS:
        records = release[bad.file]
        record = next(r for r in records if r["image_id"] == bad.image_id)
        if bad.reason == "failed_generation":
            record["conversations"][0]["content"][1]["value"] = FAILED_GENERATION_TEXT
        elif bad.reason == "empty_turn":
            record["conversations"][0]["content"][13]["value"] = ""
        elif bad.reason == "unknown_speaker":
            record["conversations"][1]["content"][3]["from"] = "bot"
        elif bad.reason == "unpaired_turns":
            question = "What else is worth noticing in this picture?"
            record["conversations"][2]["content"].append({"from": "user", "value": question})
        elif bad.reason in ("bad_box", "unbalanced_grounding_tags"):
            content = record["conversations"][0]["content"]
            turn = next(t for t in content if t["from"] == "gpt" and "<ed> [" in t["value"])
            if bad.reason == "bad_box":
                start = turn["value"].index("<ed> [") + len("<ed> ")
                end = turn["value"].index("]", start) + 1
                turn["value"] = turn["value"][:start] + BAD_BOX + turn["value"][end:]
            else:
                turn["value"] = turn["value"].replace("<ed>", "", 1)
        elif bad.reason == "duplicate_sample":
            records.append(json.loads(json.dumps(record)))
        else:  # pragma: no cover - guards against a typo in BAD_RECORDS
            raise ValueError(f"unknown bad-record reason {bad.reason!r} in BAD_RECORDS")


# ---------------------------------------------------------------------------------------------
# The LLaVA-1.5 pair (llava_instruct_150k.json, llava_v1_5_mix665k.json)
# ---------------------------------------------------------------------------------------------

VQA_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."


def _text_scene(image_id: int, seed: int, width: int = 640, height: int = 480) -> Scene:
    """A scene that is never drawn: the LLaVA samples only need consistent text."""
    plan = ImagePlan(0, image_id, "coco", width, height, image_id, None)
    return make_scene(plan, seed, first_object_id=0)


def _with_image_token(qas: list[QA], token_last: bool = False) -> list[dict]:
    content = turns(qas, user="human", assistant="gpt")
    first = content[0]["value"]
    content[0]["value"] = f"{first}\n<image>" if token_last else f"<image>\n{first}"
    return content


def llava_instruct_samples(seed: int, coco_ids: Sequence[int]) -> list[dict]:
    samples = []
    for k, coco_id in enumerate(coco_ids):
        scene = _text_scene(coco_id, seed)
        rng = random.Random(f"svit-sample:{seed}:llava:{coco_id}")
        if k % 4 == 1:  # detail
            qas = [(rng.choice(DETAIL_INSTRUCTIONS), detail_description(scene, rng))]
        elif k % 4 == 3:  # complex reasoning: one QA
            qas = pick(reasoning_qas(scene), 1, rng)
        else:  # conversation: 2-4 QAs
            candidates = appearance_qas(scene) + position_qas(scene) + quantity_qas(scene)
            qas = pick(candidates, rng.randint(2, 4), rng)
        image = f"{coco_id:012d}"
        # LLaVA-Instruct-150K puts the image token after the first question in some samples.
        samples.append(
            {
                "id": image,
                "image": f"{image}.jpg",
                "conversations": _with_image_token(qas, token_last=k in (5, 14)),
            }
        )
    return samples


def _vqa_sample(seed: int, coco_id: int, k: int) -> dict:
    scene = _text_scene(coco_id, seed)
    rng = random.Random(f"svit-sample:{seed}:vqa:{coco_id}")
    obj = rng.choice(scene.objects)
    counts = kind_counts(scene)
    if k % 4 == 3 and obj.material:
        options = [obj.material] + [m for m in MATERIAL_NOUNS if m != obj.material][:3]
        rng.shuffle(options)
        letters = "ABCD"
        listing = "\n".join(f"{letters[i]}. {MATERIAL_NOUNS[m]}" for i, m in enumerate(options))
        qas = [
            (f"What is the {obj.name} made of?\n{listing}\n{MC_SUFFIX}", letters[options.index(obj.material)])
        ]
    else:
        candidates = [
            (
                f"What color is the {obj.kind.name}?",
                obj.color.capitalize() if counts[obj.kind.name] == 1 else None,
            ),
            (f"How many {obj.kind.plural} are there?", str(counts[obj.kind.name])),
            (f"Is there {with_article(obj.kind.name)} in the picture?", "Yes"),
            (f"Is there {with_article(absent_kinds(scene)[0].name)} in the picture?", "No"),
        ]
        usable = [(q, a) for q, a in candidates if a is not None]
        qas = [(f"{q}\n{VQA_SUFFIX}", a) for q, a in pick(usable, rng.randint(1, 3), rng)]
    image = f"{coco_id:012d}"
    return {"id": image, "image": f"coco/train2017/{image}.jpg", "conversations": _with_image_token(qas)}


def _vg_sample(scene: Scene, rng: random.Random) -> dict:
    obj = rng.choice(scene.objects)
    box = padded_square_box(obj, scene.width, scene.height)
    material = f" {obj.material}" if obj.material else ""
    phrase = f"{with_article(obj.color)}{material} {obj.kind.name}"
    qas = [
        (f"Please provide the bounding box coordinate of the region this sentence describes: {phrase}.", box),
        (f"Please provide a short description for this region: {box}", capitalize(phrase) + "."),
    ]
    return {
        "id": str(scene.image_id),
        "image": f"vg/{scene.folder}/{scene.image_id}.jpg",
        "conversations": _with_image_token(qas),
    }


BOOKS = (
    ("0140449132", "The Quiet Garden", "Mara Ellison", "Crafts, Hobbies & Home"),
    ("0316769177", "Rivers of Stone", "Tomas Quill", "History"),
    ("0553386794", "Counting the Stars", "Ada Brennan", "Science & Math"),
    ("0679783261", "A Kitchen in Spring", "Lena Ortiz", "Cookbooks, Food & Wine"),
    ("0743273567", "Maps for Beginners", "Paul Hartley", "Travel"),
    ("1400079985", "The Last Lighthouse", "June Okafor", "Literature & Fiction"),
)

TEXT_ONLY = (
    ("Give me three tips for keeping a houseplant alive.",
     "1. Water it only when the top of the soil feels dry. 2. Give it bright, indirect light. "
     "3. Use a pot with drainage holes so the roots never sit in water."),
    ("What is the difference between weather and climate?",
     "Weather is the state of the atmosphere at a given time and place, while climate is the average "
     "of the weather over many years."),
    ("Write a two-line poem about the sea.", "The tide writes letters on the sand,\nand takes them back with a patient hand."),
    ("Convert 5 kilometers to miles.", "5 kilometers is about 3.11 miles."),
    ("Suggest a name for a small bakery.", "How about \"The Morning Crumb\"?"),
)  # fmt: skip


def llava_mix_samples(
    seed: int, instruct: list[dict], vqa_coco_ids: Sequence[int], vg_scenes: Sequence[Scene]
) -> list[dict]:
    """~70 LLaVA-v1.5-mix665K-style samples: the instruct ones re-pathed plus other sources, order mixed."""
    rng = random.Random(f"svit-sample:{seed}:mix665k")
    samples = [{**s, "image": f"coco/train2017/{s['image']}"} for s in instruct]
    samples += [_vqa_sample(seed, coco_id, k) for k, coco_id in enumerate(vqa_coco_ids)]
    samples += [_vg_sample(scene, rng) for scene in vg_scenes]
    for isbn, title, author, genre in BOOKS:
        qas = [
            (f"Who wrote this book?\n{VQA_SUFFIX}", author),
            ("What is the title of this book?", title),
            ("What type of book is this?", genre),
            ("Is this a comedy book?", "No"),
        ]
        samples.append(
            {
                "id": isbn,
                "image": f"ocr_vqa/images/{isbn}.jpg",
                "conversations": _with_image_token(qas, token_last=True),
            }
        )
    for k, gqa_id in enumerate((2354786, 2368941, 2375429, 2391157)):
        scene = _text_scene(gqa_id, seed, 500, 375)
        obj = scene.objects[k % len(scene.objects)]
        other = next(o for o in scene.objects if o is not obj)
        qas = [
            (f"What is the {obj.name} made of?\n{VQA_SUFFIX}" if obj.material else f"What animal is this?\n{VQA_SUFFIX}",
             MATERIAL_NOUNS[obj.material].capitalize() if obj.material else obj.kind.name.capitalize()),
            (f"Is the {obj.name} {relation(obj, other)} the {other.name}?\n{VQA_SUFFIX}", "Yes"),
        ]  # fmt: skip
        samples.append(
            {"id": str(gqa_id), "image": f"gqa/images/{gqa_id}.jpg", "conversations": _with_image_token(qas)}
        )
    for k, (word, hex_id) in enumerate(
        (("STOP", "0a1b2c3d4e5f6a7b"), ("OPEN", "1f2e3d4c5b6a7980"), ("EXIT", "7c6b5a4938271605"))
    ):
        qas = [
            (
                f"What is written on the sign?\nReference OCR token: {word}, {k + 1}\n{VQA_SUFFIX}",
                word.lower(),
            )
        ]
        samples.append(
            {
                "id": hex_id,
                "image": f"textvqa/train_images/{hex_id}.jpg",
                "conversations": _with_image_token(qas),
            }
        )
    for k, (question, answer) in enumerate(TEXT_ONLY):
        sid = f"{rng.getrandbits(32):08x}_{k}"
        samples.append({"id": sid, "model": "", "conversations": turns([(question, answer)], user="human")})
    rng.shuffle(samples)
    return samples


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------


def _compact(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def dump_list(items: Sequence[object]) -> bytes:
    """One list item per line: valid JSON that still diffs and greps well."""
    return ("[\n" + ",\n".join(_compact(i) for i in items) + "\n]\n").encode("utf-8")


def dump_object_of_lists(obj: dict) -> bytes:
    parts = []
    for key, value in obj.items():
        if isinstance(value, list):
            body = "[\n" + ",\n".join(_compact(i) for i in value) + "\n]"
        else:
            body = _compact(value)
        parts.append(f"{json.dumps(key)}:{body}")
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("utf-8")


# "Yes" / "No" as a whole first word ("Nothing..." is not a No).
YES_NO_WORD = re.compile(r"(Yes|No)\b")

RELEASE_FILES = (
    "conversation.json",
    "complex_reasoning.json",
    "referring_qa.json",
    "detail_description.json",
)


def sample_stats(release: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    stats = {}
    for name, records in release.items():
        conversations = [c for r in records for c in r["conversations"]]
        answers = [t["value"] for c in conversations for t in c["content"] if t["from"] != "user"]
        stats[name] = {
            "records": len(records),
            "samples": len(conversations),
            "qas": sum(sum(1 for t in c["content"] if t["from"] == "user") for c in conversations),
            "yes": sum(YES_NO_WORD.match(a) is not None and a.startswith("Yes") for a in answers),
            "no": sum(YES_NO_WORD.match(a) is not None and a.startswith("No") for a in answers),
        }
    return stats


def readme_text(
    seed: int, plans: Sequence[ImagePlan], release: dict[str, list[dict]], n_instruct: int, n_mix: int
) -> str:
    stats = sample_stats(release)
    bad_per_file = {name: sum(1 for b in BAD_RECORDS if b.file == name) for name in RELEASE_FILES}
    rows = "\n".join(
        f"| `{name}` | {s['records']} | {s['samples']} | {s['qas']} | {s['samples'] - bad_per_file[name]} | {s['yes']} / {s['no']} |"
        for name, s in stats.items()
    )
    bad_rows = "\n".join(f"| `{b.file}` | {b.image_id} | `{b.reason}` | {b.what} |" for b in BAD_RECORDS)
    n_coco = sum(p.coco_id is not None for p in plans)
    return f"""# svit format sample

This folder is **a format sample written for the svit project, not SVIT data**. Every image is a
procedurally drawn scene (coloured shapes on a plain background) and every annotation and answer is
templated from that scene, so colours, counts, sizes, spatial relations and boxes in the text are
true of the picture. Materials (wooden, glass...) belong to the scene definition but are not drawn.
It exists so that tests, notebooks and `svit demo` can run offline.

Licence: MIT, like the rest of the repository. The real SVIT data (BAAI/SVIT, CC-BY-4.0), Visual
Genome and COCO are not redistributed here; only their file layouts are imitated.

Regenerate (deterministic: the same seed gives byte-identical files):

```
python -m tools.sample_maker            # writes svit_dataset/sample/ with seed {seed}
python -m tools.sample_maker --out DIR --seed N
```

Do not edit these files by hand: change `tools/sample_maker.py` and regenerate.

## Layout

- `images/VG_100K/<id>.jpg`, `images/VG_100K_2/<id>.jpg`: {len(plans)} JPEGs (quality {JPEG_QUALITY}), sizes
  from 96 to 160 px, wide, tall, square and odd width-height differences.
- `annotations/`: Visual Genome v1.2 shapes (`image_data.json`, `objects.json`,
  `region_descriptions.json`; boxes are pixel `x, y, w, h`) and COCO `captions_train2017.json`
  (5 captions for each of the {n_coco} images that have a `coco_id`).
- `release/`: the four released SVIT task files, one JSON list each, records
  `{{"image_id", "conversations": [{{"content": [{{"from": "user"|"gpt", "value"}}...]}}]}}`; some
  conversation objects carry an optional `"topic"`. Referring answers write boxes as
  `<st>phrase<ed> [x1, y1, x2, y2]`, normalized to the original image, 3 decimals.
- `test_image_ids.txt`: the held-out test split of the sample ({len(TEST_IMAGE_IDS)} ids, all clean).
- `llava/llava_instruct_150k.json` ({n_instruct} samples) and `llava/llava_v1_5_mix665k.json`
  ({n_mix} samples: the instruct samples with `coco/train2017/` paths and the same ids, COCO VQA,
  `vg/` region samples with 2-decimal padded-square boxes, `ocr_vqa/`, `gqa/`, `textvqa/` and
  text-only samples without `image`). As in the real files, two instruct samples put `<image>`
  after the first question instead of before it.

## Counts

One sample = one conversation of one image. "Clean" = samples left after the quality gates drop the
planted bad records below. Yes / No = answers starting with "Yes" / "No".

| file | records | samples | QAs | clean samples | Yes / No |
|---|---|---|---|---|---|
{rows}

## Deliberately bad records

Each corrupts exactly one conversation (so it costs exactly one sample), each on a different image,
none in the test split:

| file | image_id | reason | what |
|---|---|---|---|
{bad_rows}
"""


def build_sample(seed: int = DEFAULT_SEED) -> dict[str, bytes]:
    """Every file of the sample, `{path relative to the sample folder: bytes}`. Pure: no I/O."""
    plans = image_plans(seed)
    scenes = [make_scene(p, seed, first_object_id=1_058_000 + 10 * p.index) for p in plans]
    files: dict[str, bytes] = {}

    for scene in scenes:
        files[f"images/{scene.folder}/{scene.image_id}.jpg"] = render_scene(scene)

    image_data = [
        {
            "image_id": s.image_id,
            "width": s.width,
            "height": s.height,
            "url": f"https://cs.stanford.edu/people/rak248/{s.folder}/{s.image_id}.jpg",
            "coco_id": s.coco_id,
            "flickr_id": s.flickr_id,
        }
        for s in scenes
    ]
    objects = [
        {
            "image_id": s.image_id,
            "objects": [
                {
                    "object_id": o.object_id,
                    "x": o.x,
                    "y": o.y,
                    "w": o.w,
                    "h": o.h,
                    "names": [o.kind.name],
                    "synsets": [],
                }
                for o in s.objects
            ],
        }
        for s in scenes
    ]
    regions = [
        {"id": s.image_id, "regions": vg_regions(s, 3_712_000 + 20 * p.index)}
        for s, p in zip(scenes, plans, strict=True)
    ]
    coco_scenes = [s for s in scenes if s.coco_id is not None]
    captions = {
        "info": {"description": "svit format sample: not COCO data", "version": "1.0", "year": 2017},
        "licenses": [{"id": 1, "name": "MIT", "url": "https://opensource.org/licenses/MIT"}],
        "images": [
            {"id": s.coco_id, "file_name": f"{s.coco_id:012d}.jpg", "width": s.width, "height": s.height}
            for s in coco_scenes
        ],
        "annotations": [
            {"id": 700_000 + 5 * k + j, "image_id": s.coco_id, "caption": caption}
            for k, s in enumerate(coco_scenes)
            for j, caption in enumerate(coco_captions(s))
        ],
    }
    files["annotations/image_data.json"] = dump_list(image_data)
    files["annotations/objects.json"] = dump_list(objects)
    files["annotations/region_descriptions.json"] = dump_list(regions)
    files["annotations/captions_train2017.json"] = dump_object_of_lists(captions)

    release = {
        "conversation.json": [conversation_record(s, p, seed) for s, p in zip(scenes, plans, strict=True)],
        "complex_reasoning.json": [
            complex_reasoning_record(s, p, seed) for s, p in zip(scenes, plans, strict=True)
        ],
        "referring_qa.json": [referring_record(s, seed) for s in scenes],
        "detail_description.json": [detail_record(s, seed) for s in scenes],
    }
    plant_bad_records(release)
    for name in RELEASE_FILES:
        files[f"release/{name}"] = dump_list(release[name])

    files["test_image_ids.txt"] = "".join(f"{i}\n" for i in TEST_IMAGE_IDS).encode()

    # LLaVA ids are drawn apart from the VG images' coco ids, so the recipe code cannot confuse them.
    rng = random.Random(f"svit-sample:{seed}:llava-ids")
    taken = {p.coco_id for p in plans}
    llava_ids = [i for i in rng.sample(range(9, 581_929), 60) if i not in taken]
    instruct = llava_instruct_samples(seed, llava_ids[:20])
    mix = llava_mix_samples(seed, instruct, llava_ids[20:44], scenes[::4][:8])
    files["llava/llava_instruct_150k.json"] = dump_list(instruct)
    files["llava/llava_v1_5_mix665k.json"] = dump_list(mix)

    files["README.md"] = readme_text(seed, plans, release, len(instruct), len(mix)).encode()
    return dict(sorted(files.items()))


def write_sample(out_dir: str | os.PathLike, seed: int = DEFAULT_SEED) -> dict[str, bytes]:
    """Write the sample under `out_dir`. Each file goes to a temporary name first, then is renamed
    into place; files of others in `out_dir` are left alone."""
    out = Path(out_dir)
    files = build_sample(seed)
    for relative, data in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sample_maker",
        description="Write the svit format sample (not SVIT data) deterministically from a seed.",
    )
    parser.add_argument("--out", default=str(SAMPLE_DIR), help="output folder (default: the packaged sample)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = write_sample(args.out, args.seed)
    total = sum(len(b) for b in files.values())
    logger.info("wrote %d files, %.1f KiB, to %s", len(files), total / 1024, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
