"""Every user error of every command ends as one line, `svit <command>: error: ...`, exit 2, no traceback.

The CLI runs over a table of bad inputs: files the `datasets` generation chokes on, checkpoints transformers
cannot load, file-system faults, out-of-range settings. Each case runs in this process (tests/cli_runs.py),
the file-size-limit case in a fork of it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from svit_dataset import bundled
from svit_dataset.errors import describe_error
from svit_dataset.schema import TASKS
from tests.cli_runs import assert_one_clean_line_each, run_svit
from tests.release_factory import conversation, qa, record, write_release

GOOD_RECORDS = [record(i, conversation(qa("What is it?", f"A ball {i}."))) for i in range(1, 30)]


def _release(root: Path, name: str, text: str | None = None, task: str = "conversation") -> Path:
    folder = root / name
    write_release(folder, {t: GOOD_RECORDS for t in TASKS})
    if text is not None:
        (folder / f"{task}.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    return folder


def _tiny_checkpoints(root: Path) -> dict[str, Path]:
    """A CLIP vision tower, a Llama without weights, a Llama without tokenizer, a garbage config."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    clip = root / "clip"
    CLIPVisionModel(
        CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         image_size=28, patch_size=14)
    ).save_pretrained(clip)  # fmt: skip
    llama_config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=2, vocab_size=64)  # fmt: skip
    no_weights = root / "llama_no_weights"
    no_weights.mkdir()
    llama_config.to_json_file(no_weights / "config.json")
    no_tokenizer = root / "llama_no_tokenizer"
    LlamaForCausalLM(llama_config).save_pretrained(no_tokenizer)
    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text("{not json")
    return {"clip": clip, "no_weights": no_weights, "no_tokenizer": no_tokenizer, "garbage": garbage}


