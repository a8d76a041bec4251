"""Scores of MME, POPE and grounding as pure functions: the rules of the reference tools, quirks included.

- MME: the official tool (MME `eval_tool/calculation.py`). Answers are lower-cased and keep the trailing
  newline `readlines()` leaves them; an answer is `yes`/`no` when it equals one, else `yes` when "yes" occurs in
  its first 4 characters, else `no` when "no" does, else `other` (wrong). So "Not sure" and "None" count as
  `no`, "I think yes" as `other`. acc = share of questions right, acc+ = share of images with both right,
  subtask score = 100 * (acc + acc+). lmms-eval strips "." and maps y/n first; we follow the official tool.
- POPE: LLaVA's `llava/eval/eval_pope.py`: keep the text before the first ".", drop commas, split on single
  spaces; `no` if "No", "not" or "no" is one of the words, else `yes` (an empty answer is `yes`, as there).
  A missing prediction (no answer at all for a question) is not LLaVA's case: we count it wrong, in the
  denominators of accuracy and recall, never as `yes` or `no`.
- Grounding: IoU of `[x1, y1, x2, y2]` boxes in [0, 1] of the ORIGINAL image (`svit_dataset.boxes.iou`; the
  callers convert every box into this frame first). Predicted boxes are clamped and their corners ordered
  (`clamp_box`); a missing or unparsable prediction has IoU 0 and is counted wrong, never dropped.
  ACC@0.5 counts IoU >= 0.5, as lmms-eval's RefCOCO task (Shikra uses > 0.5).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from svit_dataset.boxes import Box, clamp_box, iou, is_valid_box
from svit_dataset.errors import SvitFormatError

logger = logging.getLogger(__name__)

# --- MME ------------------------------------------------------------------------------------------------

MME_PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
MME_SUBTASKS = MME_PERCEPTION + MME_COGNITION
MME_YES, MME_NO, MME_OTHER = "yes", "no", "other"


def mme_parse_answer(pred: str) -> str:
    """The official tool's `parse_pred_ans` on an already lower-cased answer: `yes`, `no` or `other`."""
    if pred in (MME_YES, MME_NO):
        return pred
    prefix = pred[:4]
    if "yes" in prefix:
        return MME_YES
    if "no" in prefix:
        return MME_NO
    return MME_OTHER


def mme_results_field(text: str) -> str:
    """A text as a results-file field: stripped (as LLaVA's model_vqa_loader writes answers), tabs and line breaks
    inside it made spaces. The format has no escapes and the official tool splits on them, so a question or an
    answer holding one would shift the columns (and our scorer, reading what we wrote, would refuse the file)."""
    return " ".join(text.strip().replace("\t", " ").splitlines())


def mme_results_line(image: str, question: str, gt: str, pred: str) -> str:
    """One line of a results file (`image\tquestion\tgt\tpred\n`); every field made a results-file field
    (`pred` must be one already: it is what the ledger scored)."""
    if "\t" in pred or len(pred.splitlines()) > 1:
        raise ValueError(f"MME answer {pred!r} holds a tab or line break; write mme_results_field(answer)")
    image, question, gt = (mme_results_field(str(field)) for field in (image, question, gt))
    return f"{image}\t{question}\t{gt}\t{pred}\n"


def mme_parse_line(line: str, where: str) -> tuple[str, str, str, str]:
    """(image, question, gt, pred) of one results line, as the official tool reads it: split on tabs, gt and pred
    lower-cased, pred's trailing newline kept. `where` (`file:line`) names the line in errors."""
    fields = line.split("\t")
    if len(fields) != 4:
        raise SvitFormatError(
            f"{where}: expected 4 tab-separated fields (image, question, gt, pred), found {len(fields)}; "
            "write one question per line"
        )
    image, question, gt, pred = fields
    gt = gt.lower()
    if gt not in (MME_YES, MME_NO):
        raise SvitFormatError(f"{where}: gt {fields[2]!r} is neither yes nor no; MME's answers are Yes or No")
    return image, question, gt, pred.lower()


def mme_pairs(lines: Sequence[str], where: str = "results") -> list[tuple[tuple[str, str, str, str], ...]]:
    """The parsed lines of one subtask grouped by image name, in the order images first appear.

    The official tool pairs consecutive lines and so assumes each image's two questions are adjacent; a folder
    whose lines were shuffled (or merged from parts) would score lower there without a word. We pair by name,
    so the order does not matter, and check the assumption's other half: exactly two questions per image.
    """
    by_image: dict[str, list[tuple[str, str, str, str]]] = {}
    apart = 0  # lines whose image is not the one of the line before, though that image's pair is open
    previous = None
    for number, line in enumerate(lines, 1):
        parsed = mme_parse_line(line, f"{where}:{number}")
        found = by_image.setdefault(parsed[0], [])
        apart += len(found) % 2 == 1 and previous != parsed[0]
        found.append(parsed)
        previous = parsed[0]
    odd = {image: len(found) for image, found in by_image.items() if len(found) != 2}
    if odd:
        image, count = next(iter(odd.items()))
        raise SvitFormatError(
            f"{where}: image {image!r} has {count} question{'s' if count != 1 else ''} "
            f"({len(odd)} image{'s' if len(odd) > 1 else ''} not 2); MME asks two questions per image: "
            "fix or regenerate the file"
        )
    if apart:
        logger.warning(
            "%s: the two questions of %d image(s) are not on adjacent lines: paired by image name (the official "
            "calculation.py pairs adjacent lines and would score this file differently)",
            where,
            apart,
        )
    return [tuple(found) for found in by_image.values()]


