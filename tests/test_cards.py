"""Hub cards through huggingface_hub's card classes (hub_cards): they parse back with `DatasetCard.load` /
`ModelCard.load` holding the metadata and `model-index` as produced, pass the offline validators of
huggingface_hub and datasets, keep a built folder loadable, and the model card's usage code runs as written.

Validation here is offline: huggingface_hub's own parsing (`ModelCardData` turns `model-index` into
`EvalResult`s and refuses a malformed one; `EvalResult` checks its fields) and the parsers `load_dataset` itself
uses on a dataset card (`MetadataConfigs`, `DatasetInfosDict`). The Hub's `/api/validate-yaml` schema check
(`RepoCard.validate`) needs the real Hub: the loopback fake only checks that the YAML is a mapping, so it would
prove nothing more here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from PIL import Image

from hub_cards.dataset_card import (
    dataset_card_data,
    dataset_rows,
    folder_facts,
    size_category,
    write_dataset_card,
)
from hub_cards.model_card import (
    add_eval_results,
    model_index_entries,
    write_run_card,
)
from svit_cli.jobs.build import build_dataset_folder
from svit_cli.main import main
from svit_dataset import bundled
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE
from svit_dataset.hub_build.options import BuildOptions
from svit_dataset.hub_build.push import push_hub_dataset
from svit_dataset.hub_build.readme import ConfigEntry
from svit_dataset.stats import write_stats
from tests.fake_hub import fake_hub
from tests.test_eval_card import GROUNDING, MME, MME_SAMPLE, POPE, SVIT_GROUNDING
from tests.test_train_card import FACTS

PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def section(text: str, heading: str) -> str:
    """The markdown of `## heading` up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def run_snippet(code: str, cwd: Path, cache: Path, monkeypatch) -> str:
    """What `python -c CODE` prints when run in `cwd`, run here: in a namespace of its own (it must import what
    it uses; only the loading of those modules is saved), with a `datasets` cache of its own."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<the card's code>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the card's own
    return printed.getvalue()


# --- pure functions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (9_999, "1K<n<10K"),
        (10_000, "10K<n<100K"),
        (157_712, "100K<n<1M"),
        (999_999, "100K<n<1M"),
        (1_000_000, "1M<n<10M"),
        (4_240_311, "1M<n<10M"),  # the whole release
        (10_000_000, "10M<n<100M"),
        (999_999_999_999, "100B<n<1T"),
        (1_000_000_000_000, "n>1T"),
    ],
)
def test_size_category_boundaries(rows, bucket):
    assert size_category(rows) == bucket


def test_dataset_rows_counts_the_tasks_once_or_the_largest_config():
    def entry(name, train, test=0):
        return ConfigEntry(name, {}, {"train": train, "test": test}, {})

    tasks = [entry("conversation", 600, 60), entry("referring_qa", 300, 30)]
    assert dataset_rows([*tasks, entry("full", 900, 90), entry("core_150k", 500, 90)]) == 990
    assert dataset_rows([*tasks, entry("mix_665k", 5000)]) == 5000  # LLaVA's records come on top
    assert dataset_rows([entry("core_150k", 500, 90)]) == 590  # recipes alone


# --- the dataset card ------------------------------------------------------------------------------------


def build_with_card(input_dir, output_dir, configs, **options) -> dict:
    """`svit build`'s path: the build, then the dataset card over its README; returns the build's report."""
    return build_dataset_folder(BuildOptions(input_dir, output_dir, configs, **options))


@pytest.fixture(scope="module")
def built(built_sample, tmp_path_factory):
    """The bundled sample, every config, as `svit build` writes it with its card (a copy of `built_sample`),
    then its statistics and the card written again; (folder, report, card text at build time)."""
    folder = tmp_path_factory.mktemp("cards") / "svit"
    shutil.copytree(built_sample, folder)
    at_build = (folder / "README.md").read_text()
    report = json.loads((folder / "build_report.json").read_text())
    write_stats(folder)
    write_dataset_card(folder)
    return folder, report, at_build


def test_dataset_card_parses_back_with_the_metadata_produced(built):
    folder, report, at_build = built
    card = DatasetCard.load(folder / "README.md")
    facts, _ = folder_facts(folder)
    assert card.data.to_dict() == dataset_card_data(facts).to_dict()
    data = card.data
    assert data.license == "cc-by-4.0" and data.language == ["en"] and data.pretty_name == "SVIT"
    assert data.task_categories == ["image-text-to-text", "visual-question-answering"]
    assert data.size_categories == ["n<1K"] and data.annotations_creators == ["machine-generated"]
    # rewriting the card keeps the configs exactly as the build wrote them
    built_data = DatasetCard(at_build).data
    assert data.configs == built_data.configs and data.dataset_info == built_data.dataset_info
    assert [c["config_name"] for c in data.configs] == list(report["configs"])
    assert "&id0" not in (folder / "README.md").read_text()  # plain YAML blocks, no anchors


def test_dataset_card_metadata_passes_the_parsers_load_dataset_uses(built):
    folder, report, _ = built
    data = DatasetCard.load(folder / "README.md").data
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert list(configs) == list(report["configs"]) and configs.get_default_config_name() == "full"
    infos = DatasetInfosDict.from_dataset_card_data(data)
    assert {
        name: {s: i.num_examples for s, i in info.splits.items()} for name, info in infos.items()
    } == report["configs"]


def test_every_config_still_loads_after_the_card_is_rewritten(built, tmp_path):
    folder, report, _ = built
    for config, splits in report["configs"].items():
        loaded = datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path / "cache"))
        assert {s: loaded[s].num_rows for s in loaded} == splits, config


def test_dataset_card_body_states_the_build(built, tmp_path, monkeypatch):
    folder, report, at_build = built
    text = DatasetCard.load(folder / "README.md").text
    headings = re.findall(r"^##+ .*$", text, re.M)
    assert headings == re.findall(r"^##+ .*$", DatasetCard(at_build).text, re.M)  # one template, one shape
    assert "| `full` (default) | 186 | 24 | all four tasks |" in text
    stats = section(text, "Statistics (paper section 3.4)")
    assert "| referring_qa | 34 | 340 |" in stats and "(11.3)" in stats and "QAs in all: 1,430." in stats
    made = section(text, "How it was made")
    assert "| `yes_per_no` | 8.0 |" in made and "| `core_size` | 157,712 |" in made
    assert "| `core_150k` | 94 | 9.46 | 8.00 |" in made
    assert (
        "| referring_qa | train | 33 | 30 | bad box: 1, duplicate sample: 1, unbalanced grounding tags: 1 |"
        in made
    )
    assert "| all | | 217 | 210 |" in made
    assert "## Known issues" in text and "@article{zhao2023svit" in text
    links = IMAGE_LINK.findall(text)
    assert {"stats/tasks_first_words.png", "recipes/yes_no.png"} <= set(links)
    assert all((folder / link).is_file() for link in links)  # relative: they show on the Hub too
    assert str(folder.parent) not in text and "/work" not in text  # no local paths
    # the load snippet runs as written from the folder's parent
    code = PYTHON_BLOCK.findall(section(text, "Usage"))[0] + "print(ds.num_rows)\n"
    printed = run_snippet(code, folder.parent, tmp_path / "cache", monkeypatch)
    assert printed.split()[-1] == str(report["configs"]["full"]["train"])


def test_pushed_readme_is_the_card(built, tmp_path):
    folder, _, _ = built
    with fake_hub() as hub:
        push_hub_dataset(folder, "my-org/svit", token="hf_" + "c" * 30, endpoint=hub.endpoint)
    files = hub.files("my-org/svit")
    (tmp_path / "README.md").write_bytes(files["README.md"])
    pushed = DatasetCard.load(tmp_path / "README.md")
    local = DatasetCard.load(folder / "README.md")
    assert pushed.data.to_dict() == local.data.to_dict()
    assert 'load_dataset("my-org/svit", "full", split="train")' in pushed.text
    assert pushed.text == local.text.replace('load_dataset("svit",', 'load_dataset("my-org/svit",')
    assert set(IMAGE_LINK.findall(pushed.text)) <= set(files)  # the figures went up with it


def test_generation_facts_join_the_card_when_the_input_has_them(tmp_path):
    release = tmp_path / "generated"
    shutil.copytree(bundled.RELEASE_DIR, release)
    summary = {
        "model": "gpt-4o-2024-08-06",
        "prompt_version": "paper-v1@0123456789ab",
        "items": {"selected": 40, "done": 37, "failed": 3, "pending": 0},
        "failed_by_reason": {"mentions_source": 2, "too_few_pairs": 1},
        "tokens": {"prompt": 123456, "completion": 65432},
    }
    (release / "generation_summary.json").write_text(json.dumps(summary))
    folder = tmp_path / "svit"
    build_with_card(release, folder, ["referring_qa"])
    assert "| prompt version |" not in (folder / "README.md").read_text()  # the build does not look there
    made = section(DatasetCard.load(write_dataset_card(folder)).text, "How it was made")
    assert "Read from released-format files in `generated/`, written by `svit generate`:" in made
    assert (
        "| model | `gpt-4o-2024-08-06` |" in made and "| prompt version | `paper-v1@0123456789ab` |" in made
    )
    assert "| items failed | 3 |" in made and "mentions source: 2, too few pairs: 1" in made
    assert "| tokens (prompt / completion) | 123,456 / 65,432 |" in made


def test_dataset_card_needs_a_built_folder(tmp_path):
    with pytest.raises(SvitInputError, match="no such folder"):
        write_dataset_card(tmp_path / "nope")
    (tmp_path / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    with pytest.raises(SvitInputError, match="build_report.json: not found"):
        write_dataset_card(tmp_path)
    (tmp_path / "build_report.json").write_text("{}")
    for broken in ("---\nconfigs: [\n---\n", "---\n- a list\n---\n"):
        (tmp_path / "README.md").write_text(broken)
        with pytest.raises(SvitInputError, match="README.md: its YAML metadata does not parse .*svit build"):
            write_dataset_card(tmp_path)
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: full\n---\n")  # no data_files
    with pytest.raises(SvitInputError, match="README.md: its `configs:` .* not as `svit build` writes them"):
        write_dataset_card(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{"tasks": [1]}', "not as `svit stats` writes it"),
        ('{"tasks": {"conversation": {"samples": 3}}}', "not as `svit stats` writes it"),
        ('{"tasks": {}, "config": "all", "word_rule": "x", "total_qas": 1, "mean_description_words": "many"}',
         "not as `svit stats` writes it"),
    ],
)  # fmt: skip
def test_a_malformed_stats_file_is_one_line_naming_it(built, tmp_path, text, expected):
    """Issue 16: a hand-edited or foreign stats/tasks.json ended as an internal error inside the template."""
    folder = tmp_path / "svit"
    shutil.copytree(built[0], folder)
    before = (folder / "README.md").read_text()
    (folder / "stats" / "tasks.json").write_text(text)
    with pytest.raises(SvitInputError, match=rf"stats/tasks.json: {expected}.*svit stats"):
        write_dataset_card(folder)
    assert (folder / "README.md").read_text() == before


def test_generation_summary_is_found_from_any_cwd(tmp_path, monkeypatch):
    """build_report.json keeps `--input` as typed: relative to the build's cwd, which the card does not know."""
    (tmp_path / "elsewhere").mkdir()
    shutil.copytree(bundled.RELEASE_DIR, tmp_path / "generated")
    (tmp_path / "generated" / "generation_summary.json").write_text(
        json.dumps({"model": "gpt-4o-2024-08-06"})
    )
    monkeypatch.chdir(tmp_path)
    build_with_card("generated", "out/svit", ["referring_qa"])
    assert json.loads(Path("out/svit/build_report.json").read_text())["inputs"]["input"] == "generated"
    for cwd in (tmp_path / "elsewhere", tmp_path / "out", tmp_path):
        monkeypatch.chdir(cwd)
        made = section(
            DatasetCard.load(write_dataset_card(tmp_path / "out" / "svit")).text, "How it was made"
        )
        assert "| model | `gpt-4o-2024-08-06` |" in made, cwd
    (tmp_path / "generated" / "generation_summary.json").unlink()  # the input's summary gone: said so
    made = section(DatasetCard.load(write_dataset_card(tmp_path / "out" / "svit")).text, "How it was made")
    assert "No `generation_summary.json` was found" in made


