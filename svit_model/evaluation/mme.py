"""MME: the benchmark read from the forms users have, the official tool's results folder written and scored.

Forms read (`read_mme`):
- the official release: one folder per subtask holding images with a question file each side by side
  (`0001.jpg` + `0001.txt`), or `images/` + `questions_answers_YN/` (also spelled `questions_answer_YN`);
  a question file has two lines `question<TAB>Yes|No`.
- a table with `question_id, image, question, answer, category` (`lmms-lab/MME` via `load_dataset`, or
  Parquet); `question_id` is `<subtask>/<image file>`, shared by the two questions of an image.

The results folder (`write_results_folder`) is what the official `eval_tool/calculation.py` reads: one
`<subtask>.txt` per subtask, lines `image<TAB>question<TAB>gt<TAB>pred`, the two questions of an image adjacent.
`score_results_folder` scores any such folder with the official rules (`scoring.mme_subtask_metrics`).
"""

from __future__ import annotations

import io
import logging
import os
from collections import defaultdict
from pathlib import Path

from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.files import atomic_folder
from svit_model.evaluation.harness import EvalItem, image_file, with_suffix
from svit_model.evaluation.scoring import (
    MME_SUBTASKS,
    mme_parse_answer,
    mme_results_field,
    mme_results_line,
    mme_subtask_metrics,
    mme_totals,
)
from svit_model.evaluation.tables import load_table, read_text_file, require_columns, row_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
QUESTION_FOLDERS = ("questions_answers_YN", "questions_answer_YN")
TABLE_COLUMNS = ("question_id", "image", "question", "answer", "category")


