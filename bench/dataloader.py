"""The stage-2 input pipeline on one worker process, against what one GPU consumes in SVIT-v1.5-13B training.

    python bench/dataloader.py [--samples 320] [--batch-size 16] [--workers 1] [--out bench/out]

Data: `--samples` JPEGs of Visual Genome's size (500x375, drawn shapes over noise, quality 90) on disk, each with
one of the bundled sample's grounded referring-QA conversations (10 turns, boxes), in the SVIT sample schema with
an `image_path` column: the rows `svit build` writes without image bytes. The pipeline is training's own:
`load_training_data` -> `samples()` (JPEG decode, `SampleLoader`) -> `SvitCollator` (LLaVA-1.5's pad to square,
CLIP-336 image processing: LlavaImageProcessorPil, shortest edge 336, crop 336, CLIP mean/std; the vicuna_v1
chat template with the assistant mask; tokenisation; collation), through a torch DataLoader with `--workers`
worker processes at the recipe's batch size, as the trainer runs it. The tokenizer is the tiny byte-level BPE
(Vicuna's cannot be downloaded here); with a vocabulary of 512 it cuts text into more tokens than Llama's,
so tokenisation costs more here than in a real run.

One GPU's demand: SVIT-v1.5-13B trains one epoch of SVIT-mix-665K (665,298 samples) in about 21 hours on 8
A100-80GB (the paper's setting), so one GPU consumes 665,298 / (21 * 3600 * 8) = 1.10 samples/s. The goal: one
worker supplies at least 2x that. The phases (decode, collate) are also timed apart, in this process.
Writes bench/out/dataloader.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _measure import current_rss_mb, save_results  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from svit_dataset.schema import SAMPLE_FEATURES  # noqa: E402
from svit_model.teaching import bundled_referring_rows  # noqa: E402
from svit_model.tiny import build_tiny_processor, build_tiny_tokenizer, corpus_from_rows  # noqa: E402
from svit_model.training.collator import SvitCollator  # noqa: E402
from svit_model.training.data import load_training_data  # noqa: E402

MIX_665K_SAMPLES = 665_298
PUBLISHED_HOURS = 21.0
PUBLISHED_GPUS = 8
GPU_DEMAND = MIX_665K_SAMPLES / (PUBLISHED_HOURS * 3600 * PUBLISHED_GPUS)  # samples/s one GPU consumes


def write_vg_like_jpeg(path: Path, rng: random.Random) -> None:
    """500x375 like a typical VG image: noise (JPEG cannot compress it away) with a few shapes."""
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(450), rng.randrange(325)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 150)], fill=colour)
    image.save(path, quality=90)


def write_data(folder: Path, samples: int) -> tuple[Path, Path, list[dict]]:
    """(dataset folder, image folder, conversations) of `samples` rows over generated JPEGs."""
    rng = random.Random(0)
    conversations = bundled_referring_rows()
    images = folder / "images"
    images.mkdir(parents=True)
    rows = []
    for k in range(samples):
        name = f"vg/{k:06d}.jpg"
        (images / "vg").mkdir(exist_ok=True)
        write_vg_like_jpeg(images / name, rng)
        source = conversations[k % len(conversations)]
        rows.append(
            {**source, "id": f"bench-{k}", "image_path": name, "images": [], "width": 500, "height": 375}
        )
    dataset = folder / "dataset"
    datasets.Dataset.from_list(rows, features=SAMPLE_FEATURES).to_parquet(
        str(dataset / "data" / "train-00000-of-00001.parquet")
    )
    return dataset, images, conversations


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16, help="the 13B recipe's per-device batch")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a data-loader worker runs on one thread
    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir, image_dir, conversations = write_data(Path(tmp), args.samples)
        processor = build_tiny_processor(
            build_tiny_tokenizer(corpus_from_rows(conversations)), image_size=336, pad=True
        )
        collator = SvitCollator(processor, template="default", max_length=2048)
        data = load_training_data(str(dataset_dir), None, "train", str(image_dir))
        samples = data.samples()

        # the phases, in this process: decode every image, then collate the decoded batches
        start = time.perf_counter()
        decoded = [samples[k] for k in range(len(samples))]
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        tokens = 0
        for k in range(0, len(decoded), args.batch_size):
            batch = collator(decoded[k : k + args.batch_size])
            tokens += int(batch["attention_mask"].sum())
        collate_s = time.perf_counter() - start

        # the pipeline as the trainer runs it: worker processes decode and collate, the main process receives
        loader = torch.utils.data.DataLoader(
            samples, batch_size=args.batch_size, collate_fn=collator, num_workers=args.workers
        )
        iterator = iter(loader)
        first = next(iterator)  # worker start-up (fork, imports) is paid once per epoch, not per sample
        start = time.perf_counter()
        received = 0
        for batch in iterator:
            received += batch["input_ids"].shape[0]
        pipeline_s = time.perf_counter() - start
    per_worker = received / pipeline_s / args.workers
    results = {
        "samples": args.samples,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "image": "500x375 JPEG -> pad to square -> 336x336 CLIP",
        "mean_tokens_per_sample": round(tokens / len(decoded)),
        "first_batch_shape": list(first["input_ids"].shape),
        "in_process": {
            "decode_samples_per_s": round(len(decoded) / decode_s, 1),
            "collate_samples_per_s": round(len(decoded) / collate_s, 1),
        },
        "pipeline_samples_per_s_per_worker": round(per_worker, 1),
        "gpu_demand_samples_per_s": round(GPU_DEMAND, 2),
        "gpu_demand_arithmetic": f"{MIX_665K_SAMPLES:,} samples / ({PUBLISHED_HOURS:g} h * 3600 * {PUBLISHED_GPUS} GPUs)",
        "ratio_worker_over_gpu_demand": round(per_worker / GPU_DEMAND, 1),
        "goal_ratio": 2.0,
        "rss_mb": round(current_rss_mb(), 1),
    }
    save_results(results, args.out, "dataloader.json")


if __name__ == "__main__":
    main()
