"""Tokens/s of `svit train` (stage 2, full, tiny SVIT-LLaVA, CPU) against stock TRL `SFTTrainer`, same run.

Both train the same tiny checkpoint (`svit model tiny`'s) on the same grounded samples (drawn here: one shape per
image, 1-3 QA turns of SVIT-like lengths, boxes in the answers) with the same batch size, steps, learning rate
and seed; stock TRL gets `assistant_only_loss=True` and `max_length=None` (what it needs to train on the
assistant turns without cutting image tokens). Tokens/s counts non-padding tokens (TRL's `num_tokens`) over
`train_runtime`. `svit train` runs twice: with its default length grouping, and without it (the overhead of
its own collator, checks and counts alone). Runs alternate and the best of `--repeats` is kept.

    .venv/bin/python bench/train.py [--steps 60 --batch-size 8 --samples 96 --repeats 2 --threads 1]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import torch  # noqa: E402
from _measure import current_rss_mb, measure  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from svit_dataset.schema import SAMPLE_FEATURES  # noqa: E402
from svit_model.tiny import DEFAULT_CORPUS, corpus_from_rows, save_tiny_svit_llava  # noqa: E402

WORDS = [
    "the",
    "a",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "ball",
    "box",
    "cup",
    "dog",
    "cat",
    "table",
    "left",
    "right",
    "near",
    "on",
    "under",
    "of",
    "with",
    "and",
    "is",
]
COLOURS = ("red", "blue", "green", "yellow", "purple")


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def synthetic_rows(samples: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(samples):
        width, height = rng.randint(32, 96), rng.randint(32, 96)
        x1, y1 = rng.uniform(0, 0.5), rng.uniform(0, 0.5)
        box = (x1, y1, x1 + rng.uniform(0.1, 0.5), y1 + rng.uniform(0.1, 0.5))
        colour = rng.choice(COLOURS)
        image = Image.new("RGB", (width, height), (128, 128, 128))
        ImageDraw.Draw(image).rectangle(
            [box[0] * width, box[1] * height, box[2] * width, box[3] * height], fill=colour
        )
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        messages = []
        for turn in range(rng.randint(1, 3)):
            if turn == 0:
                answer = f"<st>{colour} box<ed> [{box[0]:.3f}, {box[1]:.3f}, {box[2]:.3f}, {box[3]:.3f}]"
                messages += [{"role": "user", "content": f"Where is the {colour} box?"}]
            else:
                answer = sentence(rng, rng.choice([10, 25, 60]))
                messages += [{"role": "user", "content": sentence(rng, rng.randint(5, 15))}]
            messages.append({"role": "assistant", "content": answer})
        rows.append(
            {
                "id": f"{i}-referring_qa-0",
                "image_id": i,
                "task": "referring_qa",
                "messages": messages,
                "images": [{"bytes": buffer.getvalue(), "path": None}],
                "image_path": f"VG_100K/{i}.jpg",
                "width": width,
                "height": height,
                "topic": "",
            }
        )
    return rows


def run_ours(model_dir, data_dir, output, args, grouped: bool) -> dict:
    from svit_cli.jobs.train import parse_train_arguments
    from svit_model.training.train import train

    argv = [
        "--config",
        "tiny-stage2-full",
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(data_dir),
    ]
    argv += ["--dataset_config", "default", "--output_dir", str(output), "--max_steps", str(args.steps)]
    argv += [
        "--per_device_train_batch_size",
        str(args.batch_size),
        "--save_strategy",
        "no",
        "--logging_steps",
        "10",
    ]
    argv += [
        "--disable_tqdm",
        "true",
        "--group_by_modality_length",
        str(grouped).lower(),
        "--max_length",
        "4096",
    ]
    result = train(*parse_train_arguments(argv))
    return result.metrics


def run_stock(model_dir, data_dir, output, args) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    import svit_model  # noqa: F401

    config = SFTConfig(
        output_dir=str(output),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_length=None,
        assistant_only_loss=True,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        seed=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        args=config,
        train_dataset=datasets.load_dataset(str(data_dir), split="train"),
        processing_class=AutoProcessor.from_pretrained(model_dir),
    )
    metrics = trainer.train().metrics
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    return {**metrics, "num_tokens": tokens[-1]}


def tokens_per_second(metrics: dict) -> float:
    return metrics["num_tokens"] / metrics["train_runtime"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on shared cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = synthetic_rows(args.samples, seed=0)
        model_dir = save_tiny_svit_llava(
            tmp / "tiny", corpus_texts=[*DEFAULT_CORPUS, *corpus_from_rows(rows)]
        )
        data_dir = tmp / "data"
        datasets.Dataset.from_list(rows, features=SAMPLE_FEATURES).to_parquet(str(data_dir / "train.parquet"))
        results: dict[str, list[float]] = {
            "stock TRL SFTTrainer": [],
            "svit train": [],
            "svit train, no grouping": [],
        }
        peaks: dict[str, float] = {}
        for repeat in range(args.repeats):
            runs = {
                "stock TRL SFTTrainer": lambda out: run_stock(model_dir, data_dir, out, args),
                "svit train": lambda out: run_ours(model_dir, data_dir, out, args, grouped=True),
                "svit train, no grouping": lambda out: run_ours(
                    model_dir, data_dir, out, args, grouped=False
                ),
            }
            for name, run in runs.items():
                measured: dict = {}
                before = current_rss_mb()
                with measure(measured, name):
                    metrics = run(tmp / f"out-{repeat}-{name.replace(' ', '_').replace(',', '')}")
                results[name].append(tokens_per_second(metrics))
                peaks[name] = max(peaks.get(name, 0.0), measured[name]["peak_rss_mb"] - before)

    best = {name: max(values) for name, values in results.items()}
    stock = best["stock TRL SFTTrainer"]
    print(
        f"{args.steps} steps x batch {args.batch_size}, {args.samples} samples, {args.threads} thread(s), best of {args.repeats}"
    )
    for name, value in best.items():
        print(
            f"  {name:24s} {value:8.0f} tokens/s   ratio to stock {value / stock:.3f}   peak RSS growth {peaks[name]:+.0f} MB"
        )
    overhead = 1 - best["svit train, no grouping"] / stock
    print(f"overhead of svit train without grouping: {overhead:+.1%} (goal: within 10%)")


if __name__ == "__main__":
    main()
