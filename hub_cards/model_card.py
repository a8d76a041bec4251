"""The model card (README.md of a Hub model repo) of an SVIT-LLaVA training run, from the facts `svit train`
gathers (`svit_model.training.train.run_facts`): huggingface_hub's `ModelCard` with `ModelCardData` metadata
(base model, datasets, licence, `pipeline_tag: image-text-to-text`, `library_name: transformers`), then the
stage, the hyper-parameters, the loss curve and code to use the model. Imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from hub_cards.dataset_card import SVIT_CITATION

LICENSE = "cc-by-4.0"  # SVIT's data licence; the base LLM's licence applies too (stated in the body)
STAGE_TEXT = {
    "pretrain": "stage 1 (pretraining: only the projector trains; LLaVA's plain template, image + caption)",
    "finetune": "stage 2 (visual instruction tuning; vicuna_v1 template, assistant tokens only)",
}


def _hub_id(value: str | None) -> str | None:
    """A Hub id (`org/name`) as card metadata wants it; local paths are not ids."""
    if (
        not value
        or os.path.isabs(value)
        or value.startswith(".")
        or value.count("/") != 1
        or os.path.exists(value)
    ):
        return None
    return value


def card_data(facts: dict) -> ModelCardData:
    datasets = [d for d in (_hub_id(name) for name in facts.get("datasets", [])) if d]
    return ModelCardData(
        base_model=_hub_id(facts.get("base_model")),
        datasets=datasets or None,
        license=LICENSE,
        language=["en"],
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["svit", "llava", "svit-llava", "grounding", "trl", "sft", facts.get("method", "full")],
    )


def _table(rows: dict) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| `{key}` | {value} |" for key, value in rows.items() if value is not None]
    return "\n".join(lines)


def card_body(facts: dict) -> str:
    name = facts.get("hub_model_id") or "path/to/this/model"
    method = (
        "LoRA on the language model, projector in full"
        if facts.get("method") == "lora"
        else "full fine-tuning"
    )
    counts = facts.get("counts") or {}
    lora = facts.get("lora")
    parts = [
        f"# {name.split('/')[-1]}",
        "",
        f"SVIT-LLaVA (LLaVA-1.5 architecture) trained with [svit](https://arxiv.org/abs/2307.04087)'s `svit train` "
        f"on TRL: {STAGE_TEXT.get(facts.get('stage'), facts.get('stage'))}, {method}.",
        "",
        f"- base model: `{facts.get('base_model')}`",
        f"- data: {', '.join(f'`{d}`' for d in facts.get('datasets', []))}"
        + (f" (config `{facts['dataset_config']}`)" if facts.get("dataset_config") else ""),
        f"- steps: {facts.get('global_step', 0)}, tokens trained: {counts.get('tokens_trained', 0):,}"
        + (f", final loss {facts['final_loss']:.4f}" if facts.get("final_loss") is not None else ""),
    ]
    if facts.get("summary"):
        parts.append(f"- {facts['summary']}")
    parts += [
        "",
        "## Hyper-parameters",
        "",
        _table(
            {**facts.get("hyperparameters", {}), **(lora and {f"lora_{k}": v for k, v in lora.items()} or {})}
        ),
    ]
    if facts.get("loss_curve"):
        parts += ["", "## Loss", "", f"![training loss]({facts['loss_curve']})"]
    load = (
        "from peft import PeftModel  # a LoRA run; or merge it first: svit model merge --input RUN --output DIR\n"
        if facts.get("method") == "lora"
        else ""
    )
    parts += [
        "",
        "## Use",
        "",
        "Grounded answers are `<st>phrase<ed> [x1, y1, x2, y2]`; `post_process_generation` returns the boxes in "
        "the original image's pixels.",
        "",
        "```python",
        "import svit_model  # registers svit_llava; without svit: trust_remote_code=True",
        "from PIL import Image",
        "from transformers import AutoModelForImageTextToText, AutoProcessor",
        load.rstrip("\n"),
        f'model = AutoModelForImageTextToText.from_pretrained("{name}")',
        f'processor = AutoProcessor.from_pretrained("{name}")',
        'image = Image.open("image.jpg")',
        'messages = [{"role": "user", "content": [{"type": "image", "image": image}, '
        '{"type": "text", "text": "Where is the dog? Answer with bounding boxes."}]}]',
        "inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, "
        'return_dict=True, return_tensors="pt")',
        "output = model.generate(**inputs, max_new_tokens=128)",
        'text = processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)',
        "clean_text, entities = processor.post_process_generation(text, image_size=image.size)",
        "```",
        "",
        "## Licence",
        "",
        f"SVIT data: {LICENSE.upper()}. The base LLM's licence (e.g. Llama 2's for Vicuna) applies to the weights.",
        "",
        "## Citation",
        "",
        "```bibtex",
        SVIT_CITATION,
        "```",
    ]
    return "\n".join(line for line in parts if line is not None) + "\n"


def model_card(facts: dict) -> ModelCard:
    """The card of a run's facts (see the module docstring)."""
    data = card_data(facts)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(facts)}")


def write_model_card(facts: dict, output_dir: str | os.PathLike) -> Path:
    """Write README.md into `output_dir` (atomically); `svit train` passes this as its card writer."""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".README.md.tmp-{os.getpid()}")
    try:
        tmp.write_text(str(model_card(facts)), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["card_data", "model_card", "write_model_card"]
