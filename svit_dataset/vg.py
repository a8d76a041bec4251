"""Visual Genome images and their metadata (`image_data.json`, `VG_100K/`, `VG_100K_2/`)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import ijson
from PIL import Image

from svit_dataset.errors import SvitFormatError, SvitInputError

VG_FOLDERS = ("VG_100K", "VG_100K_2")


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    path: str  # relative, in the VG layout: "VG_100K_2/2410000.jpg"
    width: int | None
    height: int | None


def read_image_data(path: str | Path) -> dict[int, ImageInfo]:
    """`image_data.json` (a list of {image_id, width, height, url, ...}) as image_id -> ImageInfo.

    The folder comes from the url when there is one (VG hosts `VG_100K` and `VG_100K_2`).
    """
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"--image-data {path}: not found; pass Visual Genome's image_data.json")
    out: dict[int, ImageInfo] = {}
    try:
        with open(path, "rb") as f:
            for i, item in enumerate(ijson.items(f, "item", use_float=True)):
                try:
                    image_id = int(item.get("image_id", item.get("id")))
                    width, height = int(item["width"]), int(item["height"])
                except (AttributeError, KeyError, TypeError, ValueError):
                    raise SvitFormatError(
                        f"{path}: item {i} lacks an integer image_id/width/height: {str(item)[:120]}"
                    ) from None
                url = item.get("url") or ""
                folder = next((f for f in reversed(VG_FOLDERS) if f"/{f}/" in url), VG_FOLDERS[0])
                out[image_id] = ImageInfo(f"{folder}/{image_id}.jpg", width, height)
    except ijson.JSONError as err:
        raise SvitFormatError(f"{path}: invalid or truncated JSON: {err}") from None
    return out


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

    def info(self, image_id: int) -> ImageInfo | None:
        """Info of an image; None when images were given and this one is not among them, or when its
        size is unknown and `require_size` is set."""
        known = self.metadata.get(image_id)
        if self.images_dir is None:
            if known is None and self.require_size:
                return None
            return known or ImageInfo(f"{VG_FOLDERS[0]}/{image_id}.jpg", None, None)
        if image_id not in self._found:
            self._found[image_id] = self._locate(image_id, known)
        return self._found[image_id]

    def _locate(self, image_id: int, known: ImageInfo | None) -> ImageInfo | None:
        assert self.images_dir is not None
        for folder in VG_FOLDERS:
            rel = f"{folder}/{image_id}.jpg"
            full = self.images_dir / rel
            if full.is_file():
                if known and known.width:
                    return ImageInfo(rel, known.width, known.height)
                with Image.open(full) as im:  # reads the header only
                    return ImageInfo(rel, *im.size)
        return None

    def read_bytes(self, info: ImageInfo) -> bytes:
        assert self.images_dir is not None
        return (self.images_dir / info.path).read_bytes()


def read_test_ids(path: str | Path) -> set[int]:
    """A held-out list: one image id a line (blank lines and `#` comments allowed)."""
    path = Path(path)
    if not path.is_file():
        raise SvitInputError(f"--test-ids {path}: not found; pass a file with one image id a line")
    ids = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.isdigit():
            raise SvitFormatError(f"{path}:{n}: {line!r} is not an image id")
        ids.add(int(line))
    return ids


def in_seeded_test_split(image_id: int, seed: int, fraction: float) -> bool:
    """Whether an image falls in the held-out split when no list is given.

    A hash of (seed, image id), not a shuffle: it needs no pass over all images, and an image lands
    in the same split in every task file and every build.
    """
    digest = hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


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
