"""Padding in stage-2 batches: the modality/length-grouped sampler against random order, same batch size.

An SVIT-mix-665K-shaped synthetic corpus of lengths (no text is generated: the sampler only reads lengths):
LLaVA-1.5 mix records (grouped short VQA, captions, OCR, region QAs), text-only ShareGPT conversations, and
SVIT core_150k's four tasks with the paper's words per QA (conversation 9.6 + 27.9 words x 5 QAs, complex
reasoning 12.6 + 26.6, referring 11.3 + 20.6 x 10 QAs, detail 361.5 words). The sampler sorts by word counts
(what `modality_lengths` gives it); padding is measured on token counts (1.3 tokens per word with per-sample
noise, 576 image tokens, template overhead), as the model would see them. Batches are per device, in the order
accelerate hands them out across `--world-size` processes.

    .venv/bin/python bench/padding.py [--samples 665000 --batch-size 16 --world-size 8 --seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from svit_model.training.sampler import grouped_order  # noqa: E402

IMAGE_TOKENS = 576  # CLIP ViT-L/14 at 336 px, CLS dropped
TOKENS_PER_WORD = 1.3
TEMPLATE_TOKENS = 40  # system prompt and "USER:/ASSISTANT:" per sample, roughly

# (share of samples, has image, mean words, lognormal sigma)
CORPUS = {
    "llava_vqa_grouped": (0.45, True, 70, 0.8),
    "llava_short_caption_ocr": (0.15, True, 25, 0.5),
    "llava_region_qa": (0.06, True, 120, 0.6),
    "sharegpt_text_only": (0.06, False, 600, 0.9),
    "svit_conversation": (0.06, True, 5 * (9.6 + 27.9), 0.3),
    "svit_complex_reasoning": (0.06, True, 3 * (12.6 + 26.6), 0.4),
    "svit_referring_qa": (0.06, True, 10 * (11.3 + 20.6), 0.3),
    "svit_detail_description": (0.06, True, 361.5 + 8, 0.3),
}


def synthetic_corpus(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(signed word counts as the sampler sees them, token counts as the model sees them)."""
    rng = np.random.default_rng(seed)
    shares = np.array([spec[0] for spec in CORPUS.values()])
    kinds = rng.choice(len(CORPUS), size=samples, p=shares / shares.sum())
    words = np.empty(samples, dtype=np.int64)
    has_image = np.empty(samples, dtype=bool)
    for k, (_, image, mean, sigma) in enumerate(CORPUS.values()):
        n = int((kinds == k).sum())
        mu = np.log(mean) - sigma**2 / 2  # lognormal with this mean
        words[kinds == k] = np.maximum(1, rng.lognormal(mu, sigma, n)).astype(np.int64)
        has_image[kinds == k] = image
    ratio = rng.normal(TOKENS_PER_WORD, 0.1, samples).clip(1.0, 1.8)
    tokens = (words * ratio).astype(np.int64) + TEMPLATE_TOKENS + np.where(has_image, IMAGE_TOKENS, 0)
    sampler_view = np.where(has_image, words + IMAGE_TOKENS, -words)
    return sampler_view, tokens


def padding_share(
    order: np.ndarray, tokens: np.ndarray, batch_size: int, max_length: int
) -> tuple[float, int]:
    """Share of padded positions over all positions of right-padded batches, and the number of batches."""
    lengths = np.minimum(tokens[order], max_length)
    batches = len(lengths) // batch_size
    lengths = lengths[: batches * batch_size].reshape(batches, batch_size)
    padded = lengths.max(axis=1) * batch_size
    return float(1 - lengths.sum() / padded.sum()), batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=665_000)
    parser.add_argument("--batch-size", type=int, default=16, help="per device (LLaVA-1.5 stage 2: 16)")
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sampler_view, tokens = synthetic_corpus(args.samples, args.seed)
    start = time.perf_counter()
    grouped = np.array(grouped_order(sampler_view.tolist(), args.batch_size, args.world_size, args.seed))
    seconds = time.perf_counter() - start
    assert np.array_equal(np.sort(grouped), np.arange(args.samples)), "the grouped order is not a permutation"
    random = np.random.default_rng(args.seed).permutation(args.samples)

    grouped_pad, batches = padding_share(grouped, tokens, args.batch_size, args.max_length)
    random_pad, _ = padding_share(random, tokens, args.batch_size, args.max_length)
    mixed = sum(
        len(set(np.sign(sampler_view[grouped[i : i + args.batch_size]]))) > 1
        for i in range(0, batches * args.batch_size, args.batch_size)
    )
    print(
        f"{args.samples:,} samples, {batches:,} batches of {args.batch_size} (world size {args.world_size}), "
        f"mean {tokens.mean():.0f} tokens"
    )
    print(f"padding, random order:  {random_pad:.1%}")
    print(f"padding, grouped:       {grouped_pad:.1%}  (goal <= 10%)")
    print(f"ratio grouped / random: {grouped_pad / random_pad:.3f}")
    print(f"batches mixing image and text-only samples: {mixed} of {batches}")
    print(f"ordering time: {seconds:.2f} s")


if __name__ == "__main__":
    main()
