"""SVIT's held-out referring QAs: grounded answers (phrases with boxes) scored entity by entity.

Form read (`read_svit_referring`): a table in the sample schema (`id`, `images`, `messages`): the `test` split of
the `referring_qa` config of a folder `svit build` wrote (the default there), or of a Hub copy
(`--config referring_qa`). Each question of a conversation is asked alone, with the image; its reference is the
answer written in the data, boxes already `[x1, y1, x2, y2]` in [0, 1] of the original image. A turn whose
reference answer has an unusable box is dropped before generation and counted.

Scoring: an entity of the reference answer is recalled when the model's answer has an entity with the same
phrase (case-insensitive, whitespace collapsed); its IoU is the mean over its reference boxes of the best IoU
with a box of that entity, the model's boxes moved into the original image's frame (`grounded_answers`).
Phrase recall, mean entity IoU and entity ACC@0.5 are taken over every reference entity of every answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from svit_dataset.boxes import Box, is_valid_box
from svit_dataset.errors import SvitInputError
from svit_dataset.grounded_text import parse_grounded_text
from svit_dataset.schema import REFERRING_QA, TEST, USER
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
    LENIENT,
    grounding_processor,
    predicted_entities,
    prediction_iou,
    with_protocol,
)
from svit_model.evaluation.harness import EvalItem, with_suffix
from svit_model.evaluation.tables import load_table, row_image

logger = logging.getLogger(__name__)

SVIT_COLUMNS = ("id", "images", "messages")


# --- Scoring rules (pure) --------------------------------------------------------------------------------


def normalize_phrase(phrase: str) -> str:
    """Phrases match case-insensitively, whitespace collapsed."""
    return " ".join(phrase.lower().split())


def entity_iou(predicted: Sequence[Box], reference: Sequence[Box]) -> float:
    """Mean over the reference boxes of the best IoU with a predicted box (no predicted box: 0)."""
    if not reference:
        return 0.0
    return sum(max((prediction_iou(p, r) for p in predicted), default=0.0) for r in reference) / len(
        reference
    )


def grounded_answer_scores(
    predicted: Iterable[tuple[str, Sequence[Box]]], reference: Iterable[tuple[str, Sequence[Box]]]
) -> list[tuple[bool, float]]:
    """(phrase recalled, entity IoU) for each reference entity of one answer.

    An entity is recalled when a predicted entity has the same phrase (`normalize_phrase`); its IoU is
    `entity_iou` with that entity's boxes (the first such entity; 0 when not recalled). Entities are
    `(phrase, boxes)`, boxes in [0, 1] of the original image.
    """
    by_phrase: dict[str, Sequence[Box]] = {}
    for phrase, boxes in predicted:
        by_phrase.setdefault(normalize_phrase(phrase), boxes)
    scores = []
    for phrase, boxes in reference:
        match = by_phrase.get(normalize_phrase(phrase))
        scores.append((match is not None, entity_iou(match, boxes) if match is not None else 0.0))
    return scores


def grounded_qa_metrics(per_answer: Iterable[list[tuple[bool, float]]], threshold: float = 0.5) -> dict:
    """Phrase recall, mean entity IoU and entity ACC@threshold over every reference entity of every answer."""
    entities = [score for answer in per_answer for score in answer]
    total = len(entities)
    return {
        "phrase_recall": sum(r for r, _ in entities) / total if total else 0.0,
        "mean_entity_iou": sum(v for _, v in entities) / total if total else 0.0,
        f"entity_acc@{threshold:g}": sum(v >= threshold for _, v in entities) / total if total else 0.0,
        "entities": total,
    }


# --- Reading --------------------------------------------------------------------------------------------


def svit_referring_table(data, split: str | None = None, config: str | None = None):
    """The table `data` names: in a folder `svit build` wrote, its `referring_qa` config and `test` split
    unless others are given."""
    if (Path(data) / "data" / REFERRING_QA).is_dir():
        config, split = config or REFERRING_QA, split or TEST
    return load_table(data, split, config)


def is_svit_referring_table(table) -> bool:
    return "messages" in table.column_names


def _bad_reference(answer: str) -> bool:
    """A referring answer whose boxes could not be scored: a box out of [0, 1] or with its corners swapped (IoU
    is refused for it), or an entity whose box text does not parse (NaN, three numbers: no box to compare)."""
    entities = parse_grounded_text(answer)[1]
    return any(not boxes or not all(is_valid_box(b) for b in boxes) for _, _, boxes in entities)


def svit_referring_items(table, data, suffix: str, dropped: Counter | None = None) -> list[EvalItem]:
    """One item per question of each referring-QA conversation of `table` (asked alone, with the image). A turn
    whose reference answer has an unusable box is dropped before generation and counted (`bad_box`)."""
    missing = [c for c in SVIT_COLUMNS if c not in table.column_names]
    if missing:
        raise SvitInputError(
            f"--data {data}: no column {', '.join(missing)} (it has {', '.join(table.column_names)}); pass SVIT's "
            f"referring QAs (a built folder, or --config {REFERRING_QA} of a Hub copy); RefCOCO-shaped tables are "
            "`svit eval refcoco`"
        )
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
                )
            )
    return items


def read_svit_referring(
    data,
    split: str | None = None,
    config: str | None = None,
    suffix: str = "",
    dropped: Counter | None = None,
) -> list[EvalItem]:
    """The items of SVIT's referring QAs in `data` (`svit_referring_table`, `svit_referring_items`)."""
    return svit_referring_items(svit_referring_table(data, split, config), data, suffix, dropped)


