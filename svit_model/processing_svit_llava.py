"""SVIT-LLaVA processor: LLaVA-1.5's processor that speaks the original image's box frame.

Boxes in user text and assistant targets are `[x1, y1, x2, y2]` in [0, 1] of the ORIGINAL image (the
convention of `svit_dataset.boxes`). LLaVA-1.5 pads every image to a square (`pad` mode, filled with the image
mean) and a model trained on its data reads and writes boxes in that square. This processor moves the boxes
of each sample into its image's padded square on the way in (`__call__`, `apply_chat_template`, so TRL's
collator too) and back out on the way out (`post_process_generation`, `to_original_frame`); without padding
boxes are left as they are. The arithmetic is `svit_dataset.boxes`'s, shared with the LLaVA-1.5 export.

Grounded output is parsed by `post_process_generation` into Kosmos-2's shape:
`(clean_text, [(phrase, (start, end), [(x1, y1, x2, y2), ...]), ...])`.

Only transformers is imported at top level: `save_pretrained` copies this file, with standalone copies of the
two svit modules it needs (`svit_model.vendoring.REMOTE_CODE_MODULES`), next to the checkpoint, so
`AutoProcessor.from_pretrained(..., trust_remote_code=True)` works without the svit package. For the same
reason `<image>` is written out here (`svit_dataset.llava_format.IMAGE_TOKEN`, checked by the tests).
"""

from __future__ import annotations

import bisect
import inspect
import os
import re
from collections.abc import Sequence
from pathlib import Path

from transformers import LlavaProcessor
from transformers.image_utils import get_image_size, make_flat_list_of_images, to_numpy_array

try:  # the svit package: the one home of box arithmetic and grounded-text parsing
    from svit_dataset.boxes import (
        BOX_PATTERN,
        clamp_box,
        from_padded_square,
        move_boxes_in_text,
        to_pixels,
    )
    from svit_dataset.grounded_text import END_TAG, START_TAG, GroundedEntity, parse_grounded_text
except ImportError:  # loaded as remote code: `save_pretrained` put copies of both beside this file
    from .svit_boxes import BOX_PATTERN, clamp_box, from_padded_square, move_boxes_in_text, to_pixels
    from .svit_grounding import END_TAG, START_TAG, GroundedEntity, parse_grounded_text

try:  # placeholders that `apply_chat_template(sanitize_control_tokens=True)` marked as user text don't count
    from transformers.processing_utils import _UNMARKED
except ImportError:
    _UNMARKED = ""


def _checked_image_size(image_size) -> tuple[int, int]:
    """`(width, height)` as two positive numbers, or a ValueError naming the argument."""
    try:
        width, height = image_size
        valid = all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in (width, height))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"post_process_generation: image_size={image_size!r}; pass (width, height) of the original image, "
            "two numbers above 0 (e.g. image.size)"
        )
    return width, height


# vicuna_v1's system prompt (LLaVA-1.5 `conv_vicuna_v1`).
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Content is a plain string, or transformers' / TRL's list of blocks ({"type": "image"} renders as
# "<image>\n", {"type": "text"} as its text).
_RENDER_MACRO = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}"
    "{%- for block in content -%}"
    "{%- if block['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- elif block['type'] == 'text' -%}{{ block['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)

