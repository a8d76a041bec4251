"""Fixtures of the training tests: a handful of grounded samples drawn in code, a tiny SVIT-LLaVA checkpoint
(`svit model tiny`'s function, tokenizer trained on these texts), and `svit train` argument lists."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import torch
from PIL import Image, ImageDraw

from svit_dataset.schema import ASSISTANT, REFERRING_QA, SAMPLE_FEATURES, USER, sample_id, vg_image_path
from svit_model.tiny import DEFAULT_CORPUS, corpus_from_rows, save_tiny_svit_llava

# (image id, width, height, [(kind, colour, box)], [(question, answer)]); boxes in the original image.
SCENES = [
    (
        11,
        64,
        48,
        [("ellipse", "red", (0.125, 0.3, 0.45, 0.812))],
        [("Where is the red ball?", "<st>red ball<ed> [0.125, 0.300, 0.450, 0.812]")],
    ),
    (
        12,
        40,
        60,
        [("rectangle", "blue", (0.6, 0.1, 0.9, 0.5))],
        [
            ("Where is the blue box?", "<st>blue box<ed> [0.600, 0.100, 0.900, 0.500]"),
            ("What colour is it?", "It is blue."),
        ],
    ),
    (
        13,
        50,
        50,
        [("ellipse", "green", (0.1, 0.1, 0.4, 0.4)), ("rectangle", "yellow", (0.5, 0.5, 0.9, 0.9))],
        [
            (
                "Find the two shapes.",
                "<st>green ball<ed> [0.100, 0.100, 0.400, 0.400] and <st>yellow box<ed> [0.500, 0.500, 0.900, 0.900]",
            )
        ],
    ),
    (
        14,
        72,
        36,
        [("rectangle", "purple", (0.2, 0.25, 0.7, 0.75))],
        [("Where is the purple kite?", "<st>purple kite<ed> [0.200, 0.250, 0.700, 0.750]")],
    ),
]


def png(width: int, height: int, shapes) -> bytes:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for kind, colour, (x1, y1, x2, y2) in shapes:
        box = (x1 * width, y1 * height, x2 * width, y2 * height)
        (draw.ellipse if kind == "ellipse" else draw.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def grounded_rows() -> list[dict]:
    rows = []
    for image_id, width, height, shapes, turns in SCENES:
        messages = []
        for question, answer in turns:
            messages += [{"role": USER, "content": question}, {"role": ASSISTANT, "content": answer}]
        rows.append(
            {
                "id": sample_id(image_id, REFERRING_QA, 0),
                "image_id": image_id,
                "task": REFERRING_QA,
                "messages": messages,
                "images": [{"bytes": png(width, height, shapes), "path": None}],
                "image_path": vg_image_path(image_id),
                "width": width,
                "height": height,
                "topic": "",
            }
        )
    return rows


def write_dataset(folder: Path, rows: list[dict] | None = None) -> Path:
    """A folder `load_dataset(folder)` reads (one Parquet file, images embedded)."""
    dataset = datasets.Dataset.from_list(rows or grounded_rows(), features=SAMPLE_FEATURES)
    dataset.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder


def write_tiny(folder: Path, rows: list[dict] | None = None) -> Path:
    return save_tiny_svit_llava(
        folder, corpus_texts=[*DEFAULT_CORPUS, *corpus_from_rows(rows or grounded_rows())]
    )


def train_args(
    model: Path, data: Path, output: Path, recipe: str = "tiny-stage2-full", **overrides
) -> list[str]:
    """`svit train` arguments of a shipped tiny recipe on the fixture data, with `overrides` (`--key value`)."""
    argv = ["--config", recipe, "--model_name_or_path", str(model), "--dataset_name", str(data)]
    argv += ["--dataset_config", "default"]  # the fixture folder's one config
    argv += ["--output_dir", str(output), "--disable_tqdm", "true", "--logging_steps", "1"]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    return argv


@contextlib.contextmanager
def one_thread():
    """Tiny models train fastest on one thread, and far slower when threads compete for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def write_tiny_with_new_grounding_rows(folder: Path, source: Path) -> Path:
    """The tiny checkpoint at `source` with the `<st>`/`<ed>` rows of both embeddings set to the mean of the
    others, as `svit model build` leaves tokens an LLM never saw: equal rows, so equal logits, until trained."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from svit_model.building import save_checkpoint
    from svit_model.training.model import grounding_token_ids

    model = AutoModelForImageTextToText.from_pretrained(source)
    processor = AutoProcessor.from_pretrained(source)
    ids = grounding_token_ids(processor)
    with torch.no_grad():
        for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            others = [i for i in range(weight.shape[0]) if i not in ids]
            weight[ids] = weight[others].mean(dim=0)
    return save_checkpoint(model, processor, folder)


def run_svit_on_two_processes(argv: list[str], script: bool = False) -> subprocess.CompletedProcess:
    """`svit ARGV` under torchrun with 2 CPU processes (gloo: what `accelerate launch` runs), one thread each.
    `script`: ARGV starts with a Python file torchrun runs instead of `svit`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
    ]
    return subprocess.run(
        [*launcher, *(argv if script else ["-m", "svit_cli.main", *argv])],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
