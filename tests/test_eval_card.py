"""`results.json` of `svit eval` runs as the card's `model-index` (hub_cards.model_card), added to a training card."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from hub_cards.model_card import add_eval_results, model_index_entries, write_model_card
from tests.test_train_card import FACTS

MME = {
    "model": "my-org/svit-v1.5-7b-lora",
    "benchmark": "mme",
    "dataset": {"name": "MME", "type": "lmms-lab/MME"},
    "metrics": {"perception": 1560.31, "cognition": 364.29, "subtasks": {"existence": 195.0}},
    "svit_version": "0.1.0",
}
POPE = {
    "benchmark": "pope",
    "dataset": {"name": "POPE", "type": "lmms-lab/POPE"},
    "metrics": {
        "categories": {
            name: {"accuracy": 0.87, "f1": 0.86, "yes_ratio": 0.45, "precision": 0.9, "recall": 0.8}
            for name in ("random", "popular", "adversarial")
        },
        "all": {"accuracy": 0.87},
    },
}
GROUNDING = {
    "benchmark": "grounding",
    "dataset": {"name": "grounding", "type": "lmms-lab/RefCOCO", "split": "val"},
    "metrics": {"acc@0.5": 0.71234567, "mean_iou": 0.6, "missing": 2, "total": 100},
}


def test_model_index_entries_of_each_benchmark():
    mme = model_index_entries(MME)
    assert [(e.metric_type, e.metric_value, e.dataset_type) for e in mme] == [
        ("mme_perception", 1560.31, "lmms-lab/MME"),
        ("mme_cognition", 364.29, "lmms-lab/MME"),
    ]
    pope = model_index_entries(POPE)
    assert len(pope) == 9 and {e.dataset_config for e in pope} == {"random", "popular", "adversarial"}
    grounding = model_index_entries(GROUNDING)
    assert [(e.metric_type, e.metric_value, e.dataset_split) for e in grounding] == [
        ("acc@0.5", 0.7123, "val"),
        ("mean_iou", 0.6, "val"),
    ]
    with pytest.raises(ValueError, match="benchmark 'vqa'"):
        model_index_entries({"benchmark": "vqa", "metrics": {}})


def test_results_join_a_training_card_once(tmp_path):
    write_model_card(FACTS, tmp_path)
    files = []
    for name, results in (("mme", MME), ("pope", POPE)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(results))
    add_eval_results(tmp_path, files)
    add_eval_results(tmp_path, files[:1])  # a rerun replaces its entries, never duplicates them
    card = ModelCard.load(tmp_path / "README.md")
    assert len(card.data.eval_results) == 2 + 9
    assert card.data.base_model == "my-org/svit-llava-7b-stage1" and "## Hyper-parameters" in card.text
    assert card.data.model_name == tmp_path.name
    assert not list(tmp_path.glob(".README*"))
