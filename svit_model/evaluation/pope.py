"""POPE, read from the forms users have and scored per category as LLaVA's `llava/eval/eval_pope.py`.

Forms read (`read_pope`):
- the question files of POPE / LLaVA: a folder with `coco_pope_<category>.json` (JSON lines
  `{"question_id", "image", "text", "label"}`), images in `--images`;
- a table with `question_id, question, answer, category, image` (`lmms-lab/POPE`, Parquet).

Scoring: keep the text before the first ".", drop commas, split on single spaces; `no` if "No", "not" or "no"
is one of the words, else `yes` (an empty answer is `yes`, as there). A missing prediction (no answer at all for
a question) is not LLaVA's case: we count it wrong, in the denominators of accuracy and recall, never as `yes`
or `no`. Each category (split) gets accuracy, precision, recall, F1 and yes-ratio; LLaVA's headline POPE number
is the mean F1 over the categories evaluated (`mean_f1`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import check_json_depth
from svit_dataset.settings import setting
from svit_model.evaluation.benchmark import (
    Benchmark,
    EvalOptions,
    IndexedMetric,
    dataset_facts,
    model_index_entry,
    register,
    table_split,
)
from svit_model.evaluation.harness import EvalItem, image_file, with_suffix
from svit_model.evaluation.tables import load_table, read_text_file, require_columns, row_image

FILE_PREFIX = "coco_pope_"
TABLE_COLUMNS = ("question_id", "question", "answer", "category", "image")
QUESTION_KEYS = ("question_id", "image", "text", "label")
HEADLINE = ("accuracy", "precision", "recall", "f1", "yes_ratio")  # per category


# --- Scoring rules (pure) --------------------------------------------------------------------------------

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


def pope_mean_f1(categories: dict[str, dict]) -> float:
    """LLaVA's POPE number: the mean of the categories' F1 (each category weighs the same, whatever its size)."""
    if not categories:
        raise ValueError("pope_mean_f1: no categories")
    return sum(values["f1"] for values in categories.values()) / len(categories)


# --- Reading --------------------------------------------------------------------------------------------


def _item(category: str, qid, question: str, label: str, suffix: str, image) -> EvalItem:
    return EvalItem(
        id=f"{category}/{qid}",
        question=question,
        prompt=with_suffix(question, suffix),
        image=image,
        reference=label,
        meta={"category": category},
    )


def _question_files(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.glob(f"{FILE_PREFIX}*.json*")):
        files[path.name[len(FILE_PREFIX) :].split(".")[0]] = path
    return files


def parse_question_line(line: str, where: str) -> dict:
    """One JSON line of a POPE question file; a malformed one names file and line."""
    try:
        check_json_depth(line, where)  # the stdlib decoder recurses: deep nesting would end in RecursionError
        question = json.loads(line)
    except ValueError as err:
        raise SvitFormatError(f"{where}: not a JSON object ({err}); one question per line") from None
    missing = [k for k in QUESTION_KEYS if not isinstance(question, dict) or k not in question]
    if missing:
        raise SvitFormatError(f"{where}: no {', '.join(missing)}; each line needs {', '.join(QUESTION_KEYS)}")
    if str(question["label"]).strip().lower() not in ("yes", "no"):
        raise SvitFormatError(f"{where}: label {question['label']!r} is neither yes nor no")
    return question


def read_pope(
    data: str | os.PathLike,
    images: str | os.PathLike | None = None,
    suffix: str = "",
    split: str | None = None,
    categories=POPE_CATEGORIES,
) -> list[EvalItem]:
    """The items of POPE's `categories`, category by category."""
    path = Path(data)
    items = []
    if path.is_dir() and (files := _question_files(path)):
        if images is None or not Path(images).is_dir():
            raise SvitInputError(
                f"--images {images}: not a folder; pass the COCO val2014 images POPE asks about"
            )
        missing = [c for c in categories if c not in files]
        if missing:
            raise SvitInputError(f"--data {data}: no {', '.join(FILE_PREFIX + m + '.json' for m in missing)}")
        for category in categories:
            lines = read_text_file(files[category]).splitlines()
            for number, line in enumerate(lines, 1):
                if line.strip():
                    q = parse_question_line(line, f"{files[category]}:{number}")
                    image = image_file(Path(images) / q["image"])
                    items.append(_item(category, q["question_id"], q["text"], q["label"], suffix, image))
        return items
    table = load_table(data, split)
    require_columns(table, TABLE_COLUMNS, data, "lmms-lab/POPE")
    columns = table.select_columns(["question_id", "question", "answer", "category"]).to_dict()
    for category in categories:
        for index, found in enumerate(columns["category"]):
            if found == category:
                qid, answer = columns["question_id"][index], columns["answer"][index]
                if str(answer).strip().lower() not in ("yes", "no"):  # eval_pope would count it as a yes
                    raise SvitFormatError(
                        f"--data {data}: row {index} ({qid}): answer {answer!r} is not yes or no"
                    )
                item = _item(
                    category, qid, columns["question"][index], answer, suffix, row_image(table, index)
                )
                items.append(item)
    present = set(columns["category"])
    missing = [c for c in categories if c not in present]
    if missing:
        raise SvitInputError(f"--data {data}: no rows of category {', '.join(missing)}")
    return items


