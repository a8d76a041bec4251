"""Time the recipe step (all five recipe configs) at the paper's scale, against a plain pass.

    python bench/recipes.py [--corpus /tmp/svit_full] [--hub bench/out/hub-tasks/svit] [--out bench/out]

Uses (or writes) the synthetic full-scale corpus of bench/build.py (tools.synthetic), builds
its four task configs once (reused on later runs: pass --rebuild to redo it), and synthesizes a
LLaVA pair of the real files' shape: `llava_v1_5_mix665k.json` with 665,298 records, 157,712 of them
LLaVA-Instruct records (the ids and conversations of `llava_instruct_150k.json`, `coco/train2017/`
paths), the rest short VQA-style, region, OCR and text-only records.

Then in this one process: (1) the baseline, a plain pass over the same inputs: the `messages`
column of every train shard read into Arrow, and both LLaVA files stream-decoded to Python objects;
(2) the recipe step, `build_recipes` for svit_80k, svit_80k_d, svit_80k_b, core_150k and mix_665k,
writing their Parquet shards next to the task shards. Reports seconds, CPU seconds (mix workers included), the
load average before and after (other work on the machine), peak RSS and their ratio, the recipe step's phases,
and writes bench/out/recipes.json. Goal: <= 60 s and <= 2 GB peak.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/: the corpus maker, not installed
from _measure import current_rss_mb, measure  # noqa: E402

from svit_dataset.hub_build.engine import build_hub_dataset  # noqa: E402
from svit_dataset.jsonlist import iter_json_list  # noqa: E402
from svit_dataset.recipes.select import RECIPE_NAMES  # noqa: E402
from svit_dataset.recipes.shards import build_recipes, iter_batches, split_shards  # noqa: E402
from svit_dataset.schema import TASKS  # noqa: E402
from tools.synthetic import CorpusSpec, write_corpus  # noqa: E402

MIX_RECORDS = 665_298
INSTRUCT_RECORDS = 157_712
_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "is",
    "in",
    "on",
    "with",
    "to",
    "man",
    "woman",
    "dog",
    "cat",
    "car",
    "street",
    "table",
    "red",
    "blue",
    "white",
    "black",
    "small",
    "large",
    "two",
    "three",
    "sitting",
    "standing",
    "holding",
    "near",
    "under",
    "left",
    "right",
    "people",
    "building",
    "sky",
    "tree",
    "grass",
    "water",
    "what",
    "where",
    "how",
    "many",
    "color",
    "kind",
    "image",
    "picture",
    "there",
    "are",
    "it",
    "this",
    "that",
    "can",
    "be",
    "seen",
]


def _text(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(_WORDS[i] for i in rng.integers(0, len(_WORDS), n_words))


def write_llava_pair(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A LLaVA-Instruct-150K / LLaVA-v1.5-mix-665K pair of the real files' counts and rough sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    instruct_path, mix_path = folder / "llava_instruct_150k.json", folder / "llava_v1_5_mix665k.json"
    if instruct_path.is_file() and mix_path.is_file():
        return instruct_path, mix_path
    rng = np.random.default_rng(seed)
    coco = rng.choice(581_929, size=81_479, replace=False)
    instruct = []
    for k in range(INSTRUCT_RECORDS):
        image = f"{int(coco[k % coco.size]):012d}"
        kind = k % 3  # conversation (multi-turn), detail (one long answer), complex reasoning
        turns = []
        for t in range(int(rng.integers(2, 6)) if kind == 0 else 1):
            question = _text(rng, int(rng.integers(6, 14))) + "?"
            turns += [
                {"from": "human", "value": ("<image>\n" if t == 0 else "") + question},
                {"from": "gpt", "value": _text(rng, int(rng.integers(20, 120))) + "."},
            ]
        instruct.append({"id": image, "image": f"{image}.jpg", "conversations": turns})
    sources = (
        ["vqa"] * 270_000 + ["gqa"] * 72_140 + ["ocr_vqa"] * 80_000 + ["textvqa"] * 21_953
        + ["vg"] * 86_417 + ["text"] * 40_688
    )  # fmt: skip
    sources += ["vqa"] * (MIX_RECORDS - INSTRUCT_RECORDS - len(sources))
    order = rng.permutation(MIX_RECORDS)
    place = {int(i): n for n, i in enumerate(order[:INSTRUCT_RECORDS])}
    with open(instruct_path, "wb") as f:
        f.write(b"[" + b",\n".join(orjson.dumps(r) for r in instruct) + b"]\n")
    with open(mix_path, "wb") as f:
        f.write(b"[")
        other = 0
        for pos in range(MIX_RECORDS):
            if pos in place:
                r = instruct[place[pos]]
                record = {**r, "image": f"coco/train2017/{r['image']}"}
            else:
                source = sources[other]
                other += 1
                turns = []
                for t in range(int(rng.integers(1, 8))):
                    turns += [
                        {"from": "human", "value": ("<image>\n" if t == 0 else "") + _text(rng, 8) + "?"},
                        {"from": "gpt", "value": _text(rng, int(rng.integers(1, 4)))},
                    ]
                image = {
                    "vqa": f"coco/train2017/{int(rng.integers(581_929)):012d}.jpg",
                    "gqa": f"gqa/images/{int(rng.integers(2_400_000))}.jpg",
                    "ocr_vqa": f"ocr_vqa/images/{int(rng.integers(10**9))}.jpg",
                    "textvqa": f"textvqa/train_images/{int(rng.integers(16**12)):012x}.jpg",
                    "vg": f"vg/VG_100K/{int(rng.integers(2_400_000))}.jpg",
                    "text": None,
                }[source]
                record = {"id": f"{source}-{other}", "conversations": turns}
                if image:
                    record["image"] = image
            f.write((b"\n" if pos == 0 else b",\n") + orjson.dumps(record))
        f.write(b"\n]\n")
    return instruct_path, mix_path


def plain_pass(hub: Path, llava: tuple[Path, Path]) -> dict:
    """The baseline: the train shards' `messages` read into Arrow, the LLaVA files decoded."""
    rows = messages = 0
    for task in TASKS:
        for batch in iter_batches(split_shards(hub, task), columns=["messages"]):
            rows += batch.num_rows
            messages += len(batch.column("messages").flatten())
    records = sum(1 for path in llava for _ in iter_json_list(path))
    return {"train_rows": rows, "messages": messages, "llava_records": records}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="/tmp/svit_full", help="synthetic corpus folder (written if missing)"
    )
    parser.add_argument("--hub", default="bench/out/hub-tasks/svit", help="the task build (made if missing)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the task configs")
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import datasets

    datasets.disable_progress_bars()
    out, corpus, hub = Path(args.out), Path(args.corpus), Path(args.hub)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"start_rss_mb": round(current_rss_mb(), 1)}
    if not all((corpus / f"{t}.json").is_file() for t in TASKS):
        with measure(results, "write_corpus"):
            write_corpus(CorpusSpec(), corpus)
    if args.rebuild or not (hub / "build_report.json").is_file():
        with measure(results, "build_tasks"):
            build_hub_dataset(corpus, hub, list(TASKS), image_data=corpus / "image_data.json", overwrite=True)
    with measure(results, "write_llava_pair"):
        instruct, mix = write_llava_pair(corpus / "llava")
    for name in RECIPE_NAMES:  # a previous run's recipes
        shutil.rmtree(hub / "data" / name, ignore_errors=True)

    with measure(results, "plain_pass"):
        results["plain"] = plain_pass(hub, (instruct, mix))
    with measure(results, "recipes"):
        built = build_recipes(hub, list(RECIPE_NAMES), llava_mix=mix, llava_instruct=instruct)
    results["recipe_rows"] = built.rows
    results["recipe_phases_s"] = built.timings
    results["mix_replaced"] = built.reports["mix_665k"]["llava"]["replaced"]
    results["recipes_over_plain"] = round(results["recipes"]["seconds"] / results["plain_pass"]["seconds"], 2)
    for name in RECIPE_NAMES:
        shutil.rmtree(hub / "data" / name, ignore_errors=True)

    (out / "recipes.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    r, p = results["recipes"], results["plain_pass"]
    print(
        f"\nplain pass {p['seconds']}s (CPU {p['cpu_seconds']}s) / recipes {r['seconds']}s (CPU "
        f"{r['cpu_seconds'] + r['child_cpu_seconds']:.2f}s, mix workers included) (x{results['recipes_over_plain']}); "
        f"peak RSS {r['peak_rss_mb']} MB, with the mix workers {r['peak_tree_rss_mb']} MB "
        f"(plain {p['peak_rss_mb']} MB); load average {p['load'][0]} -> {r['load'][1]}; goal <= 60 s, <= 2048 MB"
    )


if __name__ == "__main__":
    main()
