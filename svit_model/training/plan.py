"""`svit train --config RECIPE --plan`: what a run will need, told before it starts, from configs alone.

The recipe's model is built on the meta device (no weights, nothing downloaded): from its checkpoint's
`config.json` when `--model_name_or_path` exists, else from the recipe's `model_shape` (LLaVA-1.5-7B or -13B:
Vicuna + CLIP ViT-L/14-336 + a 2-layer MLP projector, `MODEL_SHAPES`). The recipe is applied as `train()` applies
it (`set_trainable`, `lora_config` with peft's `get_peft_model`, as TRL's trainer calls it), and the plan counts:

- parameters per group, total and trained;
- model-state memory per GPU for DDP, ZeRO-2, ZeRO-3 and ZeRO-3 with CPU offload, by DeepSpeed's estimators
  (`estimate_zero2/3_model_states_mem_needs`) generalised to frozen parameters: a frozen parameter holds its
  16-bit weight only (2 bytes), a trained one what DeepSpeed counts (2 + 18 bytes);
- activation memory at `max_length` and the per-device batch, with and without activation checkpointing
  (`activation_bytes`, the formula in its docstring);
- steps, samples and tokens per epoch, from the data's lengths when it is here (`--dataset_name`), else from the
  recipe's known size (`DATASET_SIZES`) and an assumed text length (`--text-tokens`);
- hours on `--gpus N` of `--gpu NAME` at `--mfu` (model-FLOPs utilisation), from `flops_per_token`.

A plan whose memory does not fit the GPU under the run's ZeRO stage is printed, then refused in one line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import torch
from accelerate import init_empty_weights
from transformers import AutoConfig, CLIPVisionConfig, LlamaConfig

from svit_dataset.errors import SvitInputError
from svit_dataset.settings import check_number, setting
from svit_model.building import svit_llava_config
from svit_model.configuration_svit_llava import SvitLlavaConfig
from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration
from svit_model.training.model import lora_config, set_trainable, trained_prefixes
from svit_model.training.stages import STAGES, Stage

logger = logging.getLogger(__name__)

GB = 1024**3

# CLIP ViT-L/14 at 336 px (openai/clip-vit-large-patch14-336), the vision tower of LLaVA-1.5.
CLIP_VIT_L_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
# Vicuna-v1.5 (Llama-2) 7B and 13B: lmsys/vicuna-7b-v1.5, lmsys/vicuna-13b-v1.5.
_VICUNA = {
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
VICUNA_7B = {**_VICUNA, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32}  # fmt: skip
VICUNA_13B = {**_VICUNA, "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
              "num_attention_heads": 40, "num_key_value_heads": 40}  # fmt: skip
# `svit model build` adds <image>, <st> and <ed> to Vicuna's 32,000 tokens (the pad token is Vicuna's <unk>).
ADDED_TOKENS = 3


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """A model the plan can shape without its checkpoint, with the published parameter count of its release
    (liuhaotian/llava-v1.5-7b and -13b: vocabulary 32,000, so the three added rows of SVIT-LLaVA's input and
    output embeddings come on top)."""

    vision: dict
    llm: dict
    published_parameters: int

    def config(self) -> SvitLlavaConfig:
        vocab = self.llm["vocab_size"] + ADDED_TOKENS
        text = LlamaConfig(**{**self.llm, "vocab_size": vocab, "pad_token_id": 0})
        return svit_llava_config(CLIPVisionConfig(**self.vision), text, image_token_id=self.llm["vocab_size"])


MODEL_SHAPES = {
    "llava-1.5-7b": ModelShape(CLIP_VIT_L_336, VICUNA_7B, 7_062_902_784),
    "llava-1.5-13b": ModelShape(CLIP_VIT_L_336, VICUNA_13B, 13_350_839_296),
}

# (samples, assumed mean text tokens of a sample) of the datasets the shipped recipes name, for a plan made where
# the data is not (yet): the sizes are exact; the text lengths are rough (a few hundred tokens for instruction
# data of several turns, a short caption with LLaVA's `plain` template for LLaVA-Pretrain); `--text-tokens` and
# the data itself replace them.
DATASET_SIZES = {
    "mix_665k": (665_298, 300),  # SVIT-mix-665K, as `svit build` writes it
    "core_150k": (157_712, 400),
    "blip_laion_cc_sbu_558k.json": (558_128, 20),  # LLaVA-Pretrain
}

# Peak dense bf16 tensor FLOP/s (no sparsity) and memory of the GPUs a plan knows.
GPUS = {
    "A100-40GB": (312e12, 40),
    "A100-80GB": (312e12, 80),
    "H100-80GB": (989e12, 80),
    "H200": (989e12, 141),
    "L40S": (362e12, 48),
    "A10G": (125e12, 24),
    "RTX-4090": (165e12, 24),
    "A6000": (155e12, 48),
}
ZERO_STAGES = ("ddp", "zero2", "zero3", "zero3_offload")
# Of a GPU's memory, what a run may plan on: the CUDA context, the allocator's fragmentation and NCCL buffers
# take the rest.
USABLE_FRACTION = 0.9


@dataclasses.dataclass
class PlanSettings:
    """The hardware a plan is made for (the `--plan` flags of `svit train`)."""

    gpus: int = setting(8, "GPUs of the run, all nodes together")
    gpu: str = setting("A100-80GB", f"GPU model: {', '.join(GPUS)}")
    zero: str = setting("zero3", "the run's DeepSpeed stage (ddp: none)", choices=ZERO_STAGES)
    mfu: float = setting(0.4, "model-FLOPs utilisation assumed for the hours")
    text_tokens: int | None = setting(
        None,
        "mean text tokens of a sample when the data is not here to count",
        show_default="the dataset's in DATASET_SIZES",
    )

    def __post_init__(self):
        check_number("--gpus", self.gpus, 1, 1 << 20)
        check_number("--mfu", self.mfu, 0, 1, above=True)
        check_number("--text-tokens", self.text_tokens, 0, 1 << 20, optional=True)
        if self.gpu not in GPUS:
            raise SvitInputError(f"--gpu {self.gpu}: unknown GPU; known: {', '.join(GPUS)}")
        if self.zero not in ZERO_STAGES:
            raise SvitInputError(f"--zero {self.zero}: one of {', '.join(ZERO_STAGES)}")


# --- the model, shaped on the meta device ------------------------------------------------------------------


def shape_config(model_name_or_path: str | None, model_shape: str | None) -> tuple[SvitLlavaConfig, str]:
    """(config, where it came from): the checkpoint's when it is here, else the recipe's `model_shape`."""
    folder = Path(model_name_or_path or "")
    if model_name_or_path and (folder / "config.json").is_file():
        return AutoConfig.from_pretrained(folder), f"{folder}/config.json"
    if model_shape in MODEL_SHAPES:
        return MODEL_SHAPES[model_shape].config(), f"model_shape {model_shape}"
    if model_shape and (Path(model_shape) / "config.json").is_file():
        return AutoConfig.from_pretrained(model_shape), f"{model_shape}/config.json"
    raise SvitInputError(
        f"--plan: cannot shape the model: --model_name_or_path {model_name_or_path} has no config.json here, and "
        f"the recipe's model_shape is {model_shape or 'not set'}; set model_shape to one of "
        f"{', '.join(MODEL_SHAPES)} or a folder holding an SVIT-LLaVA config.json"
    )


def meta_model(config: SvitLlavaConfig) -> torch.nn.Module:
    with init_empty_weights(include_buffers=True):
        return SvitLlavaForConditionalGeneration(config)


def apply_recipe(
    model: torch.nn.Module, stage: Stage, model_args, train_vision_tower: bool
) -> torch.nn.Module:
    """What trains, as `train()` sets it: the stage's parts in full, then LoRA through peft as TRL applies it."""
    set_trainable(model, trained_prefixes(stage, model_args.use_peft, train_vision_tower))
    vocab = model.config.text_config.vocab_size
    grounding_rows = [vocab - 2, vocab - 1]  # <st> and <ed>: the last rows `svit model build` added
    peft_config = lora_config(model_args, stage, train_vision_tower, grounding_rows)
    if peft_config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


