"""`svit eval` end to end on the tiny SVIT-LLaVA: checkpoint -> predictions -> scores -> results.json -> model-index;
a killed run resumes without generating an item twice; a LoRA run evaluates unmerged; a llava export and
`accelerate`-style splitting give the same predictions."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

import svit_model.evaluation.harness as harness
from hub_cards.model_card import evaluation_entries
from svit_cli.main import main
from svit_dataset.errors import SvitInputError
from svit_model.building import save_checkpoint
from svit_model.evaluation.harness import generate_predictions, load_for_eval, read_ledger
from svit_model.evaluation.mme import MME_SUBTASKS, Mme, MmeOptions, read_mme, record, score_results_folder
from svit_model.evaluation.run import run_eval
from svit_model.stock_llava import export_llava_checkpoint
from svit_model.teaching import teach
from svit_model.tiny import build_tiny_svit_llava
from tests.cli_runs import run_svit, run_svit_forked, wait_forked
from tests.test_eval_readers import write_svit_test_split
from tests.train_fixtures import grounded_rows, one_thread, run_svit_on_two_processes, train_args
from tools.eval_samples import draw, write_mme_layout, write_pope_files

SUBTASKS = "existence,color,count,commonsense_reasoning"
SUFFIX = "Answer the question using a single word or phrase."


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def yes_model(tmp_path_factory):
    """The tiny SVIT-LLaVA taught to answer "Yes" (a few dozen steps): MME scores it can be checked against."""
    model, processor = build_tiny_svit_llava(["Yes", "No", "Is there a red shape in the image?"])
    question = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": draw(40, 30, 0)},
                {
                    "type": "text",
                    "text": f"Is there a red shape in the image? Please answer yes or no.\n{SUFFIX}",
                },
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]},
    ]
    with one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teach(model, processor, question, steps=40)
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("eval_chain") / "yes-model")


@pytest.fixture(scope="module")
def mme_data(tmp_path_factory):
    return write_mme_layout(tmp_path_factory.mktemp("mme_data") / "MME")


def mme_argv(model, data, output, *extra):
    return ["eval", "mme", "--model", str(model), "--data", str(data), "--output", str(output)] + [
        "--subtasks",
        SUBTASKS,
        "--no-progress",
        *extra,
    ]


def outputs(folder) -> dict[str, str]:
    return {
        r["id"]: r["output"] for r in map(json.loads, (folder / "predictions.jsonl").read_text().splitlines())
    }


def test_checkpoint_to_predictions_to_scores_to_results_to_model_index(yes_model, mme_data, tmp_path, capsys):
    out = tmp_path / "mme"
    assert main(mme_argv(yes_model, mme_data, out, "--batch-size", "4")) == 0
    assert "perception" in capsys.readouterr().out  # the table

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 16 and {"id", "prompt", "output", "answer", "reference"} <= set(lines[0])
    assert lines[0]["prompt"].endswith(f"Please answer yes or no.\n{SUFFIX}")
    assert all(line["output"].strip() == "Yes" and line["answer"] == "yes" for line in lines)

    # a model that always says Yes: each image has its Yes question right and its No question wrong
    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"] == "mme" and results["model"] == str(yes_model)
    assert results["metrics"]["subtasks"] == dict.fromkeys(
        ["existence", "count", "color", "commonsense_reasoning"], 50.0
    )
    assert (results["metrics"]["perception"], results["metrics"]["cognition"]) == (150.0, 50.0)
    assert results["metrics"]["yes"] == 16 and results["metrics"]["yes_no_ratio"] is None
    assert (
        results["generation"]["padding_side"] == "left" and results["generation"]["prompt_suffix"] == SUFFIX
    )
    assert results["svit_version"] and results["counts"]["generated"] == 16
    # the official results folder says the same through `mme-score`, and has the official lines
    assert score_results_folder(out / "mme_results", SUBTASKS)["subtasks"] == results["metrics"]["subtasks"]
    first = (out / "mme_results" / "existence.txt").read_text().splitlines()[0].split("\t")
    assert first[0] == "0000.png" and first[2] == "Yes" and first[3] == "Yes" and len(first) == 4
    assert Image.open(out / "mme_scores.png").size[0] > 100

    # what was read: a local folder (no Hub id), 4 of the 14 subtasks
    assert results["dataset"] == {
        "name": "MME",
        "type": "mme",
        "path": str(mme_data),
        "split": None,
        "subtasks": ["existence", "count", "color", "commonsense_reasoning"],
        "complete": False,
    }
    indexed, table = evaluation_entries(results)
    assert indexed == []  # 4 of 14 subtasks are no MME score: table-only
    # the entries the run stated are the ones a results.json of an earlier version (none stated) cards to
    assert evaluation_entries({k: v for k, v in results.items() if k != "model_index"}) == (indexed, table)
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in table} == {
        ("mme", "mme_perception"): 150.0,
        ("mme", "mme_cognition"): 50.0,
    }

    card_dir = tmp_path / "card"
    # the card folder is not the model the results name: refused unless forced
    assert main(["eval", "card", str(out / "results.json"), "--model-dir", str(card_dir)]) == 2
    assert "--force" in capsys.readouterr().err and not (card_dir / "README.md").exists()
    assert main(["eval", "card", str(out / "results.json"), "--model-dir", str(card_dir), "--force"]) == 0
    assert ModelCard.load(card_dir / "README.md").data.eval_results is None  # nothing claimed
    # all 14 subtasks scored: MME's perception and cognition, indexed under the benchmark's name
    metrics = {**results["metrics"], "subtasks": dict.fromkeys(MME_SUBTASKS, 50.0)}
    stated = Mme(MmeOptions(model=str(yes_model), data=str(mme_data), output="o")).model_index(
        results["dataset"], metrics
    )
    whole = {**results, "metrics": metrics, "model_index": stated}
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    assert main(["eval", "card", str(tmp_path / "whole.json"), "--model-dir", str(card_dir), "--force"]) == 0
    card = ModelCard.load(card_dir / "README.md")
    index = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert index == {("mme", "mme_perception"): 150.0, ("mme", "mme_cognition"): 50.0}
    assert "model-index" in (card_dir / "README.md").read_text() and str(tmp_path) not in card.content


def test_a_killed_run_resumes_without_generating_an_item_twice(yes_model, mme_data, tmp_path, monkeypatch):
    out = tmp_path / "mme"
    options = MmeOptions(model=str(yes_model), data=str(mme_data), output=str(out), subtasks=SUBTASKS)
    options.batch_size, options.progress = 4, False
    asked: list[str] = []
    real = harness.generate_batch

    def dies_on_the_second_batch(model, processor, prompts, images, max_new_tokens):
        if len(asked) >= 4:
            raise KeyboardInterrupt  # a kill between two batches
        asked.extend(prompts)
        return real(model, processor, prompts, images, max_new_tokens)

    monkeypatch.setattr(harness, "generate_batch", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_eval("mme", options, print_fn=lambda *_: None)
    done = read_ledger(out)
    assert len(done) == 4 and not (out / "results.json").exists()
    # and a kill in the middle of writing the next line
    (part,) = (out / "predictions").glob("part-*.jsonl")
    with open(part, "a") as f:
        f.write('{"id": "existence/0001.png#0", "prompt": "Is th')

    def counts(model, processor, prompts, images, max_new_tokens):
        asked.extend(prompts)
        return real(model, processor, prompts, images, max_new_tokens)

    monkeypatch.setattr(harness, "generate_batch", counts)
    results = run_eval("mme", options, print_fn=lambda *_: None)
    assert len(asked) == 16  # 4 before the kill, the 12 others after it: none twice
    assert results["counts"]["done_before"] == 4 and results["counts"]["generated"] == 12
    ids = [json.loads(line)["id"] for line in part.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 16
    assert results["metrics"]["subtasks"]["existence"] == 50.0

    changed = MmeOptions(
        model=str(yes_model), data=str(mme_data), output=str(out), subtasks=SUBTASKS, max_new_tokens=5
    )
    with pytest.raises(SvitInputError, match="other settings \\(max_new_tokens differ"):
        run_eval("mme", changed)
    weights = yes_model / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # other weights under the same path
    try:
        with pytest.raises(SvitInputError, match="other settings \\(model_files differ"):
            run_eval("mme", options)
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_batched_split_and_exported_predictions_equal_one_at_a_time(yes_model, mme_data, tmp_path):
    model, processor = load_for_eval(yes_model)
    items = read_mme(mme_data, SUBTASKS, SUFFIX)
    single, _ = generate_predictions(
        model, processor, items, tmp_path / "one", record=record, batch_size=1, progress=False
    )
    batched, _ = generate_predictions(
        model, processor, items, tmp_path / "eight", record=record, batch_size=8, progress=False
    )
    assert {k: v["output"] for k, v in single.items()} == {k: v["output"] for k, v in batched.items()}
    # an untrained model writes long, varied text: left padding must leave every answer as it is alone
    random_model, random_processor = build_tiny_svit_llava()
    alone = [
        harness.generate_batch(random_model, random_processor, [i.prompt], [i.image()], 16)[0]
        for i in items[:8]
    ]
    together = harness.generate_batch(
        random_model, random_processor, [i.prompt for i in items[:8]], [i.image() for i in items[:8]], 16
    )
    assert together == alone and len(set(alone)) > 1

    # two `accelerate launch` processes (threads here, meeting at the same barriers): each generates its half of
    # the pending items, the main one gathers them all
    barrier = threading.Barrier(2, timeout=120)
    returned = {}

    def process(rank):
        returned[rank] = generate_predictions(
            model,
            processor,
            items,
            tmp_path / "two",
            record=record,
            layout=(rank, 2, barrier.wait),
            progress=False,
        )

    threads = [threading.Thread(target=process, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (gathered, first), (none, second) = returned[0], returned[1]
    assert none is None and (first.generated, second.generated) == (8, 8)
    assert {k: v["output"] for k, v in gathered.items()} == {k: v["output"] for k, v in single.items()}

    export = export_llava_checkpoint(yes_model, tmp_path / "llava")
    llava, llava_processor = load_for_eval(export)
    assert type(llava).__name__ == "LlavaForConditionalGeneration"
    exported, _ = generate_predictions(
        llava, llava_processor, items, tmp_path / "llava-out", record=record, progress=False
    )
    assert {k: v["output"] for k, v in exported.items()} == {k: v["output"] for k, v in single.items()}


def test_a_lora_run_evaluates_unmerged_on_svit_referring_qas(
    tiny_grounded_checkpoint, grounded_dataset, tmp_path
):
    """`svit train` LoRA run -> `svit eval grounding` without a merge; the merged checkpoint answers the same."""
    from svit_cli.jobs.train import parse_train_arguments
    from svit_model.training.checkpoint import merge_lora_run
    from svit_model.training.train import train

    tiny, data = tiny_grounded_checkpoint, grounded_dataset
    argv = train_args(tiny, data, tmp_path / "lora", recipe="tiny-stage2-lora", max_steps=2, save_steps=2)
    run = train(*parse_train_arguments(argv)).output_dir
    assert (run / "adapter_config.json").is_file() and not (run / "model.safetensors").exists()
    model, _ = load_for_eval(run)
    assert getattr(model, "_hf_peft_config_loaded", False)  # the adapter is on, not merged

    test_split = write_svit_test_split(tmp_path / "svit", grounded_rows())  # the samples it was trained on
    argv = [
        "eval",
        "grounding",
        "--model",
        str(run),
        "--data",
        str(test_split),
        "--output",
        str(tmp_path / "eval-lora"),
    ]
    assert main([*argv, "--max-new-tokens", "24", "--no-progress"]) == 0
    results = json.loads((tmp_path / "eval-lora" / "results.json").read_text())
    assert results["benchmark"] == "svit-referring"  # what `svit eval grounding` runs on SVIT's referring QAs
    assert results["dataset"] == {  # the config and split read, the benchmark's name for a local folder
        "name": "grounding",
        "type": "grounding",
        "path": str(test_split),
        "config": "referring_qa",
        "split": "test",
    }
    metrics = results["metrics"]
    assert (
        metrics["entities"] == 5 and 0.0 <= metrics["phrase_recall"] <= 1.0
    )  # every reference entity counted
    assert set(metrics) >= {"mean_entity_iou", "entity_acc@0.5"}

    merged = merge_lora_run(run, tmp_path / "merged")
    argv = [
        "eval",
        "grounding",
        "--model",
        str(merged),
        "--data",
        str(test_split),
        "--output",
        str(tmp_path / "eval-merged"),
    ]
    assert main([*argv, "--max-new-tokens", "24", "--no-progress"]) == 0
    assert outputs(tmp_path / "eval-lora") == outputs(tmp_path / "eval-merged")
    card = tmp_path / "card"
    argv = ["eval", "card", str(tmp_path / "eval-lora" / "results.json"), "--model-dir", str(card), "--force"]
    assert main(argv) == 0
    entries = ModelCard.load(card / "README.md").data.eval_results
    assert {r.metric_type for r in entries} == {"phrase_recall", "mean_entity_iou", "entity_acc@0.5"}
    assert {r.metric_config for r in entries} == {"lenient"}  # the protocol that produced them
    assert {(r.dataset_type, r.dataset_config, r.dataset_split) for r in entries} == {
        ("grounding", "referring_qa", "test")
    }


@pytest.mark.slow
def test_torchrun_two_processes_split_the_items(mme_data, tiny_checkpoint, tmp_path):
    """Two processes (torchrun, gloo on CPU: what `accelerate launch` runs) each generate half of the items into
    their own ledger part; the main one writes the predictions and the results once."""
    tiny = tiny_checkpoint  # untrained: varied answers
    out = tmp_path / "ddp"
    done = run_svit_on_two_processes(mme_argv(tiny, mme_data, out, "--batch-size", "4"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("mme of ") == 1  # the table, from the main process only
    parts = sorted((out / "predictions").glob("part-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in parts] == [8, 8]
    model, processor = load_for_eval(tiny)
    alone, _ = generate_predictions(
        model,
        processor,
        read_mme(mme_data, SUBTASKS, SUFFIX),
        tmp_path / "one",
        record=record,
        progress=False,
    )
    assert outputs(out) == {k: v["output"] for k, v in alone.items()}
    assert json.loads((out / "results.json").read_text())["counts"]["total"] == 16


def test_images_that_do_not_load_are_counted_wrong_and_retried(yes_model, tmp_path, capsys):
    questions, images = write_pope_files(tmp_path / "pope")
    out = tmp_path / "out"
    argv = [
        "eval",
        "pope",
        "--model",
        str(yes_model),
        "--data",
        str(questions),
        "--output",
        str(out),
        "--no-progress",
    ]
    assert main([*argv, "--images", str(tmp_path / "pope")]) == 2  # every image missing: not a model to score
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after transformers' loading bar
    assert (
        err.startswith("svit eval pope: error: 12 of 12 images did not load (first: random/0:")
        and "--images" in err
    )
    assert not (out / "results.json").exists()

    first = images / "COCO_val2014_000000000000.jpg"  # the first question of each category asks about it
    first.rename(tmp_path / "aside.jpg")
    assert main([*argv, "--images", str(images), "--max-failed-fraction", "0.5"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["failed_in_ledger"] == 3 and results["counts"]["generated"] == 12
    random = results["metrics"]["categories"]["random"]
    # the yes-model says Yes everywhere; the missing "yes" question is a false negative, not dropped
    assert (random["tp"], random["fp"], random["fn"], random["missing"], random["total"]) == (1, 2, 1, 1, 4)
    assert random["accuracy"] == 0.25

    (tmp_path / "aside.jpg").rename(first)
    assert (
        main([*argv, "--images", str(images), "--max-failed-fraction", "0.5"]) == 0
    )  # only the 3 are retried
    results = json.loads((out / "results.json").read_text())
    assert (results["counts"]["done_before"], results["counts"]["generated"]) == (9, 3)
    assert results["counts"]["failed_in_ledger"] == 0
    assert results["metrics"]["categories"]["random"]["accuracy"] == 0.5


@pytest.mark.slow
def test_a_sigkilled_command_resumes_without_generating_an_item_twice(mme_data, tiny_checkpoint, tmp_path):
    """`svit eval mme` killed with SIGKILL mid-run (in a process of its own, a fork of this one; untrained model,
    long answers: about a second an item), then run again: every item ends in the ledger exactly once, and the
    rerun generated only the others."""
    out = tmp_path / "out"
    argv = ["eval", "mme", "--model", str(tiny_checkpoint), "--data", str(mme_data), "--output", str(out)]
    argv += ["--subtasks", "existence,count", "--no-progress", "--batch-size", "1", "--max-new-tokens", "160"]
    killed = run_svit_forked(argv)
    part = out / "predictions" / "part-00000.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.running():
        if part.is_file() and len(part.read_bytes().splitlines()) >= 3:
            os.kill(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert wait_forked(killed).returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = len(read_ledger(out))
    assert 3 <= before < 8
    done = run_svit(argv)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert (results["counts"]["done_before"], results["counts"]["generated"]) == (before, 8 - before)
    ids = [json.loads(line)["id"] for line in part.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 8
