"""Teach a model one grounded answer of the bundled sample: the referring-QA turn it is taught, and a few dozen
optimizer steps on it (plain PyTorch, on CPU), so that what a tiny SVIT-LLaVA writes afterwards is grounded
text rather than noise.

`svit model demo` (svit_cli/jobs/grounded_answer.py) teaches the tiny model this way and shows the parsed
answer; the Space folder offers the taught image first among its examples.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from svit_dataset import bundled
from svit_dataset.quality import QualityReport
from svit_dataset.reader import iter_samples
from svit_dataset.release import release_file
from svit_dataset.schema import REFERRING_QA
from svit_dataset.vg import ImageIndex

TAUGHT_QUESTION = "Where is the purple kite?"


def bundled_referring_rows() -> list[dict]:
    """The bundled sample's referring-QA conversations (image paths and sizes, no bytes)."""
    files = {REFERRING_QA: release_file(bundled.RELEASE_DIR, REFERRING_QA)}
    images = ImageIndex(bundled.IMAGES_DIR, bundled.IMAGE_DATA)
    reports = defaultdict(QualityReport)
    return [row for _, row in iter_samples(files, images, reports, max_bad_fraction=1.0)]


def pick_grounded_turn(rows: list[dict], question: str = TAUGHT_QUESTION) -> tuple[dict, str]:
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


__all__ = ["TAUGHT_QUESTION", "bundled_referring_rows", "pick_grounded_turn", "teach"]
