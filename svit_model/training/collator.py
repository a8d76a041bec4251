"""Batches for SVIT-LLaVA training, with labels you can trust.

`SvitCollator` renders each sample with the stage's chat template through the processor (which pads the image
to a square and moves the sample's boxes into it) and trains exactly the tokens the template marks with
`{% generation %}`: each assistant turn and its end-of-turn token. Image tokens, system and user text and
padding are never trained.

Checks that make a silent zero loss impossible:
- a batch that trains no token raises `SvitError` (the usual cause: a chat template without generation markers);
- a sample that trains no token (e.g. truncated away) leaves the batch and is counted, by reason, in the batch's
  `svit_dropped` tensor, which `SvitTrainer` sums into the run's summary;
- truncation to `max_length` never cuts inside the image tokens: a sample whose image would not fit is dropped
  and counted.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import ExifTags, Image, ImageOps
from trl.data_utils import prepare_multimodal_messages

from svit_dataset.boxes import move_boxes_in_text
from svit_dataset.errors import SvitError, SvitFormatError

IGNORE_INDEX = -100
# Why a sample can leave its batch; the order of `svit_dropped`.
DROP_REASONS = ("no_trained_tokens", "image_beyond_max_length")
# Boxes moved out of the padded square are kept at this precision until the processor rounds them once.
_EXACT_DECIMALS = 6


def has_generation_markers(template: str | None) -> bool:
    """Whether a chat template marks assistant text with `{% generation %}` (what assistant-only loss needs)."""
    return template is not None and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


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
    """Collate rows of the sample schema (`messages`, `images`; or `image_path` under `image_folder`).

    Args:
        processor: a `SvitLlavaProcessor` (or any processor whose templates carry generation markers).
        template: the processor's chat template name the stage renders with (`default`, `plain`).
        max_length: longest sequence in tokens; longer samples are cut after their image, never inside it.
        image_folder: where `image_path` of rows without image bytes is read from.
        boxes_in_padded_frame: the rows' boxes are already in LLaVA-1.5's padded square (LLaVA-format data);
            they are moved back to the original image first, so that the processor moves them exactly once.
    """

    processor: Any
    template: str = "default"
    max_length: int | None = None
    image_folder: str | None = None
    boxes_in_padded_frame: bool = False
    pad_to_multiple_of: int | None = None
    _template_text: str = field(init=False, repr=False)

    def __post_init__(self):
        templates = self.processor.chat_template
        if isinstance(templates, dict) and self.template not in templates:
            raise SvitError(
                f"the processor has no chat template {self.template!r} (it has {', '.join(templates)}); "
                "save it with svit's SvitLlavaProcessor, whose templates are `default` (vicuna_v1) and `plain`"
            )
        text = templates.get(self.template) if isinstance(templates, dict) else templates
        if not has_generation_markers(text):
            raise SvitError(
                f"chat template {self.template!r} of the processor has no {{% generation %}} markers, so no token "
                "would be trained (every label -100); use a SvitLlavaProcessor saved by svit (its templates carry "
                "them) or add the markers around each assistant turn and its end-of-turn token"
            )
        self._template_text = text

    def images_of(self, example: dict) -> list[Image.Image]:
        """The sample's images, decoded here (the training data keeps them undecoded, see
        `data.load_training_data`) so that a damaged one is named: its file, or the sample's id."""
        images = list(example.get("images") or [])
        if not images and example.get("image_path") and self.image_folder is not None:
            images = [os.path.join(self.image_folder, example["image_path"])]
        return [self._decode(image, example) for image in images]

    @staticmethod
    def _decode(image, example: dict) -> Image.Image:
        where = f"sample {example.get('id') or '?'}"
        try:
            if isinstance(image, dict):  # datasets' undecoded Image: bytes, or a path
                where += f" (image {image.get('path')})" if image.get("path") else " (embedded image)"
                image = Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"])
                # as `datasets.Image` decodes it (and evaluation reads it): upright by its EXIF orientation
                if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
                    image = ImageOps.exif_transpose(image)
            elif isinstance(image, (str, os.PathLike)):
                where = f"{image} ({where})"
                image = Image.open(image)
            image.load()  # a truncated or damaged file fails here, not deep inside the processor
        except (OSError, ValueError, SyntaxError) as err:  # PIL reports damaged files with these
            raise SvitFormatError(
                f"{where}: the image cannot be read ({err}); replace or remove it (an image file under "
                "--image_folder, or the row of the dataset)"
            ) from None
        return image if image.mode == "RGB" else image.convert("RGB")

    def conversation(self, example: dict, images: list[Image.Image]) -> list[dict]:
        messages = example["messages"]
        if self.boxes_in_padded_frame and images:
            width, height = images[0].size
            messages = [
                {
                    **m,
                    "content": move_boxes_in_text(
                        m["content"], width, height, to_padded=False, decimals=_EXACT_DECIMALS
                    )[0],
                }
                for m in messages
            ]
        return prepare_multimodal_messages(messages, images=images)

    def render(self, conversations: list[list[dict]]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask, pixel_values and labels of whole samples, right-padded."""
        output = self.processor.apply_chat_template(
            conversations,
            chat_template=self._template_text,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
            processor_kwargs={
                "padding": True,
                "padding_side": "right",
                "pad_to_multiple_of": self.pad_to_multiple_of,
                "add_special_tokens": False,  # the template writes `<s>` itself
            },
        )
        labels = output["input_ids"].masked_fill(output.pop("assistant_masks") == 0, IGNORE_INDEX)
        output["labels"] = labels.masked_fill(output["attention_mask"] == 0, IGNORE_INDEX)
        return dict(output)

    def drop_reason(self, input_ids: torch.Tensor, labels: torch.Tensor) -> int | None:
        """Index in DROP_REASONS of why a row cannot train after truncation to `max_length`, or None."""
        if self.max_length is not None:
            image_positions = (input_ids == self.processor.image_token_id).nonzero()
            if len(image_positions) and image_positions[-1].item() >= self.max_length:
                return DROP_REASONS.index("image_beyond_max_length")
            labels = labels[: self.max_length]
        return None if (labels != IGNORE_INDEX).any() else DROP_REASONS.index("no_trained_tokens")

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        conversations = []
        for example in examples:
            conversations.append(self.conversation(example, self.images_of(example)))
        batch = self.render(conversations)
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
            kept = [c for c, reason in zip(conversations, reasons, strict=True) if reason is None]
            batch = self.render(kept)
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            # right-padded rows: cutting columns cuts each row's end; drop_reason made sure images fit
            for key in ("input_ids", "attention_mask", "labels"):
                batch[key] = batch[key][:, : self.max_length]
        batch["svit_dropped"] = dropped
        return batch


__all__ = ["DROP_REASONS", "IGNORE_INDEX", "SvitCollator", "has_generation_markers", "trained_spans"]
