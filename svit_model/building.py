"""Assemble a fresh SVIT-LLaVA from a CLIP vision checkpoint and a Llama-family LLM checkpoint (`svit model
build`), and save checkpoints whole (`save_checkpoint`).

    model, processor = build_svit_llava("openai/clip-vit-large-patch14-336", "lmsys/vicuna-7b-v1.5", "out/svit-7b")

What LLaVA-1.5's stage 1 starts from: the two pretrained towers as they are, a fresh `mlp2x_gelu` projector
(torch's `nn.Linear` initialisation, as upstream, seeded), and the tokenizer extended with `<image>` (special),
`<st>` and `<ed>` (added, not special), whose new embedding rows start at the mean of the existing ones.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import init_empty_weights
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlavaImageProcessorPil,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_folder, check_output_apart, check_replaceable
from svit_dataset.grounded_text import END_TAG, START_TAG
from svit_dataset.jsonlist import json_object_or_empty
from svit_dataset.llava_format import IMAGE_TOKEN
from svit_model.configuration_svit_llava import SvitLlavaConfig
from svit_model.loading import loading
from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration
from svit_model.processing_svit_llava import CHAT_TEMPLATES, VICUNA_V1_TEMPLATE, SvitLlavaProcessor

logger = logging.getLogger(__name__)

GROUNDING_TOKENS = (START_TAG, END_TAG)


def add_svit_tokens(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Add what SVIT-LLaVA needs to `tokenizer`, in place; returns the tokens added.

    `<image>` as a special token (the placeholder the processor expands); `<st>`, `<ed>` as plain added
    tokens, so grounded text survives `decode(skip_special_tokens=True)`; a pad token when there is none
    (the unknown token, as LLaVA-1.5 does for Vicuna, else a new `<pad>`). Sets the vicuna_v1 chat template.
    """
    vocab = tokenizer.get_vocab()
    added = []
    if IMAGE_TOKEN not in vocab:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False
        )
        added.append(IMAGE_TOKEN)
    missing = [tag for tag in GROUNDING_TOKENS if tag not in vocab]
    if missing:
        tokenizer.add_tokens(missing)
        added += missing
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            added.append("<pad>")
    tokenizer.chat_template = VICUNA_V1_TEMPLATE
    return added


def resize_embeddings_to_mean(model: PreTrainedModel, num_tokens: int) -> None:
    """Resize input and output embeddings to `num_tokens` rows; new rows are the mean of the existing ones.

    The mean keeps new tokens' logits and inputs in the distribution the LLM knows (random rows would give
    them arbitrary, often large, logits before training).
    """
    old = model.get_input_embeddings().weight.shape[0]
    if num_tokens == old:
        return
    model.resize_token_embeddings(num_tokens, mean_resizing=False)
    with torch.no_grad():
        for embedding in {
            id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
        }.values():
            if embedding is not None and num_tokens > old:
                embedding.weight[old:] = embedding.weight[:old].mean(dim=0, keepdim=True)
    logger.info("resized embeddings %d -> %d (new rows = mean of the old ones)", old, num_tokens)


def load_vision_config(vision_model: str | os.PathLike, **hub_kwargs) -> CLIPVisionConfig:
    """The CLIP vision config of a full CLIP checkpoint or a vision-only one."""
    config = AutoConfig.from_pretrained(vision_model, **hub_kwargs)
    if config.model_type == "clip":
        config = config.vision_config
    if config.model_type != "clip_vision_model":
        raise SvitInputError(
            f"vision model {vision_model}: model_type {config.model_type!r}; SVIT-LLaVA takes a CLIP vision tower "
            "(e.g. openai/clip-vit-large-patch14-336)"
        )
    return config


def load_image_processor(vision_model: str | os.PathLike, pad: bool, **hub_kwargs) -> LlavaImageProcessorPil:
    """LLaVA's image processor with the vision checkpoint's size, mean and std; `pad` is LLaVA-1.5's `pad` mode."""
    try:
        return LlavaImageProcessorPil.from_pretrained(vision_model, do_pad=pad, **hub_kwargs)
    except OSError:  # no preprocessor_config.json: CLIP's defaults at the tower's resolution
        size = load_vision_config(vision_model, **hub_kwargs).image_size
        logger.warning("%s has no preprocessor config: CLIP mean/std at %d px", vision_model, size)
        return LlavaImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_pad=pad
        )


