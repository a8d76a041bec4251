"""The arguments of `svit train`: TRL's own dataclasses plus ours, parsed from YAML and flags by `TrlParser`.

`TRAIN_ARGUMENT_TYPES` is what the CLI and `train()` share: (`SvitScriptArguments`, `trl.SFTConfig`,
`trl.ModelConfig`). Flag names are TRL's and transformers' wherever one exists (`--model_name_or_path`,
`--dataset_name`, `--learning_rate`, `--use_peft`, `--lora_r`, ...); ours are the few that LLaVA-1.5 adds.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, SFTConfig

from svit_dataset.errors import SvitInputError
from svit_model.training.stages import STAGES


@dataclass
class SvitScriptArguments(ScriptArguments):
    """Data and stage arguments of `svit train` (TRL's `ScriptArguments` and LLaVA-1.5's own few)."""

    stage: str = field(
        default="finetune",
        metadata={
            "help": f"training stage: {', '.join(STAGES)} (what trains, which chat template)",
            "choices": list(STAGES),
        },
    )
    image_folder: str | None = field(
        default=None,
        metadata={
            "help": "folder the images of a LLaVA-format JSON (--dataset_name file.json) or of a dataset built "
            "without image bytes (`image_path` column) are read from"
        },
    )
    projector_lr: float | None = field(
        default=None,
        metadata={
            "help": "learning rate of the projector (LLaVA's mm_projector_lr); default: --learning_rate"
        },
    )
    group_by_modality_length: bool | None = field(
        default=None,
        metadata={
            "help": "batches of samples of one modality and similar length (LLaVA-1.5's sampler); default: on "
            "in the finetune stage, off in pretrain"
        },
    )
    train_vision_tower: bool = field(default=False, metadata={"help": "train the CLIP vision tower too"})
    drop_missing_images: bool = field(
        default=False,
        metadata={"help": "train without samples whose image file is missing (counted) instead of stopping"},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "start afresh in an --output_dir that already holds a run"}
    )


TRAIN_ARGUMENT_TYPES = (SvitScriptArguments, SFTConfig, ModelConfig)


def _matches(value, annotation) -> bool:
    """Whether `value` fits a dataclass field's annotation (the simple types argparse and YAML produce)."""
    if annotation is typing.Any or isinstance(annotation, typing.TypeVar):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        # enums (transformers' strategies) and classes: the dataclass converts strings itself
        return isinstance(value, (annotation, str))
    return True


def field_types(dataclass_types=TRAIN_ARGUMENT_TYPES) -> dict[str, object]:
    """Every settable field of `dataclass_types` and its annotation."""
    types_by_name = {}
    for dataclass_type in dataclass_types:
        hints = typing.get_type_hints(dataclass_type)
        for f in dataclasses.fields(dataclass_type):
            if f.init and f.name in hints:
                types_by_name.setdefault(f.name, hints[f.name])
    return types_by_name


def check_recipe_values(values: dict, source: str, dataclass_types=TRAIN_ARGUMENT_TYPES) -> None:
    """Raise `SvitInputError` naming the first key of a recipe that is unknown or whose value has the wrong type.

    argparse converts flags, but a YAML recipe's values become defaults that it never converts: `max_steps: 1.5`
    or `learning_rate: fast` would otherwise reach the trainer. `env` is TrlParser's own key.
    """
    known = field_types(dataclass_types)
    for key, value in values.items():
        if key == "env":
            continue
        if key not in known:
            raise SvitInputError(f"{source}: unknown key {key!r}; see `svit train --help` for the arguments")
        if not _matches(value, known[key]):
            raise SvitInputError(
                f"{source}: {key}: {value!r} is a {type(value).__name__}, expected {_describe(known[key])}"
            )
        if key in TRAIN_RANGES:  # before the dataclasses see it: `save_steps: .inf` breaks their int() calls
            check_value(f"{source}: {key}", value, TRAIN_RANGES[key])


