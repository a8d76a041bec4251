"""The main job (`make demo` = `svit demo`): the whole chain on the bundled sample, and every artefact it lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard, ModelCard

from svit_cli.jobs.main_job import artefact_listing
from svit_cli.main import main


def test_the_artefact_listing_is_one_aligned_line_per_artefact():
    listing = artefact_listing({"dataset": Path("out/svit"), "model card": Path("out/train/run/README.md")})
    assert listing.splitlines() == ["  dataset     out/svit", "  model card  out/train/run/README.md"]


def _listed(printed: str) -> dict[str, Path]:
    """The artefacts the job printed last: `  name  path` lines after `Artefacts:`."""
    lines = printed.split("Artefacts:\n", 1)[1].splitlines()
    return {
        name.strip(): Path(path) for name, path in (line.strip().rsplit("  ", 1) for line in lines if line)
    }


@pytest.mark.slow
def test_the_main_job_runs_the_whole_chain_and_every_listed_artefact_exists(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "out")]) == 0
    artefacts = _listed(capsys.readouterr().out)
    assert len(artefacts) >= 12
    missing = [f"{name}: {path}" for name, path in artefacts.items() if not path.exists()]
    assert not missing
    assert all(tmp_path / "out" in path.parents for path in artefacts.values())  # one output folder

    dataset = artefacts["dataset (load_dataset)"]
    card = DatasetCard.load(artefacts["dataset card"])
    assert card.data.license == "cc-by-4.0" and {c["config_name"] for c in card.data.configs} >= {
        "full",
        "core_150k",
    }
    assert (
        "stats/tasks_first_words.png" in card.text
    )  # the statistics measured on this build, with their figure
    assert load_dataset(str(dataset), "referring_qa", split="test").num_rows > 0

    model_card = ModelCard.load(artefacts["model card"])
    assert model_card.data.pipeline_tag == "image-text-to-text"
    # grounding on the built folder's held-out referring QAs is indexed; the MME sample (4 of 14 subtasks of
    # drawn shapes) is no MME score: in the card's evaluation table only
    index = {
        (r.dataset_name, r.dataset_type, r.dataset_config, r.dataset_split)
        for r in model_card.data.eval_results
    }
    assert index == {("grounding", "grounding", "referring_qa", "test")}
    assert "MME subset (4 of 14 subtasks: existence, count, color, commonsense_reasoning; data `mme`)" in (
        model_card.text
    )
    assert str(tmp_path) not in model_card.content
    space = artefacts["Space folder"]
    assert {"app.py", "requirements.txt", "README.md"} <= {p.name for p in space.iterdir()}