def test_trl_snippet_of_a_build_without_images_attaches_them_first(tmp_path, monkeypatch):
    folder = tmp_path / "svit"
    build_with_card(bundled.RELEASE_DIR, folder, ["referring_qa"])
    at_build = section((folder / "README.md").read_text(), "Usage")  # the build knows it had no images
    usage = section(DatasetCard.load(write_dataset_card(folder)).text, "Usage")
    assert usage == at_build  # and the card written later from the folder says the same
    assert "This build has no images" in usage
    (load, trl) = PYTHON_BLOCK.findall(usage)
    assert 'train = attach_images(train, "VG/")' in trl and "from svit_dataset.vg import attach_images" in trl
    # as written, up to the trainer (it would download a 7B model): the images are there afterwards
    (tmp_path / "VG").symlink_to(bundled.IMAGES_DIR)
    code = trl.split("trainer = SFTTrainer(")[0] + "print(train[0]['images'][0].size)\n"
    printed = run_snippet(code, tmp_path, tmp_path / "cache", monkeypatch)
    assert re.fullmatch(r"\(\d+, \d+\)", printed.split("\n")[-2])


def test_trl_snippet_of_a_build_with_images_is_as_before(built):
    folder, _, _ = built
    usage = section(DatasetCard.load(folder / "README.md").text, "Usage")
    assert (
        "attach_images" not in usage and 'train = load_dataset("svit", "core_150k", split="train")' in usage
    )