def record(item: EvalItem, output: str, image_size) -> dict:
    """The ledger fields of a POPE answer: LLaVA's yes/no reading of the stripped answer, and the label."""
    return {"answer": pope_parse_answer(output.strip()), "reference": item.reference}


# --- The benchmark ----------------------------------------------------------------------------------------


@dataclass
class PopeOptions(EvalOptions):
    images: str | None = setting(
        None, "images folder of POPE's question files (COCO val2014); not for tables"
    )
    categories: str = setting(",".join(POPE_CATEGORIES), "comma-separated categories")


def score(items: list[EvalItem], records: dict[str, dict]) -> dict:
    """POPE's metrics over all questions and per category (the shipped `pope` metric); an item whose image did
    not load is a missing answer, scored wrong."""
    from svit_model.evaluation.metrics import load_metric

    entries = [records.get(item.id) for item in items]
    missing = [e is None or "error" in e for e in entries]
    return load_metric(Pope.name).compute(
        predictions=["" if gone else e["output"].strip() for e, gone in zip(entries, missing, strict=True)],
        references=[item.reference for item in items],
        categories=[item.meta["category"] for item in items],
        missing=missing,
    )


@register
class Pope(Benchmark):
    name = "pope"
    help = "POPE (question files or lmms-lab/POPE table), scored as LLaVA's eval_pope"
    options = PopeOptions
    dataset_name = "POPE"
    task_type = "visual-question-answering"
    indexed = (
        IndexedMetric("accuracy", "accuracy", "POPE accuracy"),
        IndexedMetric("precision", "precision", "POPE precision"),
        IndexedMetric("recall", "recall", "POPE recall"),
        IndexedMetric("f1", "f1", "POPE F1"),
        IndexedMetric("yes_ratio", "yes_ratio", "POPE yes-ratio"),
    )
    # a fixed --images path retries the items whose images failed: not another run
    not_in_signature = ("images",)

    def inputs(self) -> dict[str, str | None]:
        return {**super().inputs(), "--images": self.options.images}

    def read(self, dropped: Counter) -> list[EvalItem]:
        o = self.options
        categories = [part.strip() for part in o.categories.split(",") if part.strip()]
        return read_pope(o.data, o.images, o.prompt_suffix, o.split, categories)

    def record(self, processor):
        return record

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        return score(items, records)

    def dataset(self) -> dict:
        files = self.options.images is not None  # question files need --images; tables carry theirs
        return dataset_facts(
            self,
            split=None if files else table_split(self.options.data, self.options.split),
            categories=self.options.categories,
        )

    def headline(self, metrics: dict) -> dict[str, float]:
        mean = {"mean_f1": metrics["mean_f1"]} if "mean_f1" in metrics else {}
        return mean | {
            f"{category}/{name}": values[name]
            for category, values in metrics["categories"].items()
            for name in HEADLINE
        }

    def model_index(self, dataset: dict, metrics: dict) -> list[dict]:
        """LLaVA's headline (the mean F1 over the categories evaluated, named with them), then one group of
        entries per category, the category as the dataset config."""
        categories = list(metrics["categories"])
        mean = (
            [
                model_index_entry(
                    self.task_type,
                    dataset,
                    IndexedMetric("mean_f1", "f1", "POPE F1"),
                    metrics["mean_f1"],
                    dataset_config=",".join(categories),
                    metric_name=f"POPE F1 (mean of {', '.join(categories)})",
                )
            ]
            if "mean_f1" in metrics
            else []
        )
        return mean + [
            model_index_entry(
                self.task_type,
                dataset,
                metric,
                values[metric.key],
                dataset_config=category,
                metric_name=f"{metric.name} ({category})",
            )
            for category, values in metrics["categories"].items()
            for metric in self.indexed
            if metric.key in values
        ]