def _cases(root: Path) -> list[tuple[str, list[str], str, dict]]:
    """(name, argv, expected text in the error line, run options: `{"fsize": bytes}` runs it in a fork)."""
    out = root / "out"
    release = _release(root, "rel")
    a_file = root / "a_file"
    a_file.write_text("x")
    image_data = root / "image_data.json"
    image_data.write_text(json.dumps([{"image_id": i, "width": 64, "height": 48} for i in range(1, 30)]))
    truncated = json.dumps(GOOD_RECORDS)[:-40]
    bad_types = json.dumps([{"image_id": i, "conversations": "x"} for i in range(10)])
    models = _tiny_checkpoints(root)
    pushable = root / "built"
    pushable.mkdir()
    (pushable / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    pushed = root / "built_and_reported"  # what `svit push` takes for a dataset folder
    shutil.copytree(pushable, pushed)
    (pushed / "build_report.json").write_text("{}")
    build = ["build", "--output", str(out / "svit")]
    broken_yaml = root / "broken_yaml"  # a built folder whose README front matter was hand-edited wrong
    broken_yaml.mkdir()
    (broken_yaml / "README.md").write_text("---\nconfigs: [\n---\n")
    (broken_yaml / "build_report.json").write_text("{}")
    list_run = root / "list_run"  # svit_run.json holding a list
    list_run.mkdir()
    (list_run / "svit_run.json").write_text("[]")
    run = root / "run"
    run.mkdir()
    (run / "svit_run.json").write_text(json.dumps({"stage": "finetune"}))
    dataset_list = root / "dataset_list.json"  # results.json whose `dataset` is no object
    dataset_list.write_text(json.dumps({"benchmark": "mme", "dataset": ["MME"], "metrics": {}}))
    cases = [
        ("missing input", [*build, "--input", str(root / "nope")], "conversation.json: not found"),
        ("truncated", [*build, "--input", str(_release(root, "t", truncated))], "invalid or truncated JSON"),
        ("not a list", [*build, "--input", str(_release(root, "o", '{"a": 1}'))], "expected a JSON list"),
        ("NaN", [*build, "--input", str(_release(root, "n", '[{"image_id": NaN}]'))], "invalid or truncated"),
        ("not UTF-8", [*build, "--input", str(_release(root, "u", '[{"image_id": 1, "x": "\udcff"}]'))],
         "invalid or truncated JSON"),
        ("too many malformed", [*build, "--input", str(_release(root, "m", bad_types))], "raise --max-bad-fraction"),
        ("bad test ids", [*build, "--input", str(release), "--test-ids", str(a_file)], "is not an image id"),
        ("damaged image_data", [*build, "--input", str(release), "--image-data", str(_release(root, "d", "[{")
                                / "conversation.json")], "--image-data"),
        ("images not a folder", [*build, "--input", str(release), "--images", str(a_file)], "not a folder"),
        ("output is input", ["build", "--input", str(release), "--output", str(release), "--overwrite"],
         "inputs are never written"),
        ("output parent is a file", ["build", "--input", str(release), "--output", str(a_file / "svit")],
         "is a file, not a folder"),
        ("unknown config", [*build, "--input", str(release), "--configs", "core_15k"], "unknown config"),
        ("file too large", [*build, "--input", str(release), "--configs", "conversation"], "File too large",
         {"fsize": 4096}),
        ("export truncated", ["export", "llava", "--input", str(_release(root, "t2", truncated)), "--output",
                              str(out / "x.json"), "--image-data", str(image_data)], "invalid or truncated JSON"),
        ("export onto input", ["export", "llava", "--input", str(release), "--output",
                               str(release / "conversation.json"), "--image-data", str(image_data), "--overwrite"],
         "inputs are never written"),
        ("export bad exclude ids", ["export", "llava", "--input", str(release), "--output", str(out / "y.json"),
                                    "--image-data", str(image_data), "--exclude-ids", str(a_file)],
         "--exclude-ids"),
        ("generate rpm 0", ["generate", "--scenes", str(a_file), "--output", str(out / "g"), "--rpm", "0"],
         "--rpm must be above 0"),
        ("generate timeout 0", ["generate", "--scenes", str(a_file), "--output", str(out / "g"), "--timeout", "0"],
         "--timeout must be above 0"),
        ("generate retries", ["generate", "--scenes", str(a_file), "--output", str(out / "g"), "--max-retries", "-1"],
         "--max-retries must be 0 or more"),
        ("generate url", ["generate", "--scenes", str(a_file), "--output", str(out / "g"), "--base-url", "localhost"],
         "--base-url is not an http(s) URL"),
        ("generate into release", ["generate", "--scenes", str(a_file), "--output", str(release), "--base-url",
                                   "http://127.0.0.1:9/v1"], "not written by svit generate"),
        ("model path missing", ["model", "build", "--vision", str(root / "no_clip"), "--llm", str(models["clip"]),
                                "--output", str(out / "m")], "--vision"),
        ("llm is a CLIP", ["model", "build", "--vision", str(models["clip"]), "--llm", str(models["clip"]),
                           "--output", str(out / "m")], "--llm"),
        ("llm without weights", ["model", "build", "--vision", str(models["clip"]), "--llm",
                                 str(models["no_weights"]), "--output", str(out / "m")], "--llm"),
        ("llm without tokenizer", ["model", "build", "--vision", str(models["clip"]), "--llm",
                                   str(models["no_tokenizer"]), "--output", str(out / "m")], "--llm"),
        ("garbage config", ["model", "build", "--vision", str(models["garbage"]), "--llm", str(models["clip"]),
                            "--output", str(out / "m")], "--vision"),
        ("convert missing", ["model", "convert", "--input", str(root / "nope"), "--output", str(out / "c")],
         "--input"),
        ("convert garbage", ["model", "convert", "--input", str(models["garbage"]), "--output", str(out / "c")],
         "--input"),
        ("export-llava garbage", ["model", "export-llava", "--input", str(models["garbage"]), "--output",
                                  str(out / "e")], "--input"),
        ("export-llava onto input", ["model", "export-llava", "--input", str(models["clip"]), "--output",
                                     str(models["clip"]), "--overwrite"], "inputs are never written"),
        ("merge onto input", ["model", "merge", "--input", str(models["clip"]), "--output", str(models["clip"]),
                              "--overwrite"], "inputs are never written"),
        ("train onto its model", ["train", "--config", "tiny-stage2-full", "--model_name_or_path",
                                  str(models["clip"]), "--output_dir", str(models["clip"]),
                                  "--overwrite_output_dir"], "inputs are never written"),
        ("push offline", ["push", str(pushed), "someone/x"], "cannot reach"),
        ("demo into the sample", ["demo", "--output", str(bundled.SAMPLE_DIR)], "inputs are never written"),
        ("push neither", ["push", str(pushable), "someone/x"], "neither a folder written by `svit build`"),
        ("card of no build", ["card", "dataset", str(pushable)], "build_report.json: not found"),
        ("card of no run", ["card", "model", str(models["clip"])], "svit_run.json: not found"),
        ("card missing folder", ["card", "model", str(root / "nope")], "no such folder"),
        ("card broken dataset YAML", ["card", "dataset", str(broken_yaml)], "README.md: its YAML metadata does not"),
        ("card run facts a list", ["card", "model", str(list_run)], "svit_run.json: holds a list, not a JSON object"),
        ("card results dataset list", ["card", "model", str(run), "--results", str(dataset_list)],
         "dataset_list.json: `dataset` is a list"),
        ("eval card results dataset list", ["eval", "card", str(dataset_list), "--model-dir", str(root / "m")],
         "dataset_list.json: `dataset` is a list"),
        ("mix json inside output", [*build, "--input", str(release), "--image-data", str(image_data), "--configs",
                                    "mix_665k", "--llava-mix", str(a_file), "--llava-instruct", str(a_file),
                                    "--mix-llava-json", str(out / "svit" / "mix.json")], "inside --output"),
    ]  # fmt: skip
    return [(c[0], c[1], c[2], c[3] if len(c) > 3 else {}) for c in cases]


@pytest.mark.slow
def test_every_bad_input_is_one_clean_line_with_exit_2(tmp_path):
    assert_one_clean_line_each(_cases(tmp_path))
    assert not (tmp_path / "rel" / ".rel.old").exists() and (tmp_path / "rel" / "conversation.json").exists()


def test_traceback_only_with_verbose(tmp_path):
    done = run_svit(
        ["-v", "build", "--input", str(_release(tmp_path, "t", "[{")), "--output", str(tmp_path / "o")]
    )
    assert done.returncode == 2 and "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("svit build: error: ")


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free some space"),
        (errno.EACCES, "permissions"),
        (errno.EROFS, "read-only"),
        (errno.ENOTDIR, "not a folder"),
        (errno.EFBIG, "free some space"),
    ],
)
def test_file_system_faults_are_the_users_to_fix(code, advice):
    message, users = describe_error(OSError(code, os.strerror(code), "/data/out/x.parquet"))
    assert users and "/data/out/x.parquet" in message and advice in message and "\n" not in message


def test_wrapped_causes_are_found_and_other_errors_are_svits():
    from datasets.exceptions import DatasetGenerationError

    from svit_dataset.errors import SvitFormatError

    try:
        try:
            raise SvitFormatError("rel/conversation.json: invalid JSON")
        except SvitFormatError as inner:
            raise DatasetGenerationError("An error occurred while generating the dataset") from inner
    except DatasetGenerationError as outer:
        assert describe_error(outer) == ("rel/conversation.json: invalid JSON", True)
    message, users = describe_error(ZeroDivisionError("division by zero"))
    assert not users and message == "ZeroDivisionError: division by zero"


def test_a_defect_raised_while_handling_a_user_error_is_still_a_defect():
    from svit_dataset.errors import SvitInputError

    try:
        try:
            raise SvitInputError("--input x: not found")
        except SvitInputError:
            raise KeyError("bug in the handler")  # noqa: B904 - the implicit chain is the point
    except KeyError as err:
        message, users = describe_error(err)
    assert not users and message.startswith("KeyError")
