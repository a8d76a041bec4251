"""Tiny SVIT-LLaVA models built in code: the fixture of tests, notebooks and the demo. Nothing is downloaded.

A byte-level BPE tokenizer trained on the fly (with `<image>`, `<st>`, `<ed>`), a 2-layer CLIP vision tower
(hidden 32), an `mlp2x_gelu` projector and a 2-layer Llama (hidden 64), wired as
`SvitLlavaForConditionalGeneration` with a `SvitLlavaProcessor` in LLaVA-1.5's `pad` mode and its vicuna_v1
and plain chat templates. Building takes about a second and is deterministic for a seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import CLIPVisionConfig, LlamaConfig, LlavaImageProcessorPil, PreTrainedTokenizerFast

from svit_dataset.llava_format import IMAGE_TOKEN
from svit_model.building import (
    add_svit_tokens,
    check_output_dir,
    make_processor,
    save_checkpoint,
    svit_llava_config,
)
from svit_model.configuration_svit_llava import SvitLlavaConfig
from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration
from svit_model.processing_svit_llava import VICUNA_SYSTEM, SvitLlavaProcessor

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD, IMAGE_TOKEN)

# What the tokenizer learns when no corpus is given: grounded answers and questions in SVIT's style.
DEFAULT_CORPUS = (
    "What is in the image? Answer with bounding boxes.",
    "Where is the red ball? Answer with a bounding box.",
    "<st>red ball<ed> [0.125, 0.300, 0.450, 0.812] lies left of <st>blue box<ed> [0.600, 0.100, 0.900, 0.500].",
    "The <st>dog<ed> [0.210, 0.354, 0.622, 0.908] sits next to <st>two cups<ed> [0.05, 0.1, 0.2, 0.3], [0.7, 0.1, 0.9, 0.3].",
    "A green triangle, a yellow circle and a purple square on a grey background.",
    "Describe the image in detail.",
)


def build_tiny_tokenizer(
    corpus_texts: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `corpus_texts` plus the chat template's own words.

    Byte-level: any text encodes without `<unk>` and decodes back exactly. Like Llama, encoding with special
    tokens prepends `<s>`. `<image>` is special; `<st>` and `<ed>` are added tokens that are not special, so
    they survive `decode(skip_special_tokens=True)`.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    template_words = [VICUNA_SYSTEM, "USER: ", " ASSISTANT: ", "ASSISTANT:"]
    tokenizer.train_from_iterator([*template_words, *corpus_texts], trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=2048,
    )
    add_svit_tokens(fast)  # `<st>`, `<ed>` and the vicuna_v1 template, as for a real LLM's tokenizer
    return fast


def build_tiny_processor(
    tokenizer: PreTrainedTokenizerFast, image_size: int = 28, patch_size: int = 14, pad: bool = True
) -> SvitLlavaProcessor:
    """SVIT-LLaVA processor (`svit_model.building.make_processor`): `pad` mode when `pad`, CLIP's mean/std,
    `(image_size // patch_size) ** 2` image tokens."""
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_pad=pad,
    )
    return make_processor(image_processor, tokenizer, patch_size)


def tiny_vision_config(image_size: int = 28, patch_size: int = 14) -> CLIPVisionConfig:
    """A 2-layer CLIP vision tower, hidden 32."""
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=32,
    )


def tiny_text_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """A 2-layer Llama, hidden 64, sized to `tokenizer`."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def tiny_svit_llava_config(
    tokenizer: PreTrainedTokenizerFast, image_size: int = 28, patch_size: int = 14
) -> SvitLlavaConfig:
    """2-layer CLIP + mlp2x_gelu projector + 2-layer Llama, wired by `svit_model.building.svit_llava_config`
    exactly as a real SVIT-LLaVA (layer -2 features without CLS, GELU projector)."""
    return svit_llava_config(
        tiny_vision_config(image_size, patch_size),
        tiny_text_config(tokenizer),
        tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )


# Standard deviation of the LM head's rows. Llama's default (0.02) gives rows of norm ~0.16 at hidden size 64, so
# no logit can pass ~1.6 unless the head itself trains; a pretrained LLM's head gives logits of tens. LoRA (stage
# 2) and stage 1 keep the head frozen: with 0.02 the tiny model's answers won by hundredths of a logit, and which
# token won changed with torch's CPU kernel. At 0.2 (row norm ~1.6) a frozen head leaves room for clear winners.
LM_HEAD_INIT_STD = 0.2


def build_tiny_model(config: SvitLlavaConfig, seed: int = 0) -> SvitLlavaForConditionalGeneration:
    """Randomly initialised model, the same weights for the same seed; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SvitLlavaForConditionalGeneration(config)
        with torch.no_grad():
            model.get_output_embeddings().weight.normal_(mean=0.0, std=LM_HEAD_INIT_STD)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval()


def build_tiny_svit_llava(
    corpus_texts: Iterable[str] = DEFAULT_CORPUS,
    seed: int = 0,
    image_size: int = 28,
    patch_size: int = 14,
    pad: bool = True,
) -> tuple[SvitLlavaForConditionalGeneration, SvitLlavaProcessor]:
    """(model, processor) of a tiny SVIT-LLaVA whose tokenizer is trained on `corpus_texts`."""
    tokenizer = build_tiny_tokenizer(corpus_texts)
    processor = build_tiny_processor(tokenizer, image_size=image_size, patch_size=patch_size, pad=pad)
    model = build_tiny_model(tiny_svit_llava_config(tokenizer, image_size, patch_size), seed=seed)
    return model, processor


def save_tiny_svit_llava(
    output_dir: str | os.PathLike,
    seed: int = 0,
    overwrite: bool = False,
    corpus_texts: Iterable[str] = DEFAULT_CORPUS,
) -> Path:
    """Write a tiny SVIT-LLaVA checkpoint (model + processor) to `output_dir` (`svit model tiny`): what the tiny
    training recipes, tests and a new user on CPU start from. Loads with `AutoModelForImageTextToText` and
    `AutoProcessor` after `import svit_model`, or with `trust_remote_code=True`."""
    check_output_dir(output_dir, overwrite)
    model, processor = build_tiny_svit_llava(corpus_texts, seed=seed)
    return save_checkpoint(model, processor, output_dir, overwrite=overwrite)


def corpus_from_rows(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every message text of rows in the sample schema: what a tiny tokenizer is trained on."""
    return [message["content"] for row in rows for message in row["messages"]]


__all__ = [
    "DEFAULT_CORPUS",
    "LM_HEAD_INIT_STD",
    "build_tiny_model",
    "build_tiny_processor",
    "build_tiny_svit_llava",
    "build_tiny_tokenizer",
    "corpus_from_rows",
    "save_tiny_svit_llava",
    "tiny_svit_llava_config",
    "tiny_text_config",
    "tiny_vision_config",
]
