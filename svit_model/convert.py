"""Upstream original-LLaVA checkpoints (LLaVA-1.5, SVIT-v1.5) into SVIT-LLaVA.

Upstream (haotian-liu/LLaVA) saves `LlavaLlamaForCausalLM` as a Llama checkpoint with extra keys and config
fields:

- full fine-tunes: `pytorch_model-*.bin` (or safetensors) shards with the LLM's own keys (`model.layers.*`,
  `model.embed_tokens.*`, `lm_head.*`), the projector as `model.mm_projector.{0,2}.*`, and the vision tower
  as `model.vision_tower.vision_tower.vision_model.*` only when it was loaded before saving (usually not:
  upstream reloads it from `mm_vision_tower`);
- LoRA runs: a peft `adapter_model` over the LLM (keys `base_model.model.model.layers.*.lora_{A,B}.weight`),
  `non_lora_trainables.bin` with the projector (`base_model.model.model.mm_projector.*`), and the base LLM
  elsewhere (`--model-base`, e.g. `lmsys/vicuna-13b-v1.5`).

`config.json` carries `mm_vision_tower`, `mm_projector_type` (only `mlp2x_gelu` is LLaVA-1.5),
`mm_vision_select_layer`, `mm_vision_select_feature` and `image_aspect_ratio` (`pad` for LLaVA-1.5).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from accelerate import init_empty_weights
from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPVisionModel, LlamaConfig

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.llava_format import IMAGE_TOKEN
from svit_model.building import (
    add_svit_tokens,
    check_output_dir,
    load_image_processor,
    load_vision_config,
    make_processor,
    resize_embeddings_to_mean,
    save_checkpoint,
    svit_llava_config,
)
from svit_model.loading import loading
from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration
from svit_model.processing_svit_llava import SvitLlavaProcessor

logger = logging.getLogger(__name__)

NON_LORA_TRAINABLES = "non_lora_trainables.bin"
ADAPTER_CONFIG = "adapter_config.json"
# Upstream key prefix -> ours; the first match wins (order matters: `model.` is the LLM's catch-all).
KEY_PREFIXES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.vision_tower.vision_tower.", "model.vision_tower."),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# Buffers old transformers versions saved and current Llama recomputes.
IGNORED_KEY_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")
# Config fields upstream adds to the Llama config; the rest is the LLM's own config.
_UPSTREAM_ONLY_FIELDS = (
    "mm_",
    "image_aspect_ratio",
    "image_grid_pinpoints",
    "tune_mm_",
    "freeze_mm_",
    "tokenizer_model_max_length",
    "tokenizer_padding_side",
    "unfreeze_mm_vision_tower",
    "use_mm_proj",
)
_SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}


_UPSTREAM = "an upstream LLaVA-1.5 / SVIT-v1.5 checkpoint folder (config.json + shards, or a LoRA adapter)"


def upstream_key_to_ours(key: str) -> str:
    """`model.mm_projector.0.weight` -> `model.multi_modal_projector.linear_1.weight`, and so on."""
    for old, new in KEY_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    raise SvitFormatError(f"unexpected key {key!r} in an upstream LLaVA checkpoint")


def read_upstream_config(model_dir: str | os.PathLike) -> dict:
    """`config.json` of an upstream checkpoint, checked to be LLaVA-1.5's architecture."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise SvitInputError(f"{model_dir}: no config.json; pass an upstream LLaVA checkpoint folder")
    config = json.loads(path.read_text())
    checks = {
        "mm_projector_type": (config.get("mm_projector_type", "linear"), ("mlp2x_gelu",)),
        "mm_vision_select_feature": (config.get("mm_vision_select_feature", "patch"), tuple(_SELECT_FEATURE)),
        "mm_use_im_start_end": (config.get("mm_use_im_start_end", False), (False,)),
        "mm_patch_merge_type": (config.get("mm_patch_merge_type", "flat"), ("flat",)),
    }
    for field, (value, allowed) in checks.items():
        if value not in allowed:
            raise SvitFormatError(
                f"{path}: {field}={value!r}; SVIT-LLaVA converts LLaVA-1.5's architecture ({field} in {allowed})"
            )
    return config


def text_config_from_upstream(config: dict) -> LlamaConfig:
    """The LLM's config: upstream's config without its `mm_*` fields, as a Llama config."""
    fields = {k: v for k, v in config.items() if not k.startswith(_UPSTREAM_ONLY_FIELDS)}
    for key in ("model_type", "architectures", "auto_map", "_name_or_path", "transformers_version"):
        fields.pop(key, None)
    if fields.get("rope_scaling") is None:  # upstream writes null; current configs take `rope_parameters`
        fields.pop("rope_scaling", None)
    return LlamaConfig(**fields)


def read_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of the `*.safetensors` shards of `folder`, else of its `pytorch_model*.bin` shards."""
    folder = Path(folder)
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        from safetensors.torch import load_file

        return {k: v for shard in shards for k, v in load_file(shard).items()}
    shards = sorted(p for p in folder.glob("pytorch_model*.bin"))
    if not shards:
        raise SvitInputError(f"{folder}: no *.safetensors or pytorch_model*.bin shards")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(torch.load(shard, map_location="cpu", weights_only=True))
    return state


def merged_lora_llm_state(
    model_dir: Path, base_model: str | os.PathLike, **hub_kwargs
) -> dict[str, torch.Tensor]:
    """The base LLM with upstream's LoRA adapter merged in, by peft, with upstream's (Llama) key names."""
    from peft import PeftModel

    llm = AutoModelForCausalLM.from_pretrained(base_model, **hub_kwargs)
    merged = PeftModel.from_pretrained(llm, model_dir).merge_and_unload()
    return merged.state_dict()


def read_non_lora_trainables(model_dir: Path) -> dict[str, torch.Tensor]:
    """The projector saved beside a LoRA adapter, with peft's `base_model.model.` prefix removed."""
    path = model_dir / NON_LORA_TRAINABLES
    if not path.is_file():
        raise SvitInputError(
            f"{model_dir}: a LoRA adapter without {NON_LORA_TRAINABLES}; upstream saves the projector there "
            "at the end of training. Without it the projector is lost: take the file from the run's output folder."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("base_model.model."): v for k, v in state.items()}


