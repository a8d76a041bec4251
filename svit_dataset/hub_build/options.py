"""What a build reads and how it splits and writes (`BuildOptions`, the flags of `svit build`), and the plan
made from them once every input is checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from datasets.utils.py_utils import convert_file_size_to_int

from svit_dataset.errors import SvitInputError
from svit_dataset.files import check_output_apart
from svit_dataset.hub_build.configs import CONFIGS, SUBSETS, named_explicitly, resolve_configs
from svit_dataset.parquet_shards import MAX_SHARD_SIZE
from svit_dataset.recipes.select import MIX_665K, RecipeParams
from svit_dataset.release import MAX_BAD_FRACTION, release_file
from svit_dataset.settings import setting
from svit_dataset.vg import SPLIT_SEED, TEST_FRACTION, read_test_ids


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


@dataclasses.dataclass
class BuildPlan:
    """What a checked build writes, and where."""

    output_dir: Path  # absolute
    names: list[str]  # the configs to build, in registry order
    asked_by_name: set[str]  # the ones named one by one (not through a group)
    tasks: list[str]  # the task configs they need


def plan_build(options: BuildOptions, recipe: RecipeParams | None) -> BuildPlan:
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
    return BuildPlan(output_dir, names, named_explicitly(options.configs), tasks)
