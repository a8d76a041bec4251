"""The shipped accelerate and DeepSpeed configs, validated by accelerate's and DeepSpeed's own config classes with
the trainer's `auto` values resolved; ZeRO-3 runs of `svit train` on CPU; LoRA under ZeRO-2 (the projector a
module to save, the `<st>`/`<ed>` rows trainable) saved, resumed and merged equal to the same run without
DeepSpeed, on one process and on two; LoRA under ZeRO-3 refused up front."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from deepspeed.runtime.config import DeepSpeedConfig
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

import svit_model  # noqa: F401  (registers svit_llava)
from svit_cli.jobs.train import parse_train_arguments
from svit_model.tiny import build_tiny_svit_llava
from svit_model.training.accelerate import (
    DEEPSPEED_DIR,
    accelerate_config,
    accelerate_config_text,
    accelerate_configs,
    deepspeed_config_path,
)
from svit_model.training.checkpoint import merge_lora_run
from tests.train_fixtures import run_svit_on_two_processes, train_args

EXPECTED = {
    "single_gpu": ("NO", None),
    "ddp": ("MULTI_GPU", None),
    "zero2": ("DEEPSPEED", 2),
    "zero3": ("DEEPSPEED", 3),
    "zero3_offload": ("DEEPSPEED", 3),
}


def autos(value, path="") -> list[str]:
    """Paths of every `auto` left in a DeepSpeed config."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in autos(item, f"{path}.{key}")]
    return [path] if value == "auto" else []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_loads_with_accelerate(name, tmp_path):
    assert set(accelerate_configs()) == set(EXPECTED)
    path = tmp_path / f"{name}.yaml"
    path.write_text(accelerate_config_text(name))  # what `svit train --accelerate-config NAME` prints
    config = load_config_from_file(str(path))
    distributed, stage = EXPECTED[name]
    assert str(config.distributed_type).split(".")[-1] == distributed
    if stage is not None:
        ds_file = config.deepspeed_config["deepspeed_config_file"]
        assert (
            os.path.isabs(ds_file)
            and json.loads(Path(ds_file).read_text())["zero_optimization"]["stage"] == stage
        )
        assert accelerate_config(name)["deepspeed_config"]["deepspeed_config_file"] == ds_file


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
@pytest.mark.parametrize("recipe", ["svit-v1.5-7b-full", "svit-v1.5-13b-lora", "tiny-stage2-full"])
def test_deepspeed_config_resolves_every_auto_and_validates(name, recipe):
    _, training, _ = parse_train_arguments(["--config", recipe, "--use_cpu", "true"])
    model, _ = build_tiny_svit_llava(seed=0)
    hf_config = HfTrainerDeepSpeedConfig(str(deepspeed_config_path(name)))
    hf_config.trainer_config_process(training)
    hf_config.trainer_config_finalize(training, model, num_training_steps=100)
    assert autos(hf_config.config) == []
    resolved = DeepSpeedConfig(hf_config.config)  # DeepSpeed's own checks (world size 1 here)
    assert (
        resolved.zero_optimization_stage
        == json.loads(deepspeed_config_path(name).read_text())["zero_optimization"]["stage"]
    )
    assert resolved.train_micro_batch_size_per_gpu == training.per_device_train_batch_size
    assert resolved.gradient_accumulation_steps == training.gradient_accumulation_steps
    assert resolved.bfloat16_config.enabled == training.bf16
    assert resolved.gradient_clipping == training.max_grad_norm
    assert "optimizer" not in hf_config.config  # the trainer's AdamW keeps the projector's parameter group
    assert sorted(p.stem for p in DEEPSPEED_DIR.glob("*.json")) == ["zero2", "zero3", "zero3_offload"]


