"""SVIT-LLaVA configuration: LLaVA-1.5's architecture under its own model type.

SVIT-LLaVA is LLaVA-1.5 (a CLIP-style vision tower read at its penultimate layer without CLS, an
`mlp2x_gelu` projector, a Llama-family LLM) trained on SVIT with grounded answers `<st>phrase<ed> [box]`.
Its own `model_type` lets the Auto classes pair it with `SvitLlavaProcessor`, which moves boxes in and out
of LLaVA-1.5's padded square; the weights keep LLaVA's names, so a plain `llava` checkpoint is one config
away (`svit_model.stock_llava`).

This file imports nothing but transformers: it is copied next to saved checkpoints so that
`from_pretrained(..., trust_remote_code=True)` works without the svit package.
"""

from transformers import LlavaConfig


class SvitLlavaConfig(LlavaConfig):
    r"""
    Configuration of [`SvitLlavaForConditionalGeneration`]: every argument of [`LlavaConfig`], with LLaVA-1.5's
    defaults (vision features of layer -2 without CLS, a 2-layer GELU projector with bias).

    Example:

    ```python
    >>> from transformers import CLIPVisionConfig, LlamaConfig
    >>> from svit_model import SvitLlavaConfig, SvitLlavaForConditionalGeneration

    >>> config = SvitLlavaConfig(vision_config=CLIPVisionConfig(), text_config=LlamaConfig())
    >>> model = SvitLlavaForConditionalGeneration(config)
    ```"""

    model_type = "svit_llava"


__all__ = ["SvitLlavaConfig"]