GROUPS = (
    ("LoRA adapters", ("lora_",)),
    ("<st>/<ed> rows", ("trainable_tokens",)),
    ("vision tower", ("vision_tower",)),
    ("projector", ("multi_modal_projector",)),
    ("LM head", ("lm_head",)),
    ("language model", ("language_model",)),
)


def group_of(name: str) -> str:
    for group, marks in GROUPS:
        if any(mark in name for mark in marks):
            return group
    return "other"


@dataclasses.dataclass
class ParameterCounts:
    total: Counter  # by group, the model as built (no adapter, no copy)
    trained: Counter  # by group, after the recipe
    held: int  # every parameter the run holds (with adapters and peft's copies of modules it trains in full)
    held_trained: int
    largest_module: int  # parameters of the largest module ZeRO-3 gathers at once


def count_parameters(total: Counter, planned: torch.nn.Module) -> ParameterCounts:
    """`total`: the model's parameters by group as built; the rest is counted on `planned` (the recipe applied)."""
    trained = Counter()
    held = held_trained = 0
    for name, param in planned.named_parameters():
        held += param.numel()
        if param.requires_grad:
            trained[group_of(name)] += param.numel()
            held_trained += param.numel()
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in planned.modules())
    return ParameterCounts(total, trained, held, held_trained, largest)


