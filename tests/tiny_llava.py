"""Test helpers around the tiny SVIT-LLaVA of `svit_model.tiny` (the one tiny-model module).

`train_few_steps` trains it with stock TRL `SFTTrainer` on rows of the sample schema. The model is
`SvitLlavaForConditionalGeneration` with `SvitLlavaProcessor` in `pad` mode: the processor moves each sample's
boxes into its padded square inside TRL's collator (`apply_chat_template(..., return_assistant_tokens_mask=True)`),
and the assistant mask follows the moved text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from svit_model.processing_svit_llava import VICUNA_SYSTEM, VICUNA_V1_TEMPLATE
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows

if TYPE_CHECKING:
    import datasets
    from trl import SFTTrainer

    from svit_model import SvitLlavaForConditionalGeneration, SvitLlavaProcessor

CHAT_TEMPLATE = VICUNA_V1_TEMPLATE
__all__ = ["CHAT_TEMPLATE", "VICUNA_SYSTEM", "build_tiny_svit_llava", "corpus_from_rows", "train_few_steps"]


def train_few_steps(
    dataset: datasets.Dataset,
    tmp_path: str | Path,
    max_steps: int = 3,
    model: SvitLlavaForConditionalGeneration | None = None,
    processor: SvitLlavaProcessor | None = None,
    seed: int = 0,
    **sft_overrides: Any,
) -> SFTTrainer:
    """Train with stock `trl.SFTTrainer` on rows of the sample schema; returns the trainer after training.

    Builds a tiny SVIT-LLaVA from the dataset's texts unless `model` and `processor` are given. `sft_overrides`
    replace any `SFTConfig` field set here. Only `messages` and `images` reach TRL's collator: TRL keeps those
    (its signature columns for vision data) and drops the other schema columns itself.
    """
    from trl import SFTConfig, SFTTrainer  # heavy import, only for the tests that train

    if (model is None) != (processor is None):
        raise ValueError("train_few_steps: pass both `model` and `processor`, or neither.")
    if model is None:
        model, processor = build_tiny_svit_llava(
            corpus_from_rows(dataset.select_columns(["messages"])), seed=seed
        )
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "max_steps": max_steps,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "max_length": None,  # never truncate image tokens
        "assistant_only_loss": True,
        "use_cpu": True,
        "bf16": False,
        # TRL turns checkpointing on by default; nothing to save on a tiny model, and faster off. The transformers
        # v5 name: `gradient_checkpointing` is its deprecated alias.
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "seed": seed,
        "disable_tqdm": True,
    }
    settings.update(sft_overrides)
    trainer = SFTTrainer(
        model=model, args=SFTConfig(**settings), train_dataset=dataset, processing_class=processor
    )
    trainer.train()
    return trainer
