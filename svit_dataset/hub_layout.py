"""Write (and push) a Hub dataset repo: Parquet shards per config and split, plus README.md.

    OUT/
      README.md                      YAML `configs:` + `dataset_info:` (hub_readme) + card (`card=`)
      build_report.json              what was kept and dropped, by reason; recipe summaries
      data/<task>/<split>-00000-of-00001.parquet
      data/<recipe>/train-00000-of-00001.parquet   svit_80k ... mix_665k (svit_dataset.recipes)
      recipes/<recipe>.json, recipes/train.json, recipes/yes_no.png, recipes/concepts.png

The `full` config points at the four task folders instead of copying them, and so do the `test`
splits of the SVIT recipes (the held-out images of the four tasks). The build happens in a
hidden sibling folder and is renamed into place at the end, so an interrupted build never leaves a
folder that loads; shards stay `*.parquet.partial` until the build is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

from datasets import DatasetInfo
from datasets.utils.py_utils import convert_file_size_to_int
from tqdm import tqdm

from svit_dataset.builder import CONFIG_DESCRIPTIONS, CONFIGS, DEFAULT_CONFIG, RECIPE_CONFIGS, SUBSETS
from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_folder, check_output_apart
from svit_dataset.hub_push import push_files
from svit_dataset.hub_readme import BuildFacts, CardRenderer, ConfigEntry, minimal_readme
from svit_dataset.jsonlist import read_json_object
from svit_dataset.quality import QualityReport, format_report_table
from svit_dataset.reader import Sample, iter_sample_tuples, samples_table
from svit_dataset.recipes.mix import MIX_FEATURES
from svit_dataset.recipes.parquet_io import MAX_SHARD_SIZE, ShardWriter
from svit_dataset.recipes.report import recipe_summary, write_reports
from svit_dataset.recipes.select import MIX_665K, RecipeParams
from svit_dataset.recipes.shards import build_recipes
from svit_dataset.release import MAX_BAD_FRACTION, release_file
from svit_dataset.schema import SAMPLE_FEATURES, SPLITS, TEST, TRAIN
from svit_dataset.settings import setting
from svit_dataset.vg import SPLIT_SEED, TEST_FRACTION, ImageIndex, read_test_ids, split_of_images

logger = logging.getLogger(__name__)

REPORT_FILE = "build_report.json"
RECIPES_DIR = "recipes"  # recipe reports and figures
_PARTIAL = ".partial"
_WRITE_BATCH_ROWS = 1000


# Names that stand for groups of configs in --configs.
CONFIG_GROUPS = {"all": tuple(SUBSETS), "recipes": tuple(RECIPE_CONFIGS)}


def resolve_configs(names: list[str] | str | None) -> list[str]:
    """Validated config names, in registry order. None or "all" means every subset; "recipes" every
    recipe config (svit_80k, svit_80k_d, svit_80k_b, core_150k, mix_665k); both may be listed."""
    if names is None:
        names = ["all"]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    wanted = {m for n in names for m in CONFIG_GROUPS.get(n, (n,))}
    unknown = [n for n in names if n not in CONFIGS and n not in CONFIG_GROUPS]
    if unknown:
        raise SvitInputError(
            f"--configs: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)} "
            f"(or {' / '.join(CONFIG_GROUPS)})"
        )
    return [n for n in CONFIGS if n in wanted]


@dataclasses.dataclass
class BuildOptions:
    """What `svit build` reads and how it splits and writes: the flags of the command, one home each."""

    input_dir: str | Path = setting(
        help="folder with <task>.json in the released SVIT format", flag="--input"
    )
    output_dir: str | Path = setting(
        help="output folder (name it `svit` to load_dataset('svit', ...))", flag="--output"
    )
    configs: str | list[str] = setting(
        "all",
        "comma-separated config names; 'all' = every subset, 'recipes' = svit_80k, svit_80k_d, svit_80k_b, "
        "core_150k, mix_665k (e.g. --configs all,recipes)",
    )
    images_dir: str | Path | None = setting(
        None, "Visual Genome folder holding VG_100K/ and VG_100K_2/: embeds image bytes", flag="--images"
    )
    image_data: str | Path | None = setting(
        None, "Visual Genome image_data.json: image sizes without the images"
    )
    test_ids: str | Path | None = setting(None, "held-out image ids, one a line (default: a seeded share)")
    test_fraction: float = setting(TEST_FRACTION, "share of images held out when no --test-ids is given")
    split_seed: int = setting(SPLIT_SEED, "seed of that share")
    max_bad_fraction: float = setting(MAX_BAD_FRACTION, "share of malformed records per file that fails it")
    max_shard_size: str = setting(MAX_SHARD_SIZE, "Parquet shard size")
    num_proc: int | None = setting(
        None, "processes (default: one per task up to the CPUs for inputs over 50 MB)"
    )
    overwrite: bool = setting(False, "replace --output if it exists")
    llava_mix: str | Path | None = setting(None, "mix_665k: llava_v1_5_mix665k.json")
    llava_instruct: str | Path | None = setting(
        None, "mix_665k: llava_instruct_150k.json (to find its records)"
    )
    mix_llava_json: str | Path | None = setting(
        None, "mix_665k: also write it as LLaVA-1.5 training JSON here"
    )

    def __post_init__(self):
        if not 0 <= self.test_fraction <= 1:
            raise SvitInputError(f"--test-fraction must be in [0, 1], got {self.test_fraction}")
        if not 0 <= self.max_bad_fraction <= 1:
            raise SvitInputError(f"--max-bad-fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.num_proc is not None and self.num_proc < 1:
            raise SvitInputError(f"--num-proc must be at least 1, got {self.num_proc}")
        try:  # before any work; a shard under 1 MB would make a file every few rows
            size_ok = convert_file_size_to_int(self.max_shard_size) >= 1_000_000
        except (ValueError, TypeError):
            size_ok = False
        if not size_ok:
            raise SvitInputError(
                f"--max-shard-size {self.max_shard_size}: pass a size of at least 1MB, e.g. 500MB"
            )


def build_hub_dataset(
    input_dir: str | Path,
    output_dir: str | Path,
    configs: list[str] | str | None = None,
    *,
    recipe: RecipeParams | None = None,
    card: CardRenderer | None = None,
    **options,
) -> dict:
    """Build the requested configs from released-format files into a Hub-layout folder; returns the report.

    `options` are the fields of `BuildOptions` (images_dir, image_data, test_ids, test_fraction, ...).
    Recipe configs are computed from the task configs' train shards (built as well, even when not
    listed: the recipes' test splits point at them); `recipe` holds their parameters (the paper's
    by default), `llava_mix`/`llava_instruct` the two LLaVA files mix_665k needs, `mix_llava_json`
    an optional path to also write mix_665k as LLaVA-1.5 training JSON. `card` writes the README's
    prose from the build's facts (e.g. `hub_cards.dataset_card.render_dataset_card`); without it the
    README holds what loading needs, a title and the usage code.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(BuildOptions)})
    if unknown:
        raise TypeError(f"build_hub_dataset: unknown option(s) {', '.join(unknown)}; see BuildOptions")
    return build(BuildOptions(input_dir, output_dir, configs or "all", **options), recipe=recipe, card=card)