def make_processor(
    image_processor: LlavaImageProcessorPil, tokenizer: PreTrainedTokenizerBase, patch_size: int
) -> SvitLlavaProcessor:
    """SVIT-LLaVA processor reading CLIP as LLaVA-1.5 does (CLS dropped), with both chat templates."""
    return SvitLlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=dict(CHAT_TEMPLATES),
        image_token=IMAGE_TOKEN,
    )


def svit_llava_config(
    vision_config: CLIPVisionConfig, text_config, image_token_id: int, **overrides
) -> SvitLlavaConfig:
    """LLaVA-1.5's wiring of the two towers: layer -2 features without CLS, a GELU projector with bias.
    `image_token_id`: the tokenizer's id of `<image>` (`add_svit_tokens` adds it)."""
    settings = {
        "vision_config": vision_config,
        "text_config": text_config,
        "image_token_id": image_token_id,
        "image_seq_length": (vision_config.image_size // vision_config.patch_size) ** 2,
        "projector_hidden_act": "gelu",
        "vision_feature_select_strategy": "default",
        "vision_feature_layer": -2,
        "multimodal_projector_bias": True,
        "tie_word_embeddings": bool(getattr(text_config, "tie_word_embeddings", False)),
    }
    settings.update(overrides)
    return SvitLlavaConfig(**settings)


def build_svit_llava(
    vision_model: str | os.PathLike,
    language_model: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    pad: bool = True,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    token: str | None = None,
    overwrite: bool = False,
) -> tuple[SvitLlavaForConditionalGeneration, SvitLlavaProcessor]:
    """A fresh SVIT-LLaVA from a CLIP checkpoint and an LLM checkpoint (local folders or Hub ids).

    Args:
        vision_model: a CLIP checkpoint (full or vision-only), e.g. `openai/clip-vit-large-patch14-336`.
        language_model: a Llama-family causal LM, e.g. `lmsys/vicuna-7b-v1.5`.
        output_dir: when given, the model and processor are saved there (atomically).
        pad: LLaVA-1.5's `pad` mode (square canvas filled with the image mean; boxes move with it).
        seed: seed of the projector's initialisation.
        dtype: dtype of the towers as loaded (default: the checkpoints').
        token: Hub token for gated or private checkpoints (default: the standard login); never logged.
        overwrite: replace an existing `output_dir` (refused otherwise, before anything is loaded).
    """
    if output_dir is not None:
        check_output_dir(output_dir, overwrite, {"--vision": vision_model, "--llm": language_model})
    hub_kwargs = {"token": token} if token else {}
    with loading("--vision", vision_model, "a CLIP checkpoint folder or Hub id"):
        vision_config = load_vision_config(vision_model, **hub_kwargs)
        vision_tower = CLIPVisionModel.from_pretrained(
            vision_model, config=vision_config, dtype=dtype, **hub_kwargs
        )
    with loading("--llm", language_model, "a Llama-family causal LM folder or Hub id, with its tokenizer"):
        llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=dtype, **hub_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(language_model, **hub_kwargs)
    added = add_svit_tokens(tokenizer)
    logger.info("added tokens %s", added)

    config = svit_llava_config(vision_config, llm.config, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    with init_empty_weights():  # parameters on meta: the towers below replace them without a copy
        model = SvitLlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_tower
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(llm.lm_head.weight.dtype)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = llm.generation_config
    resize_embeddings_to_mean(model, len(tokenizer))
    model.config.text_config.vocab_size = len(tokenizer)
    model.config.text_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    _check_materialized(model)

    with loading("--vision", vision_model, "a CLIP checkpoint folder or Hub id"):
        image_processor = load_image_processor(vision_model, pad, **hub_kwargs)
    processor = make_processor(image_processor, tokenizer, vision_config.patch_size)
    if output_dir is not None:
        save_checkpoint(model, processor, output_dir, overwrite=overwrite)
    return model.eval(), processor


build = build_svit_llava  # the package's public name, `svit_model.build`: the package says what is built


def _check_materialized(model: torch.nn.Module) -> None:
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:
        raise RuntimeError(f"SVIT-LLaVA assembly left tensors unset: {left[:5]}")


# Files that make a folder a model checkpoint: what `--overwrite` of `svit model ...` may replace.
CHECKPOINT_FILES = ("config.json", "adapter_config.json", "model.safetensors.index.json")
CHECKPOINT_WEIGHTS = ("*.safetensors", "*.bin")


def is_checkpoint_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a model checkpoint folder, as `svit model ...` writes: weights beside a transformers
    or peft config. A config.json alone is no proof (many a project holds one)."""
    folder = Path(path)
    if not folder.is_dir() or folder.is_symlink():
        return False
    has_weights = any(any(folder.glob(pattern)) for pattern in CHECKPOINT_WEIGHTS)
    return has_weights and any(_names_a_model(folder / name) for name in CHECKPOINT_FILES)


def _names_a_model(config: Path) -> bool:
    """A transformers config (`model_type`) or a peft adapter config (`peft_type`)."""
    values = json_object_or_empty(config)
    return bool(values.get("model_type") or values.get("peft_type"))


def check_output_dir(
    output_dir: str | os.PathLike, overwrite: bool, inputs: dict[str, object] | None = None
) -> Path:
    """`output_dir` as a Path; refuses an existing one unless `overwrite`, one that is not a checkpoint folder
    (or empty) even with it (`--overwrite` replaces a model, never an unrelated folder or a file), and one
    that is, contains or lies inside an input (`{"--input": path, ...}`) (called before any heavy work)."""
    check_output_apart(output_dir, "--output", inputs or {})
    output_dir = Path(output_dir)
    check_replaceable(
        output_dir,
        "--output",
        overwrite,
        "a model checkpoint folder (config.json, weights)",
        is_checkpoint_folder,
    )
    return output_dir


_OS_ERROR = re.compile(r"os error (\d+)")
# What torch's zip writer says when a write fails (a full disk, a file size limit): no errno.
_TORCH_WRITE_FAILED = ("file write failed", "unexpected pos", "inline_container")


@contextlib.contextmanager
def writing_checkpoint(folder: str | os.PathLike) -> Iterator[None]:
    """Report a failed write inside the block (safetensors, torch.save) as the file-system error it is.

    safetensors raises `SafetensorError("... I/O error: File too large (os error 27)")` and torch.save a
    RuntimeError, neither an OSError: a full disk would read as a defect of svit. They become an OSError with
    the errno (torch's, which has none, as EIO saying so), which the CLI reports in one line with what to do."""
    try:
        yield
    except OSError:
        raise
    except Exception as err:
        text = str(err)
        found = _OS_ERROR.search(text)
        if found and type(err).__name__ == "SafetensorError":
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(folder)) from err
        if isinstance(err, RuntimeError) and any(marker in text for marker in _TORCH_WRITE_FAILED):
            raise OSError(errno.EIO, "writing a file failed (is the disk full?)", str(folder)) from err
        raise


def save_checkpoint(
    model: PreTrainedModel, processor, output_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Save model and processor into `output_dir`, which holds either the old checkpoint or the new one, whole.

    Both are written into a hidden sibling folder (removed if saving fails); an existing `output_dir` (only with
    `overwrite`, and only a checkpoint folder) is renamed aside, the new folder renamed in, and only then the
    old one deleted. A full disk ends as an OSError naming the folder (see `writing_checkpoint`).
    """
    output_dir = check_output_dir(output_dir, overwrite)
    with atomic_folder(output_dir) as staging, writing_checkpoint(output_dir):
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    logger.info("saved %s", output_dir)
    return output_dir


__all__ = [
    "add_svit_tokens",
    "build",
    "build_svit_llava",
    "check_output_dir",
    "is_checkpoint_folder",
    "resize_embeddings_to_mean",
    "save_checkpoint",
    "writing_checkpoint",
]
