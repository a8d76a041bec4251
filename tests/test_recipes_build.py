"""The recipe configs built from the bundled sample: they load by name, stay out of `test`, reach the
exact Y:N, replace exactly the LLaVA-Instruct records, and the builder's own path gives the same rows."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest

from svit_cli.jobs.build import build_dataset_folder
from svit_cli.main import main
from svit_dataset import bundled
from svit_dataset.hub_build.datasets_builder import SvitBuilder
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.report import read_report, recipe_table
from svit_dataset.recipes.select import MIX_665K, RECIPE_NAMES, RecipeParams
from svit_dataset.recipes.shards import build_recipes, mix_worker_count
from svit_dataset.recipes.yesno import classify_answer, yes_target
from svit_dataset.schema import TASKS
from svit_dataset.stats import compute_stats
from svit_dataset.vg import read_test_ids

LLAVA = {
    "llava_mix": bundled.LLAVA_DIR / "llava_v1_5_mix665k.json",
    "llava_instruct": bundled.LLAVA_DIR / "llava_instruct_150k.json",
}
SMALL = RecipeParams(per_task=12, core_size=40, yes_per_no=4.0, seed=7)  # below the sample's sizes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("recipes")
    options = BuildOptions(
        bundled.RELEASE_DIR,
        root / "svit",
        "all,recipes",
        images_dir=bundled.IMAGES_DIR,
        test_ids=bundled.TEST_IDS,
        mix_llava_json=root / "mix.json",
        **LLAVA,
    )
    report = build_dataset_folder(options, SMALL)  # as `svit build` does: the card over the README
    return root, report


def test_every_recipe_config_loads_by_name_and_stays_out_of_test(built, monkeypatch):
    root, report = built
    monkeypatch.chdir(root)
    held_out = read_test_ids(bundled.TEST_IDS)
    for name in RECIPE_NAMES:
        dataset = datasets.load_dataset("svit", name)
        assert {s: dataset[s].num_rows for s in dataset} == report["configs"][name]
        train = dataset["train"]
        assert {"messages", "images"} <= set(train.column_names)
        ids = [i for i in train["image_id"] if i is not None]
        if name != "mix_665k":
            assert not held_out & set(ids), name  # drawn from train only
            assert set(dataset["test"]["image_id"]) == held_out  # test: the held-out split of the tasks
            assert len(set(train["id"])) == train.num_rows
            assert all(len(images) == 1 for images in train["images"])  # the sample's images embedded
    sizes = {n: report["configs"][n]["train"] for n in RECIPE_NAMES}
    assert sizes == {"svit_80k": 48, "svit_80k_d": 48, "svit_80k_b": 48, "core_150k": 40, "mix_665k": 90}


def test_balance_reaches_the_exact_ratio_in_the_built_rows(built):
    root, _ = built
    for name in ("svit_80k_b", "core_150k"):
        rows = datasets.load_dataset(str(root / "svit"), name, split="train")
        kinds = [
            classify_answer(m["content"])
            for messages in rows["messages"]
            for m in messages
            if m["role"] == "assistant"
        ]
        yes, no = kinds.count("yes"), kinds.count("no")
        assert no and yes == yes_target(no, 4.0), name
        report = json.loads((root / "svit" / "recipes" / f"{name}.json").read_text())
        assert report["yes_no_after"]["yes"] == yes and report["yes_no_after"]["no"] == no
        assert report["yes_no_before"]["yes_per_no"] > 4.0 and report["yes_no_after"]["yes_per_no"] == 4.0


def test_mix_replaces_the_instruct_records_and_writes_llava_json(built):
    root, report = built
    summary = report["recipes"]["summary"]["mix_665k"]
    assert (
        summary["llava_instruct_replaced"] == 20
        and summary["llava_kept"] == 50
        and summary["core_150k"] == 40
    )
    mix = datasets.load_dataset(str(root / "svit"), "mix_665k", split="train")
    sources = mix["source"]
    assert sources.count("svit") == 40 and "coco" in sources and "text" in sources
    instruct_ids = {r["id"] for r in json.loads(LLAVA["llava_instruct"].read_text())}
    llava_rows = [row for row in mix if row["source"] != "svit"]
    assert len(llava_rows) == 50 and not any(r["id"] in instruct_ids for r in llava_rows)
    assert all("<image>" not in m["content"] for messages in mix["messages"] for m in messages)
    svit_rows = [row for row in mix if row["source"] == "svit"]
    assert all(r["image_path"].startswith("vg/VG_100K") for r in svit_rows)
    assert all("<st>" not in m["content"] for r in svit_rows for m in r["messages"])
    as_json = json.loads((root / "mix.json").read_text())
    assert len(as_json) == mix.num_rows == 90
    assert sum(1 for r in as_json if r["conversations"][0]["value"].startswith("<image>\n")) >= 40
    assert "replaced 20 LLaVA-Instruct records by 40 core_150k samples" in recipe_table(root / "svit")


def test_the_builder_path_gives_the_parquet_rows(built, tmp_path):
    root, _ = built
    for name in ("svit_80k_b", "mix_665k"):
        builder = SvitBuilder(
            config_name=name,
            data_dir=str(bundled.RELEASE_DIR),
            cache_dir=str(tmp_path / "cache"),
            images_dir=str(bundled.IMAGES_DIR),
            test_ids=str(bundled.TEST_IDS),
            recipe=SMALL,
            **{k: str(v) for k, v in LLAVA.items()},
        )
        builder.download_and_prepare(str(tmp_path / name), file_format="parquet")
        ours = datasets.load_dataset(
            "parquet", data_files=str(tmp_path / name / "*train*.parquet"), split="train"
        )
        shipped = datasets.load_dataset(str(root / "svit"), name, split="train")
        assert ours["id"] == shipped["id"], name
        assert ours["messages"] == shipped["messages"], name
        assert ours["image_path"] == shipped["image_path"], name
        if name == "mix_665k":
            assert ours["source"] == shipped["source"]
        else:
            assert [len(i) for i in ours["images"]] == [len(i) for i in shipped["images"]] == [1] * 48


def test_a_worker_process_writes_the_same_mix(built, tmp_path):
    """The sample's mix is written in the build's own process (a worker's start-up would cost more than the
    work); with a worker process, as for the real LLaVA files, the rows are the same."""
    root, _ = built
    assert mix_worker_count(root / "svit", (str(LLAVA["llava_mix"]), str(LLAVA["llava_instruct"]))) == 0
    folder = tmp_path / "svit"
    shutil.copytree(root / "svit", folder, ignore=shutil.ignore_patterns(MIX_665K))
    build_recipes(folder, [MIX_665K], SMALL, workers=1, **LLAVA)
    by_worker = datasets.load_dataset(str(folder / "data" / MIX_665K), split="train")
    assert by_worker.to_list() == datasets.load_dataset(str(root / "svit"), MIX_665K, split="train").to_list()


def test_stats_of_configs_without_a_folder_of_their_own(built, capsys):
    """`full` and a recipe's `test` split point at the task folders: their files come from the README."""
    root, report = built
    folder = root / "svit"
    assert main(["stats", str(folder), "--config", "full"]) == 0
    assert "stats/full.json" in capsys.readouterr().out
    full = compute_stats(folder, config="full")
    assert sum(r["samples"] for r in full["tasks"].values()) == report["configs"]["full"]["train"]
    assert list(full["tasks"]) == list(TASKS)
    test = compute_stats(folder, config="svit_80k", split="test")
    assert sum(r["samples"] for r in test["tasks"].values()) == report["configs"]["svit_80k"]["test"]
    recipe = compute_stats(folder, config="svit_80k_b")
    assert sum(r["samples"] for r in recipe["tasks"].values()) == 48


def test_report_lists_every_recipe_and_the_card_describes_them(built):
    root, _ = built
    report = read_report(root / "svit")
    assert list(report["recipes"]["summary"]) == list(RECIPE_NAMES)
    card = (root / "svit" / "README.md").read_text()
    assert "## Data recipe" in card and "config_name: core_150k" in card and "name: source" in card
    for figure in ("yes_no.png", "concepts.png"):
        assert (root / "svit" / "recipes" / figure).stat().st_size > 10_000


def test_cli_builds_recipes_with_options_and_asks_for_the_llava_files(tmp_path, capsys):
    out = tmp_path / "svit"
    base = [
        "build",
        "--input",
        str(bundled.RELEASE_DIR),
        "--image-data",
        str(bundled.IMAGE_DATA),
        "--output",
        str(out),
    ]
    assert main([*base, "--configs", "mix_665k"]) == 2
    assert "mix_665k needs --llava-mix" in capsys.readouterr().err
    code = main(
        [*base, "--configs", "svit_80k_b", "--per-task", "5", "--yes-per-no", "2", "--recipe-seed", "3"]
    )
    assert code == 0
    assert read_report(out)["configs"]["svit_80k_b"]["train"] == 20
    assert "svit_80k_b" in capsys.readouterr().out