def build(
    options: BuildOptions, recipe: RecipeParams | None = None, card: CardRenderer | None = None
) -> dict:
    """`svit build`: the build of `options` (see `build_hub_dataset`). Every input is checked before any
    work; the folder is assembled in a hidden staging folder that replaces `output_dir` at the end."""
    plan = _plan(options, recipe)
    started = time.time()
    with atomic_folder(plan.output_dir, kind="building") as staging:
        entries, quality = _build_task_configs(options, plan.tasks, staging)
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
                suffix=_PARTIAL,
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
        report = _report(options, listed, quality, left_out, recipes, seconds=time.time() - started)
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
        _finalize(staging, (card or minimal_readme)(facts), report)
    logger.info("built %s in %.1fs", plan.output_dir, report["seconds"])
    return report


@dataclasses.dataclass
class _Plan:
    output_dir: Path  # absolute
    names: list[str]  # the configs to build, in registry order
    asked_by_name: set[str]  # the ones named one by one (not through a group)
    tasks: list[str]  # the task configs they need


def _plan(options: BuildOptions, recipe: RecipeParams | None) -> _Plan:
    """What to build, once every input is checked: nothing is written before this returns."""
    names = resolve_configs(options.configs)
    if MIX_665K in names and not (options.llava_mix and options.llava_instruct):
        raise SvitInputError(
            "mix_665k needs --llava-mix (llava_v1_5_mix665k.json) and --llava-instruct (llava_instruct_150k.json)"
        )
    inputs = {
        "--input": options.input_dir,
        "--images": options.images_dir,
        "--image-data": options.image_data,
        "--test-ids": options.test_ids,
        "--llava-mix": options.llava_mix,
        "--llava-instruct": options.llava_instruct,
        "--concepts": recipe.concepts if recipe else None,
    }
    check_output_apart(options.output_dir, "--output", inputs)
    output_dir = Path(options.output_dir).absolute()
    if options.mix_llava_json:
        mix_json = Path(options.mix_llava_json).absolute()
        check_output_apart(mix_json, "--mix-llava-json", inputs)
        if mix_json.resolve().is_relative_to(output_dir.resolve()):  # the folder is replaced whole at the end
            raise SvitInputError(
                f"--mix-llava-json {mix_json}: inside --output, which the build replaces whole; write it elsewhere"
            )
        if mix_json.exists() and not options.overwrite:
            raise SvitInputError(
                f"--mix-llava-json {mix_json}: already exists; pass --overwrite to replace it"
            )
    if output_dir.exists() and not options.overwrite:
        raise SvitInputError(f"--output {output_dir}: already exists; pass --overwrite to replace it")
    tasks = [t for t in SUBSETS["full"] if any(t in CONFIGS[n] for n in names)]
    for task in tasks:
        release_file(options.input_dir, task)
    if options.test_ids:
        read_test_ids(options.test_ids)
    if options.images_dir is not None and not Path(options.images_dir).is_dir():
        raise SvitInputError(f"--images {options.images_dir}: not a folder; pass the folder holding VG_100K/")
    if options.image_data is not None and not Path(options.image_data).is_file():
        raise SvitInputError(
            f"--image-data {options.image_data}: not found; pass Visual Genome's image_data.json"
        )
    return _Plan(output_dir, names, _named_explicitly(options.configs), tasks)


