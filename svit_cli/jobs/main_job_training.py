"""The main job's training part (`svit demo`): a short `svit train` run of the tiny SVIT-LLaVA on the built bundled
sample, ending in a checkpoint that reloads with the Auto classes and answers a question about an image."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from svit_cli.jobs.train import parse_train_arguments
from svit_dataset.local_tables import load_table_fresh
from svit_model.tiny import save_tiny_svit_llava

logger = logging.getLogger(__name__)


def run_training_part(
    dataset_dir: str | Path,
    output_dir: str | Path,
    dataset_config: str = "referring_qa",
    steps: int = 30,
    print_fn=print,
) -> dict:
    """`svit model tiny` then `svit train --config tiny-stage2-full` for `steps` steps on `dataset_dir`, reload the
    run with `AutoModelForImageTextToText` / `AutoProcessor` and generate one answer."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from svit_model.training.train import train

    output_dir = Path(output_dir)
    tiny = save_tiny_svit_llava(output_dir / "tiny-svit-llava", overwrite=True)
    argv = [
        "--config",
        "tiny-stage2-full",
        "--model_name_or_path",
        str(tiny),
        "--dataset_name",
        str(dataset_dir),
    ]
    argv += ["--dataset_config", dataset_config, "--output_dir", str(output_dir / "tiny-stage2-full")]
    argv += ["--overwrite_output_dir", "true", "--max_steps", str(steps), "--save_steps", str(steps)]
    argv += ["--disable_tqdm", "true"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains fastest on one thread
    try:
        result = train(*parse_train_arguments(argv))
    finally:
        torch.set_num_threads(threads)
    print_fn(f"Trained the tiny SVIT-LLaVA: {result.summary.removeprefix('svit train: ')}")
    print_fn(f"  checkpoint {result.output_dir}, loss curve {result.loss_curve}")

    model = AutoModelForImageTextToText.from_pretrained(result.output_dir).eval()
    processor = AutoProcessor.from_pretrained(result.output_dir)
    row = load_table_fresh(dataset_dir, dataset_config, split="train")[0]
    image = row["images"][0].convert("RGB")
    question = row["messages"][0]["content"]
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    answer = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    print_fn(f"  reloaded with AutoModelForImageTextToText; Q: {question}")
    print_fn(f"  A ({steps} steps of training, so far from right): {answer[:120]}")
    return {"result": result, "question": question, "answer": answer}


__all__ = ["run_training_part"]
