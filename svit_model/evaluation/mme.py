"""MME: the benchmark read from the forms users have, scored with the official tool's rules, its results folder.

Forms read (`read_mme`):
- the official release: one folder per subtask holding images with a question file each side by side
  (`0001.jpg` + `0001.txt`), or `images/` + `questions_answers_YN/` (also spelled `questions_answer_YN`);
  a question file has two lines `question<TAB>Yes|No`.
- a table with `question_id, image, question, answer, category` (`lmms-lab/MME` via `load_dataset`, or
  Parquet); `question_id` is `<subtask>/<image file>`, shared by the two questions of an image.

Scoring: the official tool (MME `eval_tool/calculation.py`). Answers are lower-cased and keep the trailing
newline `readlines()` leaves them; an answer is `yes`/`no` when it equals one, else `yes` when "yes" occurs in
its first 4 characters, else `no` when "no" does, else `other` (wrong). So "Not sure" and "None" count as
`no`, "I think yes" as `other`. acc = share of questions right, acc+ = share of images with both right,
subtask score = 100 * (acc + acc+). lmms-eval strips "." and maps y/n first; we follow the official tool.

The results folder (`write_results_folder`) is what the official tool reads: one `<subtask>.txt` per subtask,
lines `image<TAB>question<TAB>gt<TAB>pred`, the two questions of an image adjacent. `score_results_folder`
scores any such folder (`svit eval mme-score`: `score_mme_folder`). A run also draws the subtask scores
(`mme_bar_chart`). The perception and cognition totals are MME's only over all 14 subtasks: a run on fewer is
in a card's table, never its `model-index`.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from svit_dataset.errors import SvitError, SvitFormatError, SvitInputError
from svit_dataset.files import (
    atomic_folder,
    check_output_apart,
    check_replaceable,
    save_figure_atomic,
    write_json_atomic,
)
from svit_dataset.hub_push import shown_name
from svit_dataset.jsonlist import read_json_object
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

logger = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
QUESTION_FOLDERS = ("questions_answers_YN", "questions_answer_YN")
TABLE_COLUMNS = ("question_id", "image", "question", "answer", "category")
RESULTS_DIR = "mme_results"  # the official results folder, in a run's output
CHART = "mme_scores.png"
# The MME-layout sample shipped with svit (4 subtasks, 2 images each, drawn shapes: tools/eval_samples.py made
# it): what `make demo` scores.
SHIPPED_SAMPLE = Path(__file__).parent / "sample" / "mme"
SHIPPED_SAMPLE_SUBTASKS = "existence,count,color,commonsense_reasoning"


# --- Scoring rules (pure) --------------------------------------------------------------------------------

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


# --- Reading --------------------------------------------------------------------------------------------


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


# --- The results folder and `svit eval mme-score` ---------------------------------------------------


def _is_mme_scores(path: Path) -> bool:
    """A scores file `svit eval mme-score` wrote: a JSON object with the totals and per-subtask scores."""
    try:
        scores = read_json_object(path, "")
    except SvitError:
        return False
    return {"perception", "cognition", "subtasks", "details"} <= set(scores)


def score_mme_folder(
    results_dir: str, output: str, subtasks: str | None = None, overwrite: bool = False
) -> dict:
    """`svit eval mme-score`: the official tool's scores of a results folder, written as JSON. The output is
    never inside the results folder (it would replace a results file, or be read as one next time), and
    replaces an existing file only with `overwrite` and only when it is a scores file of this command."""
    check_output_apart(output, "--output", {"results_dir": results_dir})
    if Path(output).is_dir():
        raise SvitInputError(f"--output {output}: is a folder; pass the scores JSON file to write")
    check_replaceable(output, "--output", overwrite, "a scores file of svit eval mme-score", _is_mme_scores)
    scores = score_results_folder(results_dir, subtasks)
    write_json_atomic(output, scores)
    return scores


def scores_text(scores: dict) -> str:
    """The totals and per-subtask scores of `score_results_folder`, as `svit eval mme-score` prints them."""
    lines = [f"perception {scores['perception']:.2f}  cognition {scores['cognition']:.2f}"]
    lines += [f"  {name:<24} {value:.2f}" for name, value in scores["subtasks"].items()]
    return "\n".join(lines)


def mme_bar_chart(metrics: dict, path: str | os.PathLike, title: str = "MME") -> Path:
    """Horizontal bars of the subtask scores (out of 200), perception and cognition apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["subtasks"])
    scores = [metrics["subtasks"][n] for n in names]
    colors = [
        "tab:blue" if n in MME_PERCEPTION else "tab:orange" if n in MME_COGNITION else "grey" for n in names
    ]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh(names[::-1], scores[::-1], color=colors[::-1])
    ax.set_xlim(0, 200)
    ax.set_xlabel("score (100 x acc + 100 x acc+, max 200)")
    ax.set_title(f"{title}: perception {metrics['perception']:.1f}, cognition {metrics['cognition']:.1f}")
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)


