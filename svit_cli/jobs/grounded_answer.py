"""`svit model demo` (and the main job's model part): a tiny SVIT-LLaVA answers a question with grounded boxes.

Builds the tiny model (svit_model.tiny), teaches it one grounded answer of the bundled sample
(svit_model.teaching), asks the question about the image, and prints the answer parsed by
`SvitLlavaProcessor.post_process_generation`: phrases with boxes in the original image's pixels. The processor
pads the image to a square (LLaVA-1.5), so the model reads and writes boxes in the padded frame; the parsed
boxes are back in the original image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.files import atomic_path, check_output_apart, check_replaceable
from svit_model.draw import draw_entities
from svit_model.teaching import TAUGHT_QUESTION, bundled_referring_rows, pick_grounded_turn, teach
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows
from svit_model.training.arguments import MODEL_FLAG_RANGES, check_value


def check_grounded_answer_settings(
    seed: int, steps: int, drawing: str | Path | None, overwrite: bool = False
) -> None:
    """`--seed`, `--steps` and `--drawing` of `svit model demo`, before the model is built (the ranges are the
    CLI's, svit_model.training.arguments.MODEL_FLAG_RANGES: callers of this function get the same answer)."""
    check_value("--steps", steps, MODEL_FLAG_RANGES["steps"])
    check_value("--seed", seed, MODEL_FLAG_RANGES["seed"])
    if drawing is not None:
        check_output_apart(drawing, "--drawing", {"(the bundled sample)": bundled.SAMPLE_DIR})
        if Path(drawing).is_dir():
            raise SvitInputError(f"--drawing {drawing}: is a folder; pass the PNG file to write")
        check_replaceable(
            drawing, "--drawing", overwrite, "a PNG image", lambda path: path.suffix.lower() == ".png"
        )


def run_grounded_answer(
    print_fn=print, seed: int = 0, steps: int = 60, drawing: str | Path | None = None, overwrite: bool = False
) -> dict:
    """Build, teach, ask, parse and print; returns the generated text and the parsed `(clean_text, entities)`.
    An existing `drawing` is replaced only with `overwrite`, and only a PNG."""
    check_grounded_answer_settings(seed, steps, drawing, overwrite)
    rows = bundled_referring_rows()
    row, reference = pick_grounded_turn(rows)
    image = Image.open(bundled.IMAGES_DIR / row["image_path"]).convert("RGB")
    model, processor = build_tiny_svit_llava(corpus_from_rows(rows), seed=seed)
    question = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": TAUGHT_QUESTION}],
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
    print_fn(f"Q: {TAUGHT_QUESTION}")
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


__all__ = ["check_grounded_answer_settings", "run_grounded_answer"]
