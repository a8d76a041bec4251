"""Visual Genome images and their metadata (`image_data.json`, `VG_100K/`, `VG_100K_2/`)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.release import MAX_IMAGE_ID, is_ascii_digits, iter_records

logger = logging.getLogger(__name__)

VG_FOLDERS = ("VG_100K", "VG_100K_2")
# Without a held-out list, a seeded share of images is held out (the paper holds out 10%).
TEST_FRACTION = 0.1
SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    path: str  # relative, in the VG layout: "VG_100K_2/2410000.jpg"
    width: int | None
    height: int | None


def iter_image_data(
    path: str | Path, flag: str = "--image-data"
) -> Iterator[tuple[int, ImageInfo, int | None]]:
    """`(image_id, ImageInfo, coco_id)` of every item of VG's `image_data.json`, in file order, streamed.

    The one reader of that file. The folder comes from the url when there is one (VG hosts `VG_100K`
    and `VG_100K_2`); a width or height of 0 or below is given as None (unknown), so boxes are never
    divided by it. An item without an integer id and size raises SvitFormatError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"{flag} {path}: not found; pass Visual Genome's image_data.json")
    try:
        for i, item in iter_records(path):
            image_id, width, height = _image_data_item(item)
            coco = item.get("coco_id") if isinstance(item, dict) else None
            if image_id is None or (coco is not None and not _as_int(coco)[0]):
                raise SvitFormatError(
                    f"{path}: item {i} lacks an integer image_id/width/height (or has a non-integer "
                    f"coco_id): {str(item)[:120]}. Pass Visual Genome's image_data.json."
                )
            url = str(item.get("url") or "")
            folder = next((f for f in reversed(VG_FOLDERS) if f"/{f}/" in url), VG_FOLDERS[0])
            known = width > 0 and height > 0
            info = ImageInfo(f"{folder}/{image_id}.jpg", width if known else None, height if known else None)
            yield image_id, info, None if coco is None else _as_int(coco)[1]
    except SvitFormatError as err:
        raise SvitFormatError(f"{flag}: {err}") from None


def read_image_data(path: str | Path) -> dict[int, ImageInfo]:
    """`image_data.json` as image_id -> ImageInfo (sizes of 0 or below are unknown, with a warning)."""
    out = {image_id: info for image_id, info, _ in iter_image_data(path)}
    unknown = sum(info.width is None for info in out.values())
    if unknown:
        logger.warning(
            "%s: %d images have a width or height of 0 or below; their size is unknown", path, unknown
        )
    return out


def _as_int(value) -> tuple[bool, int]:
    """(True, value as int) for an int, an integral float or a string of ASCII digits; else (False, 0)."""
    if isinstance(value, str) and is_ascii_digits(value.strip()):
        return True, int(value)
    if isinstance(value, float) and value.is_integer():
        return True, int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return True, value
    return False, 0


def _image_data_item(item) -> tuple[int | None, int, int]:
    """(image_id, width, height) of one image_data.json item; image_id None when it is unusable."""
    if not isinstance(item, dict):
        return None, 0, 0
    values = (item.get("image_id", item.get("id")), item.get("width"), item.get("height"))
    if all(type(v) is int for v in values):  # VG's own file: the fast path, 108K items
        image_id, width, height = values
    else:
        parsed = [_as_int(v) for v in values]
        if not all(ok for ok, _ in parsed):
            return None, 0, 0
        image_id, width, height = (value for _, value in parsed)
    if not 0 <= image_id <= MAX_IMAGE_ID:
        return None, 0, 0
    return image_id, width, height


