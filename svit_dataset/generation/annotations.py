"""Scenes: one image's captions, objects and regions, with boxes normalized to [0, 1].

A scene is what the prompts are rendered from. Two sources:

- the real Visual Genome files (`image_data.json`, `objects.json`, `region_descriptions.json`;
  pixel `x, y, w, h` boxes) joined with COCO captions (`captions_train2017.json`, and
  `captions_val2017.json` if given) through VG's `coco_id`;
- scenes JSONL, one scene a line, already normalized (the form `Scene.to_json` writes):

      {"image_id": 1, "width": 800, "height": 600, "image_path": "VG_100K/1.jpg",
       "captions": ["A man ..."], "objects": [{"name": "man", "box": [0.1, 0.2, 0.5, 0.9]}],
       "regions": [{"phrase": "a man riding a horse", "box": [0.1, 0.2, 0.6, 0.9]}]}

VG's `objects.json` and `region_descriptions.json` are hundreds of MB. They are streamed with
ijson and joined to `image_data.json` in its order; upstream writes all three in the same order,
so nothing is buffered. Files in another order still join correctly: entries met before their
turn are buffered (only those of selected images).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import ijson
import orjson

from svit_dataset.boxes import Box, is_valid_box, normalize_xywh
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import atomic_path
from svit_dataset.jsonlist import MAX_JSON_DEPTH, iter_json_file_items, loads_json
from svit_dataset.release import MalformedTally
from svit_dataset.vg import iter_image_data

logger = logging.getLogger(__name__)

VG_FILES = ("image_data.json", "objects.json", "region_descriptions.json")


class SceneFormatError(ValueError):
    """One scene record is malformed; the message says which field."""


@dataclasses.dataclass(frozen=True)
class Scene:
    """What an LLM is told about one image. Boxes are `[x1, y1, x2, y2]` in [0, 1] of the original image."""

    image_id: int
    width: int | None
    height: int | None
    image_path: str
    captions: tuple[str, ...] = ()
    objects: tuple[tuple[str, Box], ...] = ()
    regions: tuple[tuple[str, Box], ...] = ()

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "width": self.width,
            "height": self.height,
            "image_path": self.image_path,
            "captions": list(self.captions),
            "objects": [{"name": n, "box": [round(v, 4) for v in b]} for n, b in self.objects],
            "regions": [{"phrase": p, "box": [round(v, 4) for v in b]} for p, b in self.regions],
        }


def scene_from_json(obj: Any) -> Scene:
    """A `Scene` from its JSON form; raises SceneFormatError naming the bad field."""
    if not isinstance(obj, dict):
        raise SceneFormatError(f"a scene is a JSON object, got {type(obj).__name__}")
    image_id = obj.get("image_id")
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        raise SceneFormatError(f"image_id is {image_id!r}, expected an integer")
    size = []
    for key in ("width", "height"):
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise SceneFormatError(f"{key} is {value!r}, expected a positive integer or null")
        size.append(value)
    captions = obj.get("captions", [])
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise SceneFormatError("captions must be a list of strings")
    objects = _labelled_boxes(obj.get("objects", []), "objects", "name")
    regions = _labelled_boxes(obj.get("regions", []), "regions", "phrase")
    image_path = obj.get("image_path") or f"VG_100K/{image_id}.jpg"
    if not isinstance(image_path, str):
        raise SceneFormatError("image_path must be a string")
    return Scene(image_id, size[0], size[1], image_path, tuple(captions), objects, regions)


def _labelled_boxes(items: Any, field: str, label: str) -> tuple[tuple[str, Box], ...]:
    if not isinstance(items, list):
        raise SceneFormatError(f"{field} must be a list")
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(label), str):
            raise SceneFormatError(f"{field}[{k}] needs a string {label!r}")
        box = item.get("box")
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
            or not all(math.isfinite(v) for v in box)
            or not is_valid_box(box)
        ):
            raise SceneFormatError(
                f"{field}[{k}].box is {box!r}; expected [x1, y1, x2, y2] normalized to [0, 1] "
                "(pixel boxes must be divided by the image width and height first)"
            )
        out.append((item[label], tuple(float(v) for v in box)))
    return tuple(out)


# --- scenes JSONL ---------------------------------------------------------------------------------


def iter_scenes_jsonl(path: str | Path, tally: MalformedTally | None = None) -> Iterator[Scene]:
    """Scenes of a JSONL file; malformed lines are counted in `tally`, logged and skipped.

    `tally.check()` runs at the end: past its `max_fraction` of bad lines the file is rejected.
    """
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"--scenes {path}: not found; pass a JSONL file with one scene a line")
    tally = tally or MalformedTally(
        path, max_fraction=0.001, fix="Fix the file: svit generate skips at most 0.1% of its lines."
    )
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            tally.records += 1
            try:
                yield scene_from_json(loads_json(line, path))
            except orjson.JSONDecodeError as err:
                tally.add(n, f"line {n}: not JSON ({err})")
            except SvitFormatError:  # one line nested too deep is one bad line, as a broken one
                tally.add(n, f"line {n}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            except SceneFormatError as err:
                tally.add(n, f"line {n}: {err}")
    tally.check()


def write_scenes_jsonl(scenes: Iterable[Scene], path: str | Path) -> int:
    """Write scenes as JSONL, atomically (temporary file renamed into place); returns the count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for scene in scenes:
            f.write(orjson.dumps(scene.to_json()) + b"\n")
            n += 1
    return n


