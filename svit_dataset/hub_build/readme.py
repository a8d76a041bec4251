"""The README.md a build writes: the YAML front matter that makes `load_dataset(folder_or_repo, config)` work
without a loading script (`configs:` with `data_files`, `dataset_info:`), and the facts a card is written from.

The build writes the minimal README (`minimal_readme`: the front matter, a title, the usage code); it loads all
the same. The dataset card's prose comes from `hub_cards.dataset_card` (svit_dataset does not import it), which
renders the same front matter from the build's `BuildFacts`: svit_cli/jobs/build.py writes it after the build.
"""

from __future__ import annotations

import dataclasses

import yaml

from svit_dataset.facts import SVIT_DATA_LICENSE


@dataclasses.dataclass
class ConfigEntry:
    """One Hub config: its data file patterns per split and the rows they hold."""

    name: str
    data_files: dict[str, list[str]]  # split -> glob patterns relative to the repo root
    num_examples: dict[str, int]  # split -> rows
    num_bytes: dict[str, int]  # split -> bytes of the Parquet shards
    description: str = ""
    features_yaml: list[dict] | None = None  # when it differs from the dataset's (e.g. mix_665k)


@dataclasses.dataclass
class BuildFacts:
    """What a build knows that its card states."""

    entries: list[ConfigEntry]  # the configs built, in registry order
    default: str  # the default config
    features_yaml: list[dict]  # the sample schema as `dataset_info` YAML
    quality_rows: list[tuple[str, str, dict]]  # (task, split, quality report dict)
    source: str  # what the build read, in words
    repo_id: str  # the name `load_dataset` takes in the usage code (the folder's; the repo's once pushed)
    recipes: dict[str, dict] | None = None  # recipe summaries, when recipes were built
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)  # config -> why it has no rows
    has_images: bool | None = None  # whether rows embed their images (None: not known)

    @property
    def usage_split(self) -> str:
        splits = next(e.num_examples for e in self.entries if e.name == self.default)
        return "train" if splits.get("train") else next(iter(splits))


def card_metadata(entries: list[ConfigEntry], default: str, features_yaml: list[dict]) -> dict:
    """The YAML front matter as a dict (stable order: configs as given)."""
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
        "license": SVIT_DATA_LICENSE,
        "language": ["en"],
        "pretty_name": "SVIT",
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "tags": ["visual-instruction-tuning", "visual-genome", "grounding", "svit"],
        "configs": configs,
        "dataset_info": infos,
    }


class _NoAliasDumper(yaml.SafeDumper):
    """The Hub's YAML reader wants plain repeated blocks, not `&id001` anchors."""

    def ignore_aliases(self, data):
        return True


def front_matter(facts: BuildFacts) -> str:
    """`---`, the YAML header, `---`."""
    header = yaml.dump(
        card_metadata(facts.entries, facts.default, facts.features_yaml),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        allow_unicode=True,
    )
    return f"---\n{header.rstrip()}\n---\n"


def usage_code(facts: BuildFacts) -> str:
    return (
        "```python\nfrom datasets import load_dataset\n"
        f'ds = load_dataset("{facts.repo_id}", "{facts.default}", split="{facts.usage_split}")\n```\n'
    )


def minimal_readme(facts: BuildFacts) -> str:
    """The README without a card: loads the same; `build_report.json` holds the counts."""
    left_out = "".join(f"- `{name}` left out: {why}\n" for name, why in facts.left_out.items())
    return (
        f"{front_matter(facts)}\n# SVIT\n\nBuilt with the `svit` package from {facts.source}; "
        f"counts in `build_report.json`.\n\n{usage_code(facts)}\n{left_out}"
    )