# --- The benchmark ----------------------------------------------------------------------------------------


@dataclass
class MmeOptions(EvalOptions):
    subtasks: str | None = setting(
        None, "comma-separated subtasks (default: all 14; a folder lacking one is an error)"
    )


@register
class Mme(Benchmark):
    name = "mme"
    help = "MME (official layout or lmms-lab/MME table) -> official results folder, scores, results.json"
    options = MmeOptions
    dataset_name = "MME"
    task_type = "visual-question-answering"
    indexed = (
        IndexedMetric("perception", "mme_perception", "MME perception"),
        IndexedMetric("cognition", "mme_cognition", "MME cognition"),
    )

    def read(self, dropped: Counter) -> list[EvalItem]:
        o = self.options
        return read_mme(o.data, o.subtasks, o.prompt_suffix, o.split)

    def record(self, processor):
        return record

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        """The official results folder, then its scores by the shipped `mme` metric, and the bar chart."""
        from svit_model.evaluation.metrics import load_metric

        write_results_folder(items, records, output / RESULTS_DIR)
        metrics = load_metric(self.name).compute(
            predictions=[mme_results_field(records[item.id]["output"]) for item in items],
            references=[item.reference for item in items],
            subtasks=[item.meta["subtask"] for item in items],
            image_names=[item.meta["image_name"] for item in items],
        )
        mme_bar_chart(metrics, output / CHART)
        return metrics

    def dataset(self) -> dict:
        subtasks = resolve_subtasks(self.options.subtasks)  # the ones scored: the reader reads all or refuses
        data = Path(self.options.data)
        layout = data.is_dir() and any((data / name).is_dir() for name in MME_SUBTASKS)
        return dataset_facts(
            self,
            split=None if layout else table_split(self.options.data, self.options.split),
            subtasks=subtasks,
            complete=set(subtasks) == set(MME_SUBTASKS),  # the totals are MME's only over all 14
        )

    def headline(self, metrics: dict) -> dict[str, float]:
        return {"perception": metrics["perception"], "cognition": metrics["cognition"], **metrics["subtasks"]}

    def model_index(self, dataset: dict, metrics: dict) -> list[dict]:
        """MME's totals; on part of its subtasks (the shipped drawn-shapes sample, say) they are no MME score:
        table-only entries, named with the subtasks and the data."""
        scored = list(metrics["subtasks"])
        if len(set(scored)) == len(MME_SUBTASKS):
            return super().model_index(dataset, metrics)
        name = (
            f"{dataset['name']} subset ({len(scored)} of {len(MME_SUBTASKS)} subtasks: {', '.join(scored)}; "
            f"data `{shown_name(self.options.data)}`)"
        )
        return [
            model_index_entry(
                self.task_type, dataset, metric, metrics[metric.key], dataset_name=name, whole=False
            )
            for metric in self.indexed
        ]
