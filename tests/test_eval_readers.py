"""Benchmarks read from the forms users have (MME's release layout and lmms-lab table, POPE's question files and
table, RefCOCO tables, SVIT's referring-QA test split), and bad input as one clear line."""

from __future__ import annotations

import datasets
import pytest

from svit_cli.main import main
from svit_dataset.errors import SvitFormatError, SvitInputError
from svit_dataset.schema import SAMPLE_FEATURES
from svit_model.evaluation.mme import read_mme
from svit_model.evaluation.pope import read_pope
from svit_model.evaluation.refcoco import REFCOCO_PROMPT, read_refcoco
from svit_model.evaluation.svit_referring import read_svit_referring
from tests.train_fixtures import grounded_rows
from tools.eval_samples import (
    mme_rows,
    pope_rows,
    refcoco_rows,
    write_mme_layout,
    write_pope_files,
    write_table,
)

SUFFIX = "Answer the question using a single word or phrase."
SAMPLE_SUBTASKS = "existence,color,count,commonsense_reasoning"


def fields(items):
    return [(i.id, i.question, i.prompt, str(i.reference).lower(), i.meta) for i in items]


def test_mme_layout_and_table_give_the_same_items(tmp_path):
    rows = mme_rows()
    layout = read_mme(write_mme_layout(tmp_path / "mme", rows), SAMPLE_SUBTASKS, SUFFIX)
    table = read_mme(write_table(tmp_path / "mme.parquet", rows), SAMPLE_SUBTASKS, SUFFIX)
    assert fields(layout) == fields(table) and len(layout) == 16
    assert [i.meta["subtask"] for i in layout[::4]] == [
        "existence",
        "count",
        "color",
        "commonsense_reasoning",
    ]
    first = layout[0]
    assert first.id == "existence/0000.png#0" and first.reference == "Yes"
    assert first.prompt == first.question + "\n" + SUFFIX and first.question.endswith(
        "Please answer yes or no."
    )
    assert list(layout[4].image().getdata()) == list(table[4].image().getdata())
    # the `color` subtask uses images/ + questions_answers_YN/
    assert (tmp_path / "mme" / "color" / "questions_answers_YN" / "0000.txt").is_file()


def test_pope_files_and_table_give_the_same_items(tmp_path):
    rows = pope_rows()
    questions, images = write_pope_files(tmp_path / "pope", rows)
    from_files = read_pope(questions, images, SUFFIX)
    from_table = read_pope(write_table(tmp_path / "pope.parquet", rows), suffix=SUFFIX)
    assert fields(from_files) == fields(from_table) and len(from_files) == 12
    assert from_files[0].id == "random/0" and from_files[-1].meta == {"category": "adversarial"}
    assert from_files[3].image().size == from_table[3].image().size


def test_refcoco_table_one_item_per_expression(tmp_path):
    items = read_refcoco(write_table(tmp_path / "refcoco.parquet", refcoco_rows()))
    assert [i.id for i in items] == ["ref-0#0", "ref-1#0", "ref-1#1", "ref-2#0", "ref-3#0", "ref-3#1"]
    assert items[0].question == REFCOCO_PROMPT.format(expression="the red ellipse")
    assert items[0].reference == pytest.approx([4.8, 7.2, 19.2, 21.6])  # [x, y, w, h] px as in the table


def write_svit_test_split(folder, rows=None):
    """A folder laid out as `svit build` writes it, with only the `test` split of `referring_qa`."""
    path = folder / "data" / "referring_qa" / "test-00000-of-00001.parquet"
    datasets.Dataset.from_list(rows or grounded_rows(), features=SAMPLE_FEATURES).to_parquet(str(path))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: referring_qa\n  data_files:\n  - split: test\n    path: data/referring_qa/test-*\n---\n"
    )
    return folder


def test_svit_referring_qa_test_split_of_a_built_folder(tmp_path):
    items = read_svit_referring(write_svit_test_split(tmp_path / "svit"))
    assert len(items) == 5  # one item per question: 1 + 2 + 1 + 1
    assert items[1].id == "12-referring_qa-0#0" and items[1].question == "Where is the blue box?"
    assert items[1].reference == "<st>blue box<ed> [0.600, 0.100, 0.900, 0.500]"
    assert items[2].id == "12-referring_qa-0#1" and items[1].image().size == (40, 60)


