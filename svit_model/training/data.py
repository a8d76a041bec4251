"""Training data for `svit train`: a built SVIT folder, a Hub dataset id, or a LLaVA-format JSON.

Whatever the source, the rows are of the sample schema: `messages` (user/assistant turns, no `<image>` token) and
`images` (bytes), or an `image_path` read under `--image_folder`. Everything that can be checked without a model
is checked here, before the model loads: the `messages` column, the image folder, every image file.

The trainer gets `TrainingData.samples()`: the rows through `SampleLoader`, a dataset transform
(`datasets.Dataset.with_transform`) that reads each sample's images and puts its boxes in the original image's
frame as the data loader draws it, once per sample, so that the collator only renders. A transform rather than
`map`: `map` would write every decoded image back into Arrow (LLaVA-1.5's mix is 665K images) and read them all
before the first step; a transform reads a sample's images when it is drawn, in the data loader's workers
(`--dataloader_num_workers`).

Box frames. The schema's boxes are in the original image (the processor moves them into LLaVA-1.5's padded
square as it renders, with the tokens' offsets). LLaVA-format data (a LLaVA JSON, or the `mix_665k` config, in
LLaVA-1.5 form) already has them in the padded square; `SampleLoader` moves them back first
(`TrainingData.boxes_in_padded_frame`), so they are moved into the square exactly once.
"""

from __future__ import annotations

import copy
import io
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
from PIL import ExifTags, Image, ImageOps

from svit_dataset.boxes import move_boxes_in_text
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import iter_json_list
from svit_dataset.llava_format import LLAVA_TURN_SHAPE, llava_messages
from svit_dataset.local_tables import load_table_fresh
from svit_model.training.sampler import arrow_table, row_counts

logger = logging.getLogger(__name__)

# Columns of a built config in LLaVA-1.5 form (`mix_665k` carries `source`): boxes in the padded square.
LLAVA_FORM_COLUMN = "source"
TRAINING_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
        "image_path": datasets.Value("string"),
    }
)
# What the transform reads of a row (the trainer keeps these columns for it; see `SvitTrainer`).
SAMPLE_COLUMNS = ("id", "messages", "images", "image_path")
# Boxes moved out of the padded square are kept at this precision until the processor rounds them once.
_EXACT_DECIMALS = 6


def decode_image(image, sample_id: str | None) -> Image.Image:
    """One image of a sample as RGB: datasets' undecoded form (bytes, or a path) or a file path. A damaged image
    raises `SvitFormatError` naming its file, or the sample's id (decoded by `datasets`, it would fail inside the
    data loader with no name)."""
    where = f"sample {sample_id or '?'}"
    try:
        if isinstance(image, dict):  # datasets' undecoded Image: bytes, or a path
            where += f" (image {image.get('path')})" if image.get("path") else " (embedded image)"
            image = Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"])
            # as `datasets.Image` decodes it (and evaluation reads it): upright by its EXIF orientation
            if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                image = ImageOps.exif_transpose(image)
        elif isinstance(image, (str, os.PathLike)):
            where = f"{image} ({where})"
            image = Image.open(image)
        image.load()  # a truncated or damaged file fails here, not deep inside the processor
    except (OSError, ValueError, SyntaxError) as err:  # PIL reports damaged files with these
        raise SvitFormatError(
            f"{where}: the image cannot be read ({err}); replace or remove it (an image file under "
            "--image_folder, or the row of the dataset)"
        ) from None
    return image if image.mode == "RGB" else image.convert("RGB")