def resolve_subtasks(subtasks: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """The subtasks asked for (comma-separated or a list; None: all 14), in the official order."""
    if subtasks is None:
        return list(MME_SUBTASKS)
    names = [s.strip() for s in subtasks.split(",")] if isinstance(subtasks, str) else list(subtasks)
    unknown = [name for name in names if name not in MME_SUBTASKS]
    if unknown:
        raise SvitInputError(f"--subtasks: unknown {', '.join(unknown)}; MME's are {', '.join(MME_SUBTASKS)}")
    return [name for name in MME_SUBTASKS if name in names]


def parse_question_file(path: Path) -> list[tuple[str, str]]:
    """(question, answer) of each line of an official question file; a malformed line names file and line."""
    pairs = []
    for number, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")  # as LLaVA's MME converter reads the files
        if len(fields) != 2 or fields[1].strip().lower() not in ("yes", "no"):
            raise SvitFormatError(
                f"{path}:{number}: expected 'question<TAB>Yes' or 'question<TAB>No', found {line[:120]!r}"
            )
        pairs.append((fields[0], fields[1].strip()))
    if len(pairs) != 2:
        raise SvitFormatError(f"{path}: {len(pairs)} questions; MME asks two per image, one per line")
    return pairs


def _find_image(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{s}" for s in IMAGE_SUFFIXES if (folder / f"{stem}{s}").is_file()), None)


def _subtask_items(folder: Path, subtask: str, suffix: str) -> list[EvalItem]:
    question_dir = next((folder / q for q in QUESTION_FOLDERS if (folder / q).is_dir()), None)
    image_dir = folder / "images" if question_dir is not None else folder
    question_dir = question_dir or folder
    items = []
    for question_file in sorted(question_dir.glob("*.txt")):
        image = _find_image(image_dir, question_file.stem)
        if image is None:
            raise SvitInputError(f"{question_file}: no image {question_file.stem}.jpg or .png in {image_dir}")
        for k, (question, answer) in enumerate(parse_question_file(question_file)):
            items.append(_item(subtask, image.name, k, question, answer, suffix, image_file(image)))
    if not items:
        raise SvitInputError(f"{folder}: no question files (*.txt) for subtask {subtask}")
    return items


def _item(subtask: str, image_name: str, k: int, question: str, answer: str, suffix: str, image) -> EvalItem:
    return EvalItem(
        id=f"{subtask}/{image_name}#{k}",
        question=question,
        prompt=with_suffix(question, suffix),
        image=image,
        reference=answer,
        meta={"subtask": subtask, "image_name": image_name},
    )


def _missing(found: set[str], wanted: list[str], data, how: str) -> None:
    missing = [name for name in wanted if name not in found]
    if missing:
        raise SvitInputError(
            f"--data {data}: MME {how} lacks subtask{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            "pass the whole benchmark, or --subtasks with the ones you have"
        )


def read_mme(
    data: str | os.PathLike, subtasks=None, suffix: str = "", split: str | None = None
) -> list[EvalItem]:
    """The items of MME's `subtasks` (default all 14) in results-file order: subtask, image, question."""
    wanted = resolve_subtasks(subtasks)
    path = Path(data)
    if path.is_dir() and any((path / name).is_dir() for name in MME_SUBTASKS):
        _missing({p.name for p in path.iterdir() if p.is_dir()}, wanted, data, "folder")
        return [item for name in wanted for item in _subtask_items(path / name, name, suffix)]
    table = load_table(data, split)
    require_columns(table, TABLE_COLUMNS, data, "lmms-lab/MME")
    columns = table.select_columns(["question_id", "question", "answer", "category"]).to_dict()
    _missing(set(columns["category"]), wanted, data, "table")
    by_image: dict[tuple[str, str], list[int]] = defaultdict(list)  # the two questions of an image, adjacent
    for index, (qid, category) in enumerate(zip(columns["question_id"], columns["category"], strict=True)):
        if category in wanted:
            by_image[(category, qid)].append(index)
    # checked here, before any generation: the scorer would refuse the results only after the whole run
    odd = {key: rows for key, rows in by_image.items() if len(rows) != 2}
    if odd:
        (category, qid), rows = next(iter(odd.items()))
        raise SvitFormatError(
            f"--data {data}: image {qid} ({category}) has {len(rows)} question{'s' if len(rows) != 1 else ''} "
            f"(rows {', '.join(map(str, rows[:5]))}; {len(odd)} image{'s' if len(odd) > 1 else ''} not 2); "
            "MME asks two questions per image: pass the complete table"
        )
    items = []
    for name in wanted:
        for (category, qid), rows in by_image.items():
            if category != name:
                continue
            for k, index in enumerate(rows):
                answer = columns["answer"][index]
                if str(answer).strip().lower() not in ("yes", "no"):
                    raise SvitFormatError(
                        f"--data {data}: row {index} ({qid}): answer {answer!r} is not Yes or No"
                    )
                answer = str(
                    answer
                ).strip()  # written to the results file, whose gt must be Yes or No exactly
                image_name = qid.rsplit("/", 1)[-1]
                items.append(
                    _item(
                        name,
                        image_name,
                        k,
                        columns["question"][index],
                        answer,
                        suffix,
                        row_image(table, index),
                    )
                )
    return items


def record(item: EvalItem, output: str, image_size) -> dict:
    """The ledger fields of an MME answer: the official label of the answer and the gt."""
    return {"answer": mme_parse_answer(mme_results_field(output).lower() + "\n"), "reference": item.reference}


def results_lines(items: list[EvalItem], records: dict[str, dict]) -> dict[str, list[str]]:
    """subtask -> lines `image\\tquestion\\tgt\\tpred\\n` in item order."""
    lines: dict[str, list[str]] = defaultdict(list)
    for item in items:
        pred = mme_results_field(records[item.id]["output"])
        line = mme_results_line(item.meta["image_name"], item.question, item.reference, pred)
        lines[item.meta["subtask"]].append(line)
    return lines


def write_results_folder(items: list[EvalItem], records: dict[str, dict], folder: str | os.PathLike) -> Path:
    """The official tool's results folder (atomically replaced)."""
    with atomic_folder(folder) as staging:
        for subtask, lines in results_lines(items, records).items():
            (staging / f"{subtask}.txt").write_text("".join(lines), encoding="utf-8")
    return Path(folder)


def score_results_folder(folder: str | os.PathLike, subtasks=None) -> dict:
    """Scores of an official-format results folder: totals, per-subtask score and details, Yes:No ratio.

    Every subtask asked for (default all 14, as the official tool) must have its `<subtask>.txt`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SvitInputError(
            f"{folder}: not a folder; pass a results folder with one <subtask>.txt per subtask"
        )
    wanted = resolve_subtasks(subtasks)
    missing = [name for name in wanted if not (folder / f"{name}.txt").is_file()]
    if missing:
        raise SvitInputError(
            f"{folder}: no results file for {', '.join(f'{m}.txt' for m in missing)}; "
            "pass --subtasks to score fewer subtasks"
        )
    details = {}
    for name in wanted:
        path = folder / f"{name}.txt"
        # as the official tool reads it (text mode, universal newlines): the pred keeps its line's "\n"
        lines = io.StringIO(read_text_file(path, "utf-8"), newline=None).readlines()
        details[name] = mme_subtask_metrics(lines, str(path))
    return mme_totals(details)