def test_each_box_benchmark_refuses_the_others_table_naming_the_right_command(tmp_path):
    svit = write_svit_test_split(tmp_path / "svit")
    with pytest.raises(
        SvitInputError, match="a RefCOCO table needs .*SVIT's referring QAs are `svit eval svit-ref"
    ):
        read_refcoco(svit, "test", "referring_qa")
    with pytest.raises(
        SvitInputError, match="no column id, images, messages .*RefCOCO-shaped tables are `svit eval"
    ):
        read_svit_referring(write_table(tmp_path / "refcoco.parquet", refcoco_rows()))


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_an_mme_folder_missing_subtasks_is_named(tmp_path, capsys):
    data = write_mme_layout(tmp_path / "mme")
    argv = [
        "eval",
        "mme",
        "--model",
        str(tmp_path / "none"),
        "--data",
        str(data),
        "--output",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("svit eval mme: error:")
    assert "lacks subtasks position, posters, celebrity, scene, landmark, artwork, OCR" in err
    assert "numerical_calculation, text_translation, code_reasoning" in err and "--subtasks" in err
    with pytest.raises(SvitInputError, match="lacks subtasks position"):
        read_mme(write_table(tmp_path / "mme.parquet", mme_rows()))
    with pytest.raises(SvitInputError, match="unknown colour"):
        read_mme(data, "existence,colour")


def test_a_malformed_question_line_names_file_and_line(tmp_path, capsys):
    data = write_mme_layout(tmp_path / "mme")
    question_file = data / "existence" / "0001.txt"
    first, _ = question_file.read_text().splitlines()
    question_file.write_text(f"{first}\nIs there a dog? Yes\n")  # no tab
    argv = [
        "eval",
        "mme",
        "--model",
        "m",
        "--data",
        str(data),
        "--output",
        str(tmp_path / "o"),
        "--subtasks",
        "existence",
    ]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{question_file}:2: expected 'question<TAB>Yes' or 'question<TAB>No'" in err

    question_file.write_text(f"{first}\n")
    with pytest.raises(SvitFormatError, match="1 questions; MME asks two per image"):
        read_mme(data, "existence")
    (data / "count" / "0000.png").unlink()
    with pytest.raises(SvitInputError, match="0000.txt: no image 0000.jpg or .png"):
        read_mme(data, "count")


def test_a_malformed_pope_line_names_file_and_line(tmp_path, capsys):
    questions, images = write_pope_files(tmp_path / "pope")
    path = questions / "coco_pope_popular.json"
    lines = path.read_text().splitlines()
    path.write_text(
        "\n".join([lines[0], '{"question_id": 7, "image": "x.jpg", "text": "Is there', *lines[1:]]) + "\n"
    )
    argv = [
        "eval",
        "pope",
        "--model",
        "m",
        "--data",
        str(questions),
        "--images",
        str(images),
        "--output",
        str(tmp_path / "o"),
    ]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and f"{path}:2: not a JSON object" in err
    path.write_text('{"question_id": 7, "image": "x.jpg", "text": "Is there a cat?", "label": "maybe"}\n')
    with pytest.raises(
        SvitFormatError, match=r"coco_pope_popular.json:1: label 'maybe' is neither yes nor no"
    ):
        read_pope(questions, images)
    with pytest.raises(SvitInputError, match="--images None: not a folder"):
        read_pope(questions)


def test_a_table_without_the_columns_is_named(tmp_path):
    path = write_table(tmp_path / "t.parquet", [{"question": "q", "image": mme_rows()[0]["image"]}])
    with pytest.raises(SvitInputError, match=r"no column question_id, answer, category .*lmms-lab/MME shape"):
        read_mme(path, "existence")
    with pytest.raises(SvitInputError, match="no split 'val'; it has train; pass --split"):
        read_pope(path, split="val")