# --- Visual Genome + COCO -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    image_id: int
    width: int
    height: int
    image_path: str
    coco_id: int | None


def vg_paths(vg_dir: str | Path) -> dict[str, Path]:
    """The three VG files of `vg_dir`, with an error naming the first one missing."""
    vg_dir = Path(vg_dir)
    paths = {name: vg_dir / name for name in VG_FILES}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise SvitInputError(
            f"--annotations {vg_dir}: missing {', '.join(missing)}. Pass the folder holding Visual "
            "Genome's image_data.json, objects.json and region_descriptions.json (v1.2, unzipped)."
        )
    return paths


def select_images(
    vg_dir: str | Path,
    wanted: Callable[[int], bool] | None = None,
    max_images: int | None = None,
    counts: dict | None = None,
) -> list[ImageMeta]:
    """Images of `image_data.json` in file order, filtered by `wanted`, at most `max_images`.

    One pass over the file, which stops at `max_images`. An image id met again is skipped and
    counted in `counts["duplicate_images"]` (if given).
    """
    path = vg_paths(vg_dir)["image_data.json"]
    counts = counts if counts is not None else {}
    counts.setdefault("duplicate_images", 0)
    counts.setdefault("images_without_size", 0)
    out: list[ImageMeta] = []
    seen: set[int] = set()
    for image_id, info, coco_id in iter_image_data(path, flag="--annotations"):
        if image_id in seen:
            counts["duplicate_images"] += 1
            continue
        seen.add(image_id)
        if wanted is not None and not wanted(image_id):
            continue
        if info.width is None:  # VG boxes are pixels: without a size they cannot be normalized
            counts["images_without_size"] += 1
            continue
        out.append(ImageMeta(image_id, info.width, info.height, info.path, coco_id))
        if max_images is not None and len(out) >= max_images:
            break
    return out