def _reference_entities(answer: str) -> list[tuple[str, list[list[float]]]]:
    return [(phrase, [list(b) for b in boxes]) for phrase, _, boxes in parse_grounded_text(answer)[1]]


def make_record(processor):
    """The ledger fields of a grounded answer: the model's entities and the reference's, boxes in [0, 1] of the
    original image (no image: neither)."""
    parser = grounding_processor(processor)

    def record(item: EvalItem, output: str, image_size) -> dict:
        if image_size is None:
            return {"answer": None, "reference": None}
        predicted = predicted_entities(parser, output, image_size)
        return {"answer": predicted, "reference": _reference_entities(item.reference)}

    return record


def _as_dicts(entities) -> list[dict]:
    return [{"phrase": phrase, "boxes": boxes} for phrase, boxes in entities]


# --- The benchmark ----------------------------------------------------------------------------------------


@dataclass
class SvitReferringOptions(EvalOptions):
    config: str | None = setting(None, f"dataset config (default for a built SVIT folder: {REFERRING_QA})")
    prompt_suffix: str = setting("", "appended to each question after a newline")
    max_new_tokens: int = setting(64, f"longest answer, in tokens (1 to {MAX_NEW_TOKENS})")


@register
class SvitReferring(Benchmark):
    name = "svit-referring"
    help = "SVIT's held-out referring QAs (a built folder's test split): phrase recall, entity IoU, entity ACC@0.5"
    options = SvitReferringOptions
    dataset_name = dataset_id = GROUNDING_DATASET
    indexed = (
        IndexedMetric("phrase_recall", "phrase_recall", "phrase recall"),
        IndexedMetric("mean_entity_iou", "mean_entity_iou", "mean entity IoU"),
        IndexedMetric("entity_acc@0.5", "entity_acc@0.5", "entity ACC@0.5"),
    )
    drop_reasons = (BAD_BOX,)

    def read(self, dropped: Counter) -> list[EvalItem]:
        o = self.options
        return read_svit_referring(o.data, o.split, o.config, o.prompt_suffix, dropped)

    def record(self, processor):
        return make_record(processor)

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        """The shipped `svit-referring` metric; an item whose image did not load has every reference entity
        missed."""
        from svit_model.evaluation.metrics import load_metric

        entries = [records.get(item.id) or {} for item in items]
        references = []
        for item, entry in zip(items, entries, strict=True):
            reference = entry.get("reference")
            if reference is None:  # no image: every entity of the written answer missed
                reference = _reference_entities(item.reference)
            references.append(_as_dicts(reference))
        metrics = load_metric(self.name).compute(
            predictions=[_as_dicts(e.get("answer") or []) for e in entries], references=references
        )
        # SVIT's own benchmark, no published protocol to match: boxes clamped, corners ordered
        return {**metrics, "protocol": LENIENT}

    def dataset(self) -> dict:
        config, split = self.options.config, self.options.split
        if (Path(self.options.data) / "data" / REFERRING_QA).is_dir():  # svit_referring_table's default
            config, split = config or REFERRING_QA, split or TEST
        return dataset_facts(self, config=config, split=table_split(self.options.data, split, config))

    def headline(self, metrics: dict) -> dict[str, float]:
        return {k: v for k, v in flat_numbers(metrics).items() if k != "entities"}

    def model_index(self, dataset: dict, metrics: dict) -> list[dict]:
        """The indexed metrics with the protocol that produced them (`metric_config`)."""
        return with_protocol(super().model_index(dataset, metrics), metrics)