# --- the model card --------------------------------------------------------------------------------------


def _run_folder(root: Path, facts: dict = FACTS) -> Path:
    run = root / "run"
    run.mkdir()
    (run / RUN_FACTS_FILE).write_text(json.dumps(facts))
    for name, results in (("mme", MME), ("pope", POPE), ("grounding", GROUNDING)):
        (root / f"{name}.json").write_text(json.dumps(results))
    return run


def test_run_card_parses_back_with_its_model_index(tmp_path):
    run = _run_folder(tmp_path)
    write_run_card(run, [tmp_path / "mme.json", tmp_path / "grounding.json"])
    card = ModelCard.load(run / "README.md")
    produced = model_index_entries(MME) + model_index_entries(GROUNDING)
    assert card.data.eval_results == produced and card.data.model_name == "svit-v1.5-7b-lora"
    data = card.data.to_dict()
    assert data["base_model"] == "my-org/svit-llava-7b-stage1" and data["datasets"] == ["my-org/svit"]
    assert data["license"] == "cc-by-4.0" and data["pipeline_tag"] == "image-text-to-text"
    assert data["library_name"] == "transformers"
    # huggingface_hub's own model-index parser reads it back to the same entries
    name, parsed = model_index_to_eval_results(data["model-index"])
    assert name == "svit-v1.5-7b-lora" and parsed == produced
    assert data["model-index"] == eval_results_to_model_index(name, produced)
    evaluation = section(card.text, "Evaluation")
    assert "| MME | - | test | MME perception | 1560.31 | - | svit eval |" in evaluation
    # results of an earlier version name no protocol (they were scored leniently)
    assert "| grounding | - | val | ACC@0.5 (IoU >= 0.5) | 0.7123 | - | svit eval |" in evaluation
    assert "| benchmark | config | split | metric | value | protocol | tool |" in evaluation
    assert "| `lora_r` | 128 |" in card.text and "![training loss](loss_curve.png)" in card.text
    assert "## Limitations" in card.text

    # POPE joins the entries already there; a rerun of MME replaces its own, never duplicates them
    add_eval_results(run, [tmp_path / "pope.json", tmp_path / "mme.json"])
    card = ModelCard.load(run / "README.md")
    assert len(card.data.eval_results) == 2 + 9 + 2
    assert "| POPE | adversarial | - | POPE F1 (adversarial) | 0.86 |" in section(card.text, "Evaluation")
    write_run_card(run)  # no results given: the card keeps the ones it has
    assert len(ModelCard.load(run / "README.md").data.eval_results) == 13
    assert not list(run.glob(".README*"))


