"""POPE, read from the forms users have and scored per category as LLaVA's `eval_pope.py`.

Forms read (`read_pope`):
- the question files of POPE / LLaVA: a folder with `coco_pope_<category>.json` (JSON lines
  `{"question_id", "image", "text", "label"}`), images in `--images`;
- a table with `question_id, question, answer, category, image` (`lmms-lab/POPE`, Parquet).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.jsonlist import check_json_depth
from svit_model.evaluation.harness import EvalItem, image_file, with_suffix
from svit_model.evaluation.scoring import POPE_CATEGORIES, pope_parse_answer
from svit_model.evaluation.tables import load_table, read_text_file, require_columns, row_image

FILE_PREFIX = "coco_pope_"
TABLE_COLUMNS = ("question_id", "question", "answer", "category", "image")
QUESTION_KEYS = ("question_id", "image", "text", "label")


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


def score(items: list[EvalItem], records: dict[str, dict]) -> dict:
    """POPE's metrics over all questions and per category (the shipped `pope` metric); an item whose image did
    not load is a missing answer, scored wrong."""
    from svit_model.evaluation.metrics import load_metric

    entries = [records.get(item.id) for item in items]
    missing = [e is None or "error" in e for e in entries]
    return load_metric("pope").compute(
        predictions=["" if gone else e["output"].strip() for e, gone in zip(entries, missing, strict=True)],
        references=[item.reference for item in items],
        categories=[item.meta["category"] for item in items],
        missing=missing,
    )
