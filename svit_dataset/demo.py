"""The main job on the bundled sample, data part: build every config (the subsets and the recipes,
mix_665k from the bundled LLaVA pair), load each back, summarize, write the statistics, and price a
`svit generate` run on the bundled annotations (`--dry-run`: no LLM is called)."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from svit_dataset import bundled
from svit_dataset.generation.demo import run_generate_demo
from svit_dataset.hub_layout import build_hub_dataset, recipe_table, report_table
from svit_dataset.hub_readme import CardRenderer
from svit_dataset.local_tables import load_table_fresh
from svit_dataset.stats import format_stats_table, write_stats

logger = logging.getLogger(__name__)


def run_data_demo(output_dir: str | Path, print_fn=print, card: CardRenderer | None = None) -> dict:
    """Build the bundled sample into `output_dir` (a Hub-layout folder) and load every config from it.

    `card` renders the dataset card (the `svit demo` command passes hub_cards' renderer)."""
    output_dir = Path(output_dir)
    datasets.disable_progress_bars()  # a few dozen rows: the summary below says more than the bars
    report = build_hub_dataset(
        bundled.RELEASE_DIR,
        output_dir,
        "all,recipes",
        images_dir=bundled.IMAGES_DIR,
        test_ids=bundled.TEST_IDS,
        overwrite=True,
        llava_mix=bundled.LLAVA_DIR / "llava_v1_5_mix665k.json",
        llava_instruct=bundled.LLAVA_DIR / "llava_instruct_150k.json",
        card=card,
    )
    print_fn(f"Built {output_dir} in {report['seconds']}s. Quality gates:")
    print_fn(report_table(report))
    print_fn("\nRecipes (the sample is far smaller than the paper's sizes: each takes what qualifies):")
    print_fn(recipe_table(output_dir))
    print_fn("\nLoaded back with datasets.load_dataset:")
    loaded = {}
    for config in report["configs"]:
        dataset = load_table_fresh(output_dir, config)
        loaded[config] = {split: dataset[split].num_rows for split in dataset}
        row = dataset["train"][0]
        print_fn(
            f"  {config:20s} "
            + "  ".join(f"{s}={n}" for s, n in loaded[config].items())
            + f"   e.g. {row['id']}: {len(row['messages'])} messages, {len(row['images'])} image(s)"
        )
    stats = write_stats(output_dir)
    print_fn("\nStatistics (paper 3.4), figures in " + str(output_dir / "stats") + ":")
    print_fn(format_stats_table(stats))
    print_fn("")
    plan = run_generate_demo(print_fn)
    return {"report": report, "loaded": loaded, "stats": stats["written"], "generation_plan": plan}
