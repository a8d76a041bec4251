"""Items/s of `svit eval`'s harness: batched greedy generation (left padding) against one item at a time, same run.

The tiny SVIT-LLaVA (`svit model tiny`'s, untrained: it writes varied text up to `--max-new-tokens`, so every
item costs the same) answers MME-shaped questions about drawn images of varied sizes, through
`generate_predictions` (the ledger writes included), once with `--batch-size` and once with batch 1. The
predictions of both must be identical. Runs alternate and the best of `--repeats` is kept.

    .venv/bin/python bench/eval.py [--items 64 --batch-size 8 --max-new-tokens 16 --repeats 2 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from _measure import measure  # noqa: E402

from svit_model.evaluation.benchmark import SHORT_ANSWER  # noqa: E402
from svit_model.evaluation.harness import EvalItem, generate_predictions, with_suffix  # noqa: E402
from svit_model.evaluation.mme import record  # noqa: E402
from svit_model.tiny import build_tiny_svit_llava  # noqa: E402
from tools.eval_samples import MME_QUESTIONS, SHAPES, SUFFIX, draw  # noqa: E402


def items(count: int) -> list[EvalItem]:
    """MME-shaped questions (two per image) about drawn images of varied sizes."""
    questions = [q for pairs in MME_QUESTIONS.values() for q, _ in pairs]
    made = []
    for i in range(count):
        image = draw(32 + 7 * (i % 9), 28 + 5 * (i % 7), i)
        question = questions[i % len(questions)].format(colour=SHAPES[i % len(SHAPES)][1]) + SUFFIX
        made.append(
            EvalItem(
                f"bench/{i // 2:04d}.png#{i % 2}",
                question,
                with_suffix(question, SHORT_ANSWER),
                image=lambda image=image: image,
                reference="Yes" if i % 2 == 0 else "No",
                meta={"subtask": "existence", "image_name": f"{i // 2:04d}.png"},
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="bench/out/eval.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, processor = build_tiny_svit_llava()
    benchmark = items(args.items)

    timings: dict[str, list[dict]] = {"batched": [], "one_at_a_time": []}
    outputs: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, size in (("batched", args.batch_size), ("one_at_a_time", 1)):
                measured: dict = {}
                with measure(measured, name):
                    records, _ = generate_predictions(
                        model,
                        processor,
                        benchmark,
                        Path(tmp) / f"{name}-{repeat}",
                        record=record,
                        batch_size=size,
                        max_new_tokens=args.max_new_tokens,
                        layout=(0, 1, lambda: None),
                        progress=False,
                    )
                timings[name].append(measured[name])
                outputs[name] = {k: v["output"] for k, v in records.items()}
    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in timings.items()}
    rate = {name: args.items / run["seconds"] for name, run in best.items()}
    report = {
        "items": args.items,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "items_per_second": {k: round(v, 2) for k, v in rate.items()},
        "speedup": round(rate["batched"] / rate["one_at_a_time"], 2),
        "identical_predictions": outputs["batched"] == outputs["one_at_a_time"],
        "distinct_predictions": len(set(outputs["batched"].values())),
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in best.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    if not report["identical_predictions"]:
        sys.exit("batched predictions differ from one-at-a-time predictions")


if __name__ == "__main__":
    main()
