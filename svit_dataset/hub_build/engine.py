"""The build: released-format files to a Hub dataset folder, Parquet shards per config and split plus README.md.

    OUT/
      README.md                      YAML `configs:` + `dataset_info:`, a title, the usage code (readme.py)
      build_report.json              what was kept and dropped, by reason; recipe summaries (report.py)
      data/<task>/<split>-00000-of-00001.parquet
      data/<recipe>/train-00000-of-00001.parquet   svit_80k ... mix_665k (svit_dataset.recipes)
      recipes/<recipe>.json, recipes/train.json, recipes/yes_no.png, recipes/concepts.png

The `full` config points at the four task folders instead of copying them, and so do the `test`
splits of the SVIT recipes (the held-out images of the four tasks). The build happens in a
hidden sibling folder and is renamed into place at the end, so an interrupted build never leaves a
folder that loads; shards stay `*.parquet.partial` until the build is complete.

`svit build` (svit_cli/jobs/build.py, which then writes the dataset card over the README) and the `datasets`
builder (datasets_builder.SvitBuilder) both run `build_hub_folder`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from datasets import DatasetInfo

from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_folder
from svit_dataset.hub_build.configs import CONFIG_DESCRIPTIONS, DEFAULT_CONFIG, RECIPE_CONFIGS, SUBSETS
from svit_dataset.hub_build.options import BuildOptions, plan_build
from svit_dataset.hub_build.readme import BuildFacts, ConfigEntry, minimal_readme
from svit_dataset.hub_build.report import RECIPES_DIR, REPORT_FILE, build_report
from svit_dataset.hub_build.task_config import PARTIAL
from svit_dataset.hub_build.task_queue import build_task_configs
from svit_dataset.recipes.mix import MIX_FEATURES
from svit_dataset.recipes.report import write_reports
from svit_dataset.recipes.select import MIX_665K, RecipeParams
from svit_dataset.recipes.shards import build_recipes
from svit_dataset.schema import SAMPLE_FEATURES, SPLITS, TEST, TRAIN

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class BuiltFolder:
    """A finished build: where it is, its report (build_report.json) and the facts its README states."""

    folder: Path  # absolute
    report: dict
    facts: BuildFacts


def build_hub_dataset(
    input_dir: str | Path,
    output_dir: str | Path,
    configs: list[str] | str | None = None,
    *,
    recipe: RecipeParams | None = None,
    **options,
) -> dict:
    """Build the requested configs from released-format files into a Hub-layout folder; returns the report.

    `options` are the fields of `BuildOptions` (images_dir, image_data, test_ids, test_fraction, ...).
    Recipe configs are computed from the task configs' train shards (built as well, even when not
    listed: the recipes' test splits point at them); `recipe` holds their parameters (the paper's
    by default), `llava_mix`/`llava_instruct` the two LLaVA files mix_665k needs, `mix_llava_json`
    an optional path to also write mix_665k as LLaVA-1.5 training JSON. The README holds what loading
    needs, a title and the usage code (`svit build` then writes the dataset card over it).
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(BuildOptions)})
    if unknown:
        raise TypeError(f"build_hub_dataset: unknown option(s) {', '.join(unknown)}; see BuildOptions")
    built = build_hub_folder(BuildOptions(input_dir, output_dir, configs or "all", **options), recipe)
    return built.report