def test_a_partial_benchmark_shows_in_the_table_only_and_stays_there(tmp_path):
    """The main job's MME: 4 subtasks of a drawn-shapes sample. Its numbers are no MME scores: never in the
    model-index, in the evaluation table marked as a subset, kept when the card is written again."""
    run = _run_folder(tmp_path)
    (tmp_path / "mme_sample.json").write_text(json.dumps(MME_SAMPLE))
    (tmp_path / "svit_grounding.json").write_text(json.dumps(SVIT_GROUNDING))
    write_run_card(run, [tmp_path / "mme_sample.json", tmp_path / "svit_grounding.json"])
    card = ModelCard.load(run / "README.md")
    assert card.data.eval_results == model_index_entries(SVIT_GROUNDING)
    index = card.data.to_dict()["model-index"][0]["results"]
    assert [r["dataset"] for r in index] == [
        {"name": "grounding", "type": "grounding", "config": "referring_qa", "split": "test"}
    ]
    evaluation = section(card.text, "Evaluation")
    subset = "MME subset (4 of 14 subtasks: existence, count, color, commonsense_reasoning; data `mme`)"
    assert f"| {subset} | - | - | MME perception | 150 |" in evaluation
    assert "not in the `model-index`" in evaluation and "/work" not in card.text
    assert "| grounding | referring_qa | test | entity ACC@0.5 | 0.125 |" in evaluation
    write_run_card(run)  # written again without results: both stay where they were
    again = ModelCard.load(run / "README.md")
    assert again.data.eval_results == card.data.eval_results and again.text == card.text
    write_run_card(run, [tmp_path / "mme_sample.json"])  # the subset measured again: replaced, not doubled
    assert ModelCard.load(run / "README.md").text.count(f"| {subset} | - | - | MME perception |") == 1


