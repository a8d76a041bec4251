"""The main job on the bundled sample, model part: a tiny SVIT-LLaVA answers a question with grounded boxes.

Builds the tiny model (`svit_model.tiny`), teaches it one grounded answer of the bundled sample (a few
dozen optimizer steps on CPU, so that what it writes is grounded text rather than noise), asks the question
about the image, and prints the answer parsed by `SvitLlavaProcessor.post_process_generation`: phrases with
boxes in the original image's pixels. The processor pads the image to a square (LLaVA-1.5), so the model
reads and writes boxes in the padded frame; the parsed boxes are back in the original image.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_path, check_output_apart, check_replaceable
from svit_dataset.quality import QualityReport
from svit_dataset.reader import iter_samples
from svit_dataset.release import release_file
from svit_dataset.schema import REFERRING_QA
from svit_dataset.vg import ImageIndex
from svit_model.draw import draw_entities
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows

logger = logging.getLogger(__name__)

DEMO_QUESTION = "Where is the purple kite?"


def bundled_referring_rows() -> list[dict]:
    """The bundled sample's referring-QA conversations (image paths and sizes, no bytes)."""
    files = {REFERRING_QA: release_file(bundled.RELEASE_DIR, REFERRING_QA)}
    images = ImageIndex(bundled.IMAGES_DIR, bundled.IMAGE_DATA)
    reports = defaultdict(QualityReport)
    return [row for _, row in iter_samples(files, images, reports, max_bad_fraction=1.0)]


def pick_grounded_turn(rows: list[dict], question: str = DEMO_QUESTION) -> tuple[dict, str]:
    """The first row asking `question`, and the reference answer to it."""
    for row in rows:
        messages = row["messages"]
        for asked, answer in zip(messages[::2], messages[1::2], strict=False):
            if asked["content"] == question:
                return row, answer["content"]
    raise LookupError(f"no bundled referring-QA conversation asks {question!r}")


def teach(model, processor, messages: list[dict], steps: int = 60, lr: float = 3e-3) -> list[float]:
    """Fit `model` to one conversation with its image in the user turn (assistant tokens only); losses per step.

    Plain PyTorch; the caller seeds it."""
    inputs = processor.apply_chat_template(
        [messages], tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    labels = inputs["input_ids"].masked_fill(inputs.pop("assistant_masks") == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def check_demo_settings(seed: int, steps: int, drawing: str | Path | None, overwrite: bool = False) -> None:
    """`--seed`, `--steps` and `--drawing` of `svit model demo`, before the model is built (the ranges are the
    CLI's, svit_model.training.arguments.MODEL_FLAG_RANGES: library callers get the same answer)."""
    from svit_model.training.arguments import MODEL_FLAG_RANGES, check_value

    check_value("--steps", steps, MODEL_FLAG_RANGES["steps"])
    check_value("--seed", seed, MODEL_FLAG_RANGES["seed"])
    if drawing is not None:
        check_output_apart(drawing, "--drawing", {"(the bundled sample)": bundled.SAMPLE_DIR})
        if Path(drawing).is_dir():
            raise SvitInputError(f"--drawing {drawing}: is a folder; pass the PNG file to write")
        check_replaceable(
            drawing, "--drawing", overwrite, "a PNG image", lambda path: path.suffix.lower() == ".png"
        )


def run_model_demo(
    print_fn=print, seed: int = 0, steps: int = 60, drawing: str | Path | None = None, overwrite: bool = False
) -> dict:
    """Build, teach, ask, parse and print; returns the generated text and the parsed `(clean_text, entities)`.
    An existing `drawing` is replaced only with `overwrite`, and only a PNG."""
    check_demo_settings(seed, steps, drawing, overwrite)
    rows = bundled_referring_rows()
    row, reference = pick_grounded_turn(rows)
    image = Image.open(bundled.IMAGES_DIR / row["image_path"]).convert("RGB")
    model, processor = build_tiny_svit_llava(corpus_from_rows(rows), seed=seed)
    question = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": DEMO_QUESTION}],
        }
    ]
    answer = [{"role": "assistant", "content": [{"type": "text", "text": reference}]}]
    print_fn(
        f"Tiny SVIT-LLaVA ({sum(p.numel() for p in model.parameters()):,} parameters), image {row['image_path']} "
        f"{image.width}x{image.height}, padded to a square by the processor."
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        losses = teach(model, processor, question + answer, steps=steps)
    print_fn(f"Taught one grounded answer in {steps} steps: loss {losses[0]:.2f} -> {losses[-1]:.3f}")

    inputs = processor.apply_chat_template(
        question, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=80, do_sample=False)
    generated = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    clean, entities = processor.post_process_generation(generated, image_size=image.size)
    print_fn(f"Q: {DEMO_QUESTION}")
    print_fn(f"Model output (boxes in the padded square): {generated}")
    print_fn(f"Reference (boxes in the original image):    {reference}")
    print_fn(f"post_process_generation -> {clean!r}")
    for phrase, (start, end), boxes in entities:
        pixels = ", ".join("(" + ", ".join(f"{v:.0f}" for v in box) + ")" for box in boxes)
        print_fn(f"  {phrase!r} chars {start}-{end}: {pixels} px")
    if drawing is not None:
        with atomic_path(drawing) as tmp:
            draw_entities(image, entities).save(tmp, format="PNG")
        print_fn(f"Drawn: {drawing}")
    return {"generated": generated, "clean_text": clean, "entities": entities, "reference": reference}


__all__ = ["run_model_demo"]