def build_hub_folder(options: BuildOptions, recipe: RecipeParams | None = None) -> BuiltFolder:
    """The build of `options` (see `build_hub_dataset`). Every input is checked before any work; the folder is
    assembled in a hidden staging folder that replaces `output_dir` at the end."""
    plan = plan_build(options, recipe)
    started = time.time()
    with atomic_folder(plan.output_dir, kind="building") as staging:
        entries, quality = build_task_configs(options, plan.tasks, staging)
        if "full" in plan.names:
            entries["full"] = _union_entry("full", [entries[t] for t in SUBSETS["full"]])
        left_out = {}
        recipes = None
        recipe_names = [n for n in plan.names if n in RECIPE_CONFIGS]
        without_train = [
            t for t in SUBSETS["full"] if recipe_names and not entries[t].num_examples.get(TRAIN)
        ]
        if without_train:
            why = f"no train rows in {', '.join(without_train)} (recipes draw on all four tasks)"
            left_out |= dict.fromkeys(recipe_names, why)
        elif recipe_names:
            recipes = build_recipes(
                staging,
                recipe_names,
                recipe or RecipeParams(),
                llava_mix=options.llava_mix,
                llava_instruct=options.llava_instruct,
                mix_llava_json=options.mix_llava_json,
                max_shard_size=options.max_shard_size,
                max_bad_fraction=options.max_bad_fraction,
                suffix=PARTIAL,
            )
            entries |= _recipe_entries(recipes, entries)
            write_reports(staging / RECIPES_DIR, recipes.reports, recipes.train)
        for name in plan.names:
            if name not in left_out and not any(entries[name].num_examples.values()):
                left_out[name] = "every record was dropped or held out: see the quality report"
        _check_left_out(left_out, plan.asked_by_name, plan.names)
        for name in left_out:
            shutil.rmtree(staging / "data" / name, ignore_errors=True)
        listed = [entries[n] for n in plan.names if n not in left_out]
        for entry in listed:
            entry.description = CONFIG_DESCRIPTIONS[entry.name]
        report = build_report(options, listed, quality, left_out, recipes, seconds=time.time() - started)
        facts = BuildFacts(
            entries=listed,
            default=DEFAULT_CONFIG if DEFAULT_CONFIG in report["configs"] else listed[0].name,
            features_yaml=DatasetInfo(features=SAMPLE_FEATURES)._to_yaml_dict()["features"],
            quality_rows=[
                (task, split, rep) for task, by_split in quality.items() for split, rep in by_split.items()
            ],
            source=f"released-format files in `{Path(options.input_dir).name}/`",
            repo_id=plan.output_dir.name,
            recipes=report.get("recipes", {}).get("summary"),
            left_out=left_out,
            has_images=options.images_dir is not None,
        )
        _finalize(staging, minimal_readme(facts), report)
    logger.info("built %s in %.1fs", plan.output_dir, report["seconds"])
    return BuiltFolder(plan.output_dir, report, facts)


def _check_left_out(left_out: dict[str, str], asked_by_name: set[str], names: list[str]) -> None:
    """A config with no rows is never declared (it would not load). One the user named fails the build;
    one that came with a group is left out with a warning, and the report and card say so."""
    named = {n: why for n, why in left_out.items() if n in asked_by_name}
    if named:
        raise SvitInputError(
            "; ".join(f"config {n} would have no rows ({why})" for n, why in named.items())
            + ". Check --input, --test-ids / --test-fraction, or build other --configs."
        )
    for name, why in left_out.items():
        logger.warning("config %s left out: %s", name, why)
    if set(names) <= set(left_out):
        raise SvitInputError(
            "no config has any rows: every record was dropped or held out; check --input and the quality "
            "report printed above"
        )


def _union_entry(name: str, parts: list[ConfigEntry], splits=SPLITS) -> ConfigEntry:
    """A config made of other configs' shards (no copy); a split none of them has is not declared."""
    entry = ConfigEntry(name, {}, {}, {})
    for split in splits:
        having = [part for part in parts if part.num_examples.get(split)]
        if having:
            entry.data_files[split] = [p for part in having for p in part.data_files[split]]
            entry.num_examples[split] = sum(part.num_examples[split] for part in having)
            entry.num_bytes[split] = sum(part.num_bytes[split] for part in having)
    return entry


def _recipe_entries(recipes, tasks: dict[str, ConfigEntry]) -> dict[str, ConfigEntry]:
    """Card entries of the recipe configs: their train shards, and for the SVIT recipes the four
    tasks' test shards as `test` (no copy)."""
    out = {}
    for name, rows in recipes.rows.items():
        entry = ConfigEntry(
            name, {TRAIN: [f"data/{name}/{TRAIN}-*.parquet"]}, {TRAIN: rows}, {TRAIN: recipes.bytes[name]}
        )
        if name == MIX_665K:
            entry.features_yaml = DatasetInfo(features=MIX_FEATURES)._to_yaml_dict()["features"]
        else:
            test = _union_entry(name, [tasks[t] for t in SUBSETS["full"]], splits=(TEST,))
            entry.data_files |= test.data_files
            entry.num_examples |= test.num_examples
            entry.num_bytes |= test.num_bytes
        out[name] = entry
    return out


def _finalize(staging: Path, readme: str, report: dict) -> None:
    """Complete the staging folder: shards get their real names, then the report and the README last."""
    for partial in staging.glob(f"data/*/*{PARTIAL}"):
        partial.rename(partial.with_name(partial.name[: -len(PARTIAL)]))
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (staging / "README.md").write_text(readme)
