"""The dataset card (README.md of a Hub dataset repo) from the facts a build produces.

Pure text: the YAML header that makes `load_dataset(repo, config)` work without a loading script
(`configs:` with `data_files`, `dataset_info:`), then a short human-readable body.
"""

from __future__ import annotations

import dataclasses

import yaml

from svit_dataset.facts import SVIT_CITATION


@dataclasses.dataclass
class ConfigEntry:
    """One Hub config: its data file patterns per split and the rows they hold."""

    name: str
    data_files: dict[str, list[str]]  # split -> glob patterns relative to the repo root
    num_examples: dict[str, int]  # split -> rows
    num_bytes: dict[str, int]  # split -> bytes of the Parquet shards
    description: str = ""
    features_yaml: list[dict] | None = None  # when it differs from the dataset's (e.g. mix_665k)


def card_metadata(entries: list[ConfigEntry], default: str, features_yaml: list[dict]) -> dict:
    """The YAML header as a dict (stable order: configs as given)."""
    configs = []
    infos = []
    for entry in entries:
        config = {"config_name": entry.name}
        if entry.name == default:
            config["default"] = True
        config["data_files"] = [
            {"split": split, "path": paths[0] if len(paths) == 1 else paths}
            for split, paths in entry.data_files.items()
        ]
        configs.append(config)
        infos.append(
            {
                "config_name": entry.name,
                "features": entry.features_yaml or features_yaml,
                "splits": [
                    {"name": split, "num_bytes": entry.num_bytes.get(split, 0), "num_examples": n}
                    for split, n in entry.num_examples.items()
                ],
                "download_size": sum(entry.num_bytes.values()),
                "dataset_size": sum(entry.num_bytes.values()),
            }
        )
    return {
        "license": "cc-by-4.0",
        "language": ["en"],
        "pretty_name": "SVIT",
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "tags": ["visual-instruction-tuning", "visual-genome", "grounding", "svit"],
        "configs": configs,
        "dataset_info": infos,
    }


def _first_split(entries: list[ConfigEntry], name: str) -> str:
    splits = next(e.num_examples for e in entries if e.name == name)
    return "train" if splits.get("train") else next(iter(splits))


def render_dataset_card(
    entries: list[ConfigEntry],
    default: str,
    features_yaml: list[dict],
    quality_rows: list[tuple[str, str, dict]],
    source: str,
    repo_id: str = "svit",
    recipes: dict[str, dict] | None = None,
    left_out: dict[str, str] | None = None,
) -> str:
    """README.md text: YAML front matter, then what the dataset is and how to load it.

    `left_out`: configs not built because they would have had no rows, and why.
    """
    header = yaml.dump(
        card_metadata(entries, default, features_yaml),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        allow_unicode=True,
    )
    lines = [
        "---",
        header.rstrip(),
        "---",
        "",
        "# SVIT: Scaling up Visual Instruction Tuning",
        "",
        "Visual instruction samples over Visual Genome images in four tasks: conversations, complex",
        "reasoning, referring QAs (objects grounded as `<st>phrase<ed> [x1, y1, x2, y2]`, boxes normalized",
        "to the original image) and detail descriptions. One row is one image and one multi-turn",
        "conversation (`messages` + `images`), so every config trains with TRL's `SFTTrainer` as is.",
        "",
        f"Built with the `svit` package from: {source}.",
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
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{repo_id}", "{default}", split="{_first_split(entries, default)}")',
        "```",
        "",
    ]
    if left_out:
        lines += ["Configs left out of this build because they would have had no rows:", ""]
        lines += [f"- `{name}`: {why}" for name, why in left_out.items()]
        lines.append("")
    if recipes:
        lines += _recipe_section(recipes)
    lines += [
        "## Quality gates",
        "",
        "Conversations dropped while reading, by reason (nothing is dropped without a count):",
        "",
        "| task | split | seen | kept | dropped |",
        "|---|---|---|---|---|",
    ]
    for task, split, rep in quality_rows:
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


class _NoAliasDumper(yaml.SafeDumper):
    """The Hub's YAML reader wants plain repeated blocks, not `&id001` anchors."""

    def ignore_aliases(self, data):
        return True


def _splits(entries: list[ConfigEntry]) -> list[str]:
    seen: list[str] = []
    for entry in entries:
        seen += [s for s in entry.num_examples if s not in seen]
    return seen
