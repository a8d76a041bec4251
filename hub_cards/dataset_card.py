"""The dataset card (README.md of a Hub dataset repo): huggingface_hub's `DatasetCard` from a Jinja template.

The metadata is a `DatasetCardData` built from `svit_dataset.hub_build.readme.card_metadata` (the one home of the
`configs:` / `dataset_info:` that make `load_dataset(repo, config)` work without a loading script) plus what
only a card states (size category, how the text was made). The body comes from
`templates/dataset_card.md.j2`: summary, configs, usage, the section 3.4 statistics, how it was made
(source, generation, recipe, quality gates), known issues, licence and citation.

Two ways in, one card shape:

- `render_dataset_card(facts)`: renders from a build's `BuildFacts` (svit_cli/jobs/build.py writes it over the
  README the build wrote; no statistics yet: they are measured on the finished folder);
- `write_dataset_card(folder)`: (re)writes a built folder's README.md from what the folder holds
  (README metadata, build_report.json, recipes/, stats/), keeping its configs as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import SVIT_CITATION, SVIT_PAPER_URL
from svit_dataset.files import write_text_atomic
from svit_dataset.hub_build.configs import CONFIG_DESCRIPTIONS, SUBSETS
from svit_dataset.hub_build.readme import BuildFacts, ConfigEntry, card_metadata, usage_code
from svit_dataset.hub_build.report import RECIPES_DIR, REPORT_FILE
from svit_dataset.jsonlist import read_json_object
from svit_dataset.recipes.report import FIGURE_CONCEPTS, FIGURE_YES_NO
from svit_dataset.recipes.select import CORE_150K, MIX_665K
from svit_dataset.stats import STATS_DIR

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md.j2"
STATS_NAME = "tasks"  # `svit stats OUT` without --config: the four task configs, train + test
GENERATION_SUMMARY = "generation_summary.json"  # what `svit generate` leaves beside the files it wrote

# The Hub's size buckets: (rows below which it applies, name), smallest first.
_SIZE_BUCKETS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)

# Recipe parameters the card lists (RecipeParams fields, as recipes/<config>.json stores them).
_CARD_RECIPE_PARAMS = (
    "per_task",
    "yes_per_no",
    "seed",
    "keep_fraction",
    "informativeness",
    "diversity_scope",
    "core_size",
    "core_split",
    "concept_set",
)


@dataclass
class FolderFacts:
    """What a finished folder knows beyond the build's `BuildFacts`; empty at build time."""

    stats: dict | None = None  # stats/tasks.json
    other_stats: list[str] = field(default_factory=list)  # names of the other stats/<name>.json
    stats_figures: list[str] = field(default_factory=list)  # stats/*.png of `stats`, relative to the folder
    recipe_params: dict | None = None  # the `params` of the recipe reports
    generation: dict | None = None  # generation_summary.json beside the input, when it is still there
    looked_for_generation: bool = False  # whether that input folder was looked at (not at build time)


# --- pure functions: facts -> metadata and template values ----------------------------------------------


def size_category(rows: int) -> str:
    """The Hub's `size_categories` bucket of a row count (`n<1K`, `1K<n<10K`, ..., `n>1T`)."""
    for bound, name in _SIZE_BUCKETS:
        if rows < bound:
            return name
    return "n>1T"


def dataset_rows(entries: list[ConfigEntry]) -> int:
    """Rows the dataset holds: the four task configs together (every other SVIT config is drawn from them),
    or the largest config when that is more (mix_665k adds LLaVA's records; a build of recipes alone)."""
    tasks = sum(sum(e.num_examples.values()) for e in entries if e.name in SUBSETS["full"])
    return max([tasks, *(sum(e.num_examples.values()) for e in entries)])


def dataset_card_data(facts: BuildFacts) -> DatasetCardData:
    """`card_metadata` (configs, dataset_info, licence, task categories ...) plus the card-only fields."""
    metadata = card_metadata(facts.entries, facts.default, facts.features_yaml)
    # The same features block is shared by every config: a JSON round trip gives each its own copy, so the
    # YAML has no `&id001` anchors (the Hub's reader wants plain blocks).
    metadata = json.loads(json.dumps(metadata))
    return DatasetCardData(
        **metadata,
        size_categories=[size_category(dataset_rows(facts.entries))],
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality=["monolingual"],
    )


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _splits(entries: list[ConfigEntry]) -> list[str]:
    seen: list[str] = []
    for entry in entries:
        seen += [s for s in entry.num_examples if s not in seen]
    return seen


