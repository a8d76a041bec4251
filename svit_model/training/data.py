"""Training data for `svit train`: a built SVIT folder, a Hub dataset id, or a LLaVA-format JSON.

Whatever the source, the trainer gets rows of the sample schema: `messages` (user/assistant turns, no `<image>`
token) and `images` (bytes), or an `image_path` read under `--image_folder` at batch time. Everything that can
be checked without a model is checked here, before the model loads: the `messages` column, the image folder,
every image file.

Box frames. The schema's boxes are in the original image (the processor moves them into LLaVA-1.5's padded
square). LLaVA-format data (a LLaVA JSON, or the `mix_665k` config, in LLaVA-1.5 form) already has them in the
padded square; `TrainingData.boxes_in_padded_frame` tells the collator to move them back first, so they move
exactly once.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import iter_json_list
from svit_dataset.local_tables import load_table_fresh
from svit_dataset.schema import ASSISTANT, USER
from svit_model.training.sampler import arrow_table, row_counts

logger = logging.getLogger(__name__)

LLAVA_ROLES = {"human": USER, "gpt": ASSISTANT}
IMAGE_PLACEHOLDER = "<image>"
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


@dataclass
class TrainingData:
    """Rows to train on and how to read them."""

    dataset: datasets.Dataset
    name: str  # what the model card cites: a Hub id, or the local path
    image_folder: str | None = None
    boxes_in_padded_frame: bool = False
    dropped: Counter = field(default_factory=Counter)  # reason -> samples left out before training


def strip_image_placeholder(text: str) -> str:
    """A LLaVA turn without its `<image>` token and the newline beside it (the processor places the image)."""
    return (
        text.replace(IMAGE_PLACEHOLDER + "\n", "")
        .replace("\n" + IMAGE_PLACEHOLDER, "")
        .replace(IMAGE_PLACEHOLDER, "")
        .strip()
    )


def llava_record_to_row(record: dict) -> dict:
    """One LLaVA-1.5 training record as a training row; raises ValueError saying what is wrong with it."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ValueError("no 'conversations' list")
    messages = []
    for turn in turns:
        role = LLAVA_ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise ValueError(f"a turn is not {{'from': 'human'|'gpt', 'value': str}}: {str(turn)[:80]}")
        messages.append({"role": role, "content": strip_image_placeholder(turn["value"])})
    return {
        "id": str(record.get("id", "")),
        "messages": messages,
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
            "({'id', 'image', 'conversations': [{'from': 'human'|'gpt', 'value': ...}]})"
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
    """`dataset` with its images handed over as bytes: the collator decodes them, so that a damaged image is
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
    "TrainingData",
    "llava_record_to_row",
    "load_training_data",
    "read_llava_json",
    "strip_image_placeholder",
]