def _build_task_configs(
    options: BuildOptions, tasks: list[str], staging: Path
) -> tuple[dict[str, ConfigEntry], dict[str, dict]]:
    """Every task config, in up to one process per task up to the CPUs (the work is CPU-bound Python,
    and the tasks are independent): this process and `workers - 1` spawned ones each take the next
    task, largest file first, when free. Returns the config entries and quality reports, in `tasks` order.
    """
    workers = _worker_count(options.num_proc, options.input_dir, tasks)
    queue = _TaskQueue(sorted(tasks, key=lambda t: -release_file(options.input_dir, t).stat().st_size))
    results: dict[str, tuple[ConfigEntry, dict]] = {}

    def run_here() -> None:
        inputs = _TaskInputs.read(options)
        while (task := queue.take()) is not None:
            results[task] = _build_task_config(task, options, staging, inputs)

    if workers > 1:
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads

        def feed(pool: ProcessPoolExecutor) -> None:  # one thread per worker process: its next task
            while (task := queue.take()) is not None:
                results[task] = pool.submit(_build_task_config, task, options, staging).result()

        # This process works too: one spawn fewer (each imports datasets and reads image_data.json).
        with (
            ProcessPoolExecutor(workers - 1, mp_context=context) as pool,
            ThreadPoolExecutor(workers - 1) as feeders,
        ):
            fed = [feeders.submit(queue.run, feed, pool) for _ in range(workers - 1)]
            queue.run(run_here)
            for done in fed:
                done.result()
    else:
        run_here()
    entries = {task: results[task][0] for task in tasks}
    quality = {task: results[task][1] for task in tasks}
    return entries, quality


class _TaskQueue:
    """Tasks handed out one at a time to whoever is free; the first error stops the handing out."""

    def __init__(self, tasks: list[str]):
        self.tasks = list(tasks)
        self.lock = threading.Lock()

    def take(self) -> str | None:
        with self.lock:
            return self.tasks.pop(0) if self.tasks else None

    def run(self, work, *args) -> None:
        try:
            work(*args)
        except BaseException:
            with self.lock:
                self.tasks.clear()
            raise


def _report(options: BuildOptions, listed, quality, left_out, recipes, seconds: float) -> dict:
    """build_report.json: the inputs, rows per config and split, quality counts, what was left out."""
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


def _named_explicitly(configs: list[str] | str | None) -> set[str]:
    """Configs the user named one by one (not through a group such as "all" or "recipes")."""
    if configs is None:
        return set()
    names = configs.split(",") if isinstance(configs, str) else configs
    return {n.strip() for n in names if n.strip() in CONFIGS}


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


def _worker_count(num_proc: int | None, input_dir, tasks: list[str]) -> int:
    """Processes for the task configs: one per task up to the CPUs, and none for small inputs."""
    if num_proc is not None:
        return max(1, min(num_proc, len(tasks)))
    size = sum(release_file(input_dir, t).stat().st_size for t in tasks)
    # Below ~50 MB a worker's start-up (importing datasets) costs more than it saves.
    return min(len(tasks), os.cpu_count() or 1) if size > 50 * 2**20 else 1


@dataclasses.dataclass
class _TaskInputs:
    """What every task of a build reads besides its file: read once per process, not once per task."""

    images: ImageIndex
    split_of: Callable[[int], str]

    @classmethod
    def read(cls, options: BuildOptions) -> _TaskInputs:
        with _without_cycle_collector():
            images = ImageIndex(options.images_dir, options.image_data)
        held_out = read_test_ids(options.test_ids) if options.test_ids else None
        return cls(images, split_of_images(held_out, options.test_fraction, options.split_seed))


# In a build's worker process (spawned for that one build): its `_TaskInputs`, shared by its tasks.
_WORKER_INPUTS: list[_TaskInputs] = []


