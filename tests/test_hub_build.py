"""The build of a Hub-layout folder: every config loads with load_dataset, streaming works, builds are atomic."""

import json
import os
import signal
import time

import datasets
import pytest

from svit_dataset.errors import SvitInputError
from svit_dataset.hub_build.configs import SUBSETS
from svit_dataset.hub_build.engine import build_hub_dataset
from svit_dataset.hub_build.report import read_report
from tests.cli_runs import run_svit, run_svit_forked, wait_forked
from tests.release_factory import conversation, qa, record, write_release


def crafted_release(folder, images=40):
    records = [
        record(
            i,
            conversation(qa(f"What is in picture {i}?", f"A <st>ball<ed> [0.1, 0.2, 0.3, 0.4] number {i}.")),
        )
        for i in range(1, images + 1)
    ]
    return write_release(folder, {task: records for task in SUBSETS["full"]})


def test_every_config_loads_by_name_from_parent_and_by_path(tmp_path, monkeypatch):
    crafted_release(tmp_path / "rel")
    test_ids = tmp_path / "test_ids.txt"
    test_ids.write_text("1\n2\n3\n4\n")
    report = build_hub_dataset(tmp_path / "rel", tmp_path / "hub" / "svit", test_ids=test_ids)
    assert report["configs"]["full"] == {"train": 144, "test": 16}
    monkeypatch.chdir(tmp_path / "hub")
    for config in SUBSETS:
        dataset = datasets.load_dataset("svit", config)
        expected = report["configs"][config]
        assert {s: dataset[s].num_rows for s in dataset} == expected
        assert set(dataset["test"]["image_id"]) == {1, 2, 3, 4}
        assert {"messages", "images"} <= set(dataset["train"].column_names)
    by_path = datasets.load_dataset(str(tmp_path / "hub" / "svit"), "referring_qa", split="train")
    assert by_path[0]["messages"][1]["content"].startswith("A <st>ball<ed> [0.1, 0.2, 0.3, 0.4]")
    streamed = datasets.load_dataset("svit", "full", split="train", streaming=True)
    rows = list(streamed)
    assert len(rows) == 144 and rows[0]["task"] == "conversation" and rows[-1]["task"] == "detail_description"
    default = datasets.load_dataset("svit", split="test")  # the default config is `full`
    assert default.num_rows == 16


def test_seeded_split_without_a_list_is_stable_and_about_ten_percent(tmp_path):
    crafted_release(tmp_path / "rel", images=400)
    first = build_hub_dataset(
        tmp_path / "rel", tmp_path / "a", ["conversation", "referring_qa"], split_seed=5
    )
    again = build_hub_dataset(
        tmp_path / "rel", tmp_path / "b", ["conversation", "referring_qa"], split_seed=5
    )
    build_hub_dataset(tmp_path / "rel", tmp_path / "c", ["conversation"], split_seed=6)
    assert first["configs"] == again["configs"]
    assert 20 <= first["configs"]["conversation"]["test"] <= 60
    test_a = set(datasets.load_dataset(str(tmp_path / "a"), "conversation", split="test")["image_id"])
    test_r = set(datasets.load_dataset(str(tmp_path / "a"), "referring_qa", split="test")["image_id"])
    test_c = set(datasets.load_dataset(str(tmp_path / "c"), "conversation", split="test")["image_id"])
    assert test_a == test_r  # an image is held out in every task
    assert test_a != test_c


def test_existing_output_needs_overwrite_and_unknown_configs_are_named(tmp_path):
    crafted_release(tmp_path / "rel", images=3)
    build_hub_dataset(tmp_path / "rel", tmp_path / "svit", ["conversation"])
    with pytest.raises(SvitInputError, match="already exists; pass --overwrite"):
        build_hub_dataset(tmp_path / "rel", tmp_path / "svit", ["conversation"])
    with pytest.raises(SvitInputError, match="unknown config\\(s\\) core_15k; known: conversation"):
        build_hub_dataset(tmp_path / "rel", tmp_path / "svit", "core_15k", overwrite=True)
    report = build_hub_dataset(tmp_path / "rel", tmp_path / "svit", ["detail_description"], overwrite=True)
    assert (
        list(read_report(tmp_path / "svit")["configs"]) == list(report["configs"]) == ["detail_description"]
    )
    assert sum(report["configs"]["detail_description"].values()) == 3


@pytest.mark.slow
def test_killed_build_leaves_nothing_loadable_and_a_rerun_succeeds(tmp_path):
    # Large enough that the build is still running when it is killed.
    records = [
        record(i, *[conversation(qa(f"Question {k} about {i}?", "An answer " * 20)) for k in range(3)])
        for i in range(5000)
    ]
    write_release(tmp_path / "rel", {task: records for task in SUBSETS["full"]})
    out = tmp_path / "hub" / "svit"
    argv = ["build", "--input", str(tmp_path / "rel"), "--output", str(out)]
    killed = run_svit_forked(argv)  # a SIGKILL ends a process: one of its own, a fork of this one
    deadline = time.monotonic() + 60
    # Kill once shards of the second task are being written: well into the build.
    while time.monotonic() < deadline and not list(
        (tmp_path / "hub").glob(".svit.building-*/data/complex_reasoning")
    ):
        if not killed.running():
            pytest.fail("the build finished before it could be killed; make the input larger")
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    wait_forked(killed)
    assert not out.exists()
    leftovers = list((tmp_path / "hub").iterdir())
    assert leftovers and all(p.name.startswith(".svit.building-") for p in leftovers)
    for leftover in leftovers:  # not even the staging folder loads as a dataset
        with pytest.raises(Exception):  # noqa: B017 - datasets raises several types for "no data"
            datasets.load_dataset(str(leftover), "conversation")
    rerun = run_svit(argv)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert [p.name for p in (tmp_path / "hub").iterdir()] == ["svit"]  # the stale staging folder is gone
    assert (
        json.loads((out / "build_report.json").read_text())["configs"]["full"]["train"]
        > 50000 * 5000 // 20000
    )
    assert datasets.load_dataset(str(out), "conversation", split="test").num_rows > 1000


def test_worker_processes_give_the_same_dataset(tmp_path):
    crafted_release(tmp_path / "rel", images=60)
    one = build_hub_dataset(tmp_path / "rel", tmp_path / "one", "all", num_proc=1)
    two = build_hub_dataset(tmp_path / "rel", tmp_path / "two", "all", num_proc=2)
    assert one["configs"] == two["configs"] and one["quality"] == two["quality"]
    for config in SUBSETS:
        a = datasets.load_dataset(str(tmp_path / "one"), config, split="train")
        b = datasets.load_dataset(str(tmp_path / "two"), config, split="train")
        assert a.to_list() == b.to_list()
