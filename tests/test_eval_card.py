"""`results.json` of `svit eval` runs as the card's `model-index` (hub_cards.model_card), added to a training card.

The documents below are results.json files as earlier versions wrote them (no `model_index`: the card derives
the entries); `stated` gives the same results as `svit eval` writes them now, with the entries their benchmark
states, which card the same."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hub_cards.model_card import (
    add_eval_results,
    evaluation_entries,
    model_index_entries,
    write_model_card,
)
from svit_dataset.errors import SvitInputError
from svit_model.evaluation.mme import SHIPPED_SAMPLE, SHIPPED_SAMPLE_SUBTASKS, Mme, MmeOptions
from svit_model.evaluation.pope import Pope, PopeOptions
from svit_model.evaluation.refcoco import Refcoco, RefcocoOptions
from svit_model.evaluation.svit_referring import SvitReferring, SvitReferringOptions
from tests.test_train_card import FACTS

MME_SUBTASKS = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
    "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning",
)  # fmt: skip
MME = {  # all 14 subtasks, read from the Hub: MME's scores
    "model": "my-org/svit-v1.5-7b-lora",
    "benchmark": "mme",
    "dataset": {"name": "MME", "type": "lmms-lab/MME", "path": "lmms-lab/MME", "split": "test"},
    "metrics": {"perception": 1560.31, "cognition": 364.29, "subtasks": dict.fromkeys(MME_SUBTASKS, 100.0)},
    "svit_version": "0.1.0",
}
SAMPLE = ("existence", "count", "color", "commonsense_reasoning")
MME_SAMPLE = {  # the main job's: 4 subtasks of the shipped drawn-shapes sample, a local folder
    "benchmark": "mme",
    "dataset": {
        "name": "MME",
        "type": "mme",
        "path": "/work/svit/svit_model/evaluation/sample/mme",
        "subtasks": list(SAMPLE),
        "complete": False,
    },
    "metrics": {"perception": 150.0, "cognition": 50.0, "subtasks": dict.fromkeys(SAMPLE, 50.0)},
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
SVIT_GROUNDING = {  # the main job's: a built SVIT folder's held-out referring QAs
    "benchmark": "grounding",
    "dataset": {
        "name": "grounding",
        "type": "grounding",
        "path": "out/svit",
        "config": "referring_qa",
        "split": "test",
    },
    "metrics": {"phrase_recall": 0.5, "mean_entity_iou": 0.25, "entity_acc@0.5": 0.125, "total": 8},
}


def stated(results: dict) -> dict:
    """`results` as `svit eval` writes them now: with the model-index entries their benchmark states."""
    benchmark, data = {
        "mme": (Mme, MmeOptions),
        "pope": (Pope, PopeOptions),
        "grounding": (SvitReferring, SvitReferringOptions)
        if "phrase_recall" in results["metrics"]
        else (Refcoco, RefcocoOptions),
    }[results["benchmark"]]
    dataset = results["dataset"]
    options = data(model="m", data=dataset.get("path") or dataset["type"], output="o")
    entries = benchmark(options).model_index(dataset, results["metrics"])
    return {**results, "benchmark": benchmark.name, "model_index": json.loads(json.dumps(entries))}


@pytest.mark.parametrize("results", [MME, MME_SAMPLE, POPE, GROUNDING, SVIT_GROUNDING])
def test_the_entries_a_benchmark_states_card_as_an_earlier_results_json(results):
    """A results.json of an earlier version (no `model_index`) cards to the entries its benchmark now states:
    the same `model-index` and table as before, for each benchmark and for MME on part of its subtasks."""
    now = stated(results)
    # POPE states more than it did: each category's precision and recall (issue 18); the rest is as before
    added = {"precision", "recall"} if results["benchmark"] == "pope" else set()
    assert {e["metric_type"] for e in now["model_index"]} >= added
    now["model_index"] = [e for e in now["model_index"] if e["metric_type"] not in added]
    # RefCOCO's entries name their protocol (issue 18): results of earlier versions were scored leniently
    for entry in now["model_index"]:
        if entry.get("metric_config") is not None:
            assert entry.pop("metric_config") == "lenient"
    assert now["model_index"] and evaluation_entries(now) == evaluation_entries(results)


def test_stated_entries_that_are_no_entries_are_refused_naming_the_entry(tmp_path):
    good = stated(GROUNDING)
    entry = good["model_index"][1]
    for change, message in (
        ({"metric_value": float("nan")}, r"`model_index\[1\].metric_value` is NaN, not a finite number"),
        ({"metric_value": "0.5"}, r"`model_index\[1\].metric_value` is a string"),
        ({"whole": None}, r"`model_index\[1\].whole` is null, not true or false"),
        ({"task_type": 3}, r"`model_index\[1\].task_type` is a number, not a string"),
        ({"dataset_type": "/data/refcoco"}, r"`model_index\[1\].dataset_type` '/data/refcoco' is a path"),
    ):
        bad = {**good, "model_index": [good["model_index"][0], {**entry, **change}]}
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(SvitInputError, match="bad.json: .*" + message):
            add_eval_results(tmp_path / "model", [tmp_path / "bad.json"], force=True)
    (tmp_path / "bad.json").write_text(json.dumps({**good, "model_index": {"acc": 1}}))
    with pytest.raises(SvitInputError, match="bad.json: .*`model_index` is an object, not a list"):
        add_eval_results(tmp_path / "model", [tmp_path / "bad.json"], force=True)
    assert not (tmp_path / "model" / "README.md").exists()


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
    with pytest.raises(ValueError, match="benchmark 'vqa' states no `model_index` entries"):
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


def test_mme_on_part_of_its_subtasks_is_no_mme_score():
    from svit_model.evaluation.mme import MME_SUBTASKS as SCORED

    assert MME_SUBTASKS == SCORED  # this file's list is MME's
    assert (
        model_index_entries(MME_SAMPLE) == [] == model_index_entries(stated(MME_SAMPLE))
    )  # 4 of 14 subtasks: not MME's perception / cognition
    indexed, table = evaluation_entries(MME_SAMPLE)
    assert indexed == [] and [(e.metric_type, e.metric_value, e.dataset_type) for e in table] == [
        ("mme_perception", 150.0, "mme"),
        ("mme_cognition", 50.0, "mme"),
    ]
    assert table[0].dataset_name == (
        "MME subset (4 of 14 subtasks: existence, count, color, commonsense_reasoning; data `mme`)"
    )
    # results.json of older svit versions: always `lmms-lab/MME`, whatever was read; the path tells
    older = {
        **MME_SAMPLE,
        "dataset": {"name": "MME", "type": "lmms-lab/MME", "path": "x/mme", "subtasks": None},
    }
    older["metrics"] = {**MME_SAMPLE["metrics"], "subtasks": dict.fromkeys(MME_SUBTASKS, 0.0)}
    assert {e.dataset_type for e in model_index_entries(older)} == {"mme"}


def test_dataset_type_is_a_hub_id_or_the_benchmark_never_a_path():
    (acc, *_) = model_index_entries(SVIT_GROUNDING)
    assert (acc.dataset_type, acc.dataset_config, acc.dataset_split) == ("grounding", "referring_qa", "test")
    # results.json of older svit versions: `type` was --data. (`out/svit` from a folder where it does not exist
    # reads as a repo id: test_hub_repo_id_tells_a_repo_from_a_local_path pins that rule.)
    for path in ("work/out/svit", "/data/svit", "../svit"):
        older = {**SVIT_GROUNDING, "dataset": {"name": "grounding", "type": path, "path": path}}
        assert {e.dataset_type for e in model_index_entries(older)} == {"grounding"}, path
    hub = {**SVIT_GROUNDING, "dataset": {"name": "grounding", "type": "my-org/svit", "path": "my-org/svit"}}
    assert {e.dataset_type for e in model_index_entries(hub)} == {"my-org/svit"}


def test_eval_records_what_it_read_whatever_the_cwd(tmp_path, monkeypatch):
    """`svit eval` writes the Hub id or the benchmark's name as `type`, the config and split it read, and the MME
    subtasks scored: evaluating the same folder again from another cwd replaces the card's entries."""
    (tmp_path / "work" / "svit" / "data" / "referring_qa").mkdir(parents=True)  # a built SVIT folder
    seen = []
    for cwd, data in (
        (tmp_path / "work", "svit"),
        (tmp_path, "work/svit"),
        (Path("/"), str(tmp_path / "work/svit")),
    ):
        monkeypatch.chdir(cwd)
        seen.append(SvitReferring(SvitReferringOptions(model="m", data=data, output="o")).dataset())
    assert [(d["type"], d["config"], d["split"]) for d in seen] == [("grounding", "referring_qa", "test")] * 3
    hub = Refcoco(RefcocoOptions(model="m", data="lmms-lab/RefCOCO", output="o", split="val")).dataset()
    assert (hub["type"], hub["split"], hub["config"]) == ("lmms-lab/RefCOCO", "val", None)

    mme = Mme(
        MmeOptions(model="m", data=str(SHIPPED_SAMPLE), output="o", subtasks=SHIPPED_SAMPLE_SUBTASKS)
    ).dataset()
    assert mme["type"] == "mme" and mme["subtasks"] == list(SAMPLE) and mme["complete"] is False
    assert mme["split"] is None  # a folder in the release layout has no splits

    card = tmp_path / "card"
    write_model_card(FACTS, card)
    for n, dataset in enumerate(seen):
        (tmp_path / f"g{n}.json").write_text(json.dumps({**SVIT_GROUNDING, "dataset": dataset}))
        add_eval_results(card, [tmp_path / f"g{n}.json"])
    assert len(ModelCard.load(card / "README.md").data.eval_results) == 3  # replaced, never duplicated