def _config_rows(facts: BuildFacts) -> list[dict]:
    splits = _splits(facts.entries)
    return [
        {
            "name": e.name,
            "default": e.name == facts.default,
            "counts": [_count(e.num_examples.get(s)) for s in splits],  # "-": the config has no such split
            "description": e.description or CONFIG_DESCRIPTIONS.get(e.name, ""),
        }
        for e in facts.entries
    ]


_REASON_WORDS = {"yes_qas": "'Yes' QAs"}  # reasons whose key reads badly as words


def _dropped_text(dropped: dict) -> str:
    """`{"bad_box": 3}` as "bad box: 3"; "-" when nothing was dropped."""
    words = (_REASON_WORDS.get(k, k.replace("_", " ")) for k in dropped)
    return ", ".join(f"{w}: {_count(v)}" for w, v in zip(words, dropped.values(), strict=True)) or "-"


def _quality(rows: list[tuple[str, str, dict]]) -> tuple[list[dict], dict]:
    table, seen, kept, dropped = [], 0, 0, {}
    for task, split, rep in rows:
        table.append(
            {
                "task": task,
                "split": split,
                "seen": _count(rep["seen"]),
                "kept": _count(rep["kept"]),
                "dropped": _dropped_text(rep["dropped"]),
            }
        )
        seen, kept = seen + rep["seen"], kept + rep["kept"]
        for reason, n in rep["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + n
    return table, {"seen": _count(seen), "kept": _count(kept), "dropped": _dropped_text(dropped)}


def _recipe_rows(recipes: dict[str, dict]) -> list[dict]:
    rows = []
    for name, r in recipes.items():
        if name == MIX_665K:
            rows.append(
                {
                    "name": name,
                    "total": _count(r["total"]),
                    "yes_per_no_before": "-",
                    "yes_per_no_after": "-",
                    "informativeness": "-",
                    "dropped": f"{_count(r['llava_instruct_replaced'])} LLaVA-Instruct records replaced by "
                    f"{_count(r['core_150k'])} {CORE_150K} samples",
                }
            )
            continue
        rows.append(
            {
                "name": name,
                "total": _count(r["total"]),
                "yes_per_no_before": _ratio(r["yes_per_no_before"]),
                "yes_per_no_after": _ratio(r["yes_per_no_after"]),
                "informativeness": _ratio(r["mean_informativeness"]),
                "dropped": _dropped_text(r["dropped"]),
            }
        )
    return rows


def _param_text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _stats_section(stats: dict, figures: list[str], others: list[str]) -> dict:
    """The statistics table of `svit stats` output, beside the paper's numbers."""
    paper = stats.get("paper", {})

    def words(value, reference) -> str:
        text = "-" if value is None else f"{value:.1f}"
        return f"{text} ({reference})" if reference is not None else text

    rows = [
        {
            "task": task,
            "samples": _count(r["samples"]),
            "qas": _count(r["qas"]),
            "question_words": words(
                r.get("mean_question_words"), paper.get(task, {}).get("mean_question_words")
            ),
            "answer_words": words(r.get("mean_answer_words"), paper.get(task, {}).get("mean_answer_words")),
        }
        for task, r in stats["tasks"].items()
    ]
    description = stats.get("mean_description_words")
    return {
        "scope": f"{stats['config']}"
        + (f", {stats['split']}" if stats.get("split") != "train + test" else ""),
        "word_rule": stats["word_rule"],
        "rows": rows,
        "total_qas": _count(stats["total_qas"]),
        "description_words": None if description is None else f"{description:.1f}",
        "figures": [{"alt": Path(p).stem.replace("_", " "), "path": p} for p in figures],
        "others": others,
    }


def _source_text(source: str, folder: FolderFacts) -> str:
    if folder.generation:
        return f"Read from {source}, written by `svit generate`:"
    if not folder.looked_for_generation:  # at build time the card does not look beside the input
        return f"Read from {source}."
    return (
        f"Read from {source}. No `{GENERATION_SUMMARY}` was found beside them, so this card cannot say "
        "which model and prompts wrote the text; upstream's release was written by GPT-4."
    )


def _generation(summary: dict) -> dict:
    items, tokens = summary.get("items", {}), summary.get("tokens", {})
    failed = summary.get("failed_by_reason") or {}
    return {
        "model": summary.get("model"),
        "prompt_version": summary.get("prompt_version"),
        "done": _count(items.get("done")),
        "failed": _count(items.get("failed")),
        "failed_by_reason": _dropped_text(failed) if failed else "",
        "tokens": f"{_count(tokens.get('prompt'))} / {_count(tokens.get('completion'))}",
    }


def _build_issues(facts: BuildFacts) -> list[str]:
    """Known issues of this build in particular: the configs it left out (the recipe notes say the rest)."""
    return [f"`{name}` is not in this build: {why}." for name, why in facts.left_out.items()]


def card_context(facts: BuildFacts, folder: FolderFacts | None = None) -> dict:
    """The template's values: plain strings, lists and dicts, nothing computed in the template."""
    folder = folder or FolderFacts()
    quality_rows, quality_total = _quality(facts.quality_rows)
    recipes = facts.recipes or {}
    trl_config = CORE_150K if any(e.name == CORE_150K for e in facts.entries) else facts.default
    params = folder.recipe_params or {}
    total = dataset_rows(facts.entries)
    return {
        "paper_url": SVIT_PAPER_URL,
        "source": facts.source,
        "total_rows": _count(total),
        "size_category": size_category(total),
        "splits": _splits(facts.entries),
        "config_rows": _config_rows(facts),
        "left_out": facts.left_out,
        "has_mix": any(e.name == MIX_665K for e in facts.entries),
        "load_code": usage_code(facts),
        "repo_id": facts.repo_id,
        "trl_config": trl_config,
        "has_images": facts.has_images,
        "images_dir": "VG/",
        "stats": folder.stats and _stats_section(folder.stats, folder.stats_figures, folder.other_stats),
        "source_text": _source_text(facts.source, folder),
        "generation": folder.generation and _generation(folder.generation),
        "recipe_rows": _recipe_rows(recipes),
        "recipe_params": {
            k: _param_text(params[k]) for k in _CARD_RECIPE_PARAMS if params.get(k) is not None
        },
        # each note says which config it is about: three recipes can be short of data in the same words
        "recipe_notes": [f"`{name}`: {note}" for name, r in recipes.items() for note in r.get("notes", [])],
        # write_reports draws both figures whenever recipes are built
        "recipe_figures": [
            {"alt": "Yes:No before and after the balance step", "path": f"{RECIPES_DIR}/{FIGURE_YES_NO}"},
            {"alt": "concept coverage", "path": f"{RECIPES_DIR}/{FIGURE_CONCEPTS}"},
        ]
        if recipes
        else [],
        "quality_rows": quality_rows,
        "quality_total": quality_total,
        "build_issues": _build_issues(facts),
        "citation": SVIT_CITATION,
    }


def dataset_card(facts: BuildFacts, folder: FolderFacts | None = None) -> DatasetCard:
    """The card of a build's facts (and, for a finished folder, what it holds beyond them)."""
    return DatasetCard.from_template(
        dataset_card_data(facts), template_path=str(TEMPLATE), **card_context(facts, folder)
    )


def render_dataset_card(facts: BuildFacts) -> str:
    """README.md text of a build, from its facts (`svit_dataset.hub_build.engine.BuiltFolder.facts`)."""
    return str(dataset_card(facts))


# --- a built folder: read what it holds, write its README.md ---------------------------------------------


def _card_data(readme: Path) -> DatasetCardData:
    """The metadata of a built folder's README.md; one that does not parse names the file and the way out."""
    try:
        return DatasetCard.load(readme).data
    except (ValueError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())[:200]
        raise SvitInputError(
            f"{readme}: its YAML metadata does not parse ({reason}); rebuild the folder with `svit build` "
            "(the configs are written there), or fix the front matter by hand"
        ) from err


def _generation_dir(source: str, folder: Path) -> Path | None:
    """Where the build's input is now, if it still has `generation_summary.json`: an absolute path as stored; a
    relative one was typed from the build's cwd, unknown here: tried from this cwd, then from the folder's
    parent and its ancestors (the input usually lies beside or above the output)."""
    stored = Path(source)
    if stored.is_absolute():
        candidates = [stored]
    else:
        candidates = [Path.cwd() / stored, *(parent / stored for parent in folder.resolve().parents)]
    return next((c for c in candidates if (c / GENERATION_SUMMARY).is_file()), None)


def _entries(data: DatasetCardData) -> tuple[list[ConfigEntry], str]:
    """The config entries (and the default) of a built README's `configs:` and `dataset_info:`."""
    infos = {info["config_name"]: info for info in data.get("dataset_info", [])}
    entries, default = [], None
    for config in data.get("configs", []):
        name = config["config_name"]
        info = infos.get(name, {})
        splits = {s["name"]: s for s in info.get("splits", [])}
        files = {
            f["split"]: f["path"] if isinstance(f["path"], list) else [f["path"]]
            for f in config["data_files"]
        }
        entries.append(
            ConfigEntry(
                name,
                files,
                {s: splits.get(s, {}).get("num_examples", 0) for s in files},
                {s: splits.get(s, {}).get("num_bytes", 0) for s in files},
                features_yaml=info.get("features"),
            )
        )
        if config.get("default"):
            default = name
    return entries, default or (entries[0].name if entries else "")


def folder_facts(folder: str | Path) -> tuple[BuildFacts, FolderFacts]:
    """What a folder written by `svit build` (and `svit stats`) holds, as the card's facts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SvitInputError(f"{folder}: no such folder; pass a folder written by `svit build`")
    readme, report_path = folder / "README.md", folder / REPORT_FILE
    for path in (readme, report_path):
        if not path.is_file():
            raise SvitInputError(f"{path}: not found; pass a folder written by `svit build`")
    data = _card_data(readme)
    try:
        entries, default = _entries(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise SvitInputError(
            f"{readme}: its `configs:` / `dataset_info:` are not as `svit build` writes them ({err!r}); "
            "rebuild the folder with `svit build`"
        ) from err
    if not entries:
        raise SvitInputError(f"{readme}: no `configs:` in its metadata; rebuild the folder with `svit build`")
    report = read_json_object(report_path, "rebuild the folder")
    inputs = report.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise SvitInputError(f"{report_path}: `inputs` is not an object; rebuild the folder")
    source = inputs.get("input")
    source_dir = Path(source) if source else None
    facts = BuildFacts(
        entries=entries,
        default=default,
        features_yaml=entries[0].features_yaml or [],
        quality_rows=[
            (t, s, rep) for t, by_split in report.get("quality", {}).items() for s, rep in by_split.items()
        ],
        source=f"released-format files in `{source_dir.name}/`" if source_dir else "released-format files",
        repo_id=folder.name,
        recipes=report.get("recipes", {}).get("summary"),
        left_out=report.get("left_out", {}),
        has_images=bool(inputs.get("images")),
    )
    extra = FolderFacts()
    stats_dir = folder / STATS_DIR
    if (stats_dir / f"{STATS_NAME}.json").is_file():
        stats_path = stats_dir / f"{STATS_NAME}.json"
        extra.stats = read_json_object(stats_path, f"run `svit stats {folder}` again")
        try:  # read now, so that a hand-edited or foreign file is named rather than failing in the template
            _stats_section(extra.stats, [], [])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SvitInputError(
                f"{stats_path}: not as `svit stats` writes it ({type(err).__name__}: {err}); "
                f"run `svit stats {folder}` again"
            ) from err
        extra.stats_figures = [f"{STATS_DIR}/{p.name}" for p in sorted(stats_dir.glob(f"{STATS_NAME}_*.png"))]
    extra.other_stats = sorted(p.stem for p in stats_dir.glob("*.json") if p.stem != STATS_NAME)
    for name in facts.recipes or {}:
        path = folder / RECIPES_DIR / f"{name}.json"
        if name != MIX_665K and path.is_file():
            extra.recipe_params = read_json_object(path, "rebuild the folder").get("params")
            break
    extra.looked_for_generation = source_dir is not None
    generation_dir = _generation_dir(source, folder) if source else None  # the input may be gone
    if generation_dir is not None:
        extra.generation = read_json_object(
            generation_dir / GENERATION_SUMMARY, "it was written by `svit generate`: run it again"
        )
    return facts, extra


def write_dataset_card(folder: str | Path) -> Path:
    """(Re)write `folder/README.md` from what the folder holds, atomically; its configs stay as they were."""
    facts, extra = folder_facts(folder)
    path = Path(folder) / "README.md"
    write_text_atomic(path, str(dataset_card(facts, extra)))
    return path


__all__ = [
    "FolderFacts",
    "card_context",
    "dataset_card",
    "dataset_card_data",
    "dataset_rows",
    "folder_facts",
    "render_dataset_card",
    "size_category",
    "write_dataset_card",
]
