"""Export to LLaVA-1.5's training JSON in upstream's `format/llava-v1.5` form (what SVIT-mix-665K uses).

Per sample: a LLaVA record (svit_dataset.llava_format: `id`, `image`, `conversations` with `human`/`gpt`),
`<image>` before the first question, `<st>`/`<ed>` removed, one of three grounding instructions appended to every
referring question (seeded), and boxes moved into LLaVA-1.5's padded-square frame with upstream's
exact arithmetic (svit_dataset.boxes.upstream_expand_to_square_text).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from svit_dataset.boxes import upstream_expand_to_square_text
from svit_dataset.errors import SvitInputError
from svit_dataset.files import check_output_apart
from svit_dataset.grounded_text import strip_tags
from svit_dataset.jsonlist import write_json_list
from svit_dataset.llava_format import llava_turn, with_image_token
from svit_dataset.quality import QualityReport
from svit_dataset.reader import iter_samples
from svit_dataset.release import MAX_BAD_FRACTION, release_file
from svit_dataset.schema import REFERRING_QA, TASKS, USER, parse_tasks
from svit_dataset.settings import check_number, setting
from svit_dataset.vg import ImageIndex, read_test_ids

logger = logging.getLogger(__name__)

REFERRING_SUFFIXES = (
    "Provide the bounding boxes of the mentioned objects.",
    "Include the coordinates for each mentioned object.",
    "Locate the objects with their coordinates.",
)
_EXPORT = "export"  # the one split of an export, in its quality report


def to_llava_record(sample: dict, rng: random.Random, image_prefix: str = "") -> dict:
    """One canonical sample (with width/height) as a LLaVA-1.5 training record."""
    width, height = sample["width"], sample["height"]
    turns = []
    for i, message in enumerate(sample["messages"]):
        text = upstream_expand_to_square_text(strip_tags(message["content"]), width, height)
        if message["role"] == USER:
            if sample["task"] == REFERRING_QA:
                text = f"{text} {rng.choice(REFERRING_SUFFIXES)}"
            if i == 0:
                text = with_image_token(text)
        turns.append(llava_turn(message["role"], text))
    return {"id": sample["id"], "image": image_prefix + sample["image_path"], "conversations": turns}


@dataclasses.dataclass
class ExportOptions:
    """What `svit export llava` reads and writes: the flags of the command, one home each."""

    input_dir: str | Path = setting(
        help="folder with <task>.json in the released SVIT format", flag="--input"
    )
    output_file: str | Path = setting(help="output .json file", flag="--output")
    images_dir: str | Path | None = setting(
        None, "Visual Genome folder (image sizes are read from the files)", flag="--images"
    )
    image_data: str | Path | None = setting(None, "Visual Genome image_data.json (image sizes)")
    tasks: Sequence[str] = setting(TASKS, "comma-separated tasks", parse=parse_tasks, show_default="all four")
    exclude_ids: str | Path | None = setting(None, "image ids to leave out (e.g. the held-out test list)")
    seed: int = setting(0, "seed of the referring-question suffixes")
    image_prefix: str = setting("", "prefix of the `image` paths, e.g. 'vg/'")
    max_bad_fraction: float = setting(MAX_BAD_FRACTION, "share of malformed records per file that fails it")
    overwrite: bool = setting(False, "replace --output if it exists")

    def __post_init__(self):
        check_number("--max-bad-fraction", self.max_bad_fraction, 0, 1)


def export_llava(input_dir: str | Path, output_file: str | Path, **options) -> dict:
    """Write released-format files as one LLaVA-1.5 JSON list; returns counts by task and reason.

    `options` are the fields of `ExportOptions`. Every conversation is written, dropped with a reason,
    or excluded (`exclude_ids`), and counted. An existing `output_file` is replaced only with `overwrite`.
    """
    return export(ExportOptions(input_dir, output_file, **options))


def export(options: ExportOptions) -> dict:
    """`svit export llava`: see `export_llava`. Every input is checked before the output is opened."""
    if options.images_dir is None and options.image_data is None:
        raise SvitInputError(
            "export needs image sizes to move boxes: pass --images VG_DIR or --image-data FILE"
        )
    inputs = {
        "--input": options.input_dir,
        "--images": options.images_dir,
        "--image-data": options.image_data,
        "--exclude-ids": options.exclude_ids,
    }
    check_output_apart(options.output_file, "--output", inputs)
    output_file = Path(options.output_file)
    if output_file.is_dir():
        raise SvitInputError(f"--output {output_file}: is a folder; pass the path of a .json file")
    if output_file.exists() and not options.overwrite:
        raise SvitInputError(f"--output {output_file}: already exists; pass --overwrite to replace it")
    files = {task: release_file(options.input_dir, task) for task in options.tasks}
    images = ImageIndex(options.images_dir, options.image_data, require_size=True)
    excluded = read_test_ids(options.exclude_ids, "--exclude-ids") if options.exclude_ids else set()
    reports: dict = defaultdict(QualityReport)
    rng = random.Random(options.seed)
    samples = iter_samples(
        files,
        images,
        reports,
        split_of=lambda image_id: None if image_id in excluded else _EXPORT,
        unsplit=_EXPORT,
        max_bad_fraction=options.max_bad_fraction,
    )
    records = (to_llava_record(sample, rng, options.image_prefix) for _, sample in samples)
    written = write_json_list(output_file, tqdm(records, desc="export llava", unit=" samples", mininterval=2))
    logger.info("wrote %d LLaVA-1.5 records to %s", written, output_file)
    return {
        "output": str(output_file),
        "written": written,
        "quality": {t: reports[(t, _EXPORT)].to_dict() for t in options.tasks},
    }