def test_a_run_readme_whose_model_index_is_broken_is_written_again(tmp_path, caplog):
    run = _run_folder(tmp_path)
    (run / "README.md").write_text(
        "---\nmodel-index:\n- name: x\n  results:\n  - task: 5\n---\nhand-edited\n"
    )
    with caplog.at_level(logging.WARNING):
        write_run_card(run, [tmp_path / "grounding.json"])
    assert "README.md: its metadata does not parse" in caplog.text and RUN_FACTS_FILE in caplog.text
    card = ModelCard.load(run / "README.md")
    assert card.data.eval_results == model_index_entries(GROUNDING) and "## Hyper-parameters" in card.text
    (run / "README.md").write_text("---\nmodel-index: [\n---\nbroken YAML\n")
    with caplog.at_level(logging.WARNING):
        write_run_card(run)
    assert ModelCard.load(run / "README.md").data.base_model == "my-org/svit-llava-7b-stage1"


def test_run_card_errors_name_the_file(tmp_path):
    with pytest.raises(SvitInputError, match="no such folder"):
        write_run_card(tmp_path / "nope")
    with pytest.raises(SvitInputError, match=f"{RUN_FACTS_FILE}: not found"):
        write_run_card(tmp_path)
    run = _run_folder(tmp_path)
    with pytest.raises(SvitInputError, match="missing.json: not found"):
        write_run_card(run, [tmp_path / "missing.json"])
    (tmp_path / "bad.json").write_text(json.dumps({"benchmark": "vqa", "metrics": {}}))
    with pytest.raises(SvitInputError, match="bad.json: not a results.json"):
        write_run_card(run, [tmp_path / "bad.json"])
    (tmp_path / "bad.json").write_text(json.dumps({**GROUNDING, "dataset": "lmms-lab/RefCOCO"}))
    with pytest.raises(SvitInputError, match="bad.json: `dataset` is a string, not an object"):
        write_run_card(run, [tmp_path / "bad.json"])
    for text in ("[1, 2]", '"a run"', "null"):
        (run / RUN_FACTS_FILE).write_text(text)
        with pytest.raises(SvitInputError, match=f"{RUN_FACTS_FILE}: holds .*, not a JSON object"):
            write_run_card(run)


