"""Export to LLaVA-1.5's training JSON in upstream's `format/llava-v1.5` form (what SVIT-mix-665K uses).

Per sample: LLaVA keys (`id`, `image`, `conversations` with `human`/`gpt`), `<image>` before the
first question, `<st>`/`<ed>` removed, one of three grounding instructions appended to every
referring question (seeded), and boxes moved into LLaVA-1.5's padded-square frame with upstream's
exact arithmetic (svit_dataset.boxes.upstream_expand_to_square_text).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from svit_dataset.boxes import upstream_expand_to_square_text
from svit_dataset.builder import iter_samples
from svit_dataset.errors import SvitInputError
from svit_dataset.grounding import strip_tags
from svit_dataset.quality import QualityReport
from svit_dataset.release import release_file
from svit_dataset.schema import ASSISTANT, REFERRING_QA, TASKS, USER
from svit_dataset.vg import ImageIndex, read_test_ids

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
REFERRING_SUFFIXES = (
    "Provide the bounding boxes of the mentioned objects.",
    "Include the coordinates for each mentioned object.",
    "Locate the objects with their coordinates.",
)
_LLAVA_SPEAKER = {USER: "human", ASSISTANT: "gpt"}


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
                text = f"{IMAGE_TOKEN}\n{text}"
        turns.append({"from": _LLAVA_SPEAKER[message["role"]], "value": text})
    return {"id": sample["id"], "image": image_prefix + sample["image_path"], "conversations": turns}


def export_llava(
    input_dir: str | Path,
    output_file: str | Path,
    *,
    images_dir: str | Path | None = None,
    image_data: str | Path | None = None,
    tasks: Sequence[str] = TASKS,
    exclude_ids: str | Path | None = None,
    seed: int = 0,
    image_prefix: str = "",
    max_bad_fraction: float = 0.001,
) -> dict:
    """Write released-format files as one LLaVA-1.5 JSON list; returns counts by task and reason."""
    if images_dir is None and image_data is None:
        raise SvitInputError(
            "export needs image sizes to move boxes: pass --images VG_DIR or --image-data FILE"
        )
    files = {task: release_file(input_dir, task) for task in tasks}
    images = ImageIndex(images_dir, image_data, require_size=True)
    excluded = read_test_ids(exclude_ids) if exclude_ids else set()
    reports: dict = defaultdict(QualityReport)
    rng = random.Random(seed)
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_file.with_name(f".{output_file.name}.tmp-{os.getpid()}")
    written = 0
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write("[")
            samples = iter_samples(
                files,
                images,
                lambda image_id: image_id not in excluded,
                reports,
                "export",
                max_bad_fraction,
                embed_images=False,
                count_malformed=True,
            )
            for sample in tqdm(samples, desc="export llava", unit=" samples", mininterval=2):
                out.write(",\n" if written else "\n")
                out.write(json.dumps(to_llava_record(sample, rng, image_prefix), ensure_ascii=False))
                written += 1
            out.write("\n]\n")
        os.replace(tmp, output_file)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("wrote %d LLaVA-1.5 records to %s", written, output_file)
    return {
        "output": str(output_file),
        "written": written,
        "quality": {t: reports[(t, "export")].to_dict() for t in tasks},
    }