def mme_subtask_metrics(lines: Sequence[str], where: str = "results") -> dict:
    """acc, acc+, score and answer counts of one subtask's results lines (two lines per image).

    `lines` as `readlines()` returns them. The two questions of an image are found by its name (`mme_pairs`);
    on a file whose pairs are adjacent, as ours and the official tool's, that is the official pairing.
    """
    if not lines:
        raise SvitFormatError(f"{where}: no results lines")
    pairs = mme_pairs(lines, where)
    right = both_right = 0
    counts = Counter()
    for pair in pairs:
        image_right = 0
        for _, _, gt, pred in pair:
            label = mme_parse_answer(pred)
            counts[label] += 1
            image_right += label == gt
        right += image_right
        both_right += image_right == 2
    acc = right / len(lines)
    acc_plus = both_right / len(pairs)
    return {
        "score": 100 * acc + 100 * acc_plus,
        "acc": acc,
        "acc_plus": acc_plus,
        "questions": len(lines),
        "images": len(pairs),
        "yes": counts[MME_YES],
        "no": counts[MME_NO],
        "other": counts[MME_OTHER],
    }


def yes_no_ratio(yes: int, no: int) -> float | None:
    """Yes:No of predictions (the x axis of the paper's figure 5); None when there is no `no`."""
    return yes / no if no else None


def mme_totals(subtasks: dict[str, dict]) -> dict:
    """perception and cognition totals, per-subtask scores and the predictions' Yes:No ratio. A subtask that is
    not MME's is refused: it would be scored but left out of both totals."""
    unknown = [name for name in subtasks if name not in MME_SUBTASKS]
    if unknown:
        raise SvitFormatError(
            f"unknown MME subtask {', '.join(map(repr, unknown))}; MME's are {', '.join(MME_SUBTASKS)}"
        )
    yes = sum(m["yes"] for m in subtasks.values())
    no = sum(m["no"] for m in subtasks.values())
    return {
        "perception": sum(subtasks[name]["score"] for name in MME_PERCEPTION if name in subtasks),
        "cognition": sum(subtasks[name]["score"] for name in MME_COGNITION if name in subtasks),
        "subtasks": {name: metrics["score"] for name, metrics in subtasks.items()},
        "details": subtasks,
        "yes": yes,
        "no": no,
        "other": sum(m["other"] for m in subtasks.values()),
        "yes_no_ratio": yes_no_ratio(yes, no),
    }


# --- POPE -----------------------------------------------------------------------------------------------

POPE_CATEGORIES = ("random", "popular", "adversarial")


def pope_parse_answer(text: str) -> str:
    """LLaVA's eval_pope rule: first sentence, commas dropped, split on " "; `no` on No/not/no, else `yes`."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: Sequence[str | None], labels: Sequence[str]) -> dict:
    """accuracy, precision, recall, F1 and yes-ratio of POPE answers against `yes`/`no` labels.

    A prediction is a model answer (parsed with `pope_parse_answer`) or None when missing: None is wrong
    (a false negative for a `yes` label, neither TN nor FP for a `no` one) and stays in every denominator.
    As eval_pope, a label other than "no" is positive; a zero denominator gives 0.0.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"pope_metrics: {len(predictions)} predictions for {len(labels)} labels")
    tp = fp = tn = fn = missing = yes = 0
    for prediction, label in zip(predictions, labels, strict=True):
        positive = label.strip().lower() != "no"
        if prediction is None:
            missing += 1
            fn += positive
            continue
        said_yes = pope_parse_answer(prediction) == "yes"
        yes += said_yes
        tp += said_yes and positive
        fp += said_yes and not positive
        tn += not said_yes and not positive
        fn += not said_yes and positive
    total = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": yes / total if total else 0.0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "missing": missing,
        "total": total,
    }


# --- Grounding ------------------------------------------------------------------------------------------


def prediction_iou(prediction: Sequence[float] | None, reference: Sequence[float]) -> float:
    """IoU of a predicted box (clamped, corners ordered; None or not 4 numbers: 0) with a reference box,
    both `[x1, y1, x2, y2]` in [0, 1] of the original image."""
    if prediction is None or len(prediction) != 4:
        return 0.0
    if not is_valid_box(reference):
        raise ValueError(
            f"reference box {list(reference)} is not [x1, y1, x2, y2] in [0, 1] with x1 <= x2, y1 <= y2"
        )
    return iou(clamp_box(prediction), reference)


def referring_metrics(
    predictions: Sequence[Sequence[float] | None],
    references: Sequence[Sequence[float]],
    threshold: float = 0.5,
) -> dict:
    """ACC@threshold (IoU >= threshold) and mean IoU of one predicted box per referring expression."""
    if len(predictions) != len(references):
        raise ValueError(
            f"referring_metrics: {len(predictions)} predictions for {len(references)} references"
        )
    ious = [prediction_iou(p, r) for p, r in zip(predictions, references, strict=True)]
    total = len(ious)
    return {
        f"acc@{threshold:g}": sum(v >= threshold for v in ious) / total if total else 0.0,
        "mean_iou": sum(ious) / total if total else 0.0,
        "missing": sum(p is None or len(p) != 4 for p in predictions),
        "total": total,
    }


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