def test_a_partial_mme_joins_no_model_index(tmp_path, caplog):
    files = []
    for name, results in (("mme", MME_SAMPLE), ("grounding", SVIT_GROUNDING)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(results))
    with caplog.at_level(logging.WARNING):
        add_eval_results(tmp_path / "model", files)  # a folder that is no training run: model-index only
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert {e.dataset_name for e in card.data.eval_results} == {"grounding"}
    assert "MME subset (4 of 14 subtasks" in caplog.text and "not in the model-index" in caplog.text


def test_broken_inputs_name_their_file(tmp_path):
    bad = tmp_path / "bad.json"
    for document, what in (
        ({**MME, "dataset": ["lmms-lab/MME"]}, "`dataset` is a list, not an object"),
        ({**MME, "metrics": 3}, "`metrics` is a number, not an object"),
        (["not", "an", "object"], "holds a list, not a JSON object"),
    ):
        bad.write_text(json.dumps(document))
        with pytest.raises(SvitInputError, match=f"bad.json: {what}"):
            add_eval_results(tmp_path / "model", [bad])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("---\nmodel-index:\n- results:\n  - dataset: {}\n---\nhi\n")
    (tmp_path / "mme.json").write_text(json.dumps(MME))
    with pytest.raises(SvitInputError, match="README.md: its metadata does not parse .*fix its YAML"):
        add_eval_results(tmp_path / "model", [tmp_path / "mme.json"])  # not a run: nothing to write it from


