"""SVIT-LLaVA in transformers: configuration, model and grounding processor, registered with the Auto classes.

Importing `svit_model` registers `svit_llava` with `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`
and `AutoProcessor`, and marks the classes for `auto_map`, so saved checkpoints also load with
`trust_remote_code=True` where svit is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from svit_model.building import build
from svit_model.configuration_svit_llava import SvitLlavaConfig
from svit_model.modeling_svit_llava import (
    SvitLlavaForConditionalGeneration,
    SvitLlavaModel,
    SvitLlavaPreTrainedModel,
)
from svit_model.processing_svit_llava import SvitLlavaProcessor

AutoConfig.register(SvitLlavaConfig.model_type, SvitLlavaConfig, exist_ok=True)
AutoModel.register(SvitLlavaConfig, SvitLlavaModel, exist_ok=True)
AutoModelForImageTextToText.register(SvitLlavaConfig, SvitLlavaForConditionalGeneration, exist_ok=True)
AutoProcessor.register(SvitLlavaConfig, SvitLlavaProcessor, exist_ok=True)
# `save_pretrained` then writes `auto_map` and copies the code files (the processor does it itself, see
# `SvitLlavaProcessor.save_pretrained`: its copier also vendors the svit box and grounding modules).
SvitLlavaConfig.register_for_auto_class()
SvitLlavaForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")


__all__ = [
    "SvitLlavaConfig",
    "SvitLlavaForConditionalGeneration",
    "SvitLlavaModel",
    "SvitLlavaPreTrainedModel",
    "SvitLlavaProcessor",
    "build",
]
