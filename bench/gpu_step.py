"""Stage-2 training steps of a LLaVA-1.5-7B-shaped SVIT-LLaVA on one GPU: tokens/s and model FLOPs utilisation.

Random weights built from configs (CLIP ViT-L/14-336 + mlp2x_gelu + a Vicuna-7B-shaped Llama: `svit train
--plan`'s `MODEL_SHAPES`, `--shape llava-1.5-13b` for 13B), as a real SVIT-LLaVA: nothing is downloaded. bf16, SDPA attention,
gradient checkpointing, sequences of `--seq-len` tokens (576 image tokens, the rest text, half of it trained),
AdamW. `--mode full` trains projector + LLM (vision tower frozen, LLaVA-1.5's stage 2); `--mode lora` trains
LoRA r128 on the LLM's linear layers (by module path) and the projector, as the SVIT-v1.5 LoRA recipe.

Model FLOPs per step: 6 x (trained-path LLM + projector parameters) x tokens for full training, 4 x (frozen
LLM) x tokens + 6 x (LoRA + projector) x tokens for LoRA (no weight gradients for frozen weights), plus
causal attention (6 x layers x hidden x seq_len per token in training) and the frozen vision tower's forward
(2 x its parameters x image tokens). MFU = model FLOPs / step time / `--peak-tflops` (H100/H200 SXM dense bf16:
989). Beside what it measures it prints what `svit train --plan` predicts for the same step (one GPU, no ZeRO):
memory (model states + activations) and the step time at `--mfu`.

    .venv/bin/python bench/gpu_step.py --mode full --batch-size 4 [--steps 10 --seq-len 2048]
    .venv/bin/python bench/gpu_step.py --mode lora --batch-size 8
    .venv/bin/python bench/gpu_step.py --tiny          # the tiny model on CPU: checks the script runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration  # noqa: E402
from svit_model.tiny import build_tiny_tokenizer, tiny_svit_llava_config  # noqa: E402
from svit_model.training.model import lora_target_pattern  # noqa: E402
from svit_model.training.plan import (  # noqa: E402
    MODEL_SHAPES,
    activation_bytes,
    flops_per_token,
    model_state_bytes,
)
from svit_model.training.stages import DEFAULT_LORA_TARGETS, LANGUAGE_MODEL  # noqa: E402


def build(args):
    if args.tiny:
        tokenizer = build_tiny_tokenizer()
        config = tiny_svit_llava_config(tokenizer)
    else:
        config = MODEL_SHAPES[args.shape].config()
    config.text_config._attn_implementation = config.vision_config._attn_implementation = "sdpa"
    with torch.device(args.device):
        model = SvitLlavaForConditionalGeneration(config).to(args.dtype)
    return model, config


def prepare(model, mode: str):
    """Freeze as the stage says; returns (model, trained params, frozen LLM params)."""
    for name, param in model.named_parameters():
        param.requires_grad_(mode == "full" and not name.startswith("model.vision_tower"))
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=128,
                lora_alpha=256,
                target_modules=lora_target_pattern(LANGUAGE_MODEL, DEFAULT_LORA_TARGETS),
                modules_to_save=["multi_modal_projector"],
            ),
        )
    return model


def batch(config, args):
    image_tokens = config.image_seq_length
    text = args.seq_len - image_tokens
    vocab = config.text_config.vocab_size
    ids = torch.randint(0, vocab, (args.batch_size, args.seq_len))
    # image tokens only where the images are placed
    ids[ids == config.image_token_id] = (config.image_token_id + 1) % vocab
    ids[:, 1 : 1 + image_tokens] = config.image_token_id
    labels = ids.clone()
    labels[:, : 1 + image_tokens + text // 2] = -100  # prompt and image untrained; the answer half trained
    size = config.vision_config.image_size
    pixels = torch.randn(args.batch_size, 3, size, size)
    return {
        "input_ids": ids.to(args.device),
        "attention_mask": torch.ones_like(ids).to(args.device),
        "pixel_values": pixels.to(args.device, args.dtype),
        "labels": labels.to(args.device),
    }


def model_flops_per_step(model, config, args) -> float:
    named = dict(model.named_parameters())
    vision = sum(p.numel() for n, p in named.items() if "vision_tower" in n)
    trained = sum(p.numel() for n, p in named.items() if p.requires_grad)
    frozen_llm = sum(p.numel() for n, p in named.items() if not p.requires_grad and "vision_tower" not in n)
    tokens = args.batch_size * args.seq_len
    text = config.text_config
    attention = 6 * text.num_hidden_layers * text.hidden_size * args.seq_len * tokens
    dense = 6 * trained * tokens + 4 * frozen_llm * tokens
    return dense + attention + 2 * vision * config.image_seq_length * args.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["full", "lora"], default="full")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    parser.add_argument("--tiny", action="store_true", help="the tiny model on CPU, fp32 (checks the script)")
    parser.add_argument("--shape", choices=sorted(MODEL_SHAPES), default="llava-1.5-7b")
    parser.add_argument("--mfu", type=float, default=0.4, help="the utilisation the plan's time assumes")
    args = parser.parse_args()
    if args.tiny:
        args.device, args.dtype = "cpu", torch.float32
        args.seq_len, args.batch_size, args.steps, args.warmup = 64, 2, 3, 1
    else:
        if not torch.cuda.is_available():
            sys.exit("bench/gpu_step.py needs a CUDA GPU (or --tiny for a CPU check)")
        args.device, args.dtype = "cuda", torch.bfloat16

    torch.manual_seed(0)
    model, config = build(args)
    model = prepare(model, args.mode)
    if not args.tiny:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if args.mode == "lora":
            model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=not args.tiny
    )
    inputs = batch(config, args)
    flops = model_flops_per_step(model, config, args)

    def step():
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    tokens_per_s = args.batch_size * args.seq_len / seconds
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(
        f"{'tiny' if args.tiny else 'LLaVA-1.5-7B-shaped'} {args.mode}: {total / 1e9:.3f} B params "
        f"({trained / 1e6:.1f} M trained), batch {args.batch_size} x {args.seq_len} tokens, {args.dtype}"
    )
    print(f"  {seconds * 1000:.0f} ms/step, {tokens_per_s:,.0f} tokens/s, loss {loss.item():.3f}")
    print(
        f"  model FLOPs {flops / seconds / 1e12:.1f} TFLOP/s, MFU {flops / seconds / 1e12 / args.peak_tflops:.1%}"
    )
    if args.device == "cuda":
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print("  " + planned(model, config, args))


def planned(model, config, args) -> str:
    """What `svit train --plan` predicts for this step on one GPU without ZeRO: memory and time at --mfu."""
    params = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    checkpointing = not args.tiny
    states = model_state_bytes(params, trained, largest, "ddp", 1)
    activations = activation_bytes(config, args.batch_size, args.seq_len, checkpointing)
    text = config.text_config
    llm = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" not in n and "lora_" not in n)
    llm -= text.vocab_size * text.hidden_size  # the input embeddings: a lookup, no FLOPs
    flops = flops_per_token(llm, args.mode if args.mode == "full" else "frozen", checkpointing)
    seconds = flops * args.batch_size * args.seq_len / (args.peak_tflops * 1e12 * args.mfu)
    return (
        f"plan: {(states + activations) / 2**30:.1f} GiB (model states {states / 2**30:.1f} + activations "
        f"{activations / 2**30:.1f}), {seconds * 1000:.0f} ms/step at {args.mfu:.0%} MFU of {args.peak_tflops:g} TFLOP/s"
    )


if __name__ == "__main__":
    main()
