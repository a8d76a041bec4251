"""`svit train` end to end on the tiny SVIT-LLaVA (CPU): overfit and reload, LoRA merge, exact resume,
stage 1 then stage 2, and a push to the loopback Hub."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

import svit_model  # noqa: F401  (registers svit_llava with the Auto classes)
from svit_cli.jobs.train import parse_train_arguments, train_with_card
from svit_cli.main import main
from svit_dataset.grounded_text import parse_grounded_text
from svit_model.training.train import train
from tests.fake_hub import fake_hub
from tests.train_fixtures import (
    grounded_rows,
    one_thread,
    run_svit_on_two_processes,
    train_args,
    write_tiny_with_new_grounding_rows,
)

# Steps of the overfit runs: both answer exactly by 150, with every token's top-two logit gap 5-9 (measured under
# the avx2 and the portable kernel); longer runs barely widen it.
OVERFIT_STEPS = 150


@pytest.fixture(scope="module")
def rows():
    return grounded_rows()


@pytest.fixture(scope="module")
def files(tiny_grounded_checkpoint, grounded_dataset):
    return tiny_grounded_checkpoint, grounded_dataset


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def run(argv, **kwargs):
    return train(*parse_train_arguments(argv), **kwargs)


# Greedy decoding picks the top logit; a trained answer must win each token by this much, so that another torch
# CPU kernel (ATEN_CPU_CAPABILITY: default, avx2, avx512 round differently over the steps) cannot flip it.
MIN_TOP_TWO_GAP = 1.0


def answers(model, processor, rows) -> list[tuple[str, str, Image.Image, float]]:
    """(generated text, reference answer, image, smallest top-two logit gap over the generated tokens) for each
    row's first question, greedy."""
    out = []
    for row in rows:
        image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        messages = [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": question}],
            }
        ]
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        with torch.no_grad():
            generated = model.generate(
                **inputs, max_new_tokens=60, do_sample=False, output_logits=True, return_dict_in_generate=True
            )
        text = processor.decode(
            generated.sequences[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()
        top_two = torch.stack(generated.logits)[:, 0].float().topk(2, dim=-1).values  # (new tokens, 2)
        out.append((text, answer, image, float((top_two[:, 0] - top_two[:, 1]).min())))
    return out


def assert_exact_grounded_answers(model, processor, rows):
    for text, answer, image, gap in answers(model.eval(), processor, rows):
        # the model writes boxes in the padded square, exactly as trained
        assert text == processor.to_model_frame(answer, image.size)
        # ... and not by a hair: every token of the answer wins by a margin
        assert gap >= MIN_TOP_TWO_GAP, f"{answer!r}: a token won by only {gap:.3f}"
        clean, entities = processor.post_process_generation(text, image_size=image.size, normalized=True)
        expected_clean, expected = parse_grounded_text(answer)
        assert clean == expected_clean
        assert [(e.phrase, e.span) for e in entities] == [(phrase, span) for phrase, span, _ in expected]
        for entity, (_, _, boxes) in zip(entities, expected, strict=True):
            # back in the original image; 3 decimals in the padded frame are up to 2x coarser there
            assert torch.allclose(
                torch.tensor(entity.boxes), torch.tensor(boxes, dtype=torch.float32), atol=2.5e-3
            )


def overfit(files, tmp_path, recipe, model_dir=None, **overrides):
    model_dir, data_dir = model_dir or files[0], files[1]
    settings = dict(max_steps=OVERFIT_STEPS, lr_scheduler_type="constant", save_steps=OVERFIT_STEPS // 2)
    return run(train_args(model_dir, data_dir, tmp_path / "run", recipe=recipe, **{**settings, **overrides}))


@pytest.mark.slow
@pytest.mark.overfit
def test_full_stage2_overfits_and_reloads_with_the_auto_classes(files, rows, tmp_path):
    result = overfit(files, tmp_path, "tiny-stage2-full", learning_rate=3e-3)
    assert result.global_step == OVERFIT_STEPS and result.counts["tokens_trained"] > 0
    assert result.loss_curve.is_file() and result.summary.startswith(f"svit train: {OVERFIT_STEPS} steps")
    model = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    processor = AutoProcessor.from_pretrained(result.output_dir)
    assert_exact_grounded_answers(model, processor, rows)


@pytest.mark.slow
@pytest.mark.overfit
def test_lora_overfits_loads_unmerged_and_after_svit_model_merge(files, rows, tmp_path):
    # from a checkpoint whose grounding-token rows are equal, as `svit model build` leaves them: LoRA alone
    # could never make the model write `<st>` rather than `<ed>`; their trainable rows must learn it
    base = write_tiny_with_new_grounding_rows(tmp_path / "base", files[0])
    result = overfit(
        files,
        tmp_path,
        "tiny-stage2-lora",
        model_dir=base,
        learning_rate=1e-2,
        projector_lr=3e-3,
        lora_r=16,
        lora_alpha=32,
    )
    run_dir = result.output_dir
    # every checkpoint holds adapter + projector + processor; no vision-tower module carries an adapter
    for folder in [run_dir, *sorted(run_dir.glob("checkpoint-*"))]:
        keys = load_file(folder / "adapter_model.safetensors").keys()
        assert any("multi_modal_projector" in key for key in keys), folder
        assert not any("vision_tower" in key for key in keys), folder
        assert (folder / "processor_config.json").is_file() and (folder / "chat_template.jinja").is_file()
    assert len(list(run_dir.glob("checkpoint-*"))) == 2

    unmerged = AutoModelForImageTextToText.from_pretrained(run_dir)  # transformers' peft integration
    assert_exact_grounded_answers(unmerged, AutoProcessor.from_pretrained(run_dir), rows)

    merged_dir = tmp_path / "merged"
    assert main(["model", "merge", "--input", str(run_dir), "--output", str(merged_dir)]) == 0
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert_exact_grounded_answers(merged, AutoProcessor.from_pretrained(merged_dir), rows)


class StopAt(TrainerCallback):
    """Stop after `step` (a crash, as far as the run is concerned: the checkpoint at `step` is what is left)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize(
    ("recipe", "weights"),
    [("tiny-stage2-full", "model.safetensors"), ("tiny-stage2-lora", "adapter_model.safetensors")],
)
def test_resume_from_a_mid_run_checkpoint_gives_the_same_weights(files, tmp_path, recipe, weights):
    model_dir, data_dir = files
    # 4 samples in batches of 2: step 3 is in the middle of an epoch, so resuming skips a batch of it
    settings = dict(max_steps=8, save_steps=3, per_device_train_batch_size=2, learning_rate=1e-2)
    whole = run(train_args(model_dir, data_dir, tmp_path / "whole", recipe=recipe, **settings))
    broken = tmp_path / "broken"
    run(train_args(model_dir, data_dir, broken, recipe=recipe, **settings), callbacks=[StopAt(3)])
    assert sorted(p.name for p in broken.glob("checkpoint-*")) == ["checkpoint-3"]
    resumed = run(
        train_args(model_dir, data_dir, broken, recipe=recipe, resume_from_checkpoint="last", **settings)
    )
    assert resumed.global_step == whole.global_step == 8
    expected, got = load_file(whole.output_dir / weights), load_file(resumed.output_dir / weights)
    assert expected.keys() == got.keys() and any("multi_modal_projector" in key for key in got)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=1e-6, rtol=1e-5, msg=key)
    # the counts carried across the resume
    assert resumed.counts["tokens_trained"] == whole.counts["tokens_trained"]


def test_stage1_output_is_stage2_input_and_only_the_projector_changes_in_stage1(files, tmp_path):
    model_dir, data_dir = files
    stage1 = run(
        train_args(
            model_dir, data_dir, tmp_path / "stage1", recipe="tiny-stage1", max_steps=4, learning_rate=1e-2
        )
    )
    before = load_file(model_dir / "model.safetensors")
    after = load_file(stage1.output_dir / "model.safetensors")
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed and all(key.startswith("model.multi_modal_projector.") for key in changed)
    assert {key for key in before if key.startswith("model.multi_modal_projector.")} == changed

    stage2 = run(
        train_args(stage1.output_dir, data_dir, tmp_path / "stage2", recipe="tiny-stage2-full", max_steps=3)
    )
    final = load_file(stage2.output_dir / "model.safetensors")
    changed2 = {key for key in after if not torch.equal(after[key], final[key])}
    assert any(".language_model." in key for key in changed2) and any("lm_head" in key for key in changed2)
    assert not any("vision_tower" in key for key in changed2)
    assert json.loads((stage2.output_dir / "config.json").read_text())["model_type"] == "svit_llava"


TOKEN = "hf_train_" + "t" * 28
REPO = "my-org/tiny-svit-llava"


def test_push_to_the_loopback_hub_checkpoints_model_and_card(files, tmp_path, monkeypatch):
    import transformers.utils.hub
    from huggingface_hub import HfApi, constants

    model_dir, data_dir = files
    with fake_hub(token=TOKEN) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(transformers.utils.hub, "_hf_api", HfApi(endpoint=hub.endpoint))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        argv = train_args(
            model_dir,
            data_dir,
            tmp_path / "run",
            recipe="tiny-stage2-lora",
            max_steps=4,
            save_steps=2,
            push_to_hub="true",
            hub_model_id=REPO,
            hub_strategy="checkpoint",
            hub_always_push="true",
            hub_token=TOKEN,
        )
        result = train_with_card(*parse_train_arguments(argv))
        files_pushed = hub.files(REPO, "model")
        commits = [c.summary for c in hub.repo(REPO, "model").commits]

    # checkpoints during training, then the final model
    assert "Training in progress, step 2" in commits and "Training in progress, step 4" in commits
    assert "Training in progress, step 2, checkpoint" in commits and commits[-1] == "End of training"
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "processor_config.json",
        "loss_curve.png",
    } <= set(files_pushed)
    assert "last-checkpoint/adapter_model.safetensors" in files_pushed
    assert "last-checkpoint/optimizer.pt" in files_pushed
    # the card parses back with its metadata as written
    (tmp_path / "README.md").write_bytes(files_pushed["README.md"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.library_name == "transformers"
    assert card.data.license == "cc-by-4.0" and "svit" in card.data.tags and "lora" in card.data.tags
    assert "![training loss](loss_curve.png)" in card.text and "post_process_generation" in card.text
    assert "| `learning_rate` |" in card.text and f"steps: {result.global_step}" in card.text
    assert f'from_pretrained("{REPO}"' in card.text
    # the token went nowhere but the Authorization header
    assert not any(TOKEN.encode() in data for data in files_pushed.values())
    assert not any(TOKEN.encode() in p.read_bytes() for p in result.output_dir.rglob("*") if p.is_file())
    # nothing else was asked of the Hub but an informational lookup huggingface_hub makes
    assert all(call == "GET /api/agent-harnesses" for call in hub.unhandled), hub.unhandled


class CardAtSave(TrainerCallback):
    """Reads the run's card right after each checkpoint save (after svit's card callback, which comes first)."""

    def __init__(self):
        self.cards = []

    def on_save(self, args, state, control, **kwargs):
        card = Path(args.output_dir) / "README.md"
        self.cards.append((state.global_step, card.read_text() if card.is_file() else None))


def test_the_card_is_written_at_every_checkpoint_and_at_the_end(files, tmp_path):
    model_dir, data_dir = files
    seen = CardAtSave()
    argv = train_args(model_dir, data_dir, tmp_path / "run", max_steps=3, save_steps=2)
    result = train_with_card(*parse_train_arguments(argv), callbacks=[seen])
    assert [step for step, _ in seen.cards] == [2, 3]  # every save_steps, and at the last step
    assert seen.cards[0][1] is not None and "steps: 2," in seen.cards[0][1]  # the facts of step 2
    card = ModelCard.load(result.output_dir / "README.md")
    assert f"steps: {result.global_step}," in card.text and "samples dropped" in card.text
    facts = json.loads((result.output_dir / "svit_run.json").read_text())
    assert facts["summary"] == result.summary and facts["global_step"] == 3


@pytest.mark.slow
def test_two_processes_train_every_sample_once_and_report_once(files, tmp_path):
    """DDP on CPU (gloo) under torchrun, what `accelerate launch` runs on GPUs: the grouped sampler shards
    the data, the counts are summed over processes, the summary is printed once."""
    model_dir, data_dir = files
    settings = dict(max_steps=4, save_steps=2, per_device_train_batch_size=1)
    argv = train_args(model_dir, data_dir, tmp_path / "ddp", recipe="tiny-stage2-lora", **settings)
    done = run_svit_on_two_processes(["train", *argv])
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith("svit train:")]
    assert len(summaries) == 1 and summaries[0].startswith("svit train: 4 steps")
    # the same 8 samples (2 epochs of 4) as one process with batches of 2
    single = run(
        train_args(
            model_dir,
            data_dir,
            tmp_path / "single",
            recipe="tiny-stage2-lora",
            **{**settings, "per_device_train_batch_size": 2},
        )
    )
    assert summaries[0] == single.summary
    assert sorted(p.name for p in (tmp_path / "ddp").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