# vicuna_v1, upstream LLaVA-1.5's `conv_vicuna_v1`:
# `<s>SYSTEM USER: <image>\nQ ASSISTANT: A</s>USER: Q2 ASSISTANT: A2</s>`. sep " " after the system prompt
# and user turns, sep2 "</s>" after assistant turns; the generation prompt ends in "ASSISTANT:" with no
# space, as upstream. The space, the assistant text and its `</s>` sit inside
# `{% generation %}` markers, so `return_assistant_tokens_mask` (TRL's `assistant_only_loss=True`) trains on
# exactly those: what the model must write after the generation prompt (with a byte-level BPE tokenizer the
# space before `<st>` is a token of its own, which the model would otherwise never learn to emit).
VICUNA_V1_TEMPLATE = (
    _RENDER_MACRO + "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ render(messages[0]['content']) + ' ' }}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    '{{ "' + VICUNA_SYSTEM + ' " }}{%- set turns = messages -%}'
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'USER: ' + render(message['content']) + ' ' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'ASSISTANT:' }}{% generation %}{{ ' ' + render(message['content']) + eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# LLaVA's pretraining "plain" template (`conv_llava_plain`): the user turn is its image alone (upstream
# replaces the question by `<image>`), the assistant turn is the caption and the "\n" separator.
PLAIN_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if message['content'] is string -%}{{ '<image>' * message['content'].count('<image>') }}"
    "{%- else -%}{%- for block in message['content'] if block['type'] == 'image' -%}{{ '<image>' }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{% generation %}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for block in message['content'] if block['type'] == 'text' -%}{{ block['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '\\n' }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

CHAT_TEMPLATES = {"default": VICUNA_V1_TEMPLATE, "plain": PLAIN_TEMPLATE}


class _ImagePlaceholder(str):
    """An image's placeholder text that remembers the image's original (width, height), or None when the image
    is not padded: how `_process_images` tells `get_text_with_replacements` which frame each sample's boxes
    move to."""

    original_size: tuple[int, int] | None

    def __new__(cls, text: str, original_size: tuple[int, int] | None):
        placeholder = super().__new__(cls, text)
        placeholder.original_size = original_size
        return placeholder


def _original_size(image) -> tuple[int, int]:
    """(width, height) of a PIL image, numpy array or tensor (channels first or last)."""
    if hasattr(image, "size") and isinstance(image.size, tuple):  # PIL
        return image.size
    height, width = get_image_size(to_numpy_array(image))
    return width, height


def _gain_before(ends: list[int], gains: list[int], position: int) -> int:
    """Characters gained by the rewrites that end at or before `position` (gains are cumulative)."""
    index = bisect.bisect_right(ends, position)
    return gains[index - 1] if index else 0


def _compose_offsets(box_spans: list, image_offsets: list[dict]) -> list[dict]:
    """Replacement offsets from the original text to the final one, given box rewrites (original -> rewritten)
    and image expansions (rewritten -> final): what `_adjust_assistant_masks_indices` shifts spans by."""
    box_ends = [new[1] for _, new in box_spans]
    box_gains = [new[1] - old[1] for old, new in box_spans]
    image_ends = [entry["span"][1] for entry in image_offsets]
    image_gains = [entry["new_span"][1] - entry["span"][1] for entry in image_offsets]
    entries = []
    for entry in image_offsets:
        shift = _gain_before(box_ends, box_gains, entry["span"][0])
        entries.append({**entry, "span": (entry["span"][0] - shift, entry["span"][1] - shift)})
    for old, new in box_spans:
        shift = _gain_before(image_ends, image_gains, new[0])
        entries.append({"type": "text", "span": old, "new_span": (new[0] + shift, new[1] + shift)})
    return sorted(entries, key=lambda entry: entry["span"][0])


class SvitLlavaProcessor(LlavaProcessor):
    r"""
    LLaVA-1.5 processor with grounding: a tokenizer holding `<image>` (special), `<st>` and `<ed>` (added, not
    special: they survive `decode(skip_special_tokens=True)`), an image processor whose `do_pad` is LLaVA-1.5's
    `pad` mode, and the chat templates `default` (vicuna_v1) and `plain` (pretraining).

    Args:
        image_processor: a LLaVA image processor (`LlavaImageProcessorPil`; `do_pad=True` is `pad` mode).
        tokenizer: the LLM's tokenizer with `<image>`, `<st>` and `<ed>` (see `svit_model.building.add_svit_tokens`).
        patch_size, vision_feature_select_strategy, num_additional_image_tokens, image_token: as `LlavaProcessor`.
        chat_template: a template string or a dict of named templates (default: vicuna_v1 and plain).
        box_decimals (`int`, defaults to 3): decimals of boxes written into the padded frame.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        patch_size=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        num_additional_image_tokens=0,
        box_decimals: int = 3,
        **kwargs,
    ):
        if tokenizer is not None:
            unknown = [tag for tag in (START_TAG, END_TAG) if tag not in tokenizer.get_vocab()]
            if unknown:
                raise ValueError(
                    f"SvitLlavaProcessor: the tokenizer has no {' or '.join(unknown)} token; add the grounding "
                    "tokens with `svit_model.building.add_svit_tokens(tokenizer)` (and resize the model's embeddings)."
                )
        self.box_decimals = box_decimals
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=patch_size,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=CHAT_TEMPLATES if chat_template is None else chat_template,
            image_token=image_token,
            num_additional_image_tokens=num_additional_image_tokens,
            **kwargs,
        )

    @property
    def pads_images(self) -> bool:
        """True in LLaVA-1.5's `pad` mode: images are padded to a square, boxes move into it and back."""
        return bool(getattr(self.image_processor, "do_pad", False))

    # --- on the way in -------------------------------------------------------------------------------------

    def _process_images(self, images, **kwargs):
        processed, replacements = super()._process_images(images, **kwargs)
        do_pad = kwargs.get("do_pad")
        padded = self.pads_images if do_pad is None else bool(do_pad)
        sizes = [_original_size(image) if padded else None for image in make_flat_list_of_images(images)]
        return processed, [
            _ImagePlaceholder(text, size) for text, size in zip(replacements, sizes, strict=True)
        ]

    def get_text_with_replacements(
        self, text: list[str], images_replacements=(), videos_replacements=(), audio_replacements=()
    ):
        """Move each sample's boxes into its padded image's frame, then expand the image placeholders.

        The replacement offsets returned cover both, so assistant masks stay aligned when a box's text changes
        length (`0.4` becomes `0.413`).
        """
        sizes = [getattr(placeholder, "original_size", None) for placeholder in images_replacements]
        box_spans: list[list] = [[] for _ in text]
        if any(size is not None for size in sizes):
            placeholder = re.compile(_UNMARKED + re.escape(self.image_token))
            next_image = 0
            for i, sample in enumerate(text):
                count = len(placeholder.findall(sample))
                sample_sizes = [size for size in sizes[next_image : next_image + count] if size is not None]
                next_image += count
                if not sample_sizes:
                    continue
                if len(sample_sizes) > 1 and BOX_PATTERN.search(sample):
                    raise ValueError(
                        f"SvitLlavaProcessor: text {i} has {len(sample_sizes)} padded images and boxes; a box "
                        "belongs to one image. Give one image per sample, or pass do_pad=False."
                    )
                width, height = sample_sizes[0]
                text[i], box_spans[i] = move_boxes_in_text(
                    sample, width, height, to_padded=True, decimals=self.box_decimals
                )
        text, image_offsets = super().get_text_with_replacements(
            text, list(images_replacements), list(videos_replacements), list(audio_replacements)
        )
        if not any(box_spans):
            return text, image_offsets
        image_offsets = image_offsets or [[] for _ in text]
        return text, [_compose_offsets(b, o) for b, o in zip(box_spans, image_offsets, strict=True)]

    def _adjust_assistant_masks_indices(self, processed_dict, generation_indices):
        """The assistant mask as transformers computes it, over the token offsets as plain lists.

        transformers walks every token's offsets once per assistant span; with `return_tensors="pt"` (as TRL's
        collator asks) each step unpacks a tensor row, which took 0.4 s for a batch of two 600-token samples,
        half of a tiny model's training step. The same walk over lists gives the same mask (bench/processor.py).
        """
        offsets = processed_dict.get("offset_mapping")
        if hasattr(offsets, "tolist"):
            processed_dict["offset_mapping"] = offsets.tolist()
        return super()._adjust_assistant_masks_indices(processed_dict, generation_indices)

    # --- on the way out ------------------------------------------------------------------------------------

    def post_process_generation(
        self,
        text: str,
        image_size: Sequence[int] | None = None,
        *,
        padded: bool | None = None,
        normalized: bool = False,
    ) -> tuple[str, list[GroundedEntity]]:
        """Grounded model output as `(clean_text, [(phrase, (start, end), [(x1, y1, x2, y2), ...]), ...])`.

        Args:
            text: generated text (decoded with `skip_special_tokens=True`; `<st>`/`<ed>` survive it).
            image_size: `(width, height)` of the ORIGINAL image. Given, boxes come back in its pixels;
                needed whenever the processor pads, to undo the padding.
            padded: whether `text`'s boxes are in the padded square (default: `self.pads_images`).
            normalized: return boxes in [0, 1] of the original image even when `image_size` is given.

        Spans index `clean_text` (tags and boxes removed). Parsing is tolerant (see
        `svit_dataset.grounded_text.parse_grounded_text`); a box written out of [0, 1] or with swapped corners is
        clamped and its entity has `clamped=True`; a box reaching into the padding is clipped to the image.
        """
        padded = self.pads_images if padded is None else padded
        if image_size is not None:
            image_size = _checked_image_size(image_size)
        if padded and image_size is None:
            raise ValueError(
                "post_process_generation: this processor pads images to a square, so the model's boxes are in "
                "the padded frame; pass image_size=(width, height) of the original image (e.g. image.size) "
                "to get them back in the original image, or padded=False if the text's boxes are not padded."
            )
        clean, parsed = parse_grounded_text(text)
        entities = []
        for phrase, span, raw_boxes in parsed:
            boxes, clamped = [], False
            for raw in raw_boxes:
                box = clamp_box(raw)
                clamped = clamped or box != tuple(raw)
                if padded:
                    box = clamp_box(from_padded_square(box, *image_size))
                if image_size is not None and not normalized:
                    box = to_pixels(box, *image_size)
                boxes.append(box)
            entities.append(GroundedEntity(phrase, span, boxes, clamped=clamped))
        return clean, entities

    def batch_post_process_generation(
        self, texts: Sequence[str], image_sizes: Sequence[Sequence[int] | None] | None = None, **kwargs
    ) -> list[tuple[str, list[GroundedEntity]]]:
        """`post_process_generation` of each text with its image's `(width, height)`."""
        image_sizes = [None] * len(texts) if image_sizes is None else image_sizes
        return [
            self.post_process_generation(text, size, **kwargs)
            for text, size in zip(texts, image_sizes, strict=True)
        ]

    def to_original_frame(self, text: str, image_size: Sequence[int]) -> str:
        """`text` with every box moved from the padded square back to the original image (tags kept)."""
        if not self.pads_images:
            return text
        return move_boxes_in_text(text, *image_size, to_padded=False, decimals=self.box_decimals)[0]

    def to_model_frame(self, text: str, image_size: Sequence[int]) -> str:
        """`text` with every box moved from the original image into the frame the model reads."""
        if not self.pads_images:
            return text
        return move_boxes_in_text(text, *image_size, to_padded=True, decimals=self.box_decimals)[0]

    # --- saving ------------------------------------------------------------------------------------------

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Save as `LlavaProcessor` does, plus the code and `auto_map` that `trust_remote_code=True` needs."""
        # `to_dict` writes an `auto_map` attribute into processor_config.json; only for this save.
        self.auto_map = {"AutoProcessor": f"{Path(__file__).stem}.{type(self).__name__}"}
        try:
            files = super().save_pretrained(save_directory)
        finally:
            del self.auto_map
        files += write_processor_code(save_directory)
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", Path(save_directory).name)
            self.push_to_hub(repo_id, **kwargs)
        return files


def write_processor_code(save_directory: str | os.PathLike) -> list[str]:
    """Write this module and standalone copies of the svit modules it imports into `save_directory`."""
    try:
        from svit_model.vendoring import REMOTE_CODE_MODULES, vendored_sources
    except ImportError:  # loaded as remote code itself: the copies it imports are standalone already
        copies = [inspect.getmodule(clamp_box), inspect.getmodule(parse_grounded_text)]
        vendored = {Path(inspect.getsourcefile(m)).name: inspect.getsource(m) for m in copies}
    else:
        vendored = vendored_sources(REMOTE_CODE_MODULES, relative=True)
    files = {Path(__file__).name: Path(__file__).read_text(encoding="utf-8"), **vendored}
    written = []
    for name, source in files.items():
        path = Path(save_directory) / name
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text(source, encoding="utf-8")
        os.replace(tmp, path)
        written.append(str(path))
    return written


__all__ = ["CHAT_TEMPLATES", "PLAIN_TEMPLATE", "VICUNA_SYSTEM", "VICUNA_V1_TEMPLATE", "SvitLlavaProcessor"]
