"""Batches for SVIT-LLaVA training, with labels you can trust.

`SvitCollator` renders its samples with TRL's `DataCollatorForVisionLanguageModeling` (the stage's chat template
through the processor, which pads each image to a square and moves the sample's boxes into it; the assistant mask
of the template's `{% generation %}` markers; padding never trained). The samples come with their images already
loaded and their boxes in the original image (`data.SampleLoader`, a dataset transform), so the collator only
renders. It keeps what TRL's collator lacks:

- truncation to `max_length` that never cuts inside the image tokens: a sample whose image would not fit leaves the
  batch and is counted. TRL's collator passes `truncation=True, max_length=...` to the processor
  (trl 1.16.0, trl/trainer/sft_trainer.py, `DataCollatorForVisionLanguageModeling._collate_language_modeling`),
  which cuts a row at `max_length` wherever that falls, image tokens included: the model then gets pixel values
  for image tokens that are no longer there. So TRL's collator renders whole samples here, and the cut is ours;
- image tokens never trained: TRL's labels are `input_ids` with only padding (and, with assistant-only loss, what
  the template does not mark) masked, so with `--assistant_only_loss false` it would train the model to write
  `<image>` tokens;
- checks that make a silent zero loss impossible: a sample that trains no token (e.g. truncated away) leaves the
  batch and is counted, by reason, in the batch's `svit_dropped` tensor (which `SvitTrainer` sums into the run's
  summary); a batch that trains no token at all raises `SvitError` (the usual cause: a chat template without
  generation markers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl.chat_template_utils import has_generation_markers
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from svit_dataset.errors import SvitError

IGNORE_INDEX = -100
# Why a sample can leave its batch; the order of `svit_dropped`.
DROP_REASONS = ("no_trained_tokens", "image_beyond_max_length")


def trained_spans(labels: torch.Tensor) -> list[tuple[int, int]]:
    """The [start, end) runs of trained positions (label != -100) of one row."""
    positions = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    spans = []
    for position in positions:
        if spans and spans[-1][1] == position:
            spans[-1][1] += 1
        else:
            spans.append([position, position + 1])
    return [tuple(span) for span in spans]


@dataclass
class SvitCollator:
    """Collate training samples: `messages` and `images` (loaded PIL images), as `data.SampleLoader` hands them.

    Args:
        processor: a `SvitLlavaProcessor` (or any processor whose templates carry generation markers).
        template: the processor's chat template name the stage renders with (`default`, `plain`).
        max_length: longest sequence in tokens (`--max_length`); longer samples are cut after their image, never
            inside it.
        pad_to_multiple_of: pad each batch to a multiple of this many tokens (`--pad_to_multiple_of`); a cut at
            `max_length` wins over it.
        assistant_only_loss: train only what the template marks with `{% generation %}`, each assistant turn and
            its end-of-turn token (`--assistant_only_loss`, on by default); off, every token but the image and
            padding tokens.
    """

    processor: Any
    template: str = "default"
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    assistant_only_loss: bool = True
    _render: DataCollatorForVisionLanguageModeling = field(init=False, repr=False)

    def __post_init__(self):
        templates = self.processor.chat_template
        if isinstance(templates, dict) and self.template not in templates:
            raise SvitError(
                f"the processor has no chat template {self.template!r} (it has {', '.join(templates)}); "
                "save it with svit's SvitLlavaProcessor, whose templates are `default` (vicuna_v1) and `plain`"
            )
        text = templates.get(self.template) if isinstance(templates, dict) else templates
        if self.assistant_only_loss and not (text and has_generation_markers(text)):
            raise SvitError(
                f"chat template {self.template!r} of the processor has no {{% generation %}} markers, so no token "
                "would be trained (every label -100); use a SvitLlavaProcessor saved by svit (its templates carry "
                "them) or add the markers around each assistant turn and its end-of-turn token"
            )
        # whole samples, right-padded: `max_length` is applied by `__call__` (see the module docstring)
        self._render = DataCollatorForVisionLanguageModeling(
            processor=self.processor,
            max_length=None,
            pad_to_multiple_of=self.pad_to_multiple_of,
            assistant_only_loss=self.assistant_only_loss,
            chat_template=text,
        )

    def render(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask, pixel_values and labels of whole samples, right-padded; image tokens are
        never trained."""
        batch = dict(self._render(examples))
        batch["labels"] = batch["labels"].masked_fill(
            batch["input_ids"] == self.processor.image_token_id, IGNORE_INDEX
        )
        return batch

    def drop_reason(self, input_ids: torch.Tensor, labels: torch.Tensor) -> int | None:
        """Index in DROP_REASONS of why a row cannot train after truncation to `max_length`, or None."""
        if self.max_length is not None:
            image_positions = (input_ids == self.processor.image_token_id).nonzero()
            if len(image_positions) and image_positions[-1].item() >= self.max_length:
                return DROP_REASONS.index("image_beyond_max_length")
            labels = labels[: self.max_length]
        return None if (labels != IGNORE_INDEX).any() else DROP_REASONS.index("no_trained_tokens")

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.render(examples)
        dropped = torch.zeros(len(DROP_REASONS), dtype=torch.long)
        reasons = [
            self.drop_reason(ids, labels)
            for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True)
        ]
        for reason in reasons:
            if reason is not None:
                dropped[reason] += 1
        if int(dropped.sum()) == len(examples):
            counts = ", ".join(f"{n} {r}" for r, n in zip(DROP_REASONS, dropped.tolist(), strict=True) if n)
            raise SvitError(
                f"a batch of {len(examples)} samples trains no token ({counts}); check that the chat template "
                f"{self.template!r} marks assistant turns with {{% generation %}} and that --max_length "
                f"({self.max_length}) leaves room after the image and the prompt"
            )
        if dropped.any():  # rare: render the samples that train again, so images and padding match them
            batch = self.render([e for e, reason in zip(examples, reasons, strict=True) if reason is None])
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            # right-padded rows: cutting columns cuts each row's end; drop_reason made sure images fit
            for key in ("input_ids", "attention_mask", "labels"):
                batch[key] = batch[key][:, : self.max_length]
        batch["svit_dropped"] = dropped
        return batch


__all__ = ["DROP_REASONS", "IGNORE_INDEX", "SvitCollator", "trained_spans"]
