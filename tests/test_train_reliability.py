"""Issue 16, training and model commands: values checked before work, no non-finite model saved, resume that
picks only a complete checkpoint of the same run and does nothing for a finished one, `--overwrite` that deletes
only what the command writes, a full disk and damaged files reported in one line, learning rates logged by name.
"""

from __future__ import annotations

import io
import json
import math
import re

import pytest
import torch
from safetensors.torch import save_file
from transformers import TrainerCallback

from svit_cli.jobs.train import parse_train_arguments
from svit_dataset.errors import SvitError, SvitFormatError, SvitInputError, describe_error
from svit_model.building import check_output_dir, is_checkpoint_folder, save_checkpoint, writing_checkpoint
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows
from svit_model.training.arguments import (
    MODEL_FLAG_RANGES,
    TRAIN_RANGES,
    check_argument_values,
    range_type,
)
from svit_model.training.collator import SvitCollator
from svit_model.training.data import SampleLoader, decode_image
from svit_model.training.resume import (
    IDENTITY_FILE,
    check_same_run,
    checkpoint_problem,
    finished_step,
    is_training_run,
    last_complete_checkpoint,
)
from svit_model.training.train import train
from svit_model.training.trainer import named_learning_rates
from svit_model.training.training_recipes import list_training_recipes
from tests.train_fixtures import grounded_rows, one_thread, train_args


@pytest.fixture(scope="module")
def files(tiny_grounded_checkpoint, grounded_dataset):
    return tiny_grounded_checkpoint, grounded_dataset


def run(argv, **kwargs):
    with one_thread():
        return train(*parse_train_arguments(argv), **kwargs)


# --- values checked before work ---------------------------------------------------------------------------------