# --- memory ---------------------------------------------------------------------------------------------------


def model_state_bytes(params: int, trained: int, largest: int, zero: str, gpus: int) -> int:
    """Model-state bytes per GPU: DeepSpeed's estimators (no offload, `zero_init`) with frozen parameters holding
    their 16-bit weight only. All trained (`trained == params`), these are DeepSpeed's own figures:
    ZeRO-2: 2P + 18P/N; ZeRO-3: 4L + 18P/N (L: the largest layer, gathered whole); offload: 4L on the GPU."""
    frozen = params - trained
    if zero == "ddp":
        return 2 * params + 18 * trained
    if zero == "zero2":
        return 2 * params + int(18 * trained / gpus)
    if zero == "zero3":
        return 4 * largest + int((2 * frozen + 18 * trained) / gpus)
    return 4 * largest  # zero3_offload: parameters and optimizer states in CPU memory


def activation_bytes(config: SvitLlavaConfig, batch: int, length: int, checkpointing: bool) -> int:
    """Activation bytes per GPU of the language model at `batch` sequences of `length` tokens, in bf16.

    Per layer Korthikanti et al. (2022) count 34·s·b·h bytes plus 5·a·s²·b for attention scores; PyTorch's
    fused attention (SDPA, what the model uses) keeps no scores, so 34·s·b·h. With activation checkpointing
    each layer keeps its input (2·s·b·h) and one layer at a time is recomputed whole (34·s·b·h). The logits add
    s·b·V·6 (bf16, and float32 in the loss). The vision tower is frozen unless trained: it stores nothing.
    """
    text = config.text_config
    s, b, h, layers = length, batch, text.hidden_size, text.num_hidden_layers
    layer = 34 * s * b * h
    stored = layers * 2 * s * b * h + layer if checkpointing else layers * layer
    return stored + 6 * s * b * text.vocab_size


# --- time -----------------------------------------------------------------------------------------------------


def flops_per_token(llm_parameters: int, method: str, checkpointing: bool) -> int:
    """Training FLOPs per text token of the language model (P: its parameters but the input embeddings):
    forward 2P; backward 4P when its weights train (full), 2P when only gradients pass through (LoRA, stage 1);
    activation checkpointing recomputes the forward (+2P)."""
    backward = 4 if method == "full" else 2
    return (2 + backward + (2 if checkpointing else 0)) * llm_parameters


@dataclasses.dataclass
class DataCounts:
    samples: int
    tokens: int  # text and image tokens, each sample cut at max_length
    images: int
    source: str  # how they were counted


