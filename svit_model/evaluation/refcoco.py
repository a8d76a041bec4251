"""RefCOCO (and RefCOCO+ / RefCOCOg, same shape): one box per referring expression, scored by IoU.

Form read (`read_refcoco`): a table in the `lmms-lab/RefCOCO` shape: `image`, `bbox` `[x, y, w, h]` in pixels of
the original image, the expression in `expression` or `answer` (a string or a list of them), optionally
`question_id`. Each expression is asked with `--prompt` (LLaVA-1.5's referring-expression prompt by default).
A row without an expression or with an unusable box is dropped before generation and counted.

Scoring: the first box of the answer against the reference box, both `[x1, y1, x2, y2]` in [0, 1] of the
original image (the reference through `normalize_xywh`, the answer's moved out of the model's padded square).
`--protocol strict` (the default) takes the predicted box as written, as lmms-eval's RefCOCO task and the
papers' scripts do; `--protocol lenient` clamps it and orders its corners first (`grounded_answers`). A missing
or unparsable prediction has IoU 0 and is counted wrong, never dropped. ACC@0.5 counts IoU >= 0.5, as
lmms-eval's RefCOCO task (Shikra uses > 0.5).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from svit_dataset.boxes import clamp_box, normalize_xywh
from svit_dataset.errors import SvitInputError
from svit_dataset.settings import setting
from svit_model.evaluation.benchmark import (
    MAX_NEW_TOKENS,
    Benchmark,
    EvalOptions,
    IndexedMetric,
    dataset_facts,
    flat_numbers,
    register,
    table_split,
)
from svit_model.evaluation.grounded_answers import (
    BAD_BOX,
    GROUNDING_DATASET,
    PROTOCOLS,
    STRICT,
    first_box_as_written,
    grounding_processor,
    prediction_iou,
    with_protocol,
)
from svit_model.evaluation.harness import EvalItem, with_suffix
from svit_model.evaluation.tables import load_table, row_image

logger = logging.getLogger(__name__)

# LLaVA-1.5's referring-expression prompt (its RefCOCO training data): the model answers with one box.
REFCOCO_PROMPT = (
    "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
)
NO_EXPRESSION = "no_expression"  # a row dropped for want of an expression (or for a BAD_BOX)


# --- Scoring rule (pure) ---------------------------------------------------------------------------------


def referring_metrics(
    predictions: Sequence[Sequence[float] | None],
    references: Sequence[Sequence[float]],
    threshold: float = 0.5,
    protocol: str = STRICT,
) -> dict:
    """ACC@threshold (IoU >= threshold) and mean IoU of one predicted box per referring expression, under
    `protocol` (`grounded_answers.PROTOCOLS`), which the result names."""
    if len(predictions) != len(references):
        raise ValueError(
            f"referring_metrics: {len(predictions)} predictions for {len(references)} references"
        )
    ious = [prediction_iou(p, r, protocol) for p, r in zip(predictions, references, strict=True)]
    total = len(ious)
    return {
        f"acc@{threshold:g}": sum(v >= threshold for v in ious) / total if total else 0.0,
        "mean_iou": sum(ious) / total if total else 0.0,
        "missing": sum(p is None or len(p) != 4 for p in predictions),
        "total": total,
        "protocol": protocol,
    }


# --- Reading --------------------------------------------------------------------------------------------


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


def refcoco_items(table, data, prompt: str, suffix: str, dropped: Counter | None = None) -> list[EvalItem]:
    """One item per referring expression of each row of `table`. A row without an expression
    (`no_expression`) or whose reference box is not usable (`bad_box`, see `bad_refcoco_box`) is dropped before
    any generation and counted in `dropped` (results.json reports it), never scored as a wrong answer or
    silently left out."""
    if "bbox" not in table.column_names or not {"expression", "answer"} & set(table.column_names):
        hint = (
            "; SVIT's referring QAs are `svit eval svit-referring`"
            if "messages" in table.column_names
            else ""
        )
        raise SvitInputError(
            f"--data {data}: a RefCOCO table needs `image`, `bbox` ([x, y, w, h] pixels) and `expression` or "
            f"`answer`; it has {', '.join(table.column_names)}{hint}"
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
                    meta={"expression": expression},
                )
            )
    return items


def read_refcoco(
    data,
    split: str | None = None,
    config: str | None = None,
    prompt: str = REFCOCO_PROMPT,
    suffix: str = "",
    dropped: Counter | None = None,
) -> list[EvalItem]:
    """The items of a RefCOCO-shaped table (`refcoco_items`)."""
    return refcoco_items(load_table(data, split, config), data, prompt, suffix, dropped)


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


def make_record(processor):
    """The ledger fields of an answer: its first box clamped (`answer`) and as written (`box_as_written`), and
    the reference box, all in [0, 1] of the original image (no image: none)."""
    parser = grounding_processor(processor)

    def record(item: EvalItem, output: str, image_size) -> dict:
        if image_size is None:
            return {"answer": None, "box_as_written": None, "reference": None}
        written = first_box_as_written(parser, output, image_size)
        return {
            # clamping after the move out of the padded square is what post_process_generation gives
            "answer": None if written is None else list(clamp_box(written)),
            "box_as_written": written,
            "reference": list(normalize_xywh(*item.reference, *image_size)),
        }

    return record


# --- The benchmark ----------------------------------------------------------------------------------------


@dataclass
class RefcocoOptions(EvalOptions):
    config: str | None = setting(None, "dataset config of the table")
    prompt: str = setting(REFCOCO_PROMPT, "RefCOCO question template with {expression}")
    prompt_suffix: str = setting("", "appended to each question after a newline")
    max_new_tokens: int = setting(64, f"longest answer, in tokens (1 to {MAX_NEW_TOKENS})")
    protocol: str = setting(
        STRICT,
        "strict: the box as written, as lmms-eval and the papers score it; lenient: clamped, corners ordered",
        choices=list(PROTOCOLS),
    )


@register
class Refcoco(Benchmark):
    name = "refcoco"
    help = "RefCOCO/+/g-shaped tables (lmms-lab/RefCOCO): ACC@0.5 and mean IoU of one box per expression"
    options = RefcocoOptions
    dataset_name = dataset_id = GROUNDING_DATASET
    indexed = (
        IndexedMetric("acc@0.5", "acc@0.5", "ACC@0.5 (IoU >= 0.5)"),
        IndexedMetric("mean_iou", "mean_iou", "mean IoU"),
    )
    drop_reasons = (NO_EXPRESSION, BAD_BOX)
    not_in_signature = ("protocol",)  # scoring only: a rerun with another protocol reuses the predictions

    def check(self) -> None:
        check_prompt(self.options.prompt)

    def read(self, dropped: Counter) -> list[EvalItem]:
        o = self.options
        return read_refcoco(o.data, o.split, o.config, o.prompt, o.prompt_suffix, dropped)

    def record(self, processor):
        return make_record(processor)

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        """The shipped `refcoco` metric under `--protocol`; an item whose image did not load scores 0."""
        from svit_model.evaluation.metrics import load_metric

        protocol = self.options.protocol
        entries = [records.get(item.id) or {} for item in items]
        field = "box_as_written" if protocol == STRICT else "answer"
        older = [item.id for item, e in zip(items, entries, strict=True) if e and field not in e]
        if older:
            raise SvitInputError(
                f"--output {output}: {len(older)} predictions (first {older[0]}) were written by an earlier svit "
                f"without the box as written; score them with --protocol lenient, or evaluate into a new folder"
            )
        # no image, no reference box in the ledger: an empty prediction against any box scores 0
        references = [e.get("reference") or [0.0, 0.0, 1.0, 1.0] for e in entries]
        return load_metric(self.name).compute(
            predictions=[e.get(field) or [] for e in entries], references=references, protocol=protocol
        )

    def dataset(self) -> dict:
        o = self.options
        return dataset_facts(self, config=o.config, split=table_split(o.data, o.split, o.config))

    def headline(self, metrics: dict) -> dict[str, float]:
        return {k: v for k, v in flat_numbers(metrics).items() if k != "total"}

    def model_index(self, dataset: dict, metrics: dict) -> list[dict]:
        """The indexed metrics with the protocol that produced them (`metric_config`)."""
        return with_protocol(super().model_index(dataset, metrics), metrics)
