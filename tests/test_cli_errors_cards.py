"""The CLI error table of cards, push, Space/app and the demos (issue 16): every case ends as one line
`svit <command>: error: ...`, exit 2, no traceback (tests/cli_runs.assert_one_clean_line_each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from svit_dataset.facts import RUN_FACTS_FILE
from tests.cli_runs import assert_one_clean_line_each
from tests.test_eval_card import GROUNDING
from tests.test_train_card import FACTS


def _cases(root: Path, built_sample: Path, checkpoint: Path) -> list[tuple]:
    run = root / "run"  # a finished full run, as `svit card model` and `svit push` read it
    run.mkdir()
    (run / RUN_FACTS_FILE).write_text(json.dumps(FACTS))
    (run / "config.json").write_text("{}")
    lora = root / "lora"  # a LoRA run whose adapter config was truncated
    lora.mkdir()
    (lora / RUN_FACTS_FILE).write_text(json.dumps(FACTS))
    (lora / "adapter_config.json").write_text('{"base_model_name_or_path": "my-org/b')
    results = {}
    for name, text in (
        ("nan", '{"benchmark": "grounding", "metrics": {"acc@0.5": NaN}}'),
        ("string", '{"benchmark": "grounding", "metrics": {"mean_iou": "0.5"}}'),
        ("other", json.dumps({**GROUNDING, "model": "someone/else"})),
    ):
        results[name] = root / f"{name}.json"
        results[name].write_text(text)
    built = root / "built"  # the dataset folder `svit card dataset` and `svit push` take, stats hand-edited
    shutil.copytree(built_sample, built)
    (built / "stats").mkdir()
    (built / "stats" / "tasks.json").write_text('{"tasks": [1, 2]}')
    users = root / "users"  # a folder of the user's, passed as an output by mistake
    users.mkdir()
    (users / "thesis.tex").write_text("years of work")
    (users / "svit").mkdir()  # a folder of theirs where the demo writes its dataset
    (users / "svit" / "draft.md").write_text("mine")
    space = ["space", str(checkpoint), str(root / "space")]
    card = ["card", "model", str(run)]
    hub_rule = "not a Hub repo id; pass ORG/NAME"
    return [
        ("card NaN metric", [*card, "--results", str(results["nan"])], "nan.json: `metrics.acc@0.5` is NaN"),
        ("card string metric", [*card, "--results", str(results["string"])],
         'string.json: `metrics.mean_iou` is a string ("0.5"), not a finite number'),
        ("card another model", [*card, "--results", str(results["other"])],
         "other.json: results of 'someone/else' (another Hub model), not of run"),
        ("card model id quotes", [*card, "--model-id", 'org/x")'], hub_rule),
        ("card model id four parts", [*card, "--model-id", "a/b/c/d"], hub_rule),
        ("card dataset stats", ["card", "dataset", str(built)], "tasks.json: not as `svit stats` writes it"),
        ("push dataset bad repo id", ["push", str(built), "not a repo"], hub_rule),
        ("push run bad repo id", ["push", str(run), "a/b/c"], hub_rule),
        ("push run offline", ["push", str(run), "someone/x"], "push to someone/x: cannot reach"),
        ("push garbage adapter", ["push", str(lora), "someone/x"], "adapter_config.json: not valid JSON"),
        ("app port too high", ["app", "--model", str(checkpoint), "--port", "99999"], "--port 99999: out of range"),
        ("app port 0", ["app", "--model", str(checkpoint), "--port", "0"], "--port 0: out of range"),
        ("app port negative", ["app", "--model", str(checkpoint), "--port", "-1"], "--port -1: out of range"),
        ("app max new tokens", ["app", "--model", str(checkpoint), "--max-new-tokens", "100000000"],
         "--max-new-tokens is 100000000; it must be a whole number from 1 to 1024"),
        ("space max new tokens", [*space, "--max-new-tokens", "0"], "--max-new-tokens is 0"),
        ("space model id", [*space, "--model-id", "a/b/c/d"], hub_rule),
        ("space overwrite a user folder", ["space", str(checkpoint), str(users), "--overwrite"],
         "is not a Space folder written by `svit space`, so --overwrite does not replace it"),
        ("space full disk", space, "File too large", {"fsize": 65536}),
        ("demo onto a user's svit folder", ["demo", "--output", str(users)], "holds svit, which `svit demo` did"),
        # the datasets cache of the demo's first part outgrows its checkpoints: the limit hits there
        ("demo full disk", ["demo", "--output", str(root / "demo")], "File too large", {"fsize": 500_000}),
        ("model demo steps", ["model", "demo", "--steps", "0"], "--steps: '0' is out of range"),
        ("model demo seed", ["model", "demo", "--seed", "-1"], "--seed: '-1' is out of range"),
    ]  # fmt: skip


@pytest.mark.slow
def test_every_bad_input_of_cards_push_space_and_demo_is_one_clean_line(
    tmp_path, built_sample, tiny_checkpoint
):
    assert_one_clean_line_each(_cases(tmp_path, built_sample, tiny_checkpoint))
    assert sorted(p.name for p in (tmp_path / "users").iterdir()) == [
        "svit",
        "thesis.tex",
    ]  # nothing replaced
    assert [p.name for p in (tmp_path / "users" / "svit").iterdir()] == ["draft.md"]
    assert not (tmp_path / "space").exists() and not list(tmp_path.glob(".space.*"))  # nothing half-written
    assert not (tmp_path / "run" / "README.md").exists()  # no card written from refused results
