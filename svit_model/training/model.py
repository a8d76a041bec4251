"""Load SVIT-LLaVA for training and set what trains, from the stage (`stages.py`) and TRL's `ModelConfig`.

LoRA adapters are confined by module path to the stage's scope (the language model): a leaf name like `q_proj`
alone would also match CLIP's attention layers. Modules the stage trains in full beside LoRA (the projector) are
peft `modules_to_save`, so they are saved in every adapter checkpoint and restored on resume.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel
from trl import ModelConfig

from svit_dataset.errors import SvitInputError
from svit_dataset.grounded_text import END_TAG, START_TAG
from svit_model.loading import _looks_local, loading
from svit_model.training.stages import DEFAULT_LORA_TARGETS, VISION_TOWER, Stage

logger = logging.getLogger(__name__)


def load_processor(model_args: ModelConfig, trust_remote_code: bool = False):
    """The checkpoint's processor (loaded before the model: its templates are checked first)."""
    if not model_args.model_name_or_path:
        raise SvitInputError("--model_name_or_path is required (e.g. the folder `svit model tiny` wrote)")
    path = model_args.model_name_or_path
    if _looks_local(path) and not Path(path).expanduser().exists():
        # else transformers takes the path for a Hub id and answers "Repo id must be in the form..."
        raise SvitInputError(f"--model_name_or_path {path}: no such folder (nor a Hub id org/name)")
    try:
        return AutoProcessor.from_pretrained(
            model_args.model_name_or_path,
            revision=model_args.model_revision,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SvitInputError(f"--model_name_or_path {model_args.model_name_or_path}: {first_line}") from None


def quantization_config(model_args: ModelConfig):
    """bitsandbytes settings for QLoRA (`--load_in_4bit` / `--load_in_8bit`), which needs a CUDA GPU."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    if not torch.cuda.is_available():
        raise SvitInputError("--load_in_4bit/--load_in_8bit (QLoRA) need a CUDA GPU and bitsandbytes")
    from trl import get_quantization_config

    return get_quantization_config(model_args)


def load_model(model_args: ModelConfig, trust_remote_code: bool = False) -> PreTrainedModel:
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype or "auto",
    }
    quantization = quantization_config(model_args)
    if quantization is not None:
        from trl import get_kbit_device_map

        kwargs.update(quantization_config=quantization, device_map=get_kbit_device_map())
    with loading(
        "--model_name_or_path", model_args.model_name_or_path, "an SVIT-LLaVA checkpoint folder or Hub id"
    ):
        return AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs)


def trained_prefixes(stage: Stage, use_peft: bool, train_vision_tower: bool) -> tuple[str, ...]:
    """Module path prefixes trained in full."""
    prefixes = stage.full_with_lora if use_peft else stage.full
    return prefixes + ((VISION_TOWER,) if train_vision_tower else ())


def set_trainable(model: torch.nn.Module, prefixes: tuple[str, ...]) -> int:
    """Train exactly the parameters under `prefixes`; returns how many parameters train."""
    trained = 0
    for name, param in model.named_parameters():
        param.requires_grad_(any(name == p or name.startswith(p + ".") for p in prefixes))
        # under ZeRO-3 a partitioned parameter is empty here; `ds_numel` is its size
        trained += getattr(param, "ds_numel", param.numel()) if param.requires_grad else 0
    if not trained:
        raise SvitInputError(
            f"no parameter of the model is under {prefixes}: is it an SVIT-LLaVA checkpoint?"
        )
    return trained


def lora_target_pattern(scope: str, leaf_names) -> str:
    """peft `target_modules` regex: modules named `leaf_names` under `scope` only (full match on module paths)."""
    names = "|".join(re.escape(name) for name in leaf_names)
    return rf"{re.escape(scope)}\..*\.(?:{names})"


def grounding_token_ids(processor) -> list[int]:
    """Ids of `<st>` and `<ed>`: rows `svit model build` added to the LLM's embeddings (at their mean)."""
    return processor.tokenizer.convert_tokens_to_ids([START_TAG, END_TAG])


def lora_config(
    model_args: ModelConfig, stage: Stage, train_vision_tower: bool, new_token_ids: list[int] = ()
) -> LoraConfig | None:
    """The peft LoRA config of `--use_peft`, scoped by module path; None without `--use_peft`.

    `new_token_ids` (the grounding tokens) get trainable rows in the input embeddings and the LM head (peft's
    trainable tokens): the LLM never saw them, and LoRA alone cannot move rows that start equal, so the
    model could never tell `<st>` from `<ed>` apart when writing.
    """
    if not model_args.use_peft:
        return None
    if stage.lora_scope is None:
        raise SvitInputError(
            f"--use_peft: the {stage.name} stage trains {', '.join(stage.full)} in full; no LoRA"
        )
    leaf_names = model_args.lora_target_modules or DEFAULT_LORA_TARGETS
    if isinstance(leaf_names, str):
        leaf_names = [leaf_names]
    full = trained_prefixes(stage, True, train_vision_tower)
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=lora_target_pattern(stage.lora_scope, leaf_names),
        modules_to_save=[prefix.rsplit(".", 1)[-1] for prefix in full]
        + list(model_args.lora_modules_to_save or []),
        trainable_token_indices={"embed_tokens": list(new_token_ids), "lm_head": list(new_token_ids)}
        if new_token_ids
        else None,
        bias="none",
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        task_type=model_args.lora_task_type,
    )


__all__ = [
    "load_model",
    "load_processor",
    "lora_config",
    "lora_target_pattern",
    "set_trainable",
    "trained_prefixes",
]