def _build_task_config(
    task: str, options: BuildOptions, staging: Path, inputs: _TaskInputs | None = None
) -> tuple[ConfigEntry, dict]:
    """Build one task config's shards into `staging/data/<task>/` in ONE pass over its file: each row goes
    to the Parquet writer of its split. Returns the config entry (only splits with rows are declared)
    and the quality report per split. Without `inputs`, in a worker process, they are read on its
    first task."""
    import datasets

    if inputs is None:
        datasets.disable_progress_bars()  # bars from several processes interleave into noise
        if not _WORKER_INPUTS:
            _WORKER_INPUTS.append(_TaskInputs.read(options))
        inputs = _WORKER_INPUTS[0]
    images, split_of = inputs.images, inputs.split_of
    reports: dict = defaultdict(QualityReport)
    schema = SAMPLE_FEATURES.arrow_schema
    max_bytes = convert_file_size_to_int(options.max_shard_size)
    folder = staging / "data" / task
    writers = {split: ShardWriter(folder, split, schema, max_bytes, suffix=_PARTIAL) for split in SPLITS}
    pending: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    samples = iter_sample_tuples(
        {task: release_file(options.input_dir, task)},
        images,
        reports,
        split_of=split_of,
        max_bad_fraction=options.max_bad_fraction,
        embed_images=True,
    )
    try:
        with _without_cycle_collector():
            for split, sample in tqdm(
                samples, desc=f"build {task}", unit=" samples", mininterval=2, disable=None
            ):
                batch = pending[split]
                batch.append(sample)
                if len(batch) >= _WRITE_BATCH_ROWS:
                    writers[split].write(samples_table(batch))
                    batch.clear()
        entry = ConfigEntry(task, {}, {}, {})
        for split, writer in writers.items():
            if pending[split]:
                writer.write(samples_table(pending[split]))
            if writer.rows == 0:  # an empty split is never declared: it would not load
                writer.abort()
                continue
            entry.num_examples[split], entry.num_bytes[split] = writer.close()
            entry.data_files[split] = [f"data/{task}/{split}-*.parquet"]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return entry, {split: reports[(task, split)].to_dict() for split in SPLITS}


@contextlib.contextmanager
def _without_cycle_collector():
    """The cycle collector off while a task is built: the rows make no reference cycles, yet the
    collector would walk the millions of objects the parser allocates (10-25% of a build's CPU)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    for partial in staging.glob(f"data/*/*{_PARTIAL}"):
        partial.rename(partial.with_name(partial.name[: -len(_PARTIAL)]))
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (staging / "README.md").write_text(readme)


def read_report(output_dir: str | Path) -> dict:
    return read_json_object(Path(output_dir) / REPORT_FILE, "rebuild the folder with svit build")


def recipe_table(output_dir: str | Path) -> str:
    """The recipe reports of a built folder as a printed table."""
    from svit_dataset.recipes.report import format_recipe_table

    folder = Path(output_dir) / RECIPES_DIR
    names = read_report(output_dir).get("recipes", {}).get("summary", {})
    fix = "rebuild the folder with svit build"
    return format_recipe_table({n: read_json_object(folder / f"{n}.json", fix) for n in names})


def report_table(report: dict) -> str:
    rows = [
        (task, split, rep) for task, by_split in report["quality"].items() for split, rep in by_split.items()
    ]
    return format_report_table(rows)


# The card's usage code names the folder it was built in; pushed, it names the repo, whatever the folder is called.
_LOAD_CALL = re.compile(r'load_dataset\("[^"\n]*",')

# What a push uploads: the card, the report, the shards, the recipe reports and the statistics.
_PUSHED = (REPORT_FILE, "data/*", f"{RECIPES_DIR}/*", "stats/*")


def push_hub_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str = "Upload SVIT dataset built with svit",
) -> str:
    """Upload a built folder as a Hub dataset repo; the token comes from the argument, HF_TOKEN or the login.

    `private=None` keeps the Hub's default visibility (an organisation may default to private).
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise SvitInputError(f"{folder}: no README.md; pass a folder written by `svit build`")
    # The card was written for local use (`load_dataset("<folder name>", ...)` from its parent);
    # on the Hub its snippet names the repo instead. Everything else goes up as built, in one commit.
    card = _LOAD_CALL.sub(f'load_dataset("{repo_id}",', (folder / "README.md").read_text())
    files = [
        path.relative_to(folder).as_posix()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and any(fnmatch(path.relative_to(folder).as_posix(), p) for p in _PUSHED)
    ]
    return push_files(
        folder,
        files,
        repo_id,
        "dataset",
        readme=card,
        private=private,
        token=token,
        endpoint=endpoint,
        commit_message=commit_message,
    )
