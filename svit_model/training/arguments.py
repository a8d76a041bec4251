"""The arguments of `svit train`: TRL's own dataclasses plus ours, parsed from YAML and flags by `TrlParser`.

`TRAIN_ARGUMENT_TYPES` is what the CLI and `train()` share: (`SvitScriptArguments`, `SvitSFTConfig` (TRL's
`SFTConfig`), `trl.ModelConfig`). Flag names are TRL's and transformers' wherever one exists
(`--model_name_or_path`, `--dataset_name`, `--learning_rate`, `--use_peft`, `--lora_r`, ...); ours are the few that
LLaVA-1.5 adds.

Every field the parser accepts either acts (read by svit's training code, or by transformers' `Trainer` / TRL's
`SFTTrainer` in svit's setup) or is refused before any work when set to anything but its default
(`REFUSED_ARGUMENTS`, checked by `check_refused_arguments`): a flag that would be silently ignored, or fail deep
inside the trainer, says so in one line instead. tests/test_train_flags.py walks every field and holds the table
of where each acting one acts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, SFTConfig

from svit_dataset.errors import SvitInputError
from svit_dataset.settings import Range, check_value, range_type
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
    model_shape: str | None = field(
        default=None,
        metadata={
            "help": "the model's shape for `--plan` while --model_name_or_path does not exist yet: llava-1.5-7b, "
            "llava-1.5-13b, or a folder with an SVIT-LLaVA config.json (training itself loads "
            "--model_name_or_path)"
        },
    )
    drop_missing_images: bool = field(
        default=False,
        metadata={"help": "train without samples whose image file is missing (counted) instead of stopping"},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "start afresh in an --output_dir that already holds a run"}
    )


@dataclass
class SvitSFTConfig(SFTConfig):
    """TRL's `SFTConfig` with assistant-only loss on by default: LLaVA-1.5 trains the assistant turns (and their
    end-of-turn token) only, and svit's chat templates mark them with `{% generation %}`."""

    assistant_only_loss: bool = field(
        default=True,
        metadata={
            "help": "train only the assistant turns (LLaVA-1.5's labels; the chat templates mark them); false: "
            "every token but the image and padding tokens"
        },
    )


TRAIN_ARGUMENT_TYPES = (SvitScriptArguments, SvitSFTConfig, ModelConfig)


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


def check_training_recipe_values(values: dict, source: str, dataclass_types=TRAIN_ARGUMENT_TYPES) -> None:
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


def check_argument_values(*arguments, ranges: dict[str, Range] = TRAIN_RANGES) -> None:
    """Raise `SvitInputError` naming the first numeric argument of the dataclass instances `arguments` that is
    outside its range (`TRAIN_RANGES`): not finite, wrong sign, not whole, beyond a bound. A pure check, made
    before any data or model loads."""
    for name, accepted in ranges.items():
        for holder in arguments:
            if hasattr(holder, name):
                check_value(f"--{name}", getattr(holder, name), accepted)
                break