def read_coco_captions(paths: Iterable[str | Path], coco_ids: set[int] | None = None) -> dict[int, list[str]]:
    """COCO image id -> its captions (file order), from one or more `captions_*.json` files."""
    out: dict[int, list[str]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise SvitInputError(f"--coco-captions {path}: not found; pass COCO's captions_train2017.json")
        with open(path, "rb") as f:
            try:
                for k, ann in enumerate(iter_json_file_items(f, "annotations.item", path)):
                    try:
                        coco_id, caption = int(ann["image_id"]), str(ann["caption"])
                    except (KeyError, TypeError, ValueError):
                        raise SvitFormatError(
                            f"{path}: annotations[{k}] lacks image_id/caption; is this a COCO captions file?"
                        ) from None
                    if coco_ids is None or coco_id in coco_ids:
                        out.setdefault(coco_id, []).append(" ".join(caption.split()))
            except ijson.JSONError as err:
                raise SvitFormatError(f"{path}: invalid or truncated JSON: {err}") from None
    return out


class _KeyedStream:
    """(image_id, payload) pairs of one VG file, looked up in another file's order.

    Entries met before they are asked for are buffered, and only when `keep(image_id)`.
    """

    def __init__(self, items: Iterator[tuple[int, Any]], keep: Callable[[int], bool]):
        self._items = items
        self._keep = keep
        self._buffer: dict[int, Any] = {}
        self._exhausted = False

    def take(self, image_id: int) -> Any | None:
        if image_id in self._buffer:
            return self._buffer.pop(image_id)
        while not self._exhausted:
            try:
                key, payload = next(self._items)
            except StopIteration:
                self._exhausted = True
                break
            if key == image_id:
                return payload
            if self._keep(key):
                self._buffer[key] = payload
        return None


def _stream_json_list(path: Path, id_keys: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as f:
        try:
            for k, item in enumerate(iter_json_file_items(f, "item", path)):
                image_id = next(
                    (item[key] for key in id_keys if isinstance(item, dict) and key in item), None
                )
                if image_id is None:
                    raise SvitFormatError(f"{path}: item {k} has no {' or '.join(id_keys)}")
                yield int(image_id), item
        except ijson.JSONError as err:
            raise SvitFormatError(f"{path}: invalid or truncated JSON: {err}") from None


def _vg_objects(item: dict, meta: ImageMeta, counts: dict) -> list[tuple[str, Box]]:
    out = []
    for obj in item.get("objects") or []:
        try:
            names = obj.get("names") or [obj.get("name")]
            name = " ".join(str(names[0]).split())
            box = normalize_xywh(obj["x"], obj["y"], obj["w"], obj["h"], meta.width, meta.height)
        except (AttributeError, KeyError, TypeError, IndexError):
            counts["bad_objects"] += 1
            continue
        if name and name != "None":
            out.append((name, box))
        else:
            counts["unnamed_objects"] += 1
    return out


def _vg_regions(item: dict, meta: ImageMeta, counts: dict) -> list[tuple[str, Box]]:
    out = []
    for region in item.get("regions") or []:
        try:
            phrase = " ".join(str(region["phrase"]).split())
            box = normalize_xywh(
                region["x"], region["y"], region["width"], region["height"], meta.width, meta.height
            )
        except (AttributeError, KeyError, TypeError):
            counts["bad_regions"] += 1
            continue
        if phrase:
            out.append((phrase, box))
        else:
            counts["empty_regions"] += 1
    return out


def _unique(items: list[tuple[str, Box]]) -> tuple[tuple[str, Box], ...]:
    # VG repeats identical annotations (same label, same box); once is enough for the prompt.
    seen: set = set()
    out = []
    for label, box in items:
        key = (label.lower(), tuple(round(v, 3) for v in box))
        if key not in seen:
            seen.add(key)
            out.append((label, box))
    return tuple(out)


def iter_vg_scenes(
    vg_dir: str | Path,
    coco_captions: Iterable[str | Path] = (),
    *,
    wanted: Callable[[int], bool] | None = None,
    max_images: int | None = None,
    images: list[ImageMeta] | None = None,
    counts: dict | None = None,
) -> Iterator[Scene]:
    """Scenes of the selected VG images, in `image_data.json` order.

    `images` (from `select_images`) skips reading the selection again. `counts` (if given) receives:
    images, without_objects, without_regions, with_captions, bad_objects, bad_regions (unreadable,
    skipped), unnamed_objects, empty_regions (no label, skipped). Annotations that cannot be read are
    counted, not fatal.
    """
    paths = vg_paths(vg_dir)
    counts = counts if counts is not None else {}
    if images is None:
        images = select_images(vg_dir, wanted, max_images, counts)
    selected = {m.image_id for m in images}
    captions = read_coco_captions(coco_captions, {m.coco_id for m in images if m.coco_id is not None})
    for key in (
        "images",
        "without_objects",
        "without_regions",
        "with_captions",
        "bad_objects",
        "bad_regions",
        "unnamed_objects",
        "empty_regions",
    ):
        counts.setdefault(key, 0)
    objects = _KeyedStream(
        _stream_json_list(paths["objects.json"], ("image_id", "id")), selected.__contains__
    )
    regions = _KeyedStream(
        _stream_json_list(paths["region_descriptions.json"], ("id", "image_id")), selected.__contains__
    )
    for meta in images:
        obj_item = objects.take(meta.image_id)
        reg_item = regions.take(meta.image_id)
        counts["images"] += 1
        counts["without_objects"] += obj_item is None
        counts["without_regions"] += reg_item is None
        caps = tuple(captions.get(meta.coco_id, ())) if meta.coco_id is not None else ()
        counts["with_captions"] += bool(caps)
        yield Scene(
            meta.image_id,
            meta.width,
            meta.height,
            meta.image_path,
            caps,
            _unique(_vg_objects(obj_item, meta, counts)) if obj_item else (),
            _unique(_vg_regions(reg_item, meta, counts)) if reg_item else (),
        )