@dataclass(frozen=True)
class SampleLoader:
    """The dataset transform of training rows: their images read (`images`, or `image_path` under
    `image_folder`) and, for rows in LLaVA-1.5 form (`boxes_in_padded_frame`), their boxes moved back from the
    padded square to the original image. Returns `messages` and `images`, what the collator takes."""

    image_folder: str | None = None
    boxes_in_padded_frame: bool = False

    def images_of(self, stored, image_path: str | None, sample_id: str | None) -> list[Image.Image]:
        images = list(stored or [])
        if not images and image_path and self.image_folder is not None:
            images = [os.path.join(self.image_folder, image_path)]
        return [decode_image(image, sample_id) for image in images]

    def messages_of(self, messages: list[dict], images: list[Image.Image]) -> list[dict]:
        if not (self.boxes_in_padded_frame and images):
            return messages
        width, height = images[0].size
        return [
            {
                **m,
                "content": move_boxes_in_text(
                    m["content"], width, height, to_padded=False, decimals=_EXACT_DECIMALS
                )[0],
            }
            for m in messages
        ]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = len(batch["messages"])
        ids = batch.get("id") or [None] * rows
        stored = batch.get("images") or [None] * rows
        paths = batch.get("image_path") or [None] * rows
        images = [
            self.images_of(row_images, path, sample_id)
            for row_images, path, sample_id in zip(stored, paths, ids, strict=True)
        ]
        messages = [
            self.messages_of(row_messages, row_images)
            for row_messages, row_images in zip(batch["messages"], images, strict=True)
        ]
        return {"messages": messages, "images": images}


@dataclass
class TrainingData:
    """Rows to train on and how to read them."""

    dataset: datasets.Dataset  # the rows as stored, images undecoded (lengths and counts read them)
    name: str  # what the model card cites: a Hub id, or the local path
    image_folder: str | None = None
    boxes_in_padded_frame: bool = False
    dropped: Counter = field(default_factory=Counter)  # reason -> samples left out before training

    def samples(self) -> datasets.Dataset:
        """The rows as the trainer draws them: through `SampleLoader` (see the module docstring)."""
        return self.dataset.with_transform(SampleLoader(self.image_folder, self.boxes_in_padded_frame))


def llava_record_to_row(record: dict) -> dict:
    """One LLaVA-1.5 training record as a training row; raises ValueError saying what is wrong with it."""
    return {
        "id": str(record.get("id", "")),
        "messages": llava_messages(record),
        "images": [],
        "image_path": record.get("image") or "",
    }


def read_llava_json(path: Path, dropped: Counter) -> datasets.Dataset:
    """LLaVA-1.5 training JSON (LLaVA-Pretrain's 558K captions, LLaVA-1.5 / `svit export llava` instructions).

    Streamed record by record (LLaVA-1.5's mix is 1 GB of JSON). Malformed records are counted under
    `dropped['malformed_record']` and logged; a file with none usable stops.
    """
    rows = []
    read = 0
    try:
        for index, record in iter_json_list(path):
            read += 1
            try:
                rows.append(llava_record_to_row(record if isinstance(record, dict) else {}))
            except ValueError as err:
                dropped["malformed_record"] += 1
                if dropped["malformed_record"] <= 5:
                    logger.warning("%s: record %d left out: %s", path, index, err)
    except SvitFormatError as err:
        raise SvitFormatError(f"--dataset_name {err}") from None
    if not rows:
        raise SvitFormatError(
            f"--dataset_name {path}: none of its {read} records is a LLaVA training record "
            f"({{'id', 'image', 'conversations': [{LLAVA_TURN_SHAPE}, ...]}})"
        )
    return datasets.Dataset.from_list(rows, features=TRAINING_FEATURES)


