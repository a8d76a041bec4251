"""`svit build`: the build (svit_dataset.hub_build), then the dataset card over its README (hub_cards), then the
push when asked. The main job's data part (main_job_data.py) builds through here too."""

from __future__ import annotations

import json
from collections.abc import Callable

from hub_cards.dataset_card import render_dataset_card
from svit_dataset.files import write_text_atomic
from svit_dataset.hub_build.engine import build_hub_folder
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.push import push_hub_dataset
from svit_dataset.hub_build.report import recipe_table, report_table
from svit_dataset.recipes.select import RecipeParams


def build_dataset_folder(
    options: BuildOptions,
    recipe: RecipeParams | None = None,
    *,
    push_to_hub: str | None = None,
    private: bool | None = None,
    print_fn: Callable[[str], None] | None = None,
) -> dict:
    """Build `options.output_dir`, write its dataset card, print the summary through `print_fn` (when given),
    then push the folder to `push_to_hub` (a dataset repo id) when given; returns the build's report.

    The build leaves a complete folder whose README is the minimal one (front matter, title, usage code:
    it loads the same); the card replaces it atomically, with the same front matter, so the folder never
    holds a README that does not match its files."""
    built = build_hub_folder(options, recipe)
    write_text_atomic(built.folder / "README.md", render_dataset_card(built.facts))
    if print_fn is not None:
        print_fn(report_table(built.report))
        if "recipes" in built.report:
            print_fn(recipe_table(built.folder))
        print_fn(json.dumps(built.report["configs"], indent=1))
    if push_to_hub:
        url = push_hub_dataset(built.folder, push_to_hub, private=private)
        if print_fn is not None:
            print_fn(url)
    return built.report
