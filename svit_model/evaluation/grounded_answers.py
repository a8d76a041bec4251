"""What the two box benchmarks (`refcoco`, `svit_referring`) share: the boxes read out of a model's answer, and
the IoU of a predicted box with a reference box under a scoring protocol.

Protocols (results.json and the card name the one used):
- `strict` (RefCOCO's default): the predicted box as written, only moved back to the original image's frame:
  lmms-eval's RefCOCO task and the papers' scripts score it so (`svit_dataset.boxes.iou_as_written`). Swapped
  corners score 0, a box reaching into the padding keeps its area.
- `lenient`: corners ordered and the box clipped to the image before the IoU (svit's scoring before the
  protocols had names); it scores a model higher, so its numbers are not comparable with published tables.

Box frames, stated once: every IoU is taken on `[x1, y1, x2, y2]` in [0, 1] of the ORIGINAL image
(`svit_dataset.boxes.iou`). The model reads and writes boxes in the padded square of its input (LLaVA-1.5's
`pad` mode); the processor's `post_process_generation(text, image.size, normalized=True)` moves them into the
original image's frame, clamped. Each benchmark converts its reference boxes into that frame (its module says
how).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from svit_dataset.boxes import clamp_box, from_padded_square, iou, iou_as_written, is_valid_box
from svit_dataset.grounded_text import END_TAG, START_TAG, parse_grounded_text

BAD_BOX = "bad_box"  # why a reference is dropped before generation: a box that cannot be scored
# The card's dataset name (and, for data not read from the Hub, its type) of both box benchmarks: what cards
# have named these results since RefCOCO and SVIT's referring QAs were one `grounding` benchmark, so a card's
# entries of earlier runs are replaced, not doubled, by a new run on the same data.
GROUNDING_DATASET = "grounding"
STRICT, LENIENT = "strict", "lenient"
PROTOCOLS = (STRICT, LENIENT)


def prediction_iou(
    prediction: Sequence[float] | None, reference: Sequence[float], protocol: str = LENIENT
) -> float:
    """IoU of a predicted box with a reference box, both `[x1, y1, x2, y2]` in the original image's [0, 1]
    frame, under `protocol` (`strict`: as written; `lenient`: clamped, corners ordered). None or not 4
    numbers: 0."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
    if prediction is None or len(prediction) != 4:
        return 0.0
    if not is_valid_box(reference):
        raise ValueError(
            f"reference box {list(reference)} is not [x1, y1, x2, y2] in [0, 1] with x1 <= x2, y1 <= y2"
        )
    if protocol == STRICT:
        return iou_as_written(prediction, reference)
    return iou(clamp_box(prediction), reference)


def with_protocol(entries: list[dict], metrics: dict) -> list[dict]:
    """Model-index entries naming the protocol that produced their numbers (`metric_config`; results without
    one were scored leniently)."""
    return [{**entry, "metric_config": metrics.get("protocol", LENIENT)} for entry in entries]


def first_box_as_written(parser, output: str, image_size) -> list[float] | None:
    """The answer's first box as the model wrote it (not clamped, corners as written), moved from the frame the
    model reads (the padded square, when `parser` pads) into [0, 1] of the original image; None without one."""
    _, entities = parse_grounded_text(output)
    box = next((boxes[0] for _, _, boxes in entities if boxes), None)
    if box is None:
        return None
    if getattr(parser, "pads_images", False):
        box = from_padded_square(box, *image_size)
    return [float(v) for v in box]


def grounding_processor(processor):
    """A processor with `post_process_generation`: SVIT-LLaVA's as it is; a stock `LlavaProcessor` (a llava
    export, an upstream LLaVA-1.5) wrapped into one with the same parts, so its boxes leave the padded frame the
    same way. The tokenizer gains `<st>`/`<ed>` on a copy when it lacks them (only the parser uses it)."""
    if hasattr(processor, "post_process_generation") and hasattr(processor, "to_original_frame"):
        return processor
    from svit_model.processing_svit_llava import SvitLlavaProcessor

    tokenizer = processor.tokenizer
    if not {START_TAG, END_TAG} <= set(tokenizer.get_vocab()):
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.add_tokens([START_TAG, END_TAG])
    return SvitLlavaProcessor(
        image_processor=processor.image_processor,
        tokenizer=tokenizer,
        patch_size=processor.patch_size,
        vision_feature_select_strategy=processor.vision_feature_select_strategy,
        chat_template=processor.chat_template,
        image_token=processor.image_token,
        num_additional_image_tokens=processor.num_additional_image_tokens,
    )


def predicted_entities(parser, output: str, image_size) -> list[tuple[str, list[list[float]]]]:
    """(phrase, boxes) of each entity of an answer, boxes in [0, 1] of the original image (`parser`: a
    `grounding_processor`)."""
    _, entities = parser.post_process_generation(output, image_size=image_size, normalized=True)
    return [(phrase, [list(box) for box in boxes]) for phrase, _, boxes in entities]
