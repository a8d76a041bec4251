"""The arguments of `svit train`: TRL's own dataclasses plus ours, parsed from YAML and flags by `TrlParser`.

`TRAIN_ARGUMENT_TYPES` is what the CLI and `train()` share: (`SvitScriptArguments`, `trl.SFTConfig`,
`trl.ModelConfig`). Flag names are TRL's and transformers' wherever one exists (`--model_name_or_path`,
`--dataset_name`, `--learning_rate`, `--use_peft`, `--lora_r`, ...); ours are the few that LLaVA-1.5 adds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


def _describe(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


__all__ = ["TRAIN_ARGUMENT_TYPES", "SvitScriptArguments", "check_recipe_values", "field_types"]