class ImageIndex:
    """Where an image lives and how large it is, from the images folder and/or `image_data.json`."""

    def __init__(
        self,
        images_dir: str | Path | None = None,
        image_data: str | Path | None = None,
        require_size: bool = False,
    ):
        self.images_dir = Path(images_dir) if images_dir else None
        self.require_size = require_size  # an image of unknown size counts as missing (e.g. to move boxes)
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise SvitInputError(
                f"--images {self.images_dir}: not a folder; pass the folder holding VG_100K/"
            )
        self.metadata = read_image_data(image_data) if image_data else {}
        self._found: dict[int, ImageInfo | None] = {}  # an image serves many rows: look it up once
        self._unreadable: set[int] = set()

    def info(self, image_id: int) -> ImageInfo | None:
        """Info of an image; None when images were given and this one is not among them or cannot be
        read (`is_unreadable`), or when its size is unknown and `require_size` is set."""
        known = self.metadata.get(image_id)
        if self.images_dir is None:
            if (known is None or known.width is None) and self.require_size:
                return None
            return known or ImageInfo(f"{VG_FOLDERS[0]}/{image_id}.jpg", None, None)
        if image_id not in self._found:
            self._found[image_id] = self._locate(image_id, known)
        return self._found[image_id]

    def is_unreadable(self, image_id: int) -> bool:
        """Whether the image's file exists but is not an image PIL can open (empty, garbage, truncated)."""
        return image_id in self._unreadable

    def _locate(self, image_id: int, known: ImageInfo | None) -> ImageInfo | None:
        assert self.images_dir is not None
        for folder in VG_FOLDERS:
            rel = f"{folder}/{image_id}.jpg"
            full = self.images_dir / rel
            if full.is_file():
                try:
                    with Image.open(full) as im:  # reads the header only
                        size = im.size
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                    logger.warning("%s: not a readable image (%s); its samples are dropped", full, err)
                    self._unreadable.add(image_id)
                    return None
                if known and known.width:
                    return ImageInfo(rel, known.width, known.height)
                if min(size) <= 0:
                    self._unreadable.add(image_id)
                    return None
                return ImageInfo(rel, *size)
        return None

    def read_bytes(self, info: ImageInfo) -> bytes:
        assert self.images_dir is not None
        return (self.images_dir / info.path).read_bytes()


def read_test_ids(path: str | Path, flag: str = "--test-ids") -> set[int]:
    """A held-out list: one image id a line (blank lines and `#` comments allowed; a BOM is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"{flag} {path}: not found; pass a file with one image id a line")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise SvitFormatError(f"{flag} {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    ids = set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not is_ascii_digits(line) or int(line) > MAX_IMAGE_ID:
            raise SvitFormatError(
                f"{flag} {path}:{n}: {line[:40]!r} is not an image id; write one id (ASCII digits) a line"
            )
        ids.add(int(line))
    return ids


def in_seeded_test_split(image_id: int, seed: int, fraction: float) -> bool:
    """Whether an image falls in the held-out split when no list is given.

    A hash of (seed, image id), not a shuffle: it needs no pass over all images, and an image lands
    in the same split in every task file and every build.
    """
    digest = hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def split_of_images(test_ids: set[int] | None, test_fraction: float, split_seed: int):
    """image_id -> "train" | "test": the held-out list when given, else the seeded share of images."""
    from svit_dataset.schema import TEST, TRAIN

    if test_ids is not None:
        return lambda image_id: TEST if image_id in test_ids else TRAIN
    cache: dict[int, str] = {}

    def split_of(image_id: int) -> str:
        if image_id not in cache:
            cache[image_id] = TEST if in_seeded_test_split(image_id, split_seed, test_fraction) else TRAIN
        return cache[image_id]

    return split_of


def attach_images(dataset, images_dir: str | Path):
    """Fill `images` from `image_path` under `images_dir`, lazily (datasets decodes on access).

    For builds made without `--images`: the Parquet stays small and images are read at training time.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise SvitInputError(f"attach_images: {root} is not a folder; pass the folder holding VG_100K/")

    def with_image(row: dict) -> dict:
        return {"images": [{"path": str(root / row["image_path"]), "bytes": None}]}

    return dataset.map(with_image, features=dataset.features)
