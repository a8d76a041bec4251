"""A benchmark is one module: a toy benchmark defined in this file only (a reader over rows made here, a scoring
rule, a headline metric, its model-index mapping, its own flag) registers itself, and is found in `svit eval`,
in the results.json the run writes and in the model card's `model-index`, with no other file edited. The
registry and the former `grounding` spelling are checked here too."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from svit_cli.main import main
from svit_dataset.errors import SvitInputError
from svit_dataset.settings import setting
from svit_model.evaluation import run
from svit_model.evaluation.benchmark import (
    BENCHMARKS,
    Benchmark,
    EvalOptions,
    IndexedMetric,
    benchmark_for,
    register,
)
from svit_model.evaluation.grounding_alias import GroundingOptions
from svit_model.evaluation.harness import EvalItem, with_suffix
from svit_model.evaluation.refcoco import Refcoco
from svit_model.evaluation.svit_referring import SvitReferring
from tests.test_eval_readers import write_svit_test_split
from tests.train_fixtures import one_thread
from tools.eval_samples import refcoco_rows, write_table

REPO = Path(__file__).resolve().parents[1]
TOY = "toy-colours"
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def colour_rows() -> list[dict]:
    """The toy benchmark's data: one question per colour, the answer its name."""
    return [{"id": f"q{n}", "colour": name} for n, name in enumerate(COLOURS)]


def exact_match_accuracy(answers: list[str], references: list[str]) -> float:
    """The toy's scoring rule: share of answers equal to their reference, case and outer spaces aside."""
    right = sum(a.strip().lower() == r.lower() for a, r in zip(answers, references, strict=True))
    return right / len(references) if references else 0.0


@dataclass
class ToyOptions(EvalOptions):
    colours: str = setting(",".join(COLOURS), "comma-separated colours to ask about")


class ToyColours(Benchmark):
    name = TOY
    help = "a toy benchmark: the colour of a plain image"
    options = ToyOptions
    dataset_name = "Toy colours"
    task_type = "visual-question-answering"
    indexed = (IndexedMetric("accuracy", "toy_accuracy", "toy colour accuracy"),)

    def read(self, dropped: Counter) -> list[EvalItem]:
        wanted = self.options.colours.split(",")
        rows = [row for row in json.loads(Path(self.options.data).read_text()) if row["colour"] in wanted]
        question = "What colour is the image?"
        return [
            EvalItem(
                id=row["id"],
                question=question,
                prompt=with_suffix(question, self.options.prompt_suffix),
                image=lambda colour=COLOURS[row["colour"]]: Image.new("RGB", (32, 24), colour),
                reference=row["colour"],
            )
            for row in rows
        ]

    def score(self, items: list[EvalItem], records: dict[str, dict], output: Path) -> dict:
        answers = [records[item.id]["answer"] for item in items]
        accuracy = exact_match_accuracy(answers, [item.reference for item in items])
        return {"accuracy": accuracy, "answered": sum(bool(a) for a in answers), "total": len(items)}

    def headline(self, metrics: dict) -> dict[str, float]:
        return {"accuracy": metrics["accuracy"]}


@pytest.fixture
def toy_registered():
    register(ToyColours)
    try:
        yield ToyColours
    finally:
        BENCHMARKS.pop(TOY)


def test_a_toy_benchmark_defined_here_runs_in_svit_eval_and_lands_in_the_card(
    toy_registered, tiny_checkpoint, tmp_path, capsys
):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert TOY in capsys.readouterr().out  # a sub-command of svit eval
    with pytest.raises(SystemExit):
        main(["eval", TOY, "--help"])
    help_text = capsys.readouterr().out
    assert (
        "--colours" in help_text and "comma-separated colours" in help_text
    )  # its own flag, from its options

    data = tmp_path / "colours.json"
    data.write_text(json.dumps(colour_rows()))
    model = tiny_checkpoint
    out = tmp_path / "out"
    argv = ["eval", TOY, "--model", str(model), "--data", str(data), "--output", str(out), "--no-progress"]
    with one_thread():
        assert main([*argv, "--colours", "red,blue", "--max-new-tokens", "4"]) == 0
    assert f"{TOY} of {model}" in capsys.readouterr().out  # the table, with the toy's headline metric

    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"] == TOY and results["metrics"]["total"] == 2  # --colours reached the reader
    assert results["dataset"] == {"name": "Toy colours", "type": TOY, "path": str(data)}
    accuracy = results["metrics"]["accuracy"]
    assert results["model_index"] == [
        {
            "task_type": "visual-question-answering",
            "dataset_type": TOY,
            "dataset_name": "Toy colours",
            "dataset_config": None,
            "dataset_split": None,
            "metric_type": "toy_accuracy",
            "metric_name": "toy colour accuracy",
            "metric_value": accuracy,
            "whole": True,
        }
    ]
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["reference"] for line in lines] == ["red", "blue"]

    card = tmp_path / "card"
    assert main(["eval", "card", str(out / "results.json"), "--model-dir", str(card), "--force"]) == 0
    (entry,) = ModelCard.load(card / "README.md").data.eval_results
    assert (entry.task_type, entry.dataset_type, entry.dataset_name) == (
        "visual-question-answering",
        TOY,
        "Toy colours",
    )
    assert (entry.metric_type, entry.metric_name, entry.metric_value) == (
        "toy_accuracy",
        "toy colour accuracy",
        round(accuracy, 4),
    )

    # no other file knows it: the package, the cards and the command line hold no word of it
    sources = [
        p for package in ("svit_model", "hub_cards", "svit_cli") for p in (REPO / package).rglob("*.py")
    ]
    assert not [p for p in sources if TOY in p.read_text()]


def test_a_benchmark_is_registered_once_and_named_when_unknown(toy_registered):
    with pytest.raises(ValueError, match=f"a benchmark named '{TOY}' is registered already"):
        register(ToyColours)
    with pytest.raises(SvitInputError, match="no benchmark 'toys'; svit eval has .*toy-colours"):
        benchmark_for("toys", ToyOptions(model="m", data="d", output="o"))


def test_the_shipped_benchmarks_each_have_a_command_and_a_metric_module():
    from svit_model.evaluation.metrics import metric_names

    assert set(run.BENCHMARKS) >= {"mme", "pope", "refcoco", "svit-referring", "grounding"}
    shipped = {name for name, entry in run.BENCHMARKS.items() if issubclass(entry, Benchmark)}
    assert set(metric_names()) == shipped  # one `evaluate` module per benchmark, named after it


def test_grounding_is_the_former_spelling_of_refcoco_and_svit_referring(tmp_path):
    svit = write_svit_test_split(tmp_path / "svit")
    refcoco = write_table(tmp_path / "refcoco.parquet", refcoco_rows())
    common = {"model": "m", "output": "o", "max_new_tokens": 20, "prompt_suffix": "Be brief."}
    on_svit = benchmark_for("grounding", GroundingOptions(data=str(svit), **common))
    on_refcoco = benchmark_for(
        "grounding", GroundingOptions(data=str(refcoco), prompt="Find {expression}.", **common)
    )
    assert type(on_svit) is SvitReferring and type(on_refcoco) is Refcoco
    assert (on_svit.options.max_new_tokens, on_svit.options.prompt_suffix) == (20, "Be brief.")
    assert on_refcoco.options.prompt == "Find {expression}."  # the flags given reach the benchmark that runs
    assert len(on_svit.read(Counter())) == 5 and len(on_refcoco.read(Counter())) == 6