def _describe(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


# --- numeric ranges -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """The accepted values of a numeric argument: finite, within [low, high] (an end excluded when `open`),
    an integer where `integer`, plus `also` (sentinels such as max_steps' -1), and None where `optional`.
    `step_or_ratio`: transformers reads a value below 1 as a fraction of the run and one from 1 on as a step
    count, which must then be whole (`--save_steps 2.5` would be cut to 2 without a word)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False
    also: tuple = ()
    step_or_ratio: bool = False

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if value in self.also:
            return True
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return False
        if self.step_or_ratio and value >= 1 and value != int(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        text = f"{kind} {' and '.join(bounds)}".strip()
        if self.step_or_ratio:
            text += " (below 1: a fraction of the run; from 1 on: a whole number of steps)"
        for value in self.also:
            text += f", or {value}"
        return text + (", or unset" if self.optional else "")


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
COUNT = Range(low=1, integer=True)  # batch sizes, accumulation, workers' prefetch...
OPTIONAL_COUNT = dataclasses.replace(COUNT, optional=True)
PROBABILITY = Range(low=0, high=1, high_open=True)  # dropout, Adam's betas, label smoothing
SEED = Range(low=0, high=2**32 - 1, integer=True)  # what numpy's and torch's seeding accept alike
STEPS = Range(low=0, low_open=True, step_or_ratio=True)

# Every numeric argument of `svit train` (TRL's, transformers' and ours) and its accepted values. The
# dataclasses check few of them: `--weight_decay nan` trained and saved NaN weights, `--max_steps -5` ran
# three epochs, `--learning_rate -1` trained uphill. Checked by `check_argument_values` before any work.
TRAIN_RANGES: dict[str, Range] = {
    "learning_rate": POSITIVE,
    "projector_lr": dataclasses.replace(POSITIVE, optional=True),
    "weight_decay": NON_NEGATIVE,
    "adam_beta1": PROBABILITY,
    "adam_beta2": PROBABILITY,
    "adam_epsilon": POSITIVE,
    "max_grad_norm": NON_NEGATIVE,  # 0: no clipping
    "label_smoothing_factor": PROBABILITY,
    "neftune_noise_alpha": dataclasses.replace(NON_NEGATIVE, optional=True),
    "num_train_epochs": POSITIVE,
    # transformers: any value below 1 means "use the epochs"; only -1 says so on purpose
    "max_steps": Range(low=1, integer=True, also=(-1,)),
    "warmup_steps": Range(low=0, step_or_ratio=True),
    "per_device_train_batch_size": COUNT,
    "per_device_eval_batch_size": COUNT,
    "gradient_accumulation_steps": COUNT,
    "eval_accumulation_steps": OPTIONAL_COUNT,
    "logging_steps": STEPS,
    "save_steps": STEPS,
    "eval_steps": dataclasses.replace(STEPS, optional=True),
    "eval_delay": NON_NEGATIVE,
    # transformers keeps every checkpoint when this is 0 or negative: unset says that on purpose
    "save_total_limit": OPTIONAL_COUNT,
    "seed": SEED,
    "data_seed": dataclasses.replace(SEED, optional=True),
    "dataloader_num_workers": Range(low=0, high=1024, integer=True),  # processes; more is a typo
    "dataloader_prefetch_factor": OPTIONAL_COUNT,
    "torch_empty_cache_steps": OPTIONAL_COUNT,
    "ddp_timeout": COUNT,
    "ddp_bucket_cap_mb": OPTIONAL_COUNT,
    "dataset_num_proc": OPTIONAL_COUNT,
    "max_length": OPTIONAL_COUNT,
    "lora_r": COUNT,
    "lora_alpha": POSITIVE,
    "lora_dropout": PROBABILITY,
}


# The numeric flags of `svit model ...` (checked as argparse types: `svit_cli/model.py`).
MODEL_FLAG_RANGES: dict[str, Range] = {
    "seed": SEED,
    "steps": Range(low=1, high=10_000, integer=True),  # `svit model demo`: a CPU demo, minutes at most
}


def out_of_range(flag: str, value, accepted: Range) -> str | None:
    """The error text of `value` for `flag` (naming the flag and the accepted values), or None if it is fine."""
    if accepted.accepts(value):
        return None
    return f"{flag} {value!r}: out of range; expected {accepted.describe()}"


def check_value(flag: str, value, accepted: Range) -> None:
    """Raise `SvitInputError` unless `value` is one of `accepted` (a `Range`)."""
    problem = out_of_range(flag, value, accepted)
    if problem:
        raise SvitInputError(problem)


def check_argument_values(*arguments, ranges: dict[str, Range] = TRAIN_RANGES) -> None:
    """Raise `SvitInputError` naming the first numeric argument of the dataclass instances `arguments` that is
    outside its range (`TRAIN_RANGES`): not finite, wrong sign, not whole, beyond a bound. A pure check, made
    before any data or model loads."""
    for name, accepted in ranges.items():
        for holder in arguments:
            if hasattr(holder, name):
                check_value(f"--{name}", getattr(holder, name), accepted)
                break


def range_type(accepted: Range, parse: Callable[[str], object] = int) -> Callable[[str], object]:
    """An argparse `type` that parses a flag's text and checks it against `accepted` (argparse names the
    flag in its one-line error)."""
    import argparse

    def convert(text: str):
        value = parse(text)
        if not accepted.accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected {accepted.describe()}")
        return value

    convert.__name__ = parse.__name__
    return convert


__all__ = [
    "MODEL_FLAG_RANGES",
    "TRAIN_ARGUMENT_TYPES",
    "TRAIN_RANGES",
    "Range",
    "SvitScriptArguments",
    "check_argument_values",
    "check_recipe_values",
    "check_value",
    "field_types",
    "range_type",
]
