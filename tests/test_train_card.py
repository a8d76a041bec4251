"""The model card of a training run (hub_cards.model_card): huggingface_hub's ModelCard, parsed back."""

from __future__ import annotations

import json
from types import SimpleNamespace

from huggingface_hub import ModelCard

from hub_cards.model_card import write_model_card
from svit_dataset.facts import RUN_FACTS_FILE

FACTS = {
    "base_model": "my-org/svit-llava-7b-stage1",
    "datasets": ["my-org/svit", "/local/folder"],
    "dataset_config": "mix_665k",
    "stage": "finetune",
    "template": "default",
    "method": "lora",
    "lora": {"r": 128, "alpha": 256, "dropout": 0.05},
    "hyperparameters": {"learning_rate": 2e-4, "projector_lr": 2e-5, "per_device_train_batch_size": 16},
    "hub_model_id": "my-org/svit-v1.5-7b-lora",
    "global_step": 5198,
    "counts": {"tokens_trained": 123456789, "no_trained_tokens": 3, "image_beyond_max_length": 0},
    "final_loss": 0.8123,
    "loss_curve": "loss_curve.png",
    "summary": "svit train: 5198 steps, 123,456,789 tokens trained, 3 samples dropped (3 no_trained_tokens)",
}


def test_card_parses_back_with_its_metadata(tmp_path):
    path = write_model_card(FACTS, tmp_path)
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["base_model"] == "my-org/svit-llava-7b-stage1"
    assert data["datasets"] == ["my-org/svit"]  # a local path is no Hub id: body only
    assert data["license"] == "cc-by-4.0" and data["pipeline_tag"] == "image-text-to-text"
    assert data["library_name"] == "transformers" and {"svit", "lora", "trl"} <= set(data["tags"])
    text = card.text
    assert "`folder`" in text and "/local" not in text and "(config `mix_665k`)" in text  # by its name only
    assert "- base model: `my-org/svit-llava-7b-stage1`\n" in text
    assert "| `lora_r` | 128 |" in text and "| `projector_lr` | 2e-05 |" in text
    assert "steps: 5198, tokens trained: 123,456,789, final loss 0.8123" in text
    assert "![training loss](loss_curve.png)" in text and "3 samples dropped" in text
    assert 'from_pretrained("my-org/svit-v1.5-7b-lora", trust_remote_code=True)' in text
    assert "post_process_generation" in text and "import svit" not in text  # runs where svit is not installed
    assert not list(tmp_path.glob(".README*"))  # written atomically, nothing left beside it


def test_base_model_is_the_hub_id_a_run_starts_from(tmp_path, monkeypatch):
    """Stage 2 starts from stage 1's local folder: `svit train` records the Hub id behind it, never the path."""
    from svit_model.training.train import base_model_id

    monkeypatch.chdir(tmp_path)
    assert base_model_id("lmsys/vicuna-7b-v1.5") == "lmsys/vicuna-7b-v1.5"
    built = tmp_path / "out" / "svit-7b"  # `svit model build`: its config names the LLM it was built from
    built.mkdir(parents=True)
    config = {"model_type": "svit_llava", "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5"}}
    (built / "config.json").write_text(json.dumps(config))
    assert base_model_id(str(built)) == base_model_id("out/svit-7b") == "lmsys/vicuna-7b-v1.5"
    stage1 = tmp_path / "out" / "train" / "svit-v1.5-7b-stage1"  # a run: its recorded base model
    stage1.mkdir(parents=True)
    (stage1 / RUN_FACTS_FILE).write_text(
        json.dumps({"base_model": "lmsys/vicuna-7b-v1.5", "hub_model_id": None})
    )
    (stage1 / "config.json").write_text(json.dumps({"text_config": {"_name_or_path": "/elsewhere/vicuna"}}))
    assert base_model_id(str(stage1)) == "lmsys/vicuna-7b-v1.5"
    (stage1 / RUN_FACTS_FILE).write_text(json.dumps({"base_model": str(built)}))  # an older run: its path
    assert base_model_id(str(stage1)) == "lmsys/vicuna-7b-v1.5"  # followed to the built folder's LLM
    local_llm = tmp_path / "vicuna"
    local_llm.mkdir()
    config["text_config"]["_name_or_path"] = str(local_llm)
    (built / "config.json").write_text(json.dumps(config))
    assert base_model_id(str(built)) is None  # built from a local LLM: no Hub id to give
    assert base_model_id(str(tmp_path / "missing")) is None and base_model_id(None) is None
    (stage1 / RUN_FACTS_FILE).write_text("[1, 2]")  # not an object: no base model from it
    assert base_model_id(str(stage1)) is None


def test_static_facts_keep_no_local_path_and_the_card_shows_folder_names(tmp_path):
    from svit_model.training.stages import STAGES
    from svit_model.training.train import static_facts

    stage1 = tmp_path / "out" / "train" / "svit-v1.5-13b-stage1"
    stage1.mkdir(parents=True)
    (stage1 / RUN_FACTS_FILE).write_text(json.dumps({"base_model": "lmsys/vicuna-13b-v1.5"}))
    script_args = SimpleNamespace(
        dataset_config="core_150k", projector_lr=None, train_vision_tower=False, group_by_modality_length=True
    )
    training_args = SimpleNamespace(
        to_dict=lambda: {"learning_rate": 2e-5}, learning_rate=2e-5, world_size=1, hub_model_id=None
    )
    model_args = SimpleNamespace(model_name_or_path=str(stage1), use_peft=False)
    facts = static_facts(script_args, training_args, model_args, STAGES["finetune"], str(tmp_path / "svit"))
    assert facts["base_model"] == "lmsys/vicuna-13b-v1.5"
    assert facts["init_from"] == "svit-v1.5-13b-stage1" and facts["datasets"] == ["svit"]
    assert str(tmp_path) not in json.dumps(facts)
    card = ModelCard.load(write_model_card(facts, tmp_path / "out"))
    assert card.data.base_model == "lmsys/vicuna-13b-v1.5" and card.data.datasets is None
    assert "- base model: `lmsys/vicuna-13b-v1.5` (trained from `svit-v1.5-13b-stage1`)" in card.text
    assert "- data: `svit` (config `core_150k`)" in card.text
    assert str(tmp_path) not in card.text and "/tmp" not in card.text


def test_facts_of_older_runs_show_local_paths_by_name_only(tmp_path):
    facts = {**FACTS, "base_model": "/home/me/out/train/svit-v1.5-13b-stage1", "datasets": ["/data/svit/"]}
    card = ModelCard.load(write_model_card(facts, tmp_path))
    assert card.data.base_model is None and card.data.datasets is None
    assert "- base model: `svit-v1.5-13b-stage1` (a local checkpoint; no Hub id recorded)" in card.text
    assert (
        "- data: `svit` (config `mix_665k`)" in card.text
        and "/home" not in card.text
        and "/data" not in card.text
    )