def test_lmms_eval_results_become_entries_of_the_tool_lmms_eval():
    from hub_cards.lmms_eval_results import as_svit_results, is_lmms_eval_results

    document = {
        "results": {
            "mme": {
                "alias": "mme",
                "mme_perception_score,none": 1500.5,
                "mme_perception_score_stderr,none": "N/A",
            },
            "local_pope": {"pope_f1_score,none": 0.85, "pope_f1_score_stderr,none": 0.01},
        },
        "configs": {
            "mme": {"dataset_path": "lmms-lab/MME", "test_split": "test"},
            "local_pope": {"dataset_path": "/data/pope", "test_split": "test"},  # a path: never on a card
        },
        "config": {"model_args": "pretrained=out/run,box_frame=original", "limit": None},
    }
    assert is_lmms_eval_results(document) and not is_lmms_eval_results({"benchmark": "mme", **document})
    svit = as_svit_results(document)
    assert svit["model"] == "out/run"
    entries = {(e["dataset_type"], e["metric_type"]): e for e in svit["model_index"]}
    assert set(entries) == {("lmms-lab/MME", "mme_perception_score"), ("local_pope", "pope_f1_score")}
    assert entries[("lmms-lab/MME", "mme_perception_score")]["metric_value"] == 1500.5
    assert all(e["source_name"] == "lmms-eval" and e["whole"] for e in entries.values())
    indexed, table = evaluation_entries(svit)
    assert len(indexed) == 2 and not table and indexed[0].source_name == "lmms-eval"
    document["config"]["limit"] = 8  # part of each benchmark: the table only
    assert evaluation_entries(as_svit_results(document)) == ([], indexed)


def test_a_strict_refcoco_result_names_its_protocol_on_the_card():
    results = {**GROUNDING, "metrics": {**GROUNDING["metrics"], "protocol": "strict"}}
    indexed, _ = evaluation_entries(stated(results))
    assert {e.metric_config for e in indexed} == {"strict"} and len(indexed) == 2


def test_pope_mean_f1_is_a_model_index_entry_of_its_own():
    results = {**POPE, "metrics": {**POPE["metrics"], "mean_f1": 0.85}}
    indexed, _ = evaluation_entries(stated(results))
    categories = list(POPE["metrics"]["categories"])
    mean = [e for e in indexed if e.metric_name == f"POPE F1 (mean of {', '.join(categories)})"]
    assert len(mean) == 1 and mean[0].metric_value == 0.85 and mean[0].dataset_config == ",".join(categories)
    assert {e.metric_type for e in indexed} >= {"accuracy", "precision", "recall", "f1", "yes_ratio"}
