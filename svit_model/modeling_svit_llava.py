"""PyTorch SVIT-LLaVA: transformers' LLaVA, typed by `SvitLlavaConfig`.

The computation is LLaVA-1.5's and is inherited, not copied: CLIP features of layer -2 without CLS, an
`mlp2x_gelu` projector, image features scattered over the `<image>` placeholder tokens, a Llama-family LLM.
Weight names are LLaVA's (`model.vision_tower.*`, `model.multi_modal_projector.linear_{1,2}.*`,
`model.language_model.*`, `lm_head.*`), so a checkpoint converts to a plain `llava` one by its config alone.

This file imports only transformers and its sibling configuration: it is copied next to saved checkpoints
so that `from_pretrained(..., trust_remote_code=True)` works without the svit package.
"""

from transformers.models.llava.modeling_llava import (
    LlavaCausalLMOutputWithPast,
    LlavaForConditionalGeneration,
    LlavaModel,
    LlavaModelOutputWithPast,
    LlavaPreTrainedModel,
)

from .configuration_svit_llava import SvitLlavaConfig

# Outputs are LLaVA's: `logits` (batch, seq_len, vocab_size), `cache`, `hidden_states`, `attentions`, and
# `image_outputs` whose `pooler_output` holds per-image projected features (num_patches, hidden_size).
SvitLlavaModelOutputWithPast = LlavaModelOutputWithPast
SvitLlavaCausalLMOutputWithPast = LlavaCausalLMOutputWithPast


class SvitLlavaPreTrainedModel(LlavaPreTrainedModel):
    config_class = SvitLlavaConfig
    config: SvitLlavaConfig


class SvitLlavaModel(LlavaModel):
    """Vision tower + projector + LLM without a language-modeling head (LLaVA's `LlavaModel`)."""

    config_class = SvitLlavaConfig
    config: SvitLlavaConfig


class SvitLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """SVIT-LLaVA with its language-modeling head: LLaVA's `LlavaForConditionalGeneration`.

    `forward(input_ids (batch, seq_len), pixel_values (batch_images, 3, H, W), attention_mask, labels, ...)`
    returns `SvitLlavaCausalLMOutputWithPast` with `logits` of shape (batch, seq_len, vocab_size). Generation,
    caching, gradient checkpointing and the attention backends are LLaVA's. Grounded answers are decoded by
    `SvitLlavaProcessor.post_process_generation`.
    """

    config_class = SvitLlavaConfig
    config: SvitLlavaConfig


__all__ = [
    "SvitLlavaCausalLMOutputWithPast",
    "SvitLlavaForConditionalGeneration",
    "SvitLlavaModel",
    "SvitLlavaModelOutputWithPast",
    "SvitLlavaPreTrainedModel",
]
