"""Every argument `svit train` parses acts or is refused.

A walk over every field of the three parsed dataclasses (`SvitScriptArguments`, `SvitSFTConfig` (TRL's
`SFTConfig`), TRL's `ModelConfig`): each is either in `ACTING` below (where it acts: svit's own code, or
transformers' `Trainer` / TRL's `SFTTrainer` in svit's setup) or refused (`REFUSED_ARGUMENTS`) by one line naming
it, before any data or model loads. A field in neither fails the test: an upgrade of TRL or transformers that adds
a field waits until someone says which it is. The flags svit used to ignore silently show that they now act.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import SequentialSampler

from svit_cli.jobs.train import parse_train_arguments
from svit_cli.main import main
from svit_dataset.errors import SvitInputError
from svit_model.training import train as train_module
from svit_model.training.arguments import (
    ACTS_ONLY_WITH,
    REFUSED_ARGUMENTS,
    check_refused_arguments,
    field_defaults,
)
from svit_model.training.collator import IGNORE_INDEX, SvitCollator
from svit_model.training.sampler import ModalityLengthGroupedSampler
from svit_model.training.train import train
from svit_model.training.trainer import SvitTrainer
from tests.train_fixtures import train_args

_OPTIMIZER = "Trainer: the optimizer (create_optimizer, get_optimizer_cls_and_kwargs)"
_SCHEDULER = "Trainer: the learning-rate scheduler"
_LOOP = "Trainer: the training loop"
_LOGGING = "Trainer: logging"
_SAVING = "Trainer: checkpoint saving (_save_checkpoint, save_model)"
_PUSH = "Trainer: checkpoint pushes (_push_from_checkpoint); ours: svit_cli.jobs.train.push_run"
_DATA_LOADER = "Trainer: the data loader (get_train_dataloader)"
_DISTRIBUTED = "Trainer: accelerate's distributed setup"
_LORA = "ours: svit_model.training.model.lora_config"
_QUANTIZATION = "ours: svit_model.training.model.quantization_config (TRL's get_quantization_config)"

# Where each acting argument acts. Reviewed by hand: a field moves here only once someone checked that it is read.
ACTING: dict[str, str] = {
    # SvitScriptArguments (TRL's ScriptArguments and ours)
    "dataset_name": "ours: data.load_training_data",
    "dataset_config": "ours: data.load_training_data",
    "dataset_train_split": "ours: data.load_training_data",
    "stage": "ours: train.get_stage (template, what trains)",
    "image_folder": "ours: data.check_image_files, data.SampleLoader",
    "projector_lr": "ours: SvitTrainer.create_optimizer",
    "group_by_modality_length": "ours: arguments.modality_grouping, SvitTrainer._get_train_sampler",
    "train_vision_tower": "ours: model.trained_prefixes, model.lora_config",
    "model_shape": "ours: plan.shape_config (svit train --plan)",
    "drop_missing_images": "ours: data.check_image_files",
    "overwrite_output_dir": "ours: train.resolve_resume, train.clear_output_dir",
    # SFTConfig: transformers' TrainingArguments
    "output_dir": "ours: train (run folder, resume); Trainer: checkpoints",
    "per_device_train_batch_size": "Trainer: batch size; ours: the grouped sampler's steps",
    "num_train_epochs": "Trainer: the training loop; ours: resume.finished_step",
    "max_steps": "Trainer: the training loop; ours: resume.finished_step",
    "learning_rate": _OPTIMIZER,
    "lr_scheduler_type": _SCHEDULER,
    "lr_scheduler_kwargs": _SCHEDULER,
    "warmup_steps": _SCHEDULER,
    "optim": _OPTIMIZER,
    "optim_args": _OPTIMIZER,
    "weight_decay": _OPTIMIZER + "; ours: SvitTrainer.create_optimizer's groups",
    "adam_beta1": _OPTIMIZER,
    "adam_beta2": _OPTIMIZER,
    "adam_epsilon": _OPTIMIZER,
    "optim_target_modules": _OPTIMIZER + " (GaLore, APOLLO)",
    "gradient_accumulation_steps": _LOOP,
    "average_tokens_across_devices": "Trainer: the loss's token count over processes",
    "max_grad_norm": "Trainer: gradient clipping",
    "label_smoothing_factor": "SFTTrainer: compute_loss (label smoothing)",
    "bf16": "Trainer: mixed precision",
    "fp16": "Trainer: mixed precision",
    "tf32": "Trainer: torch's TF32 matmuls",
    "activation_checkpointing": "Trainer: activation checkpointing",
    "activation_checkpointing_kwargs": "Trainer: activation checkpointing",
    "gradient_checkpointing": "Trainer: activation checkpointing (the deprecated name)",
    "gradient_checkpointing_kwargs": "Trainer: activation checkpointing (the deprecated name)",
    "torch_compile": "Trainer: torch.compile",
    "torch_compile_backend": "Trainer: torch.compile",
    "torch_compile_mode": "Trainer: torch.compile",
    "use_liger_kernel": "SFTTrainer: Liger layer kernels",
    "liger_kernel_config": "SFTTrainer: Liger layer kernels",
    "use_cache": "Trainer: model.config.use_cache",
    "neftune_noise_alpha": "Trainer: NEFTune noise on the input embeddings",
    "torch_empty_cache_steps": _LOOP,
    "auto_find_batch_size": _LOOP + " (smaller batches after an out-of-memory error)",
    "logging_strategy": _LOGGING,
    "logging_steps": _LOGGING,
    "logging_first_step": _LOGGING,
    "log_on_each_node": _LOGGING,
    "logging_nan_inf_filter": _LOGGING,
    "include_num_input_tokens_seen": _LOGGING,
    "log_level": _LOGGING,
    "log_level_replica": _LOGGING,
    "disable_tqdm": "Trainer: progress bar",
    "report_to": "Trainer: reporting callbacks",
    "run_name": "Trainer: reporting callbacks",
    "project": "Trainer: reporting callbacks",
    "trackio_space_id": "Trainer: the trackio callback",
    "trackio_bucket_id": "Trainer: the trackio callback",
    "trackio_static_space_id": "Trainer: the trackio callback",
    "save_only_model": _SAVING,
    "save_strategy": _SAVING,
    "save_steps": _SAVING,
    "save_on_each_node": _SAVING,
    "save_total_limit": _SAVING + " (rotation)",
    "enable_jit_checkpoint": _SAVING + " (on SIGTERM)",
    "push_to_hub": _PUSH,
    "hub_token": "ours: train (handed to huggingface_hub as HF_TOKEN)",
    "hub_private_repo": "Trainer: init_hf_repo",
    "hub_model_id": _PUSH + "; ours: the run's facts and card",
    "hub_strategy": _PUSH,
    "hub_always_push": _PUSH,
    "hub_revision": _PUSH,
    "ignore_data_skip": "Trainer: resume (batches skipped)",
    "restore_callback_states_from_checkpoint": "Trainer: resume",
    "full_determinism": "Trainer: seeding",
    "seed": "Trainer: seeding; ours: the grouped sampler's order",
    "data_seed": "Trainer: accelerate's data seed; ours: the grouped sampler's order",
    "use_cpu": _DISTRIBUTED,
    "accelerator_config": _DISTRIBUTED,
    "parallelism_config": _DISTRIBUTED,
    "dataloader_drop_last": _DATA_LOADER,
    "dataloader_num_workers": _DATA_LOADER + " (the sample transform runs in its workers)",
    "dataloader_pin_memory": _DATA_LOADER,
    "dataloader_persistent_workers": _DATA_LOADER,
    "dataloader_prefetch_factor": _DATA_LOADER,
    "dataloader_multiprocessing_context": _DATA_LOADER,
    "dataloader_in_order": _DATA_LOADER,
    "remove_unused_columns": "Trainer: _remove_unused_columns (before the sample transform)",
    "ddp_find_unused_parameters": "Trainer: DDP (SFTTrainer sets it for VLMs when unset)",
    "ddp_bucket_cap_mb": "Trainer: DDP",
    "ddp_broadcast_buffers": "Trainer: DDP",
    "ddp_static_graph": "Trainer: DDP",
    "ddp_backend": _DISTRIBUTED,
    "ddp_timeout": _DISTRIBUTED,
    "fsdp": "Trainer: FSDP",
    "fsdp_config": "Trainer: FSDP",
    "deepspeed": "Trainer: DeepSpeed; ours: shipped configs by name (svit_cli.jobs.train)",
    "debug": "Trainer: debug options",
    "skip_memory_metrics": "Trainer: memory metrics",
    "resume_from_checkpoint": "ours: train.resolve_resume; Trainer: train(resume_from_checkpoint)",
    "local_rank": _DISTRIBUTED,
    # SFTConfig: TRL's own
    "trust_remote_code": "ours: model.load_processor, model.load_model",
    "eos_token": "SFTTrainer: the tokenizer's eos_token (the vicuna_v1 template renders it) and the model's",
    "max_length": "ours: SvitCollator (cut after the image, or the sample dropped)",
    "pad_to_multiple_of": "ours: SvitCollator (TRL's collator pads to it)",
    "assistant_only_loss": "ours: SvitCollator (TRL's assistant mask); SFTTrainer: its template checks",
    "loss_type": "SFTTrainer: compute_loss (nll, dft)",
    "activation_offloading": "SFTTrainer: activation offloading",
    # ModelConfig
    "model_name_or_path": "ours: model.load_processor, model.load_model",
    "model_revision": "ours: model.load_processor, model.load_model",
    "dtype": "ours: model.load_model",
    "attn_implementation": "ours: model.load_model",
    "use_peft": _LORA,
    "lora_r": _LORA,
    "lora_alpha": _LORA,
    "lora_dropout": _LORA,
    "lora_target_modules": _LORA,
    "lora_modules_to_save": _LORA,
    "lora_task_type": _LORA,
    "use_rslora": _LORA,
    "use_dora": _LORA,
    "load_in_8bit": _QUANTIZATION,
    "load_in_4bit": _QUANTIZATION,
    "bnb_4bit_quant_type": _QUANTIZATION,
    "use_bnb_nested_quant": _QUANTIZATION,
    "bnb_4bit_quant_storage": _QUANTIZATION,
}

# A value other than the default for each refused argument (with what it needs to parse), as flags.
REFUSED_EXAMPLES: dict[str, list[str]] = {
    "dataset_test_split": ["--dataset_test_split", "validation"],
    "dataset_streaming": ["--dataset_streaming", "true"],
    "ignore_bias_buffers": ["--ignore_bias_buffers", "true"],
    "load_best_model_at_end": ["--load_best_model_at_end", "true", "--eval_strategy", "steps"],
    "metric_for_best_model": ["--metric_for_best_model", "accuracy"],
    "greater_is_better": ["--greater_is_better", "true"],
    "eval_on_start": ["--eval_on_start", "true"],
    "eval_strategy": ["--eval_strategy", "steps"],
    "do_eval": ["--do_eval", "true"],
    "do_predict": ["--do_predict", "true"],
    "eval_steps": ["--eval_steps", "10"],
    "eval_delay": ["--eval_delay", "1"],
    "per_device_eval_batch_size": ["--per_device_eval_batch_size", "2"],
    "eval_accumulation_steps": ["--eval_accumulation_steps", "2"],
    "eval_do_concat_batches": ["--eval_do_concat_batches", "false"],
    "eval_use_gather_object": ["--eval_use_gather_object", "true"],
    "prediction_loss_only": ["--prediction_loss_only", "true"],
    "include_for_metrics": ["--include_for_metrics", "inputs"],
    "batch_eval_metrics": ["--batch_eval_metrics", "true"],
    "bf16_full_eval": ["--bf16_full_eval", "true"],
    "fp16_full_eval": ["--fp16_full_eval", "true"],
    "eval_packing": ["--eval_packing", "true"],
    "label_names": ["--label_names", "answer"],
    "do_train": ["--do_train", "true"],
    "train_sampling_strategy": ["--train_sampling_strategy", "group_by_length"],
    "length_column_name": ["--length_column_name", "n_tokens"],
    "model_init_kwargs": ["--model_init_kwargs", '{"dtype": "bfloat16"}'],
    "dataset_text_field": ["--dataset_text_field", "caption"],
    "dataset_kwargs": ["--dataset_kwargs", '{"skip_prepare_dataset": true}'],
    "dataset_num_proc": ["--dataset_num_proc", "4"],
    "shuffle_dataset": ["--shuffle_dataset", "true"],
    "packing": ["--packing", "true"],
    "packing_strategy": ["--packing_strategy", "wrapped"],
    "padding_free": ["--padding_free", "true"],
    "truncation_mode": ["--truncation_mode", "keep_end"],
    "completion_only_loss": ["--completion_only_loss", "true"],
    "chat_template_path": ["--chat_template_path", "template.jinja"],
    "pad_token": ["--pad_token", "<unk>"],
    "router_aux_loss_coef": ["--router_aux_loss_coef", "0.01"],
    "lora_target_parameters": ["--lora_target_parameters", "experts.gate_up_proj"],
}


def test_every_field_acts_or_is_refused():
    fields = set(field_defaults())
    refused, acting = set(REFUSED_ARGUMENTS), set(ACTING)
    assert not fields - refused - acting, (
        f"classify these arguments (acting or refused): {fields - refused - acting}"
    )
    assert not refused & acting, refused & acting
    assert acting <= fields and refused <= fields, (acting | refused) - fields  # no stale entry
    assert set(ACTS_ONLY_WITH) <= acting and set(ACTS_ONLY_WITH.values()) <= acting
    assert set(REFUSED_EXAMPLES) == refused


@pytest.mark.parametrize("name", sorted(REFUSED_ARGUMENTS))
def test_a_refused_argument_is_one_line_naming_it(name):
    parsed = parse_train_arguments(["--config", "tiny-stage2-full", *REFUSED_EXAMPLES[name]])
    with pytest.raises(SvitInputError) as caught:
        check_refused_arguments(*parsed)
    message = str(caught.value)
    assert message.startswith(f"--{name} ") and "\n" not in message, message
    assert message.split(": ", 1)[1], message  # and why


def test_the_defaults_and_every_shipped_recipe_are_accepted():
    from svit_model.training.training_recipes import list_training_recipes

    check_refused_arguments(*parse_train_arguments(["--use_cpu", "true"]))  # every default
    for name in list_training_recipes():  # the GPU recipes' bf16 needs a GPU, or `use_cpu` on this machine
        check_refused_arguments(*parse_train_arguments(["--config", name, "--use_cpu", "true"]))
    # values that mean what the default means are no refusal
    accepted = ["--completion_only_loss", "false", "--train_sampling_strategy", "sequential"]
    check_refused_arguments(*parse_train_arguments(["--config", "tiny-stage2-full", *accepted]))


@pytest.mark.parametrize(
    ("recipe", "flags", "needed"),
    [
        ("tiny-stage2-full", ["--lora_r", "8"], "use_peft"),
        ("tiny-stage2-full", ["--use_dora", "true"], "use_peft"),
        ("tiny-stage2-full", ["--bnb_4bit_quant_type", "fp4"], "load_in_4bit"),
        ("tiny-stage2-full", ["--hub_strategy", "checkpoint"], "push_to_hub"),
    ],
)
def test_an_argument_that_acts_only_beside_another_is_refused_alone(recipe, flags, needed):
    with pytest.raises(SvitInputError, match=rf"^--{flags[0][2:]} .*: acts only with --{needed} true"):
        check_refused_arguments(*parse_train_arguments(["--config", recipe, *flags]))
    check_refused_arguments(*parse_train_arguments(["--config", "tiny-stage2-lora", "--lora_r", "4"]))


def test_refusals_come_before_any_work_and_end_the_command_in_one_line(tmp_path, capsys, no_model_load):
    # nothing on disk: the refusal is what stops the run, not the missing model or data
    argv = train_args(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "out", packing="true")
    with pytest.raises(SvitInputError, match=r"^--packing True: TRL does not pack image rows"):
        train(*parse_train_arguments(argv))
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svit train: error: --packing True: "), err
    assert not (tmp_path / "out").exists()


def test_the_users_sampler_and_modality_grouping_are_one_or_the_other(tmp_path):
    argv = ["--config", "tiny-stage2-full", "--group_by_modality_length", "true"]
    with pytest.raises(
        SvitInputError, match="--train_sampling_strategy sequential and --group_by_modality_length"
    ):
        train(*parse_train_arguments([*argv, "--train_sampling_strategy", "sequential"]))


# --- the arguments svit used to ignore act ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tiny_grounded_checkpoint, grounded_dataset):
    return tiny_grounded_checkpoint, grounded_dataset


class _Built(Exception):
    """Raised in place of building the trainer: what `train` would have built it with is `kwargs`."""

    def __init__(self, kwargs):
        self.kwargs = kwargs


def trainer_arguments(files, tmp_path, monkeypatch, **flags) -> dict:
    """What `train` builds its `SvitTrainer` with for `flags` (the tiny model loads; nothing trains)."""

    def capture(**kwargs):
        raise _Built(kwargs)

    monkeypatch.setattr(train_module, "SvitTrainer", capture)
    model_dir, data_dir = files
    with pytest.raises(_Built) as built:
        train(*parse_train_arguments(train_args(model_dir, data_dir, tmp_path / "out", **flags)))
    return built.value.kwargs


def first_batch(kwargs) -> dict:
    samples = kwargs["train_dataset"]
    return kwargs["data_collator"]([samples[i] for i in range(len(samples))])


def test_pad_to_multiple_of_pads_the_batches(files, tmp_path, monkeypatch):
    plain = first_batch(trainer_arguments(files, tmp_path, monkeypatch))
    padded = first_batch(trainer_arguments(files, tmp_path, monkeypatch, pad_to_multiple_of=64))
    assert plain["input_ids"].shape[1] % 64 != 0 and padded["input_ids"].shape[1] % 64 == 0
    # the padding trains nothing: the same tokens are trained
    assert (plain["labels"] != IGNORE_INDEX).sum() == (padded["labels"] != IGNORE_INDEX).sum()


def test_assistant_only_loss_false_trains_the_whole_conversation_but_the_image(files, tmp_path, monkeypatch):
    kwargs = trainer_arguments(files, tmp_path, monkeypatch)
    assert isinstance(kwargs["data_collator"], SvitCollator) and kwargs["args"].assistant_only_loss
    assistant = first_batch(kwargs)
    everything = first_batch(trainer_arguments(files, tmp_path, monkeypatch, assistant_only_loss="false"))
    processor = kwargs["processing_class"]
    trained = everything["labels"] != IGNORE_INDEX
    assert trained.sum() > (assistant["labels"] != IGNORE_INDEX).sum()
    first_row = processor.tokenizer.decode(everything["input_ids"][0][trained[0]])
    assert "Where is the red ball?" in first_row  # the user's question trains too
    assert not (everything["input_ids"][trained] == processor.image_token_id).any()  # never the image
    assert not (assistant["input_ids"][assistant["labels"] != IGNORE_INDEX] == processor.image_token_id).any()


def test_train_sampling_strategy_and_data_seed_reach_the_sampler(files, tmp_path, monkeypatch):
    grouped = trainer_arguments(files, tmp_path, monkeypatch)  # the finetune stage groups by default
    assert grouped["lengths"] is not None
    sequential = trainer_arguments(files, tmp_path, monkeypatch, train_sampling_strategy="sequential")
    assert sequential["lengths"] is None  # the user's strategy acts: transformers' sampler
    monkeypatch.undo()
    trainer = SvitTrainer(**sequential)
    assert isinstance(trainer._get_train_sampler(trainer.train_dataset), SequentialSampler)

    seeded = trainer_arguments(files, tmp_path, monkeypatch, data_seed=7, seed=3)
    monkeypatch.undo()
    sampler = SvitTrainer(**seeded)._get_train_sampler()
    assert isinstance(sampler, ModalityLengthGroupedSampler) and sampler.seed == 7


def test_image_tokens_never_train_even_with_everything_trained(tiny_processor):
    """TRL's collator labels every token but padding when assistant-only loss is off; svit's masks the image."""
    from PIL import Image

    collator = SvitCollator(tiny_processor, template="default", assistant_only_loss=False)
    messages = [{"role": "user", "content": "What is it?"}, {"role": "assistant", "content": "A square."}]
    batch = collator([{"messages": messages, "images": [Image.new("RGB", (20, 20))]}])
    image = batch["input_ids"] == tiny_processor.image_token_id
    assert image.any() and torch.all(batch["labels"][image] == IGNORE_INDEX)