def count_data(script_args, max_length: int, image_tokens: int, text_tokens: int | None) -> DataCounts:
    """Samples and tokens per epoch: the data's own (words for tokens, as the length-grouped sampler counts
    them), else the recipe's known size with `text_tokens` (else the table's) a sample."""
    name = script_args.dataset_name or ""
    if Path(name).exists():
        from svit_model.training.data import load_training_data
        from svit_model.training.sampler import modality_lengths

        data = load_training_data(
            name, script_args.dataset_config, script_args.dataset_train_split, script_args.image_folder, True
        )
        lengths = modality_lengths(data.dataset, image_tokens)
        tokens = sum(min(abs(n), max_length) for n in lengths)
        images = sum(n > 0 for n in lengths)
        return DataCounts(len(lengths), tokens, images, f"{name}: lengths counted (words as tokens)")
    known = DATASET_SIZES.get(script_args.dataset_config or "") or DATASET_SIZES.get(Path(name).name)
    if known is None:
        raise SvitInputError(
            f"--plan: --dataset_name {name}: no such file or folder, and not a dataset of known size "
            f"({', '.join(DATASET_SIZES)}); pass the data to count it"
        )
    size, assumed = known
    text_tokens = assumed if text_tokens is None else text_tokens
    per_sample = min(image_tokens + text_tokens, max_length)
    return DataCounts(
        size, size * per_sample, size, f"known size; {text_tokens} text tokens a sample assumed"
    )


# --- the plan -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingPlan:
    recipe: str
    shape_source: str
    method: str
    parameters: ParameterCounts
    published_parameters: int | None
    memory_gb: dict[str, dict[str, float]]  # stage -> {model states, activations, total}, per GPU
    data: DataCounts
    steps_per_epoch: int
    hours: float
    settings: PlanSettings
    checkpointing: bool
    batch: int
    max_length: int

    @property
    def fits(self) -> bool:
        return self.memory_gb[self.settings.zero]["total"] <= self.usable_gb

    @property
    def usable_gb(self) -> float:
        return GPUS[self.settings.gpu][1] * USABLE_FRACTION

    def report(self) -> str:
        p, s = self.parameters, self.settings
        lines = [f"plan of {self.recipe} ({self.method}; model from {self.shape_source})", "  parameters:"]
        for group, _ in GROUPS:
            total, trained = p.total.get(group, 0), p.trained.get(group, 0)
            if total or trained:
                lines.append(f"    {group:16s} {total:>15,}  trained {trained:>15,}")
        published = (
            f"  (published release: {self.published_parameters:,}; +{sum(p.total.values()) - self.published_parameters:,}"
            " for the added <image>, <st>, <ed> rows)"
            if self.published_parameters
            else ""
        )
        lines.append(
            f"    {'total':16s} {sum(p.total.values()):>15,}  trained {p.held_trained:>15,}{published}"
        )
        lines.append(
            f"  memory per GPU on {s.gpus} x {s.gpu} (batch {self.batch} x {self.max_length} tokens; activation "
            f"checkpointing {'on' if self.checkpointing else 'off'}), GB:"
        )
        for zero, row in self.memory_gb.items():
            mark = " <- this run" if zero == s.zero else ""
            verdict = "fits" if row["total"] <= self.usable_gb else "does not fit"
            lines.append(
                f"    {zero:14s} model states {row['model_states']:7.1f} + activations {row['activations']:6.1f}"
                f" = {row['total']:7.1f}  {verdict}{mark}"
            )
        lines.append(
            f"    (without activation checkpointing the activations would be "
            f"{self.memory_gb[s.zero]['activations_without_checkpointing']:.1f} GB; usable: "
            f"{USABLE_FRACTION:.0%} of {GPUS[s.gpu][1]} GB)"
        )
        d = self.data
        lines.append(
            f"  per epoch: {d.samples:,} samples, {self.steps_per_epoch:,} steps, {d.tokens:,} tokens ({d.source})"
        )
        lines.append(
            f"  time: ~{self.hours:.1f} h on {s.gpus} x {s.gpu} at {s.mfu:.0%} MFU "
            f"({GPUS[s.gpu][0] / 1e12:.0f} TFLOP/s bf16 each)"
        )
        return "\n".join(lines)


