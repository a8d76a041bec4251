"""The one schema of an SVIT sample.

One row = one training sample = one image + one multi-turn conversation of one task. Every reader
produces rows of `SAMPLE_FEATURES`; every writer consumes them. `messages` + `images` are the two
columns stock TRL `SFTTrainer` needs to train a vision-language model.
"""

from __future__ import annotations

import datasets

CONVERSATION = "conversation"
COMPLEX_REASONING = "complex_reasoning"
REFERRING_QA = "referring_qa"
DETAIL_DESCRIPTION = "detail_description"

# Order matters: it is the order of the released files and of the `full` config.
TASKS: tuple[str, ...] = (CONVERSATION, COMPLEX_REASONING, REFERRING_QA, DETAIL_DESCRIPTION)

# Splits of every config: `test` holds the held-out images (paper: 10%), `train` the rest.
TRAIN, TEST = "train", "test"
SPLITS: tuple[str, ...] = (TRAIN, TEST)

USER = "user"
ASSISTANT = "assistant"

SAMPLE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image_id": datasets.Value("int64"),
        "task": datasets.Value("string"),
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "images": datasets.List(datasets.Image()),
        "image_path": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        # Documented extra column: the "Topic:" line of a conversation, "" when absent.
        "topic": datasets.Value("string"),
    }
)


def parse_tasks(text: str) -> tuple[str, ...]:
    """`"conversation, referring_qa"` -> `("conversation", "referring_qa")` (a --tasks flag); checked by the caller."""
    return tuple(task.strip() for task in text.split(",") if task.strip())


def sample_id(image_id: int, task: str, index: int) -> str:
    """Stable, unique id of the `index`-th conversation of `task` for one image."""
    return f"{image_id}-{task}-{index}"


def vg_image_path(image_id: int, folder: str = "VG_100K") -> str:
    """Relative path of a Visual Genome image in the VG layout."""
    return f"{folder}/{image_id}.jpg"
