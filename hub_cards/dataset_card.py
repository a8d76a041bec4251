"""The dataset card (README.md of a Hub dataset repo) from the facts a build produces.

Pure text from `svit_dataset.hub_readme.BuildFacts`: the YAML front matter that makes
`load_dataset(repo, config)` work without a loading script, then a short human-readable body. Pass it
to a build as `build_hub_dataset(..., card=render_dataset_card)` (the `svit build` command does).
"""

from __future__ import annotations

from svit_dataset.facts import SVIT_CITATION
from svit_dataset.hub_readme import BuildFacts, ConfigEntry, front_matter, usage_code


def render_dataset_card(facts: BuildFacts) -> str:
    """README.md text: the front matter, then what the dataset is and how to load it."""
    entries, default = facts.entries, facts.default
    lines = [
        front_matter(facts),
        "# SVIT: Scaling up Visual Instruction Tuning",
        "",
        "Visual instruction samples over Visual Genome images in four tasks: conversations, complex",
        "reasoning, referring QAs (objects grounded as `<st>phrase<ed> [x1, y1, x2, y2]`, boxes normalized",
        "to the original image) and detail descriptions. One row is one image and one multi-turn",
        "conversation (`messages` + `images`), so every config trains with TRL's `SFTTrainer` as is.",
        "",
        f"Built with the `svit` package from: {facts.source}.",
        "",
        "## Configs",
        "",
        "| config | " + " | ".join(_splits(entries)) + " | description |",
        "|---|" + "---|" * len(_splits(entries)) + "---|",
    ]
    for entry in entries:
        counts = " | ".join(f"{entry.num_examples.get(s, 0):,}" for s in _splits(entries))
        lines.append(
            f"| `{entry.name}`{' (default)' if entry.name == default else ''} | {counts} | {entry.description} |"
        )
    lines += ["", usage_code(facts)]
    if facts.left_out:
        lines += ["Configs left out of this build because they would have had no rows:", ""]
        lines += [f"- `{name}`: {why}" for name, why in facts.left_out.items()]
        lines.append("")
    if facts.recipes:
        lines += _recipe_section(facts.recipes)
    lines += [
        "## Quality gates",
        "",
        "Conversations dropped while reading, by reason (nothing is dropped without a count):",
        "",
        "| task | split | seen | kept | dropped |",
        "|---|---|---|---|---|",
    ]
    for task, split, rep in facts.quality_rows:
        dropped = ", ".join(f"{k}: {v}" for k, v in rep["dropped"].items()) or "-"
        lines.append(f"| {task} | {split} | {rep['seen']:,} | {rep['kept']:,} | {dropped} |")
    lines += [
        "",
        "## Licence and citation",
        "",
        "Data CC-BY-4.0 (SVIT), images from Visual Genome (CC-BY-4.0).",
        "",
        "```bibtex",
        SVIT_CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def _recipe_section(recipes: dict[str, dict]) -> list[str]:
    """The data recipe (paper 4.2, 5.2): what each recipe config holds, from the build's reports."""
    lines = [
        "## Data recipe",
        "",
        "Recipe configs draw from the `train` split only; their `test` split is the held-out split of the",
        "four tasks (mix_665k has `train` only). Informativeness = distinct concept key words of the",
        "paper's table 4 a sample matches; balance drops random QAs answered 'Yes' (the rest of the",
        "conversation stays). Full reports and figures: `recipes/`.",
        "",
        "| config | samples | Y:N before | Y:N after | mean informativeness | dropped |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in recipes.items():
        if "size" not in r:
            lines.append(
                f"| `{name}` | {r['total']:,} | - | - | - | {r['llava_instruct_replaced']:,} LLaVA-Instruct "
                f"records replaced by {r['core_150k']:,} core_150k samples |"
            )
            continue
        dropped = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in r["dropped"].items()) or "-"
        lines.append(
            f"| `{name}` | {r['total']:,} | {_num(r['yes_per_no_before'])} | {_num(r['yes_per_no_after'])} "
            f"| {_num(r['mean_informativeness'])} | {dropped} |"
        )
    notes = [note for r in recipes.values() for note in r.get("notes", [])]
    if notes:
        lines += [""] + [f"- {note}" for note in dict.fromkeys(notes)]
    return lines + [""]


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _splits(entries: list[ConfigEntry]) -> list[str]:
    seen: list[str] = []
    for entry in entries:
        seen += [s for s in entry.num_examples if s not in seen]
    return seen