def convert_upstream_checkpoint(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    base_model: str | os.PathLike | None = None,
    vision_tower: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    token: str | None = None,
    overwrite: bool = False,
) -> tuple[SvitLlavaForConditionalGeneration, SvitLlavaProcessor]:
    """An upstream LLaVA-1.5 / SVIT-v1.5 checkpoint (full or LoRA) as SVIT-LLaVA; saved to `output_dir` if given.

    Args:
        model_dir: the upstream folder (`config.json` + shards, or + `adapter_model` + `non_lora_trainables.bin`).
        base_model: the LLM a LoRA adapter was trained on (default: the adapter config's
            `base_model_name_or_path`).
        vision_tower: the CLIP checkpoint (default: the config's `mm_vision_tower`); its weights are used
            unless the shards carry the tower.
        dtype: cast the converted model to this dtype (default: the checkpoint's).
        token: Hub token for gated checkpoints (default: the standard login); never logged.
        overwrite: replace an existing `output_dir` (refused otherwise, before anything is loaded).
    """
    model_dir = Path(model_dir)
    if output_dir is not None:
        check_output_dir(
            output_dir,
            overwrite,
            {"--input": model_dir, "--base-model": base_model, "--vision-tower": vision_tower},
        )
    hub_kwargs = {"token": token} if token else {}
    if not model_dir.is_dir():
        raise SvitInputError(f"--input {model_dir}: not a folder; pass {_UPSTREAM}")
    with loading("--input", model_dir, _UPSTREAM):
        upstream = read_upstream_config(model_dir)
    vision_tower = vision_tower or upstream.get("mm_vision_tower")
    if not vision_tower:
        raise SvitInputError(f"{model_dir}/config.json names no mm_vision_tower; pass --vision-tower")

    if (model_dir / ADAPTER_CONFIG).is_file():
        adapter = json.loads((model_dir / ADAPTER_CONFIG).read_text())
        base_model = base_model or adapter.get("base_model_name_or_path")
        if not base_model:
            raise SvitInputError(f"{model_dir}: LoRA adapter without a base model; pass --base-model")
        logger.info("LoRA checkpoint: merging the adapter into %s", base_model)
        projector = read_non_lora_trainables(model_dir)
        with loading("--base-model", base_model, "the LLM folder or Hub id the LoRA adapter was trained on"):
            state = {**merged_lora_llm_state(model_dir, base_model, **hub_kwargs), **projector}
        tokenizer_source = model_dir if (model_dir / "tokenizer_config.json").is_file() else base_model
    else:
        with loading("--input", model_dir, _UPSTREAM):
            state = read_state_dict(model_dir)
        tokenizer_source = model_dir

    with loading("--vision-tower", vision_tower, "a CLIP checkpoint folder or Hub id"):
        vision_config = load_vision_config(vision_tower, **hub_kwargs)
    if not any(key.startswith("model.vision_tower.") for key in state):
        with loading("--vision-tower", vision_tower, "a CLIP checkpoint folder or Hub id"):
            tower = CLIPVisionModel.from_pretrained(vision_tower, config=vision_config, **hub_kwargs)
        state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in tower.state_dict().items()})
    ours = {
        upstream_key_to_ours(key): value
        for key, value in state.items()
        if not key.endswith(IGNORED_KEY_SUFFIXES)
    }

    with loading("--input", tokenizer_source, "a checkpoint folder with its tokenizer (or --base-model)"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **hub_kwargs)
        text_config = text_config_from_upstream(upstream)
    # Our <image> placeholder is a vocabulary token (upstream uses index -200 outside the vocabulary): add it
    # before the config reads its id; the embeddings grow after loading.
    add_svit_tokens(tokenizer)
    config = svit_llava_config(
        vision_config,
        text_config,
        tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=upstream.get("mm_vision_select_layer", -2),
        vision_feature_select_strategy=_SELECT_FEATURE[upstream.get("mm_vision_select_feature", "patch")],
    )
    with init_empty_weights():
        model = SvitLlavaForConditionalGeneration(config)
    result = model.load_state_dict(ours, strict=False, assign=True)
    missing = [k for k in result.missing_keys if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or result.unexpected_keys:
        raise SvitFormatError(
            f"{model_dir}: the checkpoint does not fit LLaVA-1.5's architecture: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    resize_embeddings_to_mean(model, len(tokenizer))
    model.config.text_config.vocab_size = len(tokenizer)
    model.config.text_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if dtype is not None:
        model.to(dtype)

    pad = upstream.get("image_aspect_ratio", "pad") == "pad"
    processor = make_processor(
        load_image_processor(vision_tower, pad, **hub_kwargs), tokenizer, vision_config.patch_size
    )
    if output_dir is not None:
        save_checkpoint(model, processor, output_dir, overwrite=overwrite)
    return model.eval(), processor


__all__ = ["convert_upstream_checkpoint", "upstream_key_to_ours"]
