"""The settings of the 7B/13B recipes that a GPU run uses, run for a few steps on CPU (issue 20): bf16 (CPU autocast,
and bf16 weights), activation checkpointing with LoRA (the pitfall: frozen inputs that need no gradient leave the
adapters untrained under checkpointing), stage 1 (projector only) with checkpointing. Each asserts what would go
wrong silently: the loss falls, and the parameters meant to train moved (gradients reached them)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, TrainerCallback

from svit_cli.jobs.train import parse_train_arguments
from svit_model.training.train import train
from tests.train_fixtures import one_thread, train_args


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


class CheckpointingSeen(TrainerCallback):
    """Whether the model the trainer trains has activation checkpointing on (what the recipe asked)."""

    on = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.on = bool(base.is_activation_checkpointing)


def _run(model, data, out, recipe, callbacks=(), **overrides):
    argv = train_args(
        model, data, out, recipe=recipe, max_steps=8, logging_steps=1, save_steps=8, **overrides
    )
    return train(*parse_train_arguments(argv), callbacks=list(callbacks))


def _loss_history(out) -> list[float]:
    import json

    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_lora_with_activation_checkpointing_trains_the_adapters(
    tiny_grounded_checkpoint, grounded_dataset, tmp_path
):
    out, seen = tmp_path / "lora-ckpt", CheckpointingSeen()
    result = _run(
        tiny_grounded_checkpoint, grounded_dataset, out, "tiny-stage2-lora", callbacks=[seen],
        activation_checkpointing="true",
    )  # fmt: skip
    assert seen.on
    losses = _loss_history(out)
    assert result.global_step == 8 and losses[-1] < losses[0]
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [name for name in adapter if "lora_B" in name]
    assert lora_b and all(
        adapter[name].abs().sum() > 0 for name in lora_b
    )  # B starts at zero: gradients came


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="no oneDNN: torch has no bf16 CPU kernels here"
)
def test_bf16_autocast_and_bf16_weights_train(tiny_grounded_checkpoint, grounded_dataset, tmp_path):
    out = tmp_path / "bf16"
    result = _run(
        tiny_grounded_checkpoint, grounded_dataset, out, "tiny-stage2-full", bf16="true", dtype="bfloat16",
        activation_checkpointing="true",
    )  # fmt: skip
    losses = _loss_history(out)
    assert result.global_step == 8 and all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    trained = AutoModelForImageTextToText.from_pretrained(out)
    assert trained.dtype == torch.bfloat16
    before = AutoModelForImageTextToText.from_pretrained(tiny_grounded_checkpoint)
    moved = [
        name
        for name, param in trained.named_parameters()
        if "language_model" in name
        and not param.float().equal(before.get_parameter(name).to(torch.bfloat16).float())
    ]
    assert moved


@pytest.mark.slow
def test_stage1_with_activation_checkpointing_trains_only_the_projector(
    tiny_grounded_checkpoint, grounded_dataset, tmp_path
):
    out = tmp_path / "stage1"
    _run(
        tiny_grounded_checkpoint,
        grounded_dataset,
        out,
        "tiny-stage1",
        activation_checkpointing="true",
    )
    trained = AutoModelForImageTextToText.from_pretrained(out)
    before = AutoModelForImageTextToText.from_pretrained(tiny_grounded_checkpoint)
    moved = {
        name.split(".")[1]
        for name, p in trained.named_parameters()
        if not p.equal(before.get_parameter(name))
    }
    assert moved == {"multi_modal_projector"}
