"""Samples per second through SvitLlavaProcessor (pad mode, grounded text) against the stock LlavaProcessor.

    python bench/processor.py [--repeats 5] [--batch-size 8] [--image-size 336] [--out bench/out]

Inputs: every referring-QA conversation of the bundled sample (grounded text with `<st>`/`<ed>` and boxes,
each with its image), rendered with the vicuna_v1 template. Both processors share the tokenizer, the image
processor (LLaVA-1.5 `pad` mode, `--image-size` px, 14 px patches) and the rendered texts; ours also moves
every box into its image's padded square. Two paths are timed: `processor(images, text)` and TRL's
collator path `apply_chat_template(..., tokenize=True, return_assistant_tokens_mask=True)`. Timings
alternate between the processors, best of `--repeats`. The collator path is also timed with the assistant
mask computed as transformers computes it over tensor offsets (`svit_tensor_walk`), the baseline of our
list walk (`SvitLlavaProcessor._adjust_assistant_masks_indices`). Writes bench/out/processor.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import current_rss_mb, save_results  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import LlavaProcessor  # noqa: E402
from transformers.processing_utils import ProcessorMixin  # noqa: E402

from svit_dataset import bundled  # noqa: E402
from svit_model.processing_svit_llava import SvitLlavaProcessor  # noqa: E402
from svit_model.stock_llava import to_llava_processor  # noqa: E402
from svit_model.teaching import bundled_referring_rows  # noqa: E402
from svit_model.tiny import build_tiny_processor, build_tiny_tokenizer, corpus_from_rows  # noqa: E402


class TensorWalkProcessor(SvitLlavaProcessor):
    """Ours with transformers' own assistant-mask walk, over the offsets as tensors: the baseline."""

    _adjust_assistant_masks_indices = ProcessorMixin._adjust_assistant_masks_indices


def conversations(rows: list[dict], images: dict[str, Image.Image]) -> list[list[dict]]:
    """Rows as chat messages with the image block first, as TRL's collator builds them."""
    out = []
    for row in rows:
        messages = [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in row["messages"]
        ]
        messages[0]["content"].insert(0, {"type": "image", "image": images[row["image_path"]]})
        out.append(messages)
    return out


def time_call(processor, texts, images, batch_size) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        processor(
            images=images[i : i + batch_size],
            text=texts[i : i + batch_size],
            padding=True,
            return_tensors="pt",
        )
    return time.perf_counter() - start


def time_chat(processor, chats, batch_size) -> float:
    start = time.perf_counter()
    for i in range(0, len(chats), batch_size):
        processor.apply_chat_template(
            chats[i : i + batch_size],
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
            processor_kwargs={"padding": True},
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=336)
    parser.add_argument(
        "--copies", type=int, default=4, help="how many times the bundled conversations are used"
    )
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()

    rows = bundled_referring_rows() * args.copies
    images = {p: Image.open(bundled.IMAGES_DIR / p).convert("RGB") for p in {r["image_path"] for r in rows}}
    ours = build_tiny_processor(
        build_tiny_tokenizer(corpus_from_rows(rows)), image_size=args.image_size, pad=True
    )
    stock = to_llava_processor(ours)
    assert type(stock) is LlavaProcessor
    tensor_walk = TensorWalkProcessor(
        image_processor=ours.image_processor, tokenizer=ours.tokenizer, patch_size=ours.patch_size
    )
    chats = conversations(rows, images)
    texts = [ours.apply_chat_template(chat) for chat in chats]
    batch_images = [images[r["image_path"]] for r in rows]
    n_boxes = sum(t.count("[") for t in texts)

    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, processor in (("stock", stock), ("svit", ours)):
            best[f"{name}_call"] = min(
                best.get(f"{name}_call", 1e9), time_call(processor, texts, batch_images, args.batch_size)
            )
            best[f"{name}_chat"] = min(
                best.get(f"{name}_chat", 1e9), time_chat(processor, chats, args.batch_size)
            )
        best["svit_tensor_walk_chat"] = min(
            best.get("svit_tensor_walk_chat", 1e9), time_chat(tensor_walk, chats, args.batch_size)
        )
    results = {
        "samples": len(rows),
        "boxes": n_boxes,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "rss_mb": round(current_rss_mb(), 1),
    }
    for path in ("call", "chat"):
        results[path] = {
            "stock_samples_per_s": round(len(rows) / best[f"stock_{path}"], 1),
            "svit_samples_per_s": round(len(rows) / best[f"svit_{path}"], 1),
            "time_ratio_svit_over_stock": round(best[f"svit_{path}"] / best[f"stock_{path}"], 3),
        }
    results["chat"]["svit_tensor_walk_samples_per_s"] = round(len(rows) / best["svit_tensor_walk_chat"], 1)
    results["chat"]["time_ratio_svit_over_tensor_walk"] = round(
        best["svit_chat"] / best["svit_tensor_walk_chat"], 3
    )
    save_results(results, args.out, "processor.json")


if __name__ == "__main__":
    main()