# `svit train ARGV` where DeepSpeed's comm does not first compile its shared-memory all-reduce op for CPU (ninja
# and g++, about a minute on a fresh machine): that op only serves an all-reduce between processes of one node,
# which one process never does. The ZeRO-3 engine, its partitioning and checkpoints are DeepSpeed's own.
TRAIN_WITHOUT_SHM_OP = (
    "import importlib, sys\n"
    "importlib.import_module('deepspeed.comm.torch').build_shm_op = lambda: None\n"
    "from svit_cli.main import main\n"
    "sys.exit(main(['train', *sys.argv[1:]]))\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _zero_env() -> dict:
    return {
        **os.environ,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
    }


def _train(argv: list[str], processes: int, tmp_path: Path) -> subprocess.CompletedProcess:
    """`svit train ARGV` in a process of its own (DeepSpeed's shared-memory op left unbuilt), or on two under
    torchrun. A process of its own: the process group lives as long as it does (and no fork: accelerate raises
    the thread count on CPU, which hangs a fork of a process whose OpenMP pool ran)."""
    if processes == 1:
        done = subprocess.run(
            [sys.executable, "-c", TRAIN_WITHOUT_SHM_OP, *argv],
            env=_zero_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
    else:
        script = tmp_path / "train_without_shm_op.py"
        script.write_text(TRAIN_WITHOUT_SHM_OP)
        done = run_svit_on_two_processes([str(script), *argv], script=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_single_process_zero3_run_on_cpu(tiny_grounded_checkpoint, grounded_dataset, tmp_path):
    model_dir, data_dir = tiny_grounded_checkpoint, grounded_dataset
    output = tmp_path / "out"
    argv = train_args(
        model_dir, data_dir, output, max_steps=3, save_steps=2, deepspeed=deepspeed_config_path("zero3")
    )
    done = _train(argv, 1, tmp_path)
    assert "svit train: 3 steps" in done.stdout
    # a ZeRO-3 checkpoint (partitioned states) to resume from, and a gathered model that loads
    assert (output / "checkpoint-2" / "latest").is_file()
    assert json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    model = AutoModelForImageTextToText.from_pretrained(output)
    reference = AutoModelForImageTextToText.from_pretrained(model_dir)
    assert {n: p.shape for n, p in model.named_parameters()} == {
        n: p.shape for n, p in reference.named_parameters()
    }
    assert any(
        not p.equal(reference.get_parameter(n)) for n, p in model.named_parameters() if "language_model" in n
    )


def _merged_weights(run: Path, tmp_path: Path) -> dict:
    merged = merge_lora_run(run, tmp_path / f"{run.name}-merged")
    return {k: v for path in sorted(Path(merged).glob("*.safetensors")) for k, v in load_file(path).items()}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_lora_under_zero2_and_zero3_saves_resumes_and_merges_like_the_run_without_deepspeed(
    tiny_grounded_checkpoint, grounded_dataset, tmp_path, processes
):
    """LoRA with the projector a module to save and the <st>/<ed> rows trainable: stopped at its checkpoint,
    resumed, saved and merged, each ZeRO stage gives the merged weights of the same run without DeepSpeed."""

    def args(output: Path, steps: int, **extra) -> list[str]:
        # constant learning rate: a run stopped at step 2 and resumed to 3 follows the 3-step run exactly
        return train_args(
            tiny_grounded_checkpoint, grounded_dataset, output, recipe="tiny-stage2-lora", max_steps=steps,
            save_steps=2, lr_scheduler_type="constant", warmup_steps=0, per_device_train_batch_size=2, **extra,
        )  # fmt: skip

    plain = tmp_path / "plain"
    _train(args(plain, 3), processes, tmp_path)
    expected = _merged_weights(plain, tmp_path)
    base = AutoModelForImageTextToText.from_pretrained(tiny_grounded_checkpoint).state_dict()
    changed = [k for k in expected if k in base and not expected[k].equal(base[k])]
    assert any("lm_head" in k for k in changed) and any("multi_modal_projector" in k for k in changed)
    for stage in ("zero2", "zero3"):
        run, zero = tmp_path / stage, {"deepspeed": deepspeed_config_path(stage)}
        _train(args(run, 2, **zero), processes, tmp_path)  # stops at its checkpoint-2
        assert (run / "checkpoint-2" / "adapter_model.safetensors").is_file()
        _train(args(run, 3, resume_from_checkpoint="last", **zero), processes, tmp_path)
        assert json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
        adapter = load_file(run / "adapter_model.safetensors")
        assert any("multi_modal_projector" in k for k in adapter) and any(
            "trainable_tokens" in k for k in adapter
        )
        got = _merged_weights(run, tmp_path)
        assert got.keys() == expected.keys()
        for key in expected:
            assert torch.allclose(expected[key], got[key], rtol=1e-4, atol=1e-6), f"{stage}: {key}"


def test_peft_reads_partitioned_rows_without_cuda(monkeypatch):
    """zero3.py, gap 1: the rows of a (here whole) weight, read on its device, one process."""
    from svit_model.training import zero3

    weight = torch.arange(12.0).reshape(4, 3)
    rows = zero3.rows_gathered_on_the_weights_device(None, weight, [1, 3], 3)
    assert rows.equal(weight[[1, 3]]) and rows.device == weight.device
    assert rows.data_ptr() != weight.data_ptr()  # a copy: the partition may go away after the gather