def memory_table(
    counts: ParameterCounts, config, batch: int, length: int, checkpointing: bool, gpus: int
) -> dict[str, dict[str, float]]:
    """GB per GPU under each ZeRO stage: model states, activations and their sum (activations do not depend on
    the stage), and the activations without checkpointing, for the report."""
    activations = activation_bytes(config, batch, length, checkpointing) / GB
    without = activation_bytes(config, batch, length, False) / GB
    table = {}
    for zero in ZERO_STAGES:
        states = model_state_bytes(counts.held, counts.held_trained, counts.largest_module, zero, gpus) / GB
        table[zero] = {
            "model_states": states,
            "activations": activations,
            "total": states + activations,
            "activations_without_checkpointing": without,
        }
    return table


def make_plan(script_args, training_args, model_args, settings: PlanSettings, recipe: str) -> TrainingPlan:
    """The plan of a parsed `svit train` command line (`--plan`)."""
    stage = STAGES[script_args.stage]
    config, source = shape_config(model_args.model_name_or_path, script_args.model_shape)
    model = meta_model(config)
    total = Counter()
    for name, param in model.named_parameters():  # before the recipe: peft changes the model in place
        total[group_of(name)] += param.numel()
    counts = count_parameters(total, apply_recipe(model, stage, model_args, script_args.train_vision_tower))
    method = "lora" if model_args.use_peft else ("full" if stage.name == "finetune" else "projector")
    checkpointing = bool(training_args.activation_checkpointing or training_args.gradient_checkpointing)
    batch, length = training_args.per_device_train_batch_size, training_args.max_length
    memory = memory_table(counts, config, batch, length, checkpointing, settings.gpus)
    image_tokens = config.image_seq_length  # LLaVA-1.5 at 336 px: 576
    data = count_data(script_args, length, image_tokens, settings.text_tokens)
    per_step = batch * training_args.gradient_accumulation_steps * settings.gpus
    steps = -(-data.samples // per_step)
    llm = (
        counts.total["language model"]
        + counts.total["LM head"]
        - config.text_config.vocab_size * config.text_config.hidden_size
    )
    vision_params = counts.total["vision tower"]
    flops = flops_per_token(llm, "full" if method == "full" else "frozen", checkpointing) * data.tokens
    flops += 2 * vision_params * (image_tokens + 1) * data.images  # the frozen tower, forward only
    peak = GPUS[settings.gpu][0]
    hours = flops / (settings.gpus * peak * settings.mfu) / 3600
    shape = MODEL_SHAPES.get(script_args.model_shape) if source.startswith("model_shape") else None
    published = shape.published_parameters if shape else None
    return TrainingPlan(
        recipe,
        source,
        method,
        counts,
        published,
        memory,
        data,
        steps,
        hours,
        settings,
        checkpointing,
        batch,
        length,
    )


def check_fits(plan: TrainingPlan) -> None:
    """Refuse, in one line, a plan that does not fit under the run's ZeRO stage."""
    if plan.fits:
        return
    s = plan.settings
    fitting = [z for z, row in plan.memory_gb.items() if row["total"] <= plan.usable_gb]
    raise SvitInputError(
        f"--plan: {plan.recipe} needs ~{plan.memory_gb[s.zero]['total']:.0f} GB per GPU under {s.zero} on "
        f"{s.gpus} x {s.gpu} (usable {plan.usable_gb:.0f} GB): lower per_device_train_batch_size and raise "
        "gradient_accumulation_steps, turn on activation_checkpointing"
        + (f", or launch with {' / '.join(fitting)}" if fitting else ", or use more or larger GPUs")
    )


__all__ = ["MODEL_SHAPES", "PlanSettings", "TrainingPlan", "check_fits", "make_plan"]