# Run first in the card's code: it must prove svit is not there (`python -S` skips site, so svit's editable-install
# hook never runs; only site-packages itself is on the path).
NO_SVIT = (
    "try:\n    import svit_model\nexcept ImportError:\n    pass\n"
    "else:\n    raise SystemExit('svit is importable: the test would prove nothing')\n"
)


def _run_without_svit(snippets: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Each {name: code} in a namespace of its own, in one interpreter where svit is not importable; stderr names
    the snippet that was running."""
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {
        "PYTHONPATH": site_packages,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(cwd / "modules"),  # the checkpoint's own code lands here
    }
    program = NO_SVIT + (
        "import sys\n"
        f"for name, code in {snippets!r}.items():\n"
        "    print(f'running the code of {name}', file=sys.stderr)\n"
        "    exec(compile(code, name, 'exec'), {'__name__': '__main__'})\n"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", program],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=300,
    )


@pytest.mark.slow
def test_usage_code_of_the_card_runs_against_a_trained_tiny_run(
    tiny_grounded_checkpoint, grounded_dataset, tmp_path
):
    """`svit train` a few steps, `svit card model RUN --results ...`, then the card's code as written, where svit
    is not installed (the checkpoint's own code, `trust_remote_code=True`); a LoRA run's too (peft)."""
    from tests.train_fixtures import one_thread, train_args

    model, data = tiny_grounded_checkpoint, grounded_dataset
    run = tmp_path / "tiny-svit-run"
    lora = tmp_path / "tiny-svit-lora"
    with one_thread():
        assert main(["train", *train_args(model, data, run, max_steps=2, save_steps=2)]) == 0
        lora_argv = train_args(model, data, lora, recipe="tiny-stage2-lora", max_steps=1, save_steps=1)
        assert main(["train", *lora_argv]) == 0
    facts = json.loads((run / RUN_FACTS_FILE).read_text())
    assert (
        facts["global_step"] == 2 and facts["stage"] == "finetune" and facts["loss_curve"] == "loss_curve.png"
    )
    assert facts["init_from"] == "tiny" and facts["datasets"] == ["data"]  # folder names, no local paths
    (tmp_path / "grounding.json").write_text(json.dumps(GROUNDING))
    assert main(["card", "model", str(run), "--results", str(tmp_path / "grounding.json")]) == 0
    assert main(["card", "model", str(lora)]) == 0

    card = ModelCard.load(run / "README.md")
    assert card.data.eval_results == model_index_entries(GROUNDING)
    assert card.data.base_model is None  # a local checkpoint of no known Hub id
    assert "steps: 2," in card.text and "![training loss](loss_curve.png)" in card.text
    assert str(tmp_path) not in card.text
    assert (run / "loss_curve.png").is_file()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "image.jpg")
    snippets = {}
    for folder in (run, lora):
        text = ModelCard.load(folder / "README.md").text
        (snippets[folder.name],) = PYTHON_BLOCK.findall(section(text, "Use"))
        assert f'from_pretrained("{folder.name}", trust_remote_code=True)' in snippets[folder.name]
        assert "svit_" not in snippets[folder.name]
    done = _run_without_svit(snippets, tmp_path)  # as written: only the model id is the run folder's name
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("running the code of") == 2
    assert "needs `peft`" in " ".join(ModelCard.load(lora / "README.md").text.split())
