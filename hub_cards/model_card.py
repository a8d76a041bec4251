"""The model card (README.md of a Hub model repo) of an SVIT-LLaVA training run, from the facts `svit train`
gathers (`svit_model.training.train.run_facts`): huggingface_hub's `ModelCard` with `ModelCardData` metadata
(base model, datasets, licence, `pipeline_tag: image-text-to-text`, `library_name: transformers`), then the
stage, the hyper-parameters, the loss curve and code to use the model. Imports no torch.

`svit eval` writes one `results.json` per run (`svit_model.evaluation.results`); `model_index_entries` turns
them into the card's `model-index` (huggingface_hub's `EvalResult`), `add_eval_results` writes them into a
model folder's card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hub_cards.dataset_card import SVIT_CITATION
from svit_dataset.files import write_text_atomic

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


def _write_card(card: ModelCard, path: Path) -> Path:
    """`card` as `path`, atomically (svit_dataset.files, the one home of atomic writes)."""
    write_text_atomic(path, str(card))
    return path


def write_model_card(facts: dict, output_dir: str | os.PathLike) -> Path:
    """Write README.md into `output_dir` (atomically); `svit train` passes this as its card writer."""
    return _write_card(model_card(facts), Path(output_dir) / "README.md")


# --- model-index from `svit eval` results ---------------------------------------------------------------

# benchmark -> (task type, [(metric key in results.json "metrics", model-index metric type, display name)])
_INDEXED = {
    "mme": (
        "visual-question-answering",
        [("perception", "mme_perception", "MME perception"), ("cognition", "mme_cognition", "MME cognition")],
    ),
    "pope": (
        "visual-question-answering",
        [
            ("accuracy", "accuracy", "POPE accuracy"),
            ("f1", "f1", "POPE F1"),
            ("yes_ratio", "yes_ratio", "POPE yes-ratio"),
        ],
    ),
    "grounding": (
        "image-text-to-text",
        [
            ("acc@0.5", "acc@0.5", "ACC@0.5 (IoU >= 0.5)"),
            ("mean_iou", "mean_iou", "mean IoU"),
            ("phrase_recall", "phrase_recall", "phrase recall"),
            ("mean_entity_iou", "mean_entity_iou", "mean entity IoU"),
            ("entity_acc@0.5", "entity_acc@0.5", "entity ACC@0.5"),
        ],
    ),
}


def model_index_entries(results: dict) -> list[EvalResult]:
    """The `model-index` entries of one `results.json` (POPE: one group per category)."""
    benchmark = results["benchmark"]
    if benchmark not in _INDEXED:
        raise ValueError(f"results.json of benchmark {benchmark!r}: svit cards index {', '.join(_INDEXED)}")
    task_type, wanted = _INDEXED[benchmark]
    dataset = results.get("dataset") or {}
    metrics = results["metrics"]
    groups = metrics["categories"].items() if benchmark == "pope" else [(dataset.get("config"), metrics)]
    entries = []
    for config, values in groups:
        for key, metric_type, name in wanted:
            if isinstance(values.get(key), int | float):
                entries.append(
                    EvalResult(
                        task_type=task_type,
                        dataset_type=str(dataset.get("type") or benchmark),
                        dataset_name=str(dataset.get("name") or benchmark),
                        dataset_config=config,
                        dataset_split=dataset.get("split"),
                        metric_type=metric_type,
                        metric_value=round(float(values[key]), 4),
                        metric_name=f"{name} ({config})" if benchmark == "pope" else name,
                    )
                )
    return entries


def add_eval_results(model_dir: str | os.PathLike, results_files: list[str | os.PathLike]) -> Path:
    """Write the `model-index` of `results_files` into `model_dir`'s README.md (made when missing); entries of
    the same task, dataset and metric are replaced, others kept."""
    path = Path(model_dir) / "README.md"
    card = ModelCard.load(path) if path.is_file() else ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n")
    new = [
        e for f in results_files for e in model_index_entries(json.loads(Path(f).read_text(encoding="utf-8")))
    ]
    key = lambda e: (e.task_type, e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type)  # noqa: E731
    fresh = {key(e) for e in new}
    card.data.eval_results = [e for e in (card.data.eval_results or []) if key(e) not in fresh] + new
    card.data.model_name = card.data.model_name or Path(model_dir).resolve().name
    return _write_card(card, path)


__all__ = ["add_eval_results", "card_data", "model_card", "model_index_entries", "write_model_card"]
