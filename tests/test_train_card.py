"""The model card of a training run (hub_cards.model_card): huggingface_hub's ModelCard, parsed back."""

from __future__ import annotations

import subprocess
import sys

from huggingface_hub import ModelCard

from hub_cards.model_card import write_model_card

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
    assert "`/local/folder`" in text and "(config `mix_665k`)" in text
    assert "| `lora_r` | 128 |" in text and "| `projector_lr` | 2e-05 |" in text
    assert "steps: 5198, tokens trained: 123,456,789, final loss 0.8123" in text
    assert "![training loss](loss_curve.png)" in text and "3 samples dropped" in text
    assert 'from_pretrained("my-org/svit-v1.5-7b-lora")' in text and "post_process_generation" in text
    assert not list(tmp_path.glob(".README*"))  # written atomically, nothing left beside it


def test_hub_cards_imports_no_torch():
    code = "import sys, hub_cards.model_card; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
