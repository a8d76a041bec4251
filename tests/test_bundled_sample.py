"""The bundled sample end to end: build with images, load every config, train with stock TRL."""

import json
import math

import datasets
import pytest

from svit_dataset import bundled
from svit_dataset.hub_build.configs import SUBSETS
from svit_dataset.hub_build.engine import build_hub_dataset
from tests.tiny_llava import train_few_steps
from tools.sample_maker import BAD_RECORDS, TEST_IMAGE_IDS


@pytest.fixture(scope="module")
def hub_folder(built_sample):
    """The bundled sample built with its images and held-out ids: (the folder's parent, its build report)."""
    return built_sample.parent, json.loads((built_sample / "build_report.json").read_text())


def test_quality_report_counts_each_planted_bad_record(hub_folder):
    _, report = hub_folder
    dropped = {}
    for task, by_split in report["quality"].items():
        for rep in by_split.values():
            for reason, n in rep["dropped"].items():
                dropped[(f"{task}.json", reason)] = dropped.get((f"{task}.json", reason), 0) + n
    assert dropped == {(bad.file, bad.reason): 1 for bad in BAD_RECORDS}


def test_every_config_loads_with_images_embedded(hub_folder, monkeypatch):
    parent, report = hub_folder
    monkeypatch.chdir(parent)
    for config in SUBSETS:
        dataset = datasets.load_dataset("svit", config)
        assert {s: dataset[s].num_rows for s in dataset} == report["configs"][config]
        assert set(dataset["test"]["image_id"]) == set(TEST_IMAGE_IDS)
        row = dataset["train"][0]
        (image,) = row["images"]
        assert image.size == (row["width"], row["height"])
        assert row["image_path"].startswith(("VG_100K/", "VG_100K_2/"))
    streamed = next(iter(datasets.load_dataset("svit", "referring_qa", split="train", streaming=True)))
    assert streamed["images"][0].size == (streamed["width"], streamed["height"])
    assert "<st>" in streamed["messages"][1]["content"]


def test_stock_sft_trainer_trains_on_a_loaded_config(hub_folder, monkeypatch, tmp_path):
    parent, _ = hub_folder
    monkeypatch.chdir(parent)
    dataset = datasets.load_dataset("svit", "referring_qa", split="train").select(range(6))
    trainer = train_few_steps(dataset, tmp_path, max_steps=3)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)


def test_build_without_images_then_attach_them(tmp_path):
    from svit_dataset.vg import attach_images

    build_hub_dataset(
        bundled.RELEASE_DIR, tmp_path / "svit", ["detail_description"], image_data=bundled.IMAGE_DATA
    )
    dataset = datasets.load_dataset(str(tmp_path / "svit"), "detail_description", split="train")
    assert dataset[0]["images"] == [] and dataset[0]["width"] > 0
    with_images = attach_images(dataset, bundled.IMAGES_DIR)
    row = with_images[0]
    assert row["images"][0].size == (row["width"], row["height"])
