"""build_report.json: what a build read, the rows of each config and split, what the quality gates dropped,
what was left out, and the recipes' summaries (their full reports and figures go under recipes/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from svit_dataset.jsonlist import read_json_object
from svit_dataset.quality import format_report_table
from svit_dataset.recipes.report import format_recipe_table, recipe_summary

if TYPE_CHECKING:
    from svit_dataset.hub_build.options import BuildOptions
    from svit_dataset.hub_build.readme import ConfigEntry
    from svit_dataset.recipes.shards import RecipeBuild

REPORT_FILE = "build_report.json"
RECIPES_DIR = "recipes"  # recipe reports and figures

_REBUILD = "rebuild the folder with svit build"


def build_report(
    options: BuildOptions,
    listed: list[ConfigEntry],
    quality: dict[str, dict],
    left_out: dict[str, str],
    recipes: RecipeBuild | None,
    seconds: float,
) -> dict:
    """The report of a build of `options` that declared the configs `listed`."""
    held_out_list = options.test_ids is not None
    report = {
        "inputs": {
            "input": str(options.input_dir),
            "images": str(options.images_dir) if options.images_dir else None,
            "image_data": str(options.image_data) if options.image_data else None,
            "test_ids": str(options.test_ids) if held_out_list else None,
            "test_fraction": None if held_out_list else options.test_fraction,
            "split_seed": None if held_out_list else options.split_seed,
        },
        "configs": {e.name: e.num_examples for e in listed},
        "quality": quality,
        "seconds": round(seconds, 2),
    }
    if left_out:
        report["left_out"] = left_out
    if recipes is not None:
        report["recipes"] = {
            "seconds": recipes.seconds,
            "reports": f"{RECIPES_DIR}/<config>.json",
            "summary": {n: recipe_summary(r) for n, r in recipes.reports.items() if n not in left_out},
        }
    return report


def read_report(output_dir: str | Path) -> dict:
    return read_json_object(Path(output_dir) / REPORT_FILE, _REBUILD)


def recipe_table(output_dir: str | Path) -> str:
    """The recipe reports of a built folder as a printed table."""
    folder = Path(output_dir) / RECIPES_DIR
    names = read_report(output_dir).get("recipes", {}).get("summary", {})
    return format_recipe_table({n: read_json_object(folder / f"{n}.json", _REBUILD) for n in names})


def report_table(report: dict) -> str:
    """The quality counts of a report as a printed table: per task and split, rows seen, kept and dropped."""
    rows = [
        (task, split, rep) for task, by_split in report["quality"].items() for split, rep in by_split.items()
    ]
    return format_report_table(rows)
