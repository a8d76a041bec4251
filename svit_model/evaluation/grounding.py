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
import logging
import math
import os
from collections import Counter
from pathlib import Path

from svit_dataset.boxes import is_valid_box, normalize_xywh
from svit_dataset.errors import SvitInputError
from svit_dataset.grounding import END_TAG, START_TAG, parse_grounded_text
from svit_dataset.schema import REFERRING_QA, TEST, USER
from svit_model.evaluation.harness import EvalItem, with_suffix
from svit_model.evaluation.tables import load_table, row_image

logger = logging.getLogger(__name__)

# LLaVA-1.5's referring-expression prompt (its RefCOCO training data): the model answers with one box.
REFCOCO_PROMPT = (
    "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
)
REFCOCO, SVIT_REFERRING = "refcoco", "svit_referring_qa"


NO_EXPRESSION, BAD_BOX = "no_expression", "bad_box"  # the reasons a RefCOCO row or expression is dropped


def _expressions(value) -> list[str]:
    """The expressions of a row's `expression`/`answer` cell (a string or a list of them); blank ones left out."""
    values = (
        [value] if isinstance(value, str) else list(value or []) if isinstance(value, list | tuple) else []
    )
    return [v for v in values if isinstance(v, str) and v.strip()]


def bad_refcoco_box(bbox) -> bool:
    """Not a usable `[x, y, w, h]` pixel box: not 4 numbers, a NaN or an infinity, or no area. Such a reference
    would become some other box once normalized and clamped (a NaN one `[0, 0, 0, 0]`) and score a wrong 0."""
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return True
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        return True
    return bbox[2] <= 0 or bbox[3] <= 0


def read_refcoco(table, data, prompt: str, suffix: str, dropped: Counter | None = None) -> list[EvalItem]:
    """One item per referring expression of each row. A row without an expression (`no_expression`) or whose
    reference box is not usable (`bad_box`, see `bad_refcoco_box`) is dropped before any generation and counted
    in `dropped` (results.json reports it), never scored as a wrong answer or silently left out."""
    if "bbox" not in table.column_names or not {"expression", "answer"} & set(table.column_names):
        raise SvitInputError(
            f"--data {data}: a RefCOCO table needs `image`, `bbox` ([x, y, w, h] pixels) and `expression` or "
            f"`answer`; it has {', '.join(table.column_names)}"
        )
    dropped = Counter() if dropped is None else dropped
    text_column = "expression" if "expression" in table.column_names else "answer"
    columns = table.select_columns(["bbox", text_column]).to_dict()
    ids = table["question_id"] if "question_id" in table.column_names else range(len(table))
    items = []
    for index, qid in enumerate(ids):
        expressions, bbox = _expressions(columns[text_column][index]), columns["bbox"][index]
        if not expressions or bad_refcoco_box(bbox):
            reason = NO_EXPRESSION if not expressions else BAD_BOX
            dropped[reason] += 1
            logger.warning("--data %s: row %d (%s) dropped: %s (bbox %r)", data, index, qid, reason, bbox)
            continue
        for k, expression in enumerate(expressions):
            question = prompt.format(expression=expression)
            items.append(
                EvalItem(
                    id=f"{qid}#{k}",
                    question=question,
                    prompt=with_suffix(question, suffix),
                    image=row_image(table, index),
                    reference=[float(v) for v in bbox],
                    meta={"kind": REFCOCO, "expression": expression},
                )
            )
    return items


def check_prompt(prompt: str) -> None:
    """`--prompt` must name `{expression}` (else the model is never told what to find) and nothing else."""
    try:
        asked = prompt.format(expression="\x00")
    except (KeyError, IndexError, ValueError) as err:
        raise SvitInputError(
            f"--prompt {prompt!r}: not a template with only {{expression}} ({type(err).__name__}: {err}); "
            "double other braces ({{ }})"
        ) from None
    if "\x00" not in asked:
        raise SvitInputError(
            f"--prompt {prompt!r}: has no {{expression}}; the model would not know what to find"
        )


def _bad_reference(answer: str) -> bool:
    """A referring answer whose boxes could not be scored: a box out of [0, 1] or with its corners swapped (IoU
    is refused for it), or an entity whose box text does not parse (NaN, three numbers: no box to compare)."""
    entities = parse_grounded_text(answer)[1]
    return any(not boxes or not all(is_valid_box(b) for b in boxes) for _, _, boxes in entities)


def read_svit_referring(table, data, suffix: str, dropped: Counter | None = None) -> list[EvalItem]:
    """One item per question of each referring-QA conversation (asked alone, with the image). A turn whose
    reference answer has an unusable box is dropped before generation and counted (`bad_box`)."""
    dropped = Counter() if dropped is None else dropped
    items = []
    for index, (sample_id, messages) in enumerate(zip(table["id"], table["messages"], strict=True)):
        for turn, (asked, answer) in enumerate(zip(messages[::2], messages[1::2], strict=False)):
            if asked["role"] != USER:
                raise SvitInputError(f"--data {data}: sample {sample_id}: turn {2 * turn} is not the user's")
            if _bad_reference(answer["content"]):
                dropped[BAD_BOX] += 1
                logger.warning("--data %s: sample %s turn %d dropped: bad_box", data, sample_id, 2 * turn + 1)
                continue
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
    dropped: Counter | None = None,
) -> list[EvalItem]:
    """A built SVIT folder (its `referring_qa` config, `test` split by default), a table in the sample schema
    (`--config referring_qa` of a Hub copy), or a RefCOCO-shaped table (rows dropped counted in `dropped`)."""
    if (Path(data) / "data" / REFERRING_QA).is_dir():  # a folder `svit build` wrote
        config, split = config or REFERRING_QA, split or TEST
    table = load_table(data, split, config)
    if "messages" in table.column_names:
        return read_svit_referring(table, data, suffix, dropped)
    return read_refcoco(table, data, prompt, suffix, dropped)


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
