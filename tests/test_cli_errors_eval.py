"""`svit eval ...` on the hostile inputs of issue 16: each ends as one line `svit eval <command>: error: ...`,
exit 2, no traceback (the table runner: tests/cli_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli_runs import assert_one_clean_line_each
from tests.test_eval_scoring import write_results_folder
from tools.eval_samples import (
    mme_rows,
    refcoco_rows,
    write_mme_layout,
    write_pope_files,
    write_table,
)

SUBTASKS = "existence,color,count,commonsense_reasoning"
DEEP = "[" * 100_000 + "]" * 100_000


def _cases(root: Path, model: Path) -> list[tuple]:
    mme = write_mme_layout(root / "mme")
    results = write_results_folder(root / "results")
    foreign = root / "foreign.json"
    foreign.write_text('{"mine": 1}')
    mine = root / "foreign_folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")

    three = write_results_folder(root / "three", {"existence": [("Yes", "Yes"), ("No", "No")] * 2})
    lines = (three / "existence.txt").read_text().splitlines()
    lines[2] = lines[2].replace("0001.png", "0000.png")  # image 0000 asked three times, 0001 once
    (three / "existence.txt").write_text("\n".join(lines) + "\n")
    latin = write_results_folder(root / "latin", {"existence": [("Yes", "Yes"), ("No", "No")]})
    (latin / "existence.txt").write_bytes(b"0000.png\tCaf\xe9?\tYes\tYes\n0000.png\tQ\tNo\tNo\n")
    latin_mme = write_mme_layout(root / "latin_mme")
    (latin_mme / "existence" / "0000.txt").write_bytes(b"Caf\xe9?\tYes\nTree?\tNo\n")

    one_question = mme_rows()
    del one_question[5]
    one_question = write_table(root / "one_question.parquet", one_question)
    long_question = mme_rows()
    long_question[0] = {**long_question[0], "question": "word " * 20_000}
    long_question = write_table(root / "long_question.parquet", long_question)
    three_numbers = refcoco_rows()
    three_numbers[1] = {**three_numbers[1], "bbox": [1.0, 2.0, 3.0]}
    three_numbers = write_table(root / "refcoco.parquet", three_numbers)

    questions, images = write_pope_files(root / "pope")
    duplicates, duplicate_images = write_pope_files(root / "duplicates")
    path = duplicates / "coco_pope_random.json"
    asked = [json.loads(line) for line in path.read_text().splitlines()]
    asked[1]["question_id"] = asked[0]["question_id"]
    path.write_text("".join(json.dumps(q) + "\n" for q in asked))
    nested, nested_images = write_pope_files(root / "nested")
    (nested / "coco_pope_random.json").write_text(DEEP + "\n")
    nested_table = root / "nested_table"
    nested_table.mkdir()
    (nested_table / "test.jsonl").write_text('{"question": ' + DEEP + "}\n")

    dataset = root / "built"
    dataset.mkdir()
    (dataset / "build_report.json").write_text("{}")
    (dataset / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# SVIT\n")
    eval_results = root / "results.json"
    eval_results.write_text(json.dumps({"model": "m", "benchmark": "pope", "metrics": {}}))
    broken_run = root / "broken_run"
    broken_run.mkdir()
    (broken_run / "run.json").write_text('{"benchmark": "mme", ')

    def mme_run(*extra, data=mme, output=root / "out"):
        return ["eval", "mme", "--model", str(model), "--data", str(data), "--output", str(output),
                "--subtasks", SUBTASKS, "--no-progress", *extra]  # fmt: skip

    def pope_run(data, images_dir, output):
        return ["eval", "pope", "--model", str(model), "--data", str(data), "--images", str(images_dir),
                "--output", str(output), "--no-progress"]  # fmt: skip

    def grounding_run(data, *extra):
        return ["eval", "grounding", "--model", str(model), "--data", str(data), "--output", str(root / "g"),
                "--no-progress", *extra]  # fmt: skip

    def score(folder, output, *extra):
        return ["eval", "mme-score", str(folder), "--output", str(output), *extra]

    cases = [
        # 3. inputs are read-only
        ("mme-score onto its results file", score(results, results / "existence.txt", "--overwrite"),
         "inputs are never written"),
        ("mme-score replaces without --overwrite", score(results, foreign), "already exists; pass --overwrite"),
        ("mme-score --overwrite of a foreign file", score(results, foreign, "--overwrite"),
         "is not a scores file of svit eval mme-score"),
        ("pope output inside images", pope_run(questions, images, images / "out"), "is inside --images"),
        ("mme output onto the model's config", mme_run(output=model / "config.json"), "is inside --model"),
        ("mme output a foreign folder", mme_run(output=mine), "not the output of an svit eval run"),
        ("eval card onto a dataset folder", ["eval", "card", str(eval_results), "--model-dir", str(dataset)],
         "is a dataset folder (it holds build_report.json"),
        ("broken run.json in output", mme_run(output=broken_run), "run.json: not valid JSON"),
        # 5. MME correct or refused
        ("mme-score three questions for an image", score(three, root / "s1.json", "--subtasks", "existence"),
         "image '0000.png' has 3 questions"),
        ("mme-score latin-1 results", score(latin, root / "s2.json", "--subtasks", "existence"),
         "existence.txt: not UTF-8 text"),
        ("mme latin-1 question file", mme_run(data=latin_mme), "0000.txt: not UTF-8 text"),
        ("mme unknown subtask", mme_run("--subtasks", "Existence"), "--subtasks: unknown Existence"),
        ("mme table one question for an image", mme_run(data=one_question),
         "image color/0000.png (color) has 1 question"),
        ("refcoco box of 3 numbers", grounding_run(three_numbers), "1 rows dropped (1 bad_box), 4 questions kept"),
        ("grounding prompt without expression", grounding_run(three_numbers, "--prompt", "Find {thing}."),
         "--prompt 'Find {thing}.'"),
        ("pope duplicate ids", pope_run(duplicates, duplicate_images, root / "p2"),
         "duplicate question id(s): 'random/0'"),
        # 4. values validated before work
        ("max-new-tokens 0", mme_run("--max-new-tokens", "0"), "--max-new-tokens 0: pass a whole number"),
        ("max-new-tokens huge", mme_run("--max-new-tokens", "100000000"), "from 1 to 4096"),
        ("batch size 0", mme_run("--batch-size", "0"), "--batch-size 0: pass a whole number"),
        ("max-failed-fraction nan", mme_run("--max-failed-fraction", "nan"), "--max-failed-fraction nan"),
        ("device garbage", mme_run("--device", "gpu7"), "--device gpu7: not a device"),
        # 2. bounded memory and time
        ("20,000-word question", mme_run(data=long_question), "beyond --max-question-tokens 2048"),
        ("nested POPE question file", pope_run(nested, nested_images, root / "p3"),
         "coco_pope_random.json:1: JSON nested deeper than 64 levels"),
        ("nested JSON table", grounding_run(nested_table), "test.jsonl: JSON nested deeper than 64 levels"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases.append(
            ("device cuda without CUDA", mme_run("--device", "cuda"), "--device cuda: no cuda device")
        )
    return cases


@pytest.mark.slow
def test_every_bad_eval_input_is_one_clean_line_with_exit_2(tmp_path, tiny_checkpoint):
    assert_one_clean_line_each(_cases(tmp_path, tiny_checkpoint))
    assert not (tmp_path / "out").exists()  # nothing was generated for any refused run
