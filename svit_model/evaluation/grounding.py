"""Grounding: referring expressions (RefCOCO/+/g) and SVIT's held-out referring QAs.

Box frames, stated once:
- RefCOCO (`lmms-lab/RefCOCO` shape: `image`, `bbox` `[x, y, w, h]` in pixels of the original image, the
  expression in `expression` or `answer`, a string or a list of them): the reference box becomes
  `[x1, y1, x2, y2]` in [0, 1] of the original image (`normalize_xywh`).
- SVIT referring QAs (the `test` split of `referring_qa`): boxes are already `[x1, y1, x2, y2]` in [0, 1] of the
  original image (DESIGN.md).
- Model output: the processor's `post_process_generation(text, image.size, normalized=True)` moves the boxes
  out of the padded square the model reads and writes in (LLaVA-1.5's `pad` mode) into [0, 1] of the original
  image, clamped. Every IoU is taken in that frame (`scoring`).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from svit_dataset.boxes import normalize_xywh
from svit_dataset.errors import SvitInputError
from svit_dataset.grounding import END_TAG, START_TAG, parse_grounded_text
from svit_dataset.schema import REFERRING_QA, TEST, USER
from svit_model.evaluation.harness import EvalItem, with_suffix
from svit_model.evaluation.tables import load_table, row_image

# LLaVA-1.5's referring-expression prompt (its RefCOCO training data): the model answers with one box.
REFCOCO_PROMPT = (
    "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
)
REFCOCO, SVIT_REFERRING = "refcoco", "svit_referring_qa"


def _expressions(row: dict) -> list[str]:
    value = row.get("expression", row.get("answer"))
    return [value] if isinstance(value, str) else list(value or [])


def read_refcoco(table, data, prompt: str, suffix: str) -> list[EvalItem]:
    """One item per referring expression of each row."""
    if "bbox" not in table.column_names or not {"expression", "answer"} & set(table.column_names):
        raise SvitInputError(
            f"--data {data}: a RefCOCO table needs `image`, `bbox` ([x, y, w, h] pixels) and `expression` or "
            f"`answer`; it has {', '.join(table.column_names)}"
        )
    text_column = "expression" if "expression" in table.column_names else "answer"
    columns = table.select_columns(["bbox", text_column]).to_dict()
    ids = table["question_id"] if "question_id" in table.column_names else range(len(table))
    items = []
    for index, qid in enumerate(ids):
        for k, expression in enumerate(_expressions({text_column: columns[text_column][index]})):
            question = prompt.format(expression=expression)
            items.append(
                EvalItem(
                    id=f"{qid}#{k}",
                    question=question,
                    prompt=with_suffix(question, suffix),
                    image=row_image(table, index),
                    reference=list(columns["bbox"][index]),
                    meta={"kind": REFCOCO, "expression": expression},
                )
            )
    return items


def read_svit_referring(table, data, suffix: str) -> list[EvalItem]:
    """One item per question of each referring-QA conversation (asked alone, with the image)."""
    items = []
    for index, (sample_id, messages) in enumerate(zip(table["id"], table["messages"], strict=True)):
        for turn, (asked, answer) in enumerate(zip(messages[::2], messages[1::2], strict=False)):
            if asked["role"] != USER:
                raise SvitInputError(f"--data {data}: sample {sample_id}: turn {2 * turn} is not the user's")
            items.append(
                EvalItem(
                    id=f"{sample_id}#{turn}",
                    question=asked["content"],
                    prompt=with_suffix(asked["content"], suffix),
                    image=row_image(table, index, "images"),
                    reference=answer["content"],
                    meta={"kind": SVIT_REFERRING},
                )
            )
    return items


def read_grounding(
    data: str | os.PathLike,
    split: str | None = None,
    config: str | None = None,
    prompt: str = REFCOCO_PROMPT,
    suffix: str = "",
) -> list[EvalItem]:
    """A built SVIT folder (its `referring_qa` config, `test` split by default), a table in the sample schema
    (`--config referring_qa` of a Hub copy), or a RefCOCO-shaped table."""
    if (Path(data) / "data" / REFERRING_QA).is_dir():  # a folder `svit build` wrote
        config, split = config or REFERRING_QA, split or TEST
    table = load_table(data, split, config)
    if "messages" in table.column_names:
        return read_svit_referring(table, data, suffix)
    return read_refcoco(table, data, prompt, suffix)


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


def _entities(parser, output: str, image_size) -> list[tuple[str, list[list[float]]]]:
    _, entities = parser.post_process_generation(output, image_size=image_size, normalized=True)
    return [(phrase, [list(box) for box in boxes]) for phrase, _, boxes in entities]


def make_record(processor):
    """The ledger fields of a grounded answer, given the checkpoint's processor (frames: module docstring)."""
    parser = grounding_processor(processor)

    def record(item: EvalItem, output: str, image_size) -> dict:
        if image_size is None:
            return {"answer": None, "reference": None}
        predicted = _entities(parser, output, image_size)
        if item.meta["kind"] == REFCOCO:
            first = next((boxes[0] for _, boxes in predicted if boxes), None)
            return {"answer": first, "reference": list(normalize_xywh(*item.reference, *image_size))}
        reference = [
            (phrase, [list(b) for b in boxes]) for phrase, _, boxes in parse_grounded_text(item.reference)[1]
        ]
        return {"answer": predicted, "reference": reference}

    return record


def _as_dicts(entities) -> list[dict]:
    return [{"phrase": phrase, "boxes": boxes} for phrase, boxes in entities]


def score(items: list[EvalItem], records: dict[str, dict]) -> dict:
    """The shipped `grounding` metric: ACC@0.5 and mean IoU (RefCOCO), or phrase recall, mean entity IoU and
    entity ACC@0.5 (SVIT referring QAs). An item whose image did not load scores 0."""
    from svit_model.evaluation.metrics import load_metric

    kind = items[0].meta["kind"] if items else REFCOCO
    entries = [records.get(item.id) or {} for item in items]
    if kind == REFCOCO:
        # no image, no reference box in the ledger: an empty prediction against any box scores 0
        references = [e.get("reference") or [0.0, 0.0, 1.0, 1.0] for e in entries]
        return load_metric("grounding").compute(
            predictions=[e.get("answer") or [] for e in entries], references=references
        )
    references = []
    for item, entry in zip(items, entries, strict=True):
        reference = entry.get("reference")
        if reference is None:  # no image: every entity of the written answer missed
            reference = [(p, [list(b) for b in bx]) for p, _, bx in parse_grounded_text(item.reference)[1]]
        references.append(_as_dicts(reference))
    return load_metric("grounding", "referring_qa").compute(
        predictions=[_as_dicts(e.get("answer") or []) for e in entries], references=references
    )