BAD_VALUES = [
    ("learning_rate", "nan"),
    ("learning_rate", "-0.001"),
    ("learning_rate", "inf"),
    ("projector_lr", "-1"),
    ("weight_decay", "nan"),
    ("max_steps", "-5"),
    ("max_steps", "0"),
    ("num_train_epochs", "0"),
    ("per_device_train_batch_size", "0"),
    ("gradient_accumulation_steps", "0"),
    ("lora_r", "0"),
    ("lora_alpha", "0"),
    ("lora_dropout", "1.0"),
    ("warmup_steps", "-0.1"),
    ("warmup_steps", "2.5"),
    ("save_steps", "0"),
    ("logging_steps", "-1"),
    ("max_length", "0"),
    ("seed", "-1"),
    ("adam_beta2", "1.5"),
    ("max_grad_norm", "nan"),
    ("save_total_limit", "0"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_VALUES)
def test_every_out_of_range_training_value_is_refused_before_the_model_loads(
    files, tmp_path, no_model_load, flag, value
):
    model_dir, data_dir = files
    argv = train_args(model_dir, data_dir, tmp_path / "out", **{flag: value})
    try:
        parsed = parse_train_arguments(argv)
    except SvitInputError as err:  # a few the dataclasses refuse themselves, in one line too
        assert flag in str(err) or "steps" in str(err), err
        return
    with pytest.raises(SvitInputError, match=rf"^--{flag} .*: out of range; expected "):
        train(*parsed)
    assert not (tmp_path / "out").exists()


def test_every_shipped_recipe_and_the_defaults_pass_the_range_check():
    from types import SimpleNamespace

    from svit_model.training.training_recipes import load_training_recipe

    for (
        name
    ) in list_training_recipes():  # the recipe's own values (the 7B/13B ones ask for bf16: no parsing on CPU)
        check_argument_values(SimpleNamespace(**load_training_recipe(name)[1]))
    check_argument_values(*parse_train_arguments(["--config", "tiny-stage2-lora"]))  # with every default


@pytest.mark.parametrize(
    ("recipe_text", "argv", "expected"),
    [
        ("save_steps: .inf\n", [], "save_steps inf: out of range"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", [], "nested too deeply"),
        ("{" * 5000 + "\n", [], "--config"),
        (None, ["--save_steps", "inf"], "--save_steps inf: not a finite number"),
        (None, ["--dataloader_num_workers", str(2**31)], "--dataloader_num_workers 2147483648: out of range"),
    ],
)
def test_hostile_recipes_and_infinite_flags_are_one_error_at_parse_time(
    tmp_path, recipe_text, argv, expected
):
    # found by bench/fuzz.py's train family: a RecursionError, an OverflowError and a fork bomb's worth of workers
    config = "tiny-stage2-full"
    if recipe_text is not None:
        config = tmp_path / "recipe.yaml"
        config.write_text(recipe_text)
    with pytest.raises(SvitInputError, match=re.escape(expected)):
        script_args, training_args, model_args = parse_train_arguments(["--config", str(config), *argv])
        check_argument_values(script_args, training_args, model_args)


def test_ranges_accept_sentinels_and_say_what_they_accept():
    assert TRAIN_RANGES["max_steps"].accepts(-1) and TRAIN_RANGES["max_steps"].accepts(12)
    assert not TRAIN_RANGES["max_steps"].accepts(-2)
    assert TRAIN_RANGES["warmup_steps"].accepts(0.03) and TRAIN_RANGES["warmup_steps"].accepts(10)
    assert TRAIN_RANGES["projector_lr"].accepts(None) and not TRAIN_RANGES["learning_rate"].accepts(None)
    assert not TRAIN_RANGES["learning_rate"].accepts(True)  # a YAML `yes` is no learning rate
    assert TRAIN_RANGES["max_steps"].describe() == "an integer at least 1, or -1"
    assert TRAIN_RANGES["lora_dropout"].describe() == "a finite number at least 0 and below 1"
    steps = range_type(MODEL_FLAG_RANGES["steps"])
    assert steps("60") == 60
    for text in ("0", "-3", "100000000"):
        with pytest.raises(Exception, match="out of range"):
            steps(text)


# --- no non-finite model saved ------------------------------------------------------------------------------------


class Poison(TrainerCallback):
    """Breaks one trained weight after step 1, as a diverging optimizer would."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 1:
            with torch.no_grad():
                param = next(p for p in model.parameters() if p.requires_grad)
                param.view(-1)[0] = math.nan


def test_weights_that_become_nan_stop_the_run_before_any_save(files, tmp_path):
    model_dir, data_dir = files
    out = tmp_path / "one_step"  # the loss of step 1 was finite: only the weight check can see it
    with pytest.raises(
        SvitInputError, match="trained weights became NaN or infinite by step 1 .*nothing was saved"
    ):
        run(train_args(model_dir, data_dir, out, max_steps=1), callbacks=[Poison()])
    assert not list(out.glob("**/*.safetensors"))
    out = tmp_path / "three_steps"  # step 2 trains on NaN weights: its loss stops the run
    with pytest.raises(SvitInputError, match="training loss became nan at step 2"):
        run(train_args(model_dir, data_dir, out, max_steps=3, save_steps=100), callbacks=[Poison()])
    assert not list(out.glob("**/*.safetensors"))
    out = tmp_path / "saving"  # a checkpoint due right after the weights broke is refused too
    with pytest.raises(SvitInputError, match="trained weights became NaN or infinite by step 1"):
        run(train_args(model_dir, data_dir, out, max_steps=3, save_steps=1), callbacks=[Poison()])
    assert not list(out.glob("**/*.safetensors"))


# --- resume -------------------------------------------------------------------------------------------------------


def _fake_checkpoint(folder, step=2, planned=4, *, state=True, weights=True, identity=None, adapter=False):
    folder.mkdir(parents=True)
    if state:
        (folder / "trainer_state.json").write_text(
            json.dumps({"global_step": step, "max_steps": planned, "num_train_epochs": 3})
        )
    if weights:
        save_file(
            {"w": torch.zeros(64)}, folder / ("adapter_model.safetensors" if adapter else "model.safetensors")
        )
    if adapter:
        (folder / "adapter_config.json").write_text("{}")
    if identity is not None:
        (folder / IDENTITY_FILE).write_text(json.dumps(identity))
    return folder


def test_checkpoint_problems_are_found_without_loading(tmp_path):
    whole = _fake_checkpoint(tmp_path / "checkpoint-2")
    assert checkpoint_problem(whole) is None
    assert "trainer_state.json" in checkpoint_problem(_fake_checkpoint(tmp_path / "a", state=False))
    assert (
        checkpoint_problem(_fake_checkpoint(tmp_path / "b", weights=False)) == "no model or adapter weights"
    )
    truncated = _fake_checkpoint(tmp_path / "c")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:-10])
    assert checkpoint_problem(truncated) == "model.safetensors is truncated"
    (truncated / "model.safetensors").write_bytes(data)
    (truncated / "optimizer.pt").write_bytes(b"PK\x03\x04 half a zip")
    assert checkpoint_problem(truncated) == "optimizer.pt is truncated"


def test_last_means_the_last_complete_checkpoint(tmp_path, caplog):
    run_dir = tmp_path / "run"
    _fake_checkpoint(run_dir / "checkpoint-2")
    _fake_checkpoint(run_dir / "checkpoint-10", step=10, state=False)  # the disk filled while saving it
    _fake_checkpoint(run_dir / "checkpoint-4", step=4)
    (run_dir / "checkpoint-4" / "model.safetensors").write_bytes(b"\x08")  # and this one lost its weights
    with caplog.at_level("WARNING"):
        assert last_complete_checkpoint(run_dir) == run_dir / "checkpoint-2"
    assert "checkpoint-10: no trainer_state.json" in caplog.text and "checkpoint-4" in caplog.text


def test_a_finished_run_is_finished_unless_asked_for_more(tmp_path):
    done = _fake_checkpoint(tmp_path / "checkpoint-4", step=4, planned=4)
    assert finished_step(done, max_steps=4, num_train_epochs=3) == 4
    assert finished_step(done, max_steps=-1, num_train_epochs=3) == 4
    assert finished_step(done, max_steps=6, num_train_epochs=3) is None  # more steps: train on
    assert finished_step(done, max_steps=-1, num_train_epochs=5) is None
    assert finished_step(_fake_checkpoint(tmp_path / "mid", step=2, planned=4), 4, 3) is None


def test_another_runs_checkpoint_is_refused_naming_both():
    mine = {"stage": "finetune", "method": "full", "init_from": "tiny", "datasets": ["data"]}
    check_same_run("last", dict(mine), mine)
    check_same_run("last", {"method": "full"}, mine)  # an older checkpoint: only what its files tell
    with pytest.raises(
        SvitInputError, match=r"another run \(stage finetune, method lora.*not of this one.*method"
    ):
        check_same_run("x", {**mine, "method": "lora"}, mine)
    with pytest.raises(SvitInputError, match="init_from differ"):
        check_same_run("x", {**mine, "init_from": "other"}, mine)


def test_resuming_on_another_number_of_processes_is_refused(tmp_path):
    from types import SimpleNamespace

    from svit_model.training.resume import checkpoint_processes
    from svit_model.training.train import resolve_resume

    out = tmp_path / "run"
    two = _fake_checkpoint(out / "checkpoint-2", step=2, planned=4)
    for rank in (0, 1):  # what the Trainer saves on two processes
        torch.save({}, two / f"rng_state_{rank}.pth")
    assert checkpoint_processes(two) == 2
    args = SimpleNamespace(
        output_dir=str(out), resume_from_checkpoint="last", max_steps=4, num_train_epochs=1
    )
    with pytest.raises(
        SvitInputError, match=r"checkpoint-2 was written by 2 process\(es\), this run has 1; .* resume on 2 "
    ):
        resolve_resume(SimpleNamespace(**vars(args), world_size=1), False)
    assert resolve_resume(SimpleNamespace(**vars(args), world_size=2), False).checkpoint == str(two)
    alone = _fake_checkpoint(tmp_path / "alone" / "checkpoint-2", step=2, planned=4)
    torch.save({}, alone / "rng_state.pth")
    assert checkpoint_processes(alone) == 1 and checkpoint_processes(tmp_path) is None


def test_resume_end_to_end_finished_half_written_and_foreign(files, tmp_path, no_model_load, monkeypatch):
    """All decided before the model loads (`load_model` is a trap until the last step)."""
    model_dir, data_dir = files
    out = tmp_path / "run"
    identity = {"stage": "finetune", "method": "full", "init_from": "tiny", "datasets": ["data"]}
    identity["dataset_config"] = "default"
    _fake_checkpoint(out / "checkpoint-4", step=4, planned=4, identity=identity)
    # the facts a checkpoint save leaves (no summary): the run did not reach its end, whatever its weights
    (out / "svit_run.json").write_text(json.dumps({"counts": {"tokens_trained": 7}}))
    (out / "model.safetensors").write_bytes((out / "checkpoint-4" / "model.safetensors").read_bytes())
    with pytest.raises(AssertionError, match="the model was loaded"):
        run(train_args(model_dir, data_dir, out, max_steps=4, resume_from_checkpoint="last"))
    # the end of the run's facts
    (out / "svit_run.json").write_text(
        json.dumps({"counts": {"tokens_trained": 7}, "summary": "svit train: 4"})
    )
    # killed in the final save (no whole model at the top): not finished, so resuming goes on to load the model
    (out / "model.safetensors").write_bytes((out / "checkpoint-4" / "model.safetensors").read_bytes()[:100])
    with pytest.raises(AssertionError, match="the model was loaded"):
        run(train_args(model_dir, data_dir, out, max_steps=4, resume_from_checkpoint="last"))
    # the final save whole: resuming a finished run does nothing, and says so (no phantom checkpoint-5)
    (out / "model.safetensors").write_bytes((out / "checkpoint-4" / "model.safetensors").read_bytes())
    result = run(train_args(model_dir, data_dir, out, max_steps=4, resume_from_checkpoint="last"))
    assert result.global_step == 4 and "already finished at step 4" in result.summary
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    # a half-written checkpoint named explicitly is refused, naming the problem
    _fake_checkpoint(out / "checkpoint-6", step=6, state=False)
    with pytest.raises(SvitInputError, match="not a complete checkpoint \\(no trainer_state.json"):
        run(
            train_args(
                model_dir, data_dir, out, max_steps=8, resume_from_checkpoint=str(out / "checkpoint-6")
            )
        )
    # a LoRA run's checkpoint into a full run
    lora = _fake_checkpoint(
        tmp_path / "lora" / "checkpoint-2", adapter=True, identity={**identity, "method": "lora"}
    )
    with pytest.raises(SvitInputError, match="a checkpoint of another run .*method differ"):
        run(train_args(model_dir, data_dir, tmp_path / "new", max_steps=4, resume_from_checkpoint=str(lora)))
    # no complete checkpoint at all
    empty_run = tmp_path / "half"
    _fake_checkpoint(empty_run / "checkpoint-2", state=False)
    with pytest.raises(SvitInputError, match="no complete checkpoint-\\* folder .*1 half-written"):
        run(train_args(model_dir, data_dir, empty_run, resume_from_checkpoint="last"))


def test_a_real_resume_skips_a_truncated_last_checkpoint_and_checkpoints_record_their_run(files, tmp_path):
    model_dir, data_dir = files
    out = tmp_path / "run"
    run(train_args(model_dir, data_dir, out, max_steps=4, save_steps=2))
    identity = json.loads((out / "checkpoint-4" / IDENTITY_FILE).read_text())
    assert identity["method"] == "full" and identity["stage"] == "finetune"
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    resumed = run(
        train_args(model_dir, data_dir, out, max_steps=4, save_steps=2, resume_from_checkpoint="last")
    )
    assert resumed.global_step == 4 and "already finished" not in resumed.summary  # steps 3 and 4 again
    assert checkpoint_problem(out / "checkpoint-4") is None
    again = run(
        train_args(model_dir, data_dir, out, max_steps=4, save_steps=2, resume_from_checkpoint="last")
    )
    assert "already finished at step 4" in again.summary
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


# --- --overwrite replaces only what the command writes ------------------------------------------------------------


def test_overwrite_output_dir_deletes_only_a_training_run(files, tmp_path, no_model_load):
    model_dir, data_dir = files
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(
        SvitInputError, match="is not a training run .*--overwrite_output_dir does not replace it"
    ):
        run(train_args(model_dir, data_dir, mine, overwrite_output_dir="true"))
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert not is_training_run(mine) and not is_training_run(tmp_path / "nope")
    (tmp_path / "run" / "checkpoint-3").mkdir(parents=True)
    assert is_training_run(tmp_path / "run")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "svit_run.json").write_text("{}")
    assert is_training_run(tmp_path / "final")


def test_model_overwrite_replaces_only_a_checkpoint_folder(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x")
    with pytest.raises(SvitInputError, match="is not a model checkpoint folder"):
        check_output_dir(notes, overwrite=True)
    a_file = tmp_path / "model.txt"
    a_file.write_text("x")
    with pytest.raises(SvitInputError, match="is not a model checkpoint folder"):
        check_output_dir(a_file, overwrite=True)
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", overwrite=True)
    model, processor = build_tiny_svit_llava(corpus_from_rows(grounded_rows()))
    first = save_checkpoint(model, processor, tmp_path / "ckpt")
    assert is_checkpoint_folder(first)
    save_checkpoint(model, processor, first, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt",
        "empty",
        "model.txt",
        "notes",
    ]  # no .old-PID


def test_a_folder_replacing_a_file_leaves_no_old_file_behind(tmp_path):
    from svit_dataset.files import atomic_folder

    target = tmp_path / "out"
    target.write_text("a file")
    with atomic_folder(target) as staging:
        (staging / "x").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (target / "x").is_file()


# --- full disk, damaged files, messages ---------------------------------------------------------------------------


def test_a_full_disk_during_a_safetensors_write_is_an_os_error():
    from safetensors import SafetensorError

    with pytest.raises(OSError) as caught, writing_checkpoint("out/ckpt"):
        raise SafetensorError("Error while serializing: I/O error: File too large (os error 27)")
    message, users = describe_error(caught.value)
    assert users and message.startswith("File too large: out/ckpt; free some space")
    with pytest.raises(OSError) as caught, writing_checkpoint("out/ckpt"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert describe_error(caught.value) == ("writing a file failed (is the disk full?): out/ckpt", True)
    with pytest.raises(ValueError, match="a defect"), writing_checkpoint("out/ckpt"):
        raise ValueError("a defect stays one")


def test_a_damaged_training_image_is_named(tmp_path):
    _, processor = build_tiny_svit_llava(corpus_from_rows(grounded_rows()))
    collator = SvitCollator(processor, template="default")
    load = SampleLoader(image_folder=str(tmp_path))

    def batch_of(row):  # what the data loader hands the collator: the rows through the sample transform
        loaded = load({key: [value] for key, value in row.items()})
        return collator([{key: values[0] for key, values in loaded.items()}])

    row = grounded_rows()[0]
    truncated = row["images"][0]["bytes"][:60]
    with pytest.raises(
        SvitFormatError, match=f"sample {row['id']} \\(embedded image\\): the image cannot be read"
    ):
        batch_of({**row, "images": [{"bytes": truncated, "path": None}]})
    (tmp_path / "vg").mkdir()
    (tmp_path / "vg" / "1.png").write_bytes(truncated)
    with pytest.raises(
        SvitFormatError, match=f"{tmp_path}/vg/1.png \\(sample {row['id']}\\): the image cannot"
    ):
        batch_of({**row, "images": [], "image_path": "vg/1.png"})
    # whole images decode as before, from the undecoded form training hands over
    batch = batch_of({**row, "images": [{"bytes": row["images"][0]["bytes"], "path": None}]})
    assert batch["pixel_values"].shape[0] == 1


def test_undecoded_training_images_are_turned_upright_as_datasets_would():
    import datasets
    from PIL import Image

    image = Image.new("RGB", (40, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    undecoded = {"bytes": buffer.getvalue(), "path": None}
    assert datasets.Image().decode_example(undecoded).size == (20, 40)
    assert decode_image(undecoded, "1-referring_qa-0").size == (20, 40)


def test_a_run_killed_before_its_first_checkpoint_is_a_training_run(tmp_path):
    started = tmp_path / "run"
    (started / "runs" / "Dec03_10-00-00_host").mkdir(parents=True)  # what the Trainer writes as it starts
    (started / "runs" / "Dec03_10-00-00_host" / "events.out.tfevents.1.host").write_bytes(b"x")
    assert is_training_run(started)
    (started / "notes.txt").write_text("the user's")
    assert not is_training_run(started)


def test_training_data_hands_images_over_undecoded(files):
    from svit_model.training.data import load_training_data

    _, data_dir = files
    data = load_training_data(str(data_dir), "default")
    assert data.dataset.features["images"].feature.decode is False
    assert isinstance(data.dataset[0]["images"][0]["bytes"], bytes)


def test_a_missing_local_model_is_named_as_such(files, tmp_path, no_model_load):
    _, data_dir = files
    with pytest.raises(SvitInputError, match="--model_name_or_path .*/nope: no such folder"):
        run(train_args(tmp_path / "nope", data_dir, tmp_path / "out"))


def test_a_damaged_adapter_is_one_error_naming_the_run(tmp_path):
    from svit_model.training.checkpoint import load_lora_run

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "adapter_config.json").write_text("{not json")
    with pytest.raises(SvitInputError, match="--input .*garbage: adapter_config.json cannot be read"):
        load_lora_run(garbage)
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "adapter_config.json").write_text("[]")
    with pytest.raises(SvitError, match="adapter_config.json is not a JSON object"):
        load_lora_run(listed)


# --- learning rates by name -----------------------------------------------------------------------------------------


def test_learning_rates_are_named_by_group():
    groups = [
        {"svit_group": "projector", "lr": 0.01},
        {"svit_group": "llm", "lr": torch.tensor(0.001)},
        {"svit_group": "projector", "lr": 0.01},
    ]
    assert named_learning_rates(groups) == {"projector": 0.01, "llm": pytest.approx(0.001)}
    assert named_learning_rates([{"lr": 0.1}]) == {}


def test_the_logged_learning_rate_is_the_llms_and_each_group_is_logged(files, tmp_path):
    model_dir, data_dir = files
    out = tmp_path / "lora"
    argv = train_args(model_dir, data_dir, out, recipe="tiny-stage2-lora", max_steps=2, learning_rate=0.001)
    argv += ["--projector_lr", "0.01", "--lr_scheduler_type", "constant", "--warmup_steps", "0"]
    result = run(argv)
    logged = [entry for entry in json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
              if "learning_rate" in entry]  # fmt: skip
    assert logged and result.global_step == 2
    for entry in logged:
        assert entry["learning_rate"] == entry["learning_rate/llm"] == pytest.approx(0.001)
        assert entry["learning_rate/projector"] == pytest.approx(0.01)


def test_a_project_folder_with_a_config_json_is_no_checkpoint_to_overwrite(tmp_path):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name": "my app"}')
    (project / "src" / "main.py").write_text("print('mine')")
    assert not is_checkpoint_folder(project)
    with pytest.raises(SvitInputError, match="--overwrite does not replace it"):
        check_output_dir(project, True)
    save_file({"w": torch.zeros(2)}, project / "model.safetensors")
    assert not is_checkpoint_folder(project)  # weights, but no model's config beside them
    (project / "config.json").write_text('{"model_type": "svit_llava"}')
    assert is_checkpoint_folder(project)
