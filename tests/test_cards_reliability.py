"""Issue 16, cards, push, Space/app and demo: what a hostile or careless user passes is refused in one line
before any work, nothing of theirs is replaced, and a card publishes only the scores of its own model.

- cards: a metric that is no finite number, results of another model (unless forced), a `--model-id` that is
  no Hub id, a malformed `stats/tasks.json` (tests/test_cards.py, with the built folder);
- push: a repo id that is not one (dataset and run folders), a garbage adapter config, no network;
- Space/app: question length and max_new_tokens capped, ports range-checked, `--overwrite` replaces only a
  Space folder; the demo refuses an --output that holds anything it did not write.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from hub_cards.model_card import add_eval_results, write_run_card
from svit_cli.main import main
from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE
from svit_dataset.hub_push import hub_repo_id, require_hub_repo_id
from svit_dataset.llava_format import IMAGE_TOKEN
from tests.test_eval_card import GROUNDING, MME, POPE
from tests.test_train_card import FACTS

NOWHERE = "http://127.0.0.1:9"  # nothing listens: a push that got this far would fail with "cannot reach"


def _run(root: Path, facts: dict = FACTS, name: str = "run") -> Path:
    run = root / name
    run.mkdir()
    (run / RUN_FACTS_FILE).write_text(json.dumps(facts))
    return run


def _results(root: Path, name: str, document: dict | str) -> Path:
    path = root / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


# --- cards: only finite numbers are published ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric_text", "kind"),
    [
        ("NaN", "is NaN"),
        ("Infinity", "is an infinity"),
        ("-Infinity", "is an infinity"),
        ("1e400", "is an infinity"),  # json reads an overflowing literal as inf
        ("1" + "0" * 400, "is a number too large for a float"),
        ('"0.71"', 'is a string ("0.71")'),
        ("true", "is a boolean"),
        ("null", "is null"),
        ("[0.7]", "is a list"),
    ],
)
def test_a_metric_that_is_no_finite_number_is_refused_naming_file_and_metric(tmp_path, metric_text, kind):
    run = _run(tmp_path)
    text = '{"benchmark": "grounding", "dataset": {"name": "g"}, "metrics": {"mean_iou": 0.5, "acc@0.5": %s}}'
    bad = _results(tmp_path, "results.json", text % metric_text)
    with pytest.raises(
        SvitInputError, match=rf"results.json: `metrics.acc@0.5` {re.escape(kind)}.*, not a finite number"
    ):
        write_run_card(run, [bad])
    assert not (run / "README.md").exists()  # nothing half-written, nothing silently dropped
    with pytest.raises(SvitInputError, match=r"`metrics.acc@0.5`"):
        add_eval_results(tmp_path / "model", [bad])


def test_a_pope_category_metric_is_named_with_its_category(tmp_path):
    pope = json.loads(json.dumps(POPE))
    pope["metrics"]["categories"]["popular"]["f1"] = float("nan")
    bad = _results(tmp_path, "pope.json", json.dumps(pope))  # json.dumps writes NaN as svit eval never does
    with pytest.raises(SvitInputError, match=r"pope.json: `metrics.categories.popular.f1` is NaN"):
        write_run_card(_run(tmp_path), [bad])


# --- cards: the results of this model only -----------------------------------------------------------------


def test_results_of_another_model_are_refused_unless_forced(tmp_path, caplog, monkeypatch):
    run = _run(tmp_path)
    other_folder = tmp_path / "other-run"
    other_folder.mkdir()
    for name, model in (
        ("hub.json", "someone/another-model"),
        ("folder.json", str(other_folder)),
        ("moved.json", "elsewhere/train/some-other-run"),
        ("number.json", 7),
    ):
        path = _results(tmp_path, name, {**GROUNDING, "model": model})
        with pytest.raises(
            SvitInputError, match=rf"{name}: results of .* not of run; pass the results.*--force"
        ):
            write_run_card(run, [path])
        assert not (run / "README.md").exists()
    with caplog.at_level(logging.WARNING):
        write_run_card(run, [tmp_path / "hub.json"], force=True)
    assert "hub.json: results of 'someone/another-model'" in caplog.text and "(forced)" in caplog.text
    assert ModelCard.load(run / "README.md").data.eval_results

    # this model under each of its names: its folder, a checkpoint in it, its Hub id, the --model-id given,
    # the path another working directory recorded, and no name at all (older results.json)
    (run / "checkpoint-12").mkdir()
    monkeypatch.chdir(tmp_path)
    for model in (str(run), "run", str(run / "checkpoint-12"), FACTS["hub_model_id"], "a/b/run/checkpoint-3"):
        write_run_card(run, [_results(tmp_path, "own.json", {**GROUNDING, "model": model})])
    write_run_card(
        run, [_results(tmp_path, "own.json", {**GROUNDING, "model": "me/pushed"})], model_id="me/pushed"
    )
    write_run_card(run, [_results(tmp_path, "own.json", GROUNDING)])


def test_a_model_folder_that_is_no_run_refuses_only_another_folders_results(tmp_path):
    model = tmp_path / "merged"
    model.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(SvitInputError, match="results of .*elsewhere.*another folder"):
        add_eval_results(model, [_results(tmp_path, "a.json", {**GROUNDING, "model": str(elsewhere)})])
    add_eval_results(model, [_results(tmp_path, "b.json", {**GROUNDING, "model": str(model)})])
    add_eval_results(model, [_results(tmp_path, "c.json", MME)])  # a Hub id: the folder knows none of its own
    add_eval_results(
        model, [_results(tmp_path, "a.json", {**GROUNDING, "model": str(elsewhere)})], force=True
    )


def test_svit_card_model_force_flag(tmp_path, capsys):
    run = _run(tmp_path)
    other = _results(tmp_path, "other.json", {**GROUNDING, "model": "someone/else"})
    assert main(["card", "model", str(run), "--results", str(other)]) == 2
    assert "--force" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["card", "model", str(run), "--results", str(other), "--force"]) == 0


# --- one check for every Hub id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ['org/na"me', "org/it's", "a/b/c/d", "a/b/c", "org/x--y", "org/x..y", "org/x.git", "org/-x", "org/x-",
     "org/x.", "ørg/x", "org/na me", "org/x\n", "o/" + "x" * 97, "gpt2", "", "/abs/x"],
)  # fmt: skip
def test_the_one_hub_id_check_refuses_what_the_hub_or_a_usage_snippet_would_break_on(tmp_path, value):
    assert hub_repo_id(value) is None
    with pytest.raises(SvitInputError, match="not a Hub repo id; pass ORG/NAME"):
        require_hub_repo_id(value, "--model-id")
    run = _run(tmp_path)
    with pytest.raises(SvitInputError, match=r"^--model-id .*not a Hub repo id"):
        write_run_card(run, model_id=value)
    assert not (run / "README.md").exists()


def test_a_valid_model_id_reaches_the_usage_code(tmp_path):
    assert hub_repo_id("Org_1/svit-llava.v1_5") == "Org_1/svit-llava.v1_5"
    assert hub_repo_id("o/" + "x" * 96) == "o/" + "x" * 96
    run = _run(tmp_path)
    write_run_card(run, model_id="my-org/tiny.v2")
    assert 'from_pretrained("my-org/tiny.v2"' in (run / "README.md").read_text()


def test_a_hand_edited_hub_model_id_in_the_run_facts_never_reaches_the_usage_code(tmp_path):
    run = _run(tmp_path, {**FACTS, "hub_model_id": 'x"); import os; ("'})
    write_run_card(run)
    text = (run / "README.md").read_text()
    assert "import os" not in text and 'from_pretrained("run"' in text


def test_a_folder_name_with_a_quote_stays_a_string_in_the_usage_code(tmp_path):
    run = _run(tmp_path, {**FACTS, "hub_model_id": None}, name='my "best" run')
    write_run_card(run)
    assert 'from_pretrained("my \\"best\\" run", trust_remote_code=True)' in (run / "README.md").read_text()


# --- push ----------------------------------------------------------------------------------------------


def _dataset_folder(root: Path) -> Path:
    folder = root / "built"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    (folder / "build_report.json").write_text("{}")
    return folder


@pytest.mark.parametrize("kind", ["dataset", "run"])
@pytest.mark.parametrize("repo_id", ["not a repo", "a/b/c", "org/x--y", 'org/"x"'])
def test_push_refuses_a_repo_id_that_is_not_one_before_any_network(tmp_path, monkeypatch, kind, repo_id):
    from svit_cli.jobs import push

    folder = _dataset_folder(tmp_path) if kind == "dataset" else _run(tmp_path)
    (folder / "config.json").write_text("{}")
    cards = []
    monkeypatch.setattr(push, "run_card", lambda run, model_id: cards.append(model_id) or "")
    with pytest.raises(SvitInputError, match=r"^ORG/NAME .*: not a Hub repo id"):
        push.push_folder(folder, repo_id, endpoint=NOWHERE)
    assert cards == []  # refused before the card named it


@pytest.mark.parametrize("kind", ["dataset", "run"])
def test_push_without_network_is_one_line_for_both_folder_kinds(tmp_path, kind):
    from svit_cli.jobs.push import push_folder

    folder = _dataset_folder(tmp_path) if kind == "dataset" else _run(tmp_path)
    (folder / "config.json").write_text("{}")
    with pytest.raises(SvitInputError, match=r"push to someone/x: cannot reach http://127.0.0.1:9"):
        push_folder(folder, "someone/x", endpoint=NOWHERE)


@pytest.mark.parametrize("text", ["{not json", "[1]", '{"base_model_name_or_path": 5}'])
def test_push_of_a_lora_run_with_a_garbage_adapter_config_is_one_line(tmp_path, text):
    from svit_cli.jobs.push import check_pushable_run

    run = _run(tmp_path)
    (run / "adapter_config.json").write_text(text)
    with pytest.raises(SvitInputError, match="adapter_config.json"):
        check_pushable_run(run)


# --- Space and app -------------------------------------------------------------------------------------------


def test_an_over_long_question_is_refused_in_words_before_the_model_runs():
    from svit_model.space.app import CHAT, MAX_QUESTION_CHARS, REFERRING, AppSettings, question_prompt

    settings = AppSettings()
    assert question_prompt(CHAT, "x" * MAX_QUESTION_CHARS, settings, IMAGE_TOKEN) == "x" * MAX_QUESTION_CHARS
    for mode in (CHAT, REFERRING):
        with pytest.raises(
            ValueError, match=f"20,000 characters long; this app takes at most {MAX_QUESTION_CHARS:,}"
        ):
            question_prompt(mode, "word " * 4000, settings, IMAGE_TOKEN)


def test_a_question_holding_the_image_placeholder_is_refused_in_words():
    from svit_model.space.app import CHAT, REFERRING, AppSettings, question_prompt

    for mode in (CHAT, REFERRING):  # the processor would count two images and fail inside generate
        with pytest.raises(ValueError, match="may not contain <image>"):
            question_prompt(mode, "What is in <image>?", AppSettings(), IMAGE_TOKEN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{"examples": {"a": 1}}', "examples must be a list of image paths"),
        ('{"examples": ["a.png", 3]}', "examples must be a list of image paths"),
    ],
)
def test_a_hand_edited_space_json_is_refused_when_the_app_starts(tmp_path, text, expected):
    from svit_model.space.app import SETTINGS_FILE, AppSettings

    (tmp_path / SETTINGS_FILE).write_text(text)
    with pytest.raises(ValueError, match=expected):
        AppSettings.read(tmp_path)


def test_the_page_answers_an_over_long_question_with_a_message_and_never_asks_the_model(monkeypatch):
    gradio = pytest.importorskip("gradio")
    from PIL import Image

    from svit_model.space import app

    asked = []
    monkeypatch.setattr(app, "ask_model", lambda *args: asked.append(args) or "")
    processor = SimpleNamespace(image_token=IMAGE_TOKEN)  # all the page reads of it before asking the model
    demo = app.build_demo(model=None, processor=processor, settings=app.AppSettings())
    respond = next(fn.fn for fn in demo.fns.values() if fn.fn is not None and fn.fn.__name__ == "respond")
    with pytest.raises(gradio.Error, match="this app takes at most 2,000"):
        respond(Image.new("RGB", (8, 8)), app.CHAT, "why " * 5000)
    assert asked == []


@pytest.mark.parametrize("value", [0, -1, 1025, 100_000_000, True, 2.5, "16"])
def test_max_new_tokens_is_capped_everywhere(tmp_path, value):
    from svit_model.space.app import AppSettings
    from svit_model.space.folder import check_max_new_tokens, write_space

    with pytest.raises(SvitInputError, match="--max-new-tokens .* from 1 to 1024"):
        check_max_new_tokens(value)
    with pytest.raises(ValueError, match="space.json: max_new_tokens"):
        AppSettings(max_new_tokens=value)  # a hand-edited space.json: refused when the Space starts
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SvitInputError, match="--max-new-tokens"):
        write_space(run, tmp_path / "space", model_id="org/model", max_new_tokens=value)
    assert not (tmp_path / "space").exists()


@pytest.mark.parametrize("port", [0, -1, 65536, 99999])
def test_svit_app_refuses_a_port_that_is_none_before_loading(tmp_path, capsys, port):
    # the model does not exist: the port is what is named, so it was checked first
    assert main(["app", "--model", str(tmp_path / "nope"), "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"svit app: error: --port {port}: out of range; expected an integer at least 1 and at most 65535"
    )


def test_space_overwrite_replaces_a_space_folder_or_an_empty_one_and_nothing_else(tmp_path):
    from svit_model.space.folder import write_space

    run = tmp_path / "run"
    run.mkdir()
    out = tmp_path / "space"
    write_space(run, out, model_id="org/model")  # no weights copied: quick
    with pytest.raises(SvitInputError, match="already exists; pass --overwrite"):
        write_space(run, out, model_id="org/model")
    write_space(run, out, model_id="org/model2", overwrite=True)
    assert "org/model2" in (out / "space.json").read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    write_space(run, empty, model_id="org/model", overwrite=True)
    assert (empty / "app.py").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "app.py").write_text("my own app")  # an app.py alone does not make a Space folder
    with pytest.raises(SvitInputError, match="is not a Space folder written by `svit space`, so --overwrite"):
        write_space(run, mine, model_id="org/model", overwrite=True)
    assert sorted(p.name for p in mine.iterdir()) == ["app.py", "thesis.tex"]


# --- the demos ------------------------------------------------------------------------------------------------


def test_the_main_job_runs_only_where_it_replaces_nothing_of_the_users(tmp_path, capsys):
    from svit_cli.jobs.main_job import MainJobLayout, check_main_job_output

    check_main_job_output(tmp_path / "new")  # nothing there yet
    check_main_job_output(tmp_path)  # empty
    layout = MainJobLayout(tmp_path / "out")
    for part in (layout.dataset, layout.train, layout.eval, layout.space):
        part.mkdir(parents=True)
    (layout.dataset / "build_report.json").write_text("{}")
    layout.drawing.write_bytes(b"png")
    (layout.root / ".DS_Store").write_bytes(b"")
    # an earlier demo's, beside what the README's CPU recipes write there (never touched by the demo)
    (layout.root / "tiny-svit-llava").mkdir()
    check_main_job_output(layout.root)
    (layout.dataset / "build_report.json").unlink()
    (layout.dataset / "notes.txt").write_text("mine")
    with pytest.raises(SvitInputError, match="holds svit, which `svit demo` did not write"):
        check_main_job_output(layout.root)
    assert main(["demo", "--output", str(layout.root)]) == 2
    assert "holds svit" in capsys.readouterr().err
    assert (layout.dataset / "notes.txt").read_text() == "mine" and layout.drawing.read_bytes() == b"png"
    with pytest.raises(SvitInputError, match="is a file"):
        check_main_job_output(layout.drawing)


@pytest.mark.parametrize(
    ("steps", "seed", "drawing", "expected"),
    [
        (0, 0, None, "--steps 0: out of range"),
        (100_000_000, 0, None, "--steps 100000000: out of range"),
        (60, -1, None, "--seed -1: out of range"),
        (60, 2**64, None, "--seed 18446744073709551616: out of range"),
        (60, 0, bundled.IMAGES_DIR / "x.png", "inputs are never written"),
    ],
)
def test_the_model_demo_checks_its_settings_before_building(steps, seed, drawing, expected):
    from svit_cli.jobs.grounded_answer import run_grounded_answer

    with pytest.raises(SvitInputError, match=expected):
        run_grounded_answer(seed=seed, steps=steps, drawing=drawing)


def test_the_model_demo_replaces_an_existing_drawing_only_with_overwrite_and_only_a_png(tmp_path):
    from svit_cli.jobs.grounded_answer import check_grounded_answer_settings

    drawn, notes = tmp_path / "drawn.png", tmp_path / "notes.txt"
    drawn.write_bytes(b"earlier drawing")
    notes.write_text("the user's")
    with pytest.raises(SvitInputError, match="already exists; pass --overwrite"):
        check_grounded_answer_settings(0, 60, drawn)
    check_grounded_answer_settings(0, 60, drawn, overwrite=True)
    with pytest.raises(SvitInputError, match="is not a PNG image"):
        check_grounded_answer_settings(0, 60, notes, overwrite=True)


def test_the_eval_demo_replaces_only_its_own_results_folder(tmp_path):
    from svit_cli.jobs.main_job_eval import run_eval_part

    users = tmp_path / "eval"
    users.mkdir()
    (users / "mme").mkdir()
    (users / "paper.pdf").write_bytes(b"%PDF")
    with pytest.raises(SvitInputError, match="is not an evaluation demo folder"):
        run_eval_part(tmp_path / "no-checkpoint", tmp_path / "no-data", users)
    assert sorted(p.name for p in users.iterdir()) == ["mme", "paper.pdf"]
