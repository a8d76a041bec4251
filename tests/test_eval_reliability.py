"""`svit eval` on hostile input (issue 16): inputs stay read-only, MME is paired by image name and its files
round-trip, dropped benchmark rows are counted, numeric flags and question lengths are bounded, nested JSON is
refused with memory flat, and every refusal comes before any generation."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys

import pytest
import torch

import svit_model.evaluation.harness as harness
import svit_model.evaluation.run as run
from svit_cli.main import main
from svit_dataset.errors import SvitError, SvitFormatError, SvitInputError
from svit_model.evaluation.grounding_alias import Grounding, GroundingOptions
from svit_model.evaluation.harness import EvalItem
from svit_model.evaluation.metrics import load_metric
from svit_model.evaluation.mme import (
    MmeOptions,
    mme_subtask_metrics,
    mme_totals,
    read_mme,
    score_results_folder,
    write_results_folder,
)
from svit_model.evaluation.pope import PopeOptions, read_pope
from svit_model.evaluation.refcoco import Refcoco, RefcocoOptions, read_refcoco
from svit_model.evaluation.run import check_options, run_eval
from svit_model.evaluation.svit_referring import read_svit_referring
from tests.test_eval_scoring import CRAFTED, EXPECTED_SCORES
from tests.test_eval_scoring import write_results_folder as write_crafted_folder
from tools.eval_samples import (
    mme_rows,
    refcoco_rows,
    write_mme_layout,
    write_pope_files,
    write_table,
)

SUBTASKS = "existence,color,count,commonsense_reasoning"


@pytest.fixture
def no_generation(monkeypatch):
    """Any generation fails the test: the refusals under test must come before it."""

    def fail(*args, **kwargs):
        raise AssertionError("generation ran before the input was refused")

    monkeypatch.setattr(harness, "generate_batch", fail)


def last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


# --- Inputs are read-only ---------------------------------------------------------------------------------


def test_mme_score_never_writes_into_its_results_folder_nor_replaces_a_file_not_its_own(tmp_path, capsys):
    results = write_crafted_folder(tmp_path / "results")
    before = (results / "existence.txt").read_bytes()
    for output in (results / "existence.txt", results / "scores.json"):
        assert main(["eval", "mme-score", str(results), "--output", str(output), "--overwrite"]) == 2
        assert "inputs are never written" in last_error(capsys)
    assert (results / "existence.txt").read_bytes() == before and not (results / "scores.json").exists()

    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    assert main(["eval", "mme-score", str(results), "--output", str(notes)]) == 2
    assert "already exists; pass --overwrite" in last_error(capsys)
    assert main(["eval", "mme-score", str(results), "--output", str(notes), "--overwrite"]) == 2
    assert "is not a scores file of svit eval mme-score" in last_error(capsys)
    assert json.loads(notes.read_text()) == {"mine": 1}

    scores = tmp_path / "scores.json"
    assert main(["eval", "mme-score", str(results), "--output", str(scores)]) == 0
    assert main(["eval", "mme-score", str(results), "--output", str(scores)]) == 2  # no silent replacement
    assert (
        main(["eval", "mme-score", str(results), "--output", str(scores), "--overwrite"]) == 0
    )  # its own kind
    assert json.loads(scores.read_text())["subtasks"] == EXPECTED_SCORES


def test_benchmark_outputs_inside_an_input_or_onto_foreign_files_are_refused(
    tiny_checkpoint, tmp_path, no_generation
):
    questions, images = write_pope_files(tmp_path / "pope")
    pope = dict(model=str(tiny_checkpoint), data=str(questions), images=str(images), progress=False)
    with pytest.raises(SvitInputError, match="is inside --images"):
        run_eval("pope", PopeOptions(**pope, output=str(images / "out")))
    with pytest.raises(SvitInputError, match="is inside --model"):
        run_eval("pope", PopeOptions(**pope, output=str(tiny_checkpoint / "config.json")))
    with pytest.raises(SvitInputError, match="is inside --data"):
        run_eval("pope", PopeOptions(**pope, output=str(questions / "out")))
    assert not (images / "out").exists() and json.loads((tiny_checkpoint / "config.json").read_text())

    # a folder holding someone's files (no run.json: not an eval output this run could resume) is left alone
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.json").write_text('{"theirs": true}')
    with pytest.raises(SvitInputError, match="not the output of an svit eval run"):
        run_eval("pope", PopeOptions(**pope, output=str(foreign)))
    assert json.loads((foreign / "results.json").read_text()) == {"theirs": True}
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(SvitInputError, match="is a file"):
        run_eval("pope", PopeOptions(**pope, output=str(a_file)))


def test_eval_card_refuses_a_dataset_folder_and_keeps_its_card(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"model": "m", "benchmark": "pope", "metrics": {}}))
    built = tmp_path / "built"
    built.mkdir()
    (built / "build_report.json").write_text("{}")
    (built / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# SVIT\n")
    hub_copy = tmp_path / "hub_copy"
    hub_copy.mkdir()
    (hub_copy / "README.md").write_text(
        "---\nconfigs:\n- config_name: core\n  data_files: data/*.parquet\n---\n"
    )
    for folder, reason in ((built, "build_report.json"), (hub_copy, "is a dataset card")):
        card = (folder / "README.md").read_text()
        assert main(["eval", "card", str(results), "--model-dir", str(folder)]) == 2
        err = last_error(capsys)
        assert "is a dataset folder" in err and reason in err, err
        assert (folder / "README.md").read_text() == card


# --- MME ------------------------------------------------------------------------------------------------


def test_mme_lines_are_paired_by_image_name_so_a_shuffled_folder_scores_the_same(tmp_path, caplog):
    ordered = score_results_folder(write_crafted_folder(tmp_path / "ordered"))
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for path in (tmp_path / "ordered").iterdir():
        lines = path.read_text().splitlines()
        random.Random(0).shuffle(lines)
        (shuffled / path.name).write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        again = score_results_folder(shuffled)
    assert again["subtasks"] == ordered["subtasks"] == EXPECTED_SCORES
    assert again["details"] == ordered["details"]
    assert "not on adjacent lines: paired by image name" in caplog.text

    # the official assumption's other half is checked: two questions per image, named in the error
    three = ["a.png\tQ1\tYes\tYes\n", "a.png\tQ2\tNo\tNo\n", "a.png\tQ3\tNo\tNo\n", "b.png\tQ\tYes\tYes\n"]
    with pytest.raises(
        SvitFormatError, match=r"existence.txt: image 'a.png' has 3 questions \(2 images not 2\)"
    ):
        mme_subtask_metrics(three, "existence.txt")


def test_mme_results_files_are_escaped_so_our_scorer_reads_what_our_harness_writes(tmp_path):
    hostile = ["Is it\tred?", "Is it\nblue?\r\nOr not?", "Is\u2028it?", " Is it? "]
    items, records = [], {}
    for k, question in enumerate(hostile):
        item = EvalItem(
            id=f"existence/{k // 2}.png#{k % 2}",
            question=question,
            prompt=question,
            image=None,
            reference=("Yes", "No")[k % 2],
            meta={"subtask": "existence", "image_name": f"{k // 2}.png"},
        )
        items.append(item)
        records[item.id] = {"output": ("Yes\tindeed", "No\n")[k % 2]}
    folder = write_results_folder(items, records, tmp_path / "results")
    lines = (folder / "existence.txt").read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split("\t")) == 4 for line in lines)
    assert lines[0].split("\t")[1] == "Is it red?" and lines[1].split("\t")[1] == "Is it blue? Or not?"
    scores = score_results_folder(folder, "existence")
    assert scores["details"]["existence"]["acc"] == 1.0 and scores["subtasks"]["existence"] == 200.0


def test_mme_files_not_in_utf8_are_one_line_naming_the_file(tmp_path):
    data = write_mme_layout(tmp_path / "mme")
    question_file = data / "existence" / "0000.txt"
    question_file.write_bytes("Is there a caf\xe9?\tYes\nIs there a tree?\tNo\n".encode("latin-1"))
    with pytest.raises(SvitFormatError, match=r"existence/0000.txt: not UTF-8 text \(byte 14: .*\\xe9"):
        read_mme(data, SUBTASKS)
    results = write_crafted_folder(tmp_path / "results", {"existence": CRAFTED["existence"]})
    (results / "existence.txt").write_bytes(b"0000.png\tCaf\xe9?\tYes\tYes\n0000.png\tQ\tNo\tNo\n")
    with pytest.raises(SvitFormatError, match="existence.txt: not UTF-8 text"):
        score_results_folder(results, "existence")


def test_an_unknown_mme_subtask_is_refused_not_scored_outside_the_totals():
    with pytest.raises(SvitFormatError, match="unknown MME subtask 'Existence'"):
        load_metric("mme").compute(
            predictions=["Yes", "No"], references=["Yes", "No"], subtasks=["Existence"] * 2
        )
    with pytest.raises(SvitInputError, match="--subtasks: unknown existance"):
        read_mme("anything", "existance")
    right = mme_subtask_metrics(["a\tq\tYes\tYes\n", "a\tq\tNo\tNo\n"])
    assert mme_totals({"existence": right})["perception"] == 200.0


@pytest.mark.parametrize("change", ["one", "three"])
def test_an_mme_table_with_one_or_three_questions_for_an_image_fails_before_generation(tmp_path, change):
    rows = mme_rows()
    if change == "one":
        del rows[5]  # color/0000.png keeps one question
    else:
        rows.insert(5, dict(rows[4]))
    table = write_table(tmp_path / "mme.parquet", rows)
    message = "image color/0000.png \\(color\\) has 1 question " if change == "one" else "has 3 questions"
    with pytest.raises(SvitFormatError, match=message + ".*MME asks two questions per image"):
        read_mme(table, SUBTASKS)


def test_table_answers_with_spaces_are_written_as_yes_or_no(tmp_path):
    rows = [{**row, "answer": f" {row['answer']} "} for row in mme_rows()]
    items = read_mme(write_table(tmp_path / "mme.parquet", rows), SUBTASKS)
    assert {item.reference for item in items} == {"Yes", "No"}


# --- Grounding: every dropped row counted -----------------------------------------------------------------


def refcoco_with_bad_rows() -> list[dict]:
    rows = refcoco_rows()
    extra = [
        {**rows[0], "question_id": "no-expression", "answer": []},
        {**rows[0], "question_id": "blank-expression", "answer": ["  "]},
        {**rows[1], "question_id": "nan-box", "bbox": [float("nan"), 1.0, 5.0, 5.0]},
        {**rows[1], "question_id": "inf-box", "bbox": [1.0, 1.0, float("inf"), 5.0]},
        {**rows[2], "question_id": "three-numbers", "bbox": [1.0, 2.0, 3.0]},
        {**rows[2], "question_id": "no-area", "bbox": [1.0, 2.0, 0.0, 3.0]},
    ]
    return rows + extra


def test_refcoco_rows_without_expression_or_with_bad_boxes_are_dropped_and_counted(tiny_checkpoint, tmp_path):
    from collections import Counter

    table = write_table(tmp_path / "refcoco.parquet", refcoco_with_bad_rows())
    dropped = Counter()
    items = read_refcoco(table, dropped=dropped)
    assert dropped == {"no_expression": 2, "bad_box": 4}
    assert {item.id.split("#")[0] for item in items} == {f"ref-{i}" for i in range(4)}

    options = dict(model=str(tiny_checkpoint), data=str(table), max_new_tokens=2, progress=False)
    # 6 of 12 rows dropped: past the gate, refused before the model is even loaded
    with pytest.raises(
        SvitInputError, match=r"6 rows dropped \(2 no_expression, 4 bad_box\), 6 questions kept"
    ):
        run_eval("grounding", GroundingOptions(**options, output=str(tmp_path / "refused")))
    assert not (tmp_path / "refused").exists()
    results = run_eval(
        "refcoco", RefcocoOptions(**options, output=str(tmp_path / "out"), max_failed_fraction=0.5)
    )
    assert results["benchmark"] == "refcoco"
    assert results["counts"]["dropped"] == {"no_expression": 2, "bad_box": 4}
    assert results["metrics"]["total"] == 6  # the 4 good rows' 6 expressions, none of a dropped row
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["counts"]["dropped"] == {"no_expression": 2, "bad_box": 4}


# --- Bounds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_new_tokens": 0}, "--max-new-tokens 0: pass a whole number from 1 to 4096"),
        ({"max_new_tokens": 100_000_000}, "--max-new-tokens 100000000: pass a whole number from 1 to 4096"),
        ({"batch_size": 0}, "--batch-size 0: pass a whole number"),
        ({"batch_size": -3}, "--batch-size -3"),
        ({"max_question_tokens": 0}, "--max-question-tokens 0"),
        ({"max_failed_fraction": float("nan")}, "--max-failed-fraction nan: pass a number from 0 to 1"),
        ({"max_failed_fraction": -0.1}, "--max-failed-fraction -0.1"),
        ({"max_failed_fraction": float("inf")}, "--max-failed-fraction inf"),
        ({"device": "gpu7"}, "--device gpu7: not a device"),
        ({"device": "meta"}, "--device meta: no meta device in this process"),
    ],
)
def test_numeric_flags_and_the_device_are_checked_before_any_work(change, message):
    options = MmeOptions(model="m", data="d", output="o")
    for key, value in change.items():
        setattr(options, key, value)
    with pytest.raises(SvitInputError, match=message.replace("(", "\\(")):
        check_options(options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line():
    with pytest.raises(SvitInputError, match="--device cuda: no cuda device in this process"):
        check_options(MmeOptions(model="m", data="d", output="o", device="cuda"))


@pytest.mark.parametrize(
    "prompt", ["Find {thing}.", "Find it.", "Find {expression} {0}.", "Find {expression"]
)
def test_a_grounding_prompt_template_must_hold_only_expression(prompt):
    with pytest.raises(SvitInputError, match="--prompt"):
        Refcoco(RefcocoOptions(model="m", data="d", output="o", prompt=prompt)).check()
    with pytest.raises(SvitInputError, match="--prompt"):  # the former spelling, whichever table it reads
        Grounding.resolve(GroundingOptions(model="m", data="d", output="o", prompt=prompt))


def test_a_20000_word_question_is_refused_before_generation(tiny_checkpoint, tmp_path, no_generation):
    rows = mme_rows()
    rows[0] = {**rows[0], "question": "word " * 20_000}
    table = write_table(tmp_path / "mme.parquet", rows)
    options = MmeOptions(
        model=str(tiny_checkpoint), data=str(table), output=str(tmp_path / "out"), subtasks=SUBTASKS
    )
    with pytest.raises(
        SvitInputError, match=r"existence/0000.png#0: question of \d+ tokens, beyond --max-ques"
    ):
        run_eval("mme", options)
    options.max_question_tokens = 100  # by characters, without tokenizing
    with pytest.raises(
        SvitInputError, match="question of 100[0-9]{3} characters, beyond --max-question-tokens 100"
    ):
        run_eval("mme", options)
    assert not (tmp_path / "out" / "predictions").exists()


def test_duplicate_question_ids_are_named_before_the_model_loads(tmp_path, monkeypatch):
    questions, images = write_pope_files(tmp_path / "pope")
    path = questions / "coco_pope_popular.json"
    questions_asked = [json.loads(line) for line in path.read_text().splitlines()]
    questions_asked[1]["question_id"] = questions_asked[0]["question_id"]  # 4 twice
    path.write_text("".join(json.dumps(q) + "\n" for q in questions_asked))
    monkeypatch.setattr(run, "load_for_eval", lambda *a: pytest.fail("the model was loaded"))
    options = PopeOptions(model="m", data=str(questions), images=str(images), output=str(tmp_path / "o"))
    with pytest.raises(SvitInputError, match="1 duplicate question id\\(s\\): 'popular/4'"):
        run_eval("pope", options)


# --- Nested JSON: refused in one line, memory flat ----------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_in_eval_inputs_is_refused(tmp_path):
    questions, images = write_pope_files(tmp_path / "pope")
    path = questions / "coco_pope_random.json"
    path.write_text(path.read_text() + DEEP + "\n")
    with pytest.raises(SvitFormatError, match="coco_pope_random.json:5: JSON nested deeper than 64 levels"):
        read_pope(questions, images)

    ledger = tmp_path / "out" / "predictions" / "part-00000.jsonl"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(DEEP + "\n")
    with pytest.raises(SvitFormatError, match="part-00000.jsonl: JSON nested deeper"):
        harness.read_ledger(tmp_path / "out")

    (tmp_path / "out" / "run.json").write_text(DEEP)
    with pytest.raises(SvitError, match="run.json: JSON nested deeper"):
        run.check_resume(tmp_path / "out", {})


def test_a_nested_json_table_is_refused_with_memory_flat(tmp_path):
    """`datasets`' JSON loader crashes the process on nested brackets (a segfault, no message): the table is
    refused first, in one line, in a process whose peak memory stays small."""
    table = tmp_path / "table"
    table.mkdir()
    (table / "test.jsonl").write_text('{"question": ' + DEEP + "}\n")
    code = (
        "import resource, sys\n"
        "import datasets\n"
        "from svit_model.evaluation.tables import load_table\n"
        "def peak_mb():\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "before = peak_mb()  # the imports alone take 400-800 MB, by machine and torch build\n"
        "try:\n"
        f"    load_table({str(table)!r})\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
        "print(peak_mb() - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    message, growth_mb = done.stdout.strip().splitlines()
    assert message.startswith("SvitFormatError") and "test.jsonl: JSON nested deeper than 64" in message
    assert int(growth_mb) < 100, f"peak memory grew by {growth_mb} MB"


def test_a_pope_table_answer_that_is_not_yes_or_no_is_refused(tmp_path):
    from tools.eval_samples import pope_rows

    rows = pope_rows()
    rows[2] = {**rows[2], "answer": "maybe"}
    with pytest.raises(SvitFormatError, match=r"row 2 \(2\): answer 'maybe' is not yes or no"):
        read_pope(write_table(tmp_path / "pope.parquet", rows))


def test_svit_referring_turns_with_unscorable_reference_boxes_are_dropped_and_counted(tmp_path):
    """A reversed, out-of-range or unparsable reference box would fail the IoU after all generation (or score an
    entity without a box): the turn is dropped before it, and counted."""
    from collections import Counter

    from tests.test_eval_readers import write_svit_test_split
    from tests.train_fixtures import grounded_rows

    rows = grounded_rows()
    bad_answers = [
        "<st>box<ed> [0.9, 0.5, 0.6, 0.1]",
        "<st>box<ed> [0.1, 0.2, 1.5, 0.4]",
        "<st>box<ed> [nan, 0, 1, 1]",
    ]
    for row, answer in zip(rows[1:], bad_answers, strict=False):
        row["messages"][1]["content"] = answer
    dropped = Counter()
    items = read_svit_referring(write_svit_test_split(tmp_path / "svit", rows), dropped=dropped)
    assert dropped == {"bad_box": 3}
    assert len(items) == 5 - 3 and all("[0.9, 0.5" not in item.reference for item in items)


def test_two_local_tables_of_the_same_name_are_never_read_from_each_others_cache(tmp_path):
    """`datasets` names the cache of a folder with YAML configs after the folder's name: a second folder named
    `svit` (another build, a rebuild) was read as the first one's rows, without a word."""
    from tests.test_eval_readers import write_svit_test_split
    from tests.train_fixtures import grounded_rows

    first = read_svit_referring(write_svit_test_split(tmp_path / "a" / "svit"))
    rows = grounded_rows()
    rows[1]["messages"][1]["content"] = "<st>blue box<ed> [0.100, 0.100, 0.300, 0.300]"
    second = read_svit_referring(write_svit_test_split(tmp_path / "b" / "svit", rows))
    assert first[1].reference == "<st>blue box<ed> [0.600, 0.100, 0.900, 0.500]"
    assert second[1].reference == "<st>blue box<ed> [0.100, 0.100, 0.300, 0.300]"