def load_rows(dataset_name: str, config: str | None, split: str) -> datasets.Dataset:
    """A built folder or Hub dataset's split, with errors that say which argument to fix."""
    try:
        loaded = load_table_fresh(dataset_name, config, split=split)
    except (ValueError, FileNotFoundError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SvitInputError(
            f"--dataset_name {dataset_name} --dataset_config {config}: cannot load split {split!r}: {first_line}"
        ) from None
    if not isinstance(loaded, datasets.Dataset):
        raise SvitInputError(
            f"--dataset_name {dataset_name}: streaming datasets are not supported by svit train"
        )
    return loaded


def load_training_data(
    dataset_name: str | None,
    dataset_config: str | None = None,
    split: str = "train",
    image_folder: str | None = None,
    drop_missing_images: bool = False,
) -> TrainingData:
    """Load and check the training rows (no model needed). See the module docstring for the sources."""
    if not dataset_name:
        raise SvitInputError(
            "--dataset_name is required: a built SVIT folder, a Hub dataset id or a LLaVA JSON"
        )
    dropped: Counter = Counter()
    path = Path(dataset_name)
    if path.suffix == ".json":
        if not path.is_file():
            raise SvitInputError(f"--dataset_name {dataset_name}: no such file")
        dataset, padded = read_llava_json(path, dropped), True
    else:
        if not path.exists() and (dataset_name.startswith((".", "/")) or dataset_name.count("/") > 1):
            raise SvitInputError(f"--dataset_name {dataset_name}: no such folder (nor a Hub id org/name)")
        dataset = load_rows(dataset_name, dataset_config, split)
        padded = LLAVA_FORM_COLUMN in dataset.column_names
    if "messages" not in dataset.column_names:
        raise SvitInputError(
            f"--dataset_name {dataset_name}: no `messages` column (it has {', '.join(dataset.column_names)}); "
            "svit train takes rows of the SVIT sample schema (messages + images) or a LLaVA JSON with --image_folder"
        )
    if "images" not in dataset.column_names and "image_path" not in dataset.column_names:
        raise SvitInputError(
            f"--dataset_name {dataset_name}: neither an `images` nor an `image_path` column; nothing to train on"
        )
    dataset = check_image_files(dataset, dataset_name, image_folder, drop_missing_images, dropped)
    return TrainingData(undecoded_images(dataset), dataset_name, image_folder, padded, dropped)


def undecoded_images(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` with its images handed over as bytes: `SampleLoader` decodes them, so that a damaged image is
    reported with its sample's id (decoded by `datasets`, it fails inside the data loader with no name)."""
    feature = dataset.features.get("images")
    if not (isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image)):
        return dataset
    # The same Arrow table under features that differ only in decoding: `cast_column` would rewrite every row
    # of a nested Image column (gigabytes of image bytes) to change nothing stored.
    info = copy.deepcopy(dataset.info)
    info.features["images"] = datasets.List(datasets.Image(decode=False))
    return datasets.Dataset(
        dataset.data,
        info=info,
        split=dataset.split,
        indices_table=dataset._indices,
        fingerprint=f"{dataset._fingerprint}-undecoded",
    )


def rows_reading_files(dataset: datasets.Dataset) -> list[int]:
    """Indices of rows whose image is a file to read (no bytes, an `image_path`), from the Arrow columns."""
    if "image_path" not in dataset.column_names:
        return []
    table, rows = arrow_table(dataset)
    has_path = pc.utf8_length(table.column("image_path")).fill_null(0).to_numpy(zero_copy_only=False) > 0
    if "images" in table.column_names:
        has_path &= row_counts(table.column("images"), table.num_rows) == 0
    if rows is not None:
        has_path = has_path[rows]
    return np.flatnonzero(has_path).tolist()


def check_image_files(
    dataset: datasets.Dataset,
    dataset_name: str,
    image_folder: str | None,
    drop_missing: bool,
    dropped: Counter,
) -> datasets.Dataset:
    """Every image file that training will read exists under `image_folder`; missing ones stop the run, or,
    with `drop_missing`, leave it counted."""
    to_read = rows_reading_files(dataset)
    if not to_read:
        return dataset
    if image_folder is None:
        raise SvitInputError(
            f"--dataset_name {dataset_name}: {len(to_read)} samples name an image file but hold no image bytes; "
            "pass --image_folder DIR (the folder their paths are relative to)"
        )
    if not os.path.isdir(image_folder):
        raise SvitInputError(f"--image_folder {image_folder}: no such folder")
    paths = dataset.select(to_read)["image_path"]
    missing = [
        row
        for row, rel in zip(to_read, paths, strict=True)
        if not os.path.isfile(os.path.join(image_folder, rel))
    ]
    if not missing:
        return dataset
    first = os.path.join(image_folder, dataset[missing[0]]["image_path"])
    if not drop_missing:
        raise SvitInputError(
            f"--image_folder {image_folder}: {len(missing)} of {len(to_read)} images are missing, e.g. {first}; "
            "fix --image_folder, or pass --drop_missing_images to train without them"
        )
    dropped["missing_image"] += len(missing)
    logger.warning("%d samples left out: image missing under %s (e.g. %s)", len(missing), image_folder, first)
    missing_set = set(missing)
    return dataset.select([i for i in range(len(dataset)) if i not in missing_set])


__all__ = [
    "SAMPLE_COLUMNS",
    "SampleLoader",
    "TrainingData",
    "decode_image",
    "llava_record_to_row",
    "load_training_data",
    "read_llava_json",
]