# --- arguments that would not act: refused ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why `svit train` refuses an argument set to anything but what `accepts` allows (by default: the field's
    default value only)."""

    reason: str
    accepts: Callable[[object], bool] | None = None


_EVALUATION = Refusal(
    "svit train evaluates nothing while it trains (it takes no evaluation split); score its checkpoints with "
    "`svit eval`"
)
_PREPARATION = (
    "TRL's dataset preparation (tokenizing, truncating, packing), which image rows skip: svit's collator renders "
    "every batch"
)
_GROUPING = "pass --group_by_modality_length true instead (LLaVA-1.5's grouping by modality and length)"

# Arguments that would do nothing in svit train, or fail deep inside the trainer after the model loaded. Checked by
# `check_refused_arguments` before any work; every other field acts (tests/test_train_flags.py says where).
REFUSED_ARGUMENTS: dict[str, Refusal] = {
    # TRL's ScriptArguments
    "dataset_test_split": _EVALUATION,
    "dataset_streaming": Refusal("not supported (length grouping and exact resume need the whole dataset)"),
    "ignore_bias_buffers": Refusal(
        "TRL scripts' DDP workaround for models with boolean bias buffers; SVIT-LLaVA has none"
    ),
    # transformers' evaluation arguments
    **dict.fromkeys(
        (
            # the ones that need another evaluation argument first: each is named, not the one it needs
            "load_best_model_at_end",
            "metric_for_best_model",
            "greater_is_better",
            "eval_on_start",
            "eval_strategy",  # before those it sets itself (do_eval, eval_steps)
            "do_eval",
            "do_predict",
            "eval_steps",
            "eval_delay",
            "per_device_eval_batch_size",
            "eval_accumulation_steps",
            "eval_do_concat_batches",
            "eval_use_gather_object",
            "prediction_loss_only",
            "include_for_metrics",
            "batch_eval_metrics",
            "bf16_full_eval",
            "fp16_full_eval",
            "eval_packing",
        ),
        _EVALUATION,
    ),
    "label_names": Refusal(
        "names the label inputs of evaluation, which svit train does not run; training reads `labels`, which "
        "svit's collator writes"
    ),
    "do_train": Refusal("read by no trainer (svit train always trains); leave it out"),
    # samplers
    "train_sampling_strategy": Refusal(
        "needs token lengths that svit's rows (messages and images) do not hold; " + _GROUPING,
        accepts=lambda value: value in ("random", "sequential"),
    ),
    "length_column_name": Refusal(
        "read only by --train_sampling_strategy group_by_length or batch_rebalance, which svit train refuses; "
        + _GROUPING
    ),
    # TRL's model loading and dataset preparation, which svit does itself
    "model_init_kwargs": Refusal(
        "svit train loads the model itself; use --dtype, --attn_implementation, --model_revision or "
        "--load_in_4bit"
    ),
    "dataset_text_field": Refusal("for rows of plain text; svit train's rows are conversations (`messages`)"),
    "dataset_kwargs": Refusal(f"options of {_PREPARATION}"),
    "dataset_num_proc": Refusal(
        f"processes of {_PREPARATION}; images are read as batches are drawn: use --dataloader_num_workers"
    ),
    "shuffle_dataset": Refusal(
        f"a shuffle of {_PREPARATION}; the sampler shuffles every epoch (--seed, --data_seed)"
    ),
    "packing": Refusal("TRL does not pack image rows; --group_by_modality_length keeps padding low instead"),
    "packing_strategy": Refusal("read only with --packing, which svit train refuses"),
    "padding_free": Refusal(
        "TRL supports padding-free batches neither for image rows nor with svit's collator; "
        "--group_by_modality_length keeps padding low instead"
    ),
    "truncation_mode": Refusal(
        "keep_end would cut the image tokens at the start of a sample; svit's collator keeps a sample's start "
        "and leaves out (counted) any whose image would not fit --max_length"
    ),
    "completion_only_loss": Refusal(
        "for prompt-completion rows; svit train's rows are conversations: --assistant_only_loss (on by "
        "default) trains the assistant turns",
        accepts=lambda value: not value,
    ),
    "chat_template_path": Refusal(
        "svit's processor carries the stage templates (default: vicuna_v1, plain) that --stage picks; one "
        "template from elsewhere would replace both. Save the processor with the template you want instead "
        "(SvitLlavaProcessor, `chat_template` in its folder)"
    ),
    "pad_token": Refusal(
        "TRL reads it only for the collator it builds itself; svit's collator pads with the tokenizer's own "
        "pad token"
    ),
    "router_aux_loss_coef": Refusal(
        "for mixture-of-experts models; SVIT-LLaVA's language model has no router"
    ),
    # TRL's ModelConfig
    "lora_target_parameters": Refusal(
        "LoRA on parameters (a mixture of experts' weights) does not apply to SVIT-LLaVA; use "
        "--lora_target_modules"
    ),
}

# Arguments that act only beside another: set to anything but their default without it, they would do nothing.
ACTS_ONLY_WITH: dict[str, str] = {
    **dict.fromkeys(
        (
            "lora_r",
            "lora_alpha",
            "lora_dropout",
            "lora_target_modules",
            "lora_modules_to_save",
            "lora_task_type",
            "use_rslora",
            "use_dora",
        ),
        "use_peft",
    ),
    **dict.fromkeys(
        ("bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_quant_storage"), "load_in_4bit"
    ),
    **dict.fromkeys(("hub_strategy", "hub_always_push", "hub_private_repo", "hub_revision"), "push_to_hub"),
}


def field_defaults(dataclass_types=TRAIN_ARGUMENT_TYPES) -> dict[str, object]:
    """Every settable field of `dataclass_types` and its default (None for a required one)."""
    defaults: dict[str, object] = {}
    for dataclass_type in dataclass_types:
        for f in dataclasses.fields(dataclass_type):
            if not f.init or f.name in defaults:
                continue
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
            else:
                defaults[f.name] = None
    return defaults


def _plain(value):
    """An argument's value as written: transformers turns some strings into enums (`IntervalStrategy.NO`)."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return getattr(value, "value", value)


def check_refused_arguments(*arguments) -> None:
    """Raise `SvitInputError` naming the first argument of the dataclass instances `arguments` that svit train
    refuses (`REFUSED_ARGUMENTS`) or that would act only beside another one left unset (`ACTS_ONLY_WITH`). A pure
    check, made before any data or model loads."""
    defaults = field_defaults()
    values = {}
    for holder in arguments:
        for name in defaults:
            if hasattr(holder, name):
                values.setdefault(name, _plain(getattr(holder, name)))
    for name, refusal in REFUSED_ARGUMENTS.items():
        if name not in values:
            continue
        value = values[name]
        if not (refusal.accepts(value) if refusal.accepts else value == _plain(defaults[name])):
            raise SvitInputError(f"--{name} {value}: {refusal.reason}")
    for name, needed in ACTS_ONLY_WITH.items():
        if name in values and values[name] != _plain(defaults[name]) and not values.get(needed):
            raise SvitInputError(
                f"--{name} {values[name]}: acts only with --{needed} true; pass it, or leave --{name} out"
            )


def modality_grouping(asked: bool | None, train_sampling_strategy: str, stage_default: bool) -> bool:
    """Whether batches are grouped by modality and length (`sampler.py`): as `--group_by_modality_length` asks;
    unset, the stage's default, unless the user picked transformers' `--train_sampling_strategy`, which then
    acts. Both at once is refused: one sampler draws the batches."""
    strategy = _plain(train_sampling_strategy)
    if asked and strategy != "random":
        raise SvitInputError(
            f"--train_sampling_strategy {strategy} and --group_by_modality_length true: one sampler draws the "
            "batches; pass one of them"
        )
    if asked is None:
        return stage_default and strategy == "random"
    return asked


__all__ = [
    "ACTS_ONLY_WITH",
    "MODEL_FLAG_RANGES",
    "REFUSED_ARGUMENTS",
    "TRAIN_ARGUMENT_TYPES",
    "TRAIN_RANGES",
    "Refusal",
    "SvitSFTConfig",
    "SvitScriptArguments",
    "check_argument_values",
    "check_refused_arguments",
    "check_training_recipe_values",
    "check_value",
    "field_defaults",
    "field_types",
    "modality_grouping",
    "range_type",
]
