"""`svit train --plan` (svit_model/training/plan.py): LLaVA-1.5-7B/13B shaped on the meta device from configs,
the recipe applied as training applies it, memory by DeepSpeed's estimators, time from FLOPs. Pinned against the
published parameter counts, a hand-computed LoRA count, DeepSpeed's own functions and hand-computed memory."""

from __future__ import annotations

import pytest
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
from transformers import LlamaConfig

from svit_cli.jobs.train import plan_training_run
from svit_model.training.plan import (
    ADDED_TOKENS,
    MODEL_SHAPES,
    PlanSettings,
    activation_bytes,
    flops_per_token,
    meta_model,
    model_state_bytes,
)
from tests.cli_runs import assert_one_clean_line_each, run_svit
from tests.train_fixtures import train_args


@pytest.mark.parametrize("name", sorted(MODEL_SHAPES))
def test_shapes_have_the_published_parameter_counts(name):
    shape = MODEL_SHAPES[name]
    config = shape.config()
    params = sum(p.numel() for p in meta_model(config).parameters())
    added = ADDED_TOKENS * config.text_config.hidden_size * 2  # input and output embedding rows
    assert params - added == shape.published_parameters  # liuhaotian/llava-v1.5-7b: 7,062,902,784; 13b: ...


def test_lora_r128_trains_what_llavas_lora_trains():
    plan = plan_training_run(["--config", "svit-v1.5-7b-lora"], PlanSettings())
    # LLaVA-1.5's LoRA: r 128 on every linear layer of the 32 Vicuna-7B layers: q, k, v, o (4096 -> 4096),
    # gate, up (4096 -> 11008), down (11008 -> 4096); r (in + out) parameters each
    per_layer = 128 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert plan.parameters.trained["LoRA adapters"] == 32 * per_layer == 319_815_680
    assert plan.parameters.trained["projector"] == 1024 * 4096 + 4096 + 4096 * 4096 + 4096 == 20_979_712
    assert (
        plan.parameters.trained["<st>/<ed> rows"] == 2 * 2 * 4096
    )  # two rows in the input and output embeddings
    assert plan.parameters.trained["language model"] == 0 and plan.parameters.trained["vision tower"] == 0


def test_model_states_are_deepspeeds_estimates_when_everything_trains():
    params, largest, gpus = 13_350_870_016, 163_855_360, 8
    zero3 = estimate_zero3_model_states_mem_needs(params, largest, gpus, 1, cpu_offload=False)[1]
    zero3_offload = estimate_zero3_model_states_mem_needs(params, largest, gpus, 1, cpu_offload=True)[1]
    zero2 = estimate_zero2_model_states_mem_needs(params, gpus, 1, cpu_offload=False)[1]
    assert model_state_bytes(params, params, largest, "zero3", gpus) == zero3
    assert model_state_bytes(params, params, largest, "zero3_offload", gpus) == zero3_offload
    assert model_state_bytes(params, params, largest, "zero2", gpus) == zero2
    # frozen parameters hold their 16-bit weight only: 100 frozen + 20 trained on 4 GPUs under ZeRO-3
    assert model_state_bytes(120, 20, 10, "zero3", 4) == 4 * 10 + (2 * 100 + 18 * 20) // 4 == 180


def test_activation_memory_and_flops_by_hand():
    class Config:  # what activation_bytes reads: 3 layers, hidden 8, vocabulary 10
        text_config = LlamaConfig(hidden_size=8, num_hidden_layers=3, num_attention_heads=2, vocab_size=10)

    s, b = 4, 2
    logits = 6 * s * b * 10
    assert activation_bytes(Config, b, s, checkpointing=False) == 3 * 34 * s * b * 8 + logits == 7008
    assert (
        activation_bytes(Config, b, s, checkpointing=True)
        == 3 * 2 * s * b * 8 + 34 * s * b * 8 + logits
        == 3040
    )
    assert flops_per_token(1000, "full", True) == 8000 and flops_per_token(1000, "frozen", False) == 4000


def test_the_13b_plan_fits_on_a100_80gb_under_zero3_and_not_on_a10g(tmp_path):
    done = run_svit(["train", "--config", "svit-v1.5-13b-full", "--plan"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "total             13,350,870,016" in done.stdout
        and "published release: 13,350,839,296" in done.stdout
    )
    assert "zero3          model states    28.0" in done.stdout and "fits <- this run" in done.stdout
    small = run_svit(["train", "--config", "svit-v1.5-13b-full", "--plan", "--gpu", "A10G"])
    assert small.returncode == 2 and "zero3" in small.stdout  # the plan is printed, then refused
    last = small.stderr.strip().splitlines()[-1]
    assert last.startswith("svit train: error: --plan: svit-v1.5-13b-full needs ~") and "A10G" in last


def test_a_plan_counts_the_data_when_it_is_here(tiny_grounded_checkpoint, grounded_dataset, tmp_path):
    argv = train_args(tiny_grounded_checkpoint, grounded_dataset, tmp_path / "out", max_length=700)
    plan = plan_training_run(argv, PlanSettings(gpus=1))
    import datasets

    rows = datasets.load_dataset(str(grounded_dataset), split="train").num_rows
    assert plan.data.samples == rows and "lengths counted" in plan.data.source
    assert plan.steps_per_epoch == -(-rows // 4)  # the recipe's batch 4, one GPU
    assert plan.parameters.trained["language model"] > 0 and plan.fits


def test_bad_plan_input_is_one_clean_line_each(tmp_path):
    assert_one_clean_line_each([
        ("unknown GPU", ["train", "--config", "svit-v1.5-13b-full", "--plan", "--gpu", "B300"],
         "--gpu B300: unknown GPU; known: A100-40GB"),
        ("a model that cannot be shaped", ["train", "--config", "tiny-stage2-full", "--plan"],
         "--plan: cannot shape the model: --model_name_or_path out/train/tiny-stage1 has no config.json here"),
        ("no such dataset", ["train", "--config", "svit-v1.5-7b-lora", "--plan", "--dataset_name",
         str(tmp_path / "nope.json"), "--dataset_config", "default"], "nope.json: no such file or folder"),
        ("mfu out of range", ["train", "--config", "svit-v1.5-7b-lora", "--plan", "--mfu", "0"],
         "--mfu must be above 0 and at most 1"),
    ])  # fmt: skip


def test_bench_gpu_step_runs_tiny_on_cpu_and_prints_the_plan_beside(capsys, monkeypatch):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_step.py"
    for mode in ("full", "lora"):
        monkeypatch.setattr("sys.argv", [str(script), "--tiny", "--mode", mode])
        runpy.run_path(str(script), run_name="__main__")
        out = capsys.readouterr().out
        assert f"tiny {mode}:" in out and "ms/step" in out and "plan: " in out and "at 40% MFU" in out
