"""SVIT-LLaVA as a stock `llava` checkpoint (`svit model export`): what stock transformers, vLLM and lmms-eval
load without svit. (Data export, `svit export llava`, is `svit_dataset.export_llava`.)

The weights are the same tensors under the same names; only the model type, the classes and the processor
change. The stock `LlavaProcessor` does not move boxes: a model trained in `pad` mode reads and writes boxes
in the padded square of its input image (`svit_dataset.boxes.from_padded_square` maps them back).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from accelerate import init_empty_weights
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from svit_dataset.errors import SvitInputError
from svit_model.building import check_output_dir, save_checkpoint
from svit_model.loading import loading
from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration
from svit_model.processing_svit_llava import SvitLlavaProcessor

logger = logging.getLogger(__name__)

# Keys of our config that are not LLaVA's: the type and what `auto_map` / save add.
_NOT_LLAVA = ("model_type", "auto_map", "architectures", "transformers_version")


def to_llava_config(config) -> LlavaConfig:
    """The same configuration as a stock `LlavaConfig`."""
    fields = {k: v for k, v in config.to_dict().items() if k not in _NOT_LLAVA}
    return LlavaConfig.from_dict(fields)


def to_llava_model(model: SvitLlavaForConditionalGeneration) -> LlavaForConditionalGeneration:
    """A stock `LlavaForConditionalGeneration` sharing `model`'s tensors (no copy)."""
    with init_empty_weights():
        llava = LlavaForConditionalGeneration(to_llava_config(model.config))
    llava.load_state_dict(model.state_dict(), strict=True, assign=True)
    if llava.config.tie_word_embeddings:
        llava.tie_weights()
    llava.generation_config = model.generation_config
    return llava.eval()


def without_bos_text(templates):
    """Chat templates that do not write the tokenizer's `<s>`: llava-hf's convention for stock `llava`
    checkpoints, whose tools (lmms-eval's llava_hf, the model cards' `processor(text=apply_chat_template(...))`)
    tokenize the rendered prompt with special tokens, the tokenizer adding `<s>` itself. A template writing it
    too would reach them with two. `apply_chat_template(tokenize=True)` adds it when the text lacks it, so every
    path sees one `<s>`, as LLaVA-1.5 trained."""
    if isinstance(templates, dict):
        return {name: without_bos_text(template) for name, template in templates.items()}
    if isinstance(templates, str):
        return templates.replace(_BOS_TEXT, "", 1)
    return templates


_BOS_TEXT = "{{ bos_token }}"


def to_llava_processor(processor: SvitLlavaProcessor) -> LlavaProcessor:
    """A stock `LlavaProcessor` with the same image processor, a copy of the tokenizer, and the chat templates
    without the `<s>` they write (`without_bos_text`)."""
    tokenizer = copy.deepcopy(processor.tokenizer)
    tokenizer.chat_template = without_bos_text(tokenizer.chat_template)
    return LlavaProcessor(
        image_processor=processor.image_processor,
        tokenizer=tokenizer,
        patch_size=processor.patch_size,
        vision_feature_select_strategy=processor.vision_feature_select_strategy,
        chat_template=without_bos_text(processor.chat_template),
        image_token=processor.image_token,
        num_additional_image_tokens=processor.num_additional_image_tokens,
    )


def export_llava_checkpoint(
    source: str | os.PathLike | tuple[SvitLlavaForConditionalGeneration, SvitLlavaProcessor],
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> Path:
    """Write `source` (a saved SVIT-LLaVA folder, or a (model, processor) pair) as a `llava` checkpoint.

    An existing `output_dir` is replaced only with `overwrite` (refused otherwise, before anything is loaded).
    """
    check_output_dir(
        output_dir, overwrite, {"--input": source if isinstance(source, str | os.PathLike) else None}
    )
    if isinstance(source, (str, os.PathLike)):
        if not (Path(source) / "config.json").is_file():
            raise SvitInputError(f"{source}: no config.json; pass a saved SVIT-LLaVA checkpoint folder")
        with loading("--input", source, "a saved SVIT-LLaVA checkpoint folder (model and processor)"):
            model = AutoModelForImageTextToText.from_pretrained(source)
            processor = AutoProcessor.from_pretrained(source)
    else:
        model, processor = source
    if not isinstance(model, SvitLlavaForConditionalGeneration) or not isinstance(
        processor, SvitLlavaProcessor
    ):
        raise SvitInputError(
            f"export takes an SVIT-LLaVA model and processor, got {type(model).__name__} and {type(processor).__name__}"
        )
    return save_checkpoint(
        to_llava_model(model), to_llava_processor(processor), output_dir, overwrite=overwrite
    )


__all__ = [
    "export_llava_checkpoint",
    "to_llava_config",
    "to_llava_model",
    "to_llava_processor",
    "without_bos_text",
]
