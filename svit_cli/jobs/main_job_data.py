"""The main job's data part, on the bundled sample: build every config (the subsets and the recipes, mix_665k
from the bundled LLaVA pair) with its dataset card, load each back, summarize, write the statistics, price a
`svit generate` run on the bundled annotations (`--dry-run`: no LLM is called), and write the dataset card
again with the statistics and their figures."""

from __future__ import annotations

import tempfile
from pathlib import Path

import datasets

from hub_cards.dataset_card import write_dataset_card
from svit_cli.jobs.build import build_dataset_folder
from svit_dataset import bundled
from svit_dataset.generation.client import ClientSettings
from svit_dataset.generation.run import GenerationConfig, SceneSource, format_plan, plan_generation
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.report import recipe_table, report_table
from svit_dataset.local_tables import load_table_fresh
from svit_dataset.stats import format_stats_table, write_stats


def run_data_part(output_dir: str | Path, print_fn=print) -> dict:
    """Build the bundled sample into `output_dir` (a Hub-layout folder), load every config from it, write its
    statistics and its dataset card. Returns the report, the rows loaded per config and split, the statistics'
    files, the generation plan and the card's path."""
    output_dir = Path(output_dir)
    datasets.disable_progress_bars()  # a few dozen rows: the summary below says more than the bars
    options = BuildOptions(
        bundled.RELEASE_DIR,
        output_dir,
        "all,recipes",
        images_dir=bundled.IMAGES_DIR,
        test_ids=bundled.TEST_IDS,
        overwrite=True,
        llava_mix=bundled.LLAVA_MIX,
        llava_instruct=bundled.LLAVA_INSTRUCT,
    )
    report = build_dataset_folder(options)
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
    plan = run_generation_dry_run(print_fn)
    card = write_dataset_card(output_dir)  # again, now with the statistics and their figures
    print_fn(f"Dataset card: {card}\n")
    return {
        "report": report,
        "loaded": loaded,
        "stats": stats["written"],
        "generation_plan": plan,
        "dataset_card": card,
    }


def run_generation_dry_run(print_fn=print, model: str = "gpt-4o-mini") -> dict:
    """`svit generate --dry-run` on the bundled sample's VG + COCO annotations: every prompt rendered and
    priced; calls no LLM. Returns the plan."""
    with tempfile.TemporaryDirectory() as scratch:  # a dry run writes nothing; this just names no real folder
        config = GenerationConfig(output_dir=scratch, client=ClientSettings(model=model), progress=False)
        source = SceneSource(
            annotations=bundled.ANNOTATIONS_DIR,
            coco_captions=(bundled.ANNOTATIONS_DIR / "captions_train2017.json",),
        )
        plan = plan_generation(source, config)
    print_fn(
        "svit generate --dry-run on the bundled annotations (VG-style objects and regions, COCO captions):"
    )
    print_fn(format_plan(plan))
    return plan
