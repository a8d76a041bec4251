"""What each training stage trains: LLaVA-1.5's two stages as data, not as `if` chains.

A stage names the chat template its samples are rendered with, the module paths it trains in full, and where
LoRA adapters may go. `svit_model.training.model` applies it (`trained_prefixes`, `lora_config`); the training
recipes (YAML, `training_recipes/`) pick a stage by name.
Paths are those of `SvitLlavaForConditionalGeneration` (LLaVA's names).
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECTOR = "model.multi_modal_projector"
LANGUAGE_MODEL = "model.language_model"
LM_HEAD = "lm_head"
VISION_TOWER = "model.vision_tower"


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the recipe's `stage` value.
        template: the processor's chat template the samples are rendered with (`plain` or `default`).
        full: module path prefixes trained in full without LoRA.
        full_with_lora: module path prefixes trained in full beside LoRA adapters (saved with the adapter).
        lora_scope: the module path LoRA adapters are confined to; None when the stage refuses LoRA.
    """

    name: str
    template: str
    full: tuple[str, ...]
    full_with_lora: tuple[str, ...]
    lora_scope: str | None


STAGES: dict[str, Stage] = {
    # Stage 1 (pretraining on image-caption pairs): only the projector learns; LLaVA's plain template.
    "pretrain": Stage("pretrain", "plain", full=(PROJECTOR,), full_with_lora=(PROJECTOR,), lora_scope=None),
    # Stage 2 (visual instruction tuning): projector + LLM, or LoRA on the LLM with the projector in full.
    "finetune": Stage(
        "finetune",
        "default",
        full=(PROJECTOR, LANGUAGE_MODEL, LM_HEAD),
        full_with_lora=(PROJECTOR,),
        lora_scope=LANGUAGE_MODEL,
    ),
}

# LLaVA-1.5 puts LoRA on every linear layer of the LLM; these are their names in Llama-family models.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
