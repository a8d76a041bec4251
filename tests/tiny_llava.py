"""A tiny LLaVA built in code: the test fixture for everything that trains or generates.

Plain transformers classes, nothing downloaded: a byte-level BPE tokenizer trained on the fly, a 2-layer CLIP
vision tower, an `mlp2x_gelu` projector and a 2-layer Llama, wired as `LlavaForConditionalGeneration` with a
`LlavaProcessor` whose chat template is LLaVA-1.5's vicuna_v1 (REFERENCE.md section 4):

    <s>SYSTEM USER: <image>\\nQ ASSISTANT: A</s>USER: Q2 ASSISTANT: A2</s>

The assistant text and its `</s>` sit inside `{% generation %}` markers, so TRL's `assistant_only_loss=True`
trains on exactly those tokens. Building takes well under a second and is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessorPil,  # the PIL backend: `CLIPImageProcessor` needs torchvision, which we never install
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

if TYPE_CHECKING:
    import datasets
    from trl import SFTTrainer

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD, IMAGE_TOKEN)

# vicuna_v1's system prompt (LLaVA-1.5 `conv_vicuna_v1`).
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# vicuna_v1: sep " " after the system prompt and user turns, sep2 "</s>" after assistant turns; the generation
# prompt ends in "ASSISTANT:" with no space, as upstream. Content is either a plain string or TRL's / transformers'
# list of blocks ({"type": "image"} renders as "<image>\n", {"type": "text"} as its text).
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}"
    "{%- for block in content -%}"
    "{%- if block['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- elif block['type'] == 'text' -%}{{ block['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ render(messages[0]['content']) + ' ' }}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    '{{ "' + VICUNA_SYSTEM + ' " }}{%- set turns = messages -%}'
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'USER: ' + render(message['content']) + ' ' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'ASSISTANT: ' }}{% generation %}{{ render(message['content']) + eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)


def build_tiny_tokenizer(
    corpus_texts: Iterable[str], vocab_size: int = 512, added_tokens: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `corpus_texts` (plus the chat template's own words).

    Byte-level: any text encodes without `<unk>` and decodes back exactly. Like Llama, encoding with special
    tokens prepends `<s>`. `added_tokens` (e.g. grounding markers) become single, non-special added tokens.
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
    if added_tokens:
        fast.add_tokens(list(added_tokens))
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_processor(
    tokenizer: PreTrainedTokenizerFast, image_size: int = 28, patch_size: int = 14
) -> LlavaProcessor:
    """LLaVA processor: CLIP preprocessing to `image_size`, `(image_size // patch_size) ** 2` image tokens."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",  # drop CLS, as LLaVA-1.5
        num_additional_image_tokens=1,  # CLIP's CLS
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )


def tiny_llava_config(
    tokenizer: PreTrainedTokenizerFast, image_size: int = 28, patch_size: int = 14
) -> LlavaConfig:
    """2-layer CLIP (hidden 32) + mlp2x_gelu projector + 2-layer Llama (hidden 64) sized to `tokenizer`."""
    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=32,
    )
    text_config = LlamaConfig(
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
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,  # LLaVA-1.5 reads the penultimate CLIP layer
    )


def build_tiny_model(config: LlavaConfig, seed: int = 0) -> LlavaForConditionalGeneration:
    """Randomly initialised model, the same weights for the same seed; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval()


def build_tiny_llava(
    corpus_texts: Iterable[str],
    seed: int = 0,
    image_size: int = 28,
    patch_size: int = 14,
    added_tokens: Sequence[str] = (),
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """(model, processor) of a tiny LLaVA whose tokenizer is trained on `corpus_texts`."""
    tokenizer = build_tiny_tokenizer(corpus_texts, added_tokens=added_tokens)
    processor = build_tiny_processor(tokenizer, image_size=image_size, patch_size=patch_size)
    model = build_tiny_model(tiny_llava_config(tokenizer, image_size, patch_size), seed=seed)
    return model, processor


def corpus_from_rows(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every message text of rows in the sample schema: what the tiny tokenizer is trained on."""
    return [message["content"] for row in rows for message in row["messages"]]


def train_few_steps(
    dataset: datasets.Dataset,
    tmp_path: str | Path,
    max_steps: int = 3,
    model: LlavaForConditionalGeneration | None = None,
    processor: LlavaProcessor | None = None,
    seed: int = 0,
    **sft_overrides: Any,
) -> SFTTrainer:
    """Train with stock `trl.SFTTrainer` on rows of the sample schema; returns the trainer after training.

    Builds a tiny LLaVA from the dataset's texts unless `model` and `processor` are given. `sft_overrides`
    replace any `SFTConfig` field set here. Only `messages` and `images` reach TRL's collator: TRL keeps those
    (its signature columns for vision data) and drops the other schema columns itself.
    """
    from trl import SFTConfig, SFTTrainer  # heavy import, only for the tests that train

    if (model is None) != (processor is None):
        raise ValueError("train_few_steps: pass both `model` and `processor`, or neither.")
    if model is None:
        model, processor = build_tiny_llava(corpus_from_rows(dataset.select_columns(["messages"])), seed=seed)
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
