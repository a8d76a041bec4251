"""`train()`: one SVIT-LLaVA training run, stage 1 or 2, full or LoRA, on one process or many.

A short linear script, as TRL's own: check the arguments and the data (before any model loads), load the
model, set what trains from the stage, train with `SvitTrainer`, save, plot, summarise. The run's facts
(`svit_run.json`) are saved at every checkpoint and at the end; the model card and the final push are the
caller's (`svit train`: `svit_cli/jobs/train.py`), as are callbacks (`callbacks=`, transformers'
`TrainerCallback`). Under `accelerate launch` every process runs it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, SFTConfig

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import recorded_run_facts
from svit_dataset.files import check_output_apart, check_replaceable
from svit_dataset.hub_push import hub_repo_id
from svit_dataset.jsonlist import json_object_or_empty
from svit_model.training.arguments import (
    SvitScriptArguments,
    check_argument_values,
    check_refused_arguments,
    modality_grouping,
)
from svit_model.training.collator import DROP_REASONS, SvitCollator
from svit_model.training.data import load_training_data
from svit_model.training.model import (
    grounding_token_ids,
    load_model,
    load_processor,
    lora_config,
    set_trainable,
    trained_prefixes,
)
from svit_model.training.plots import LOSS_CURVE_FILE, plot_loss_curve
from svit_model.training.resume import (
    IDENTITY_KEYS,
    check_same_processes,
    check_same_run,
    checkpoint_folders,
    checkpoint_identity,
    checkpoint_problem,
    final_save_complete,
    finished_step,
    is_training_run,
    last_complete_checkpoint,
)
from svit_model.training.sampler import modality_lengths
from svit_model.training.stages import STAGES, Stage
from svit_model.training.trainer import SvitTrainer
from svit_model.training.zero3 import deepspeed_comm_on_the_process_group

logger = logging.getLogger(__name__)

# What the model card reports of the trainer's arguments.
CARD_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_length",
    "seed",
    "bf16",
)


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    counts: dict[str, int]  # samples dropped by reason, tokens trained
    loss_curve: Path | None
    summary: str
    facts: dict = field(default_factory=dict)  # what the model card is written from (svit_run.json)
    metrics: dict = field(default_factory=dict)  # the trainer's: train_runtime, num_tokens (not padding), ...
    hub_model_id: str | None = None  # the repo checkpoints were pushed to (--push_to_hub), for the final push


def image_token_count(processor) -> int:
    """Tokens one image becomes (LLaVA-1.5 at 336 px: 576), from the processor's settings."""
    crop = processor.image_processor.crop_size["height"]
    cls_dropped = processor.vision_feature_select_strategy == "default"
    return (crop // processor.patch_size) ** 2 + processor.num_additional_image_tokens - cls_dropped


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise SvitInputError(f"--stage {name}: unknown; one of {', '.join(STAGES)}")
    return STAGES[name]


@dataclass
class ResumePlan:
    """What `train()` does with the output folder, decided before any model loads."""

    checkpoint: str | None = None  # resume from this checkpoint
    clear: bool = False  # delete the old run first (--overwrite_output_dir)
    finished_at: int | None = None  # the run already ended at this step: nothing to do


def resolve_resume(training_args: SFTConfig, overwrite: bool, this_run: dict | None = None) -> ResumePlan:
    """The checkpoint to resume from, whether the output folder must be cleared first, or that the run is done.

    `--resume_from_checkpoint PATH`, or `last` / `true` for the output folder's newest complete checkpoint
    (half-written ones are skipped). A checkpoint of another run (`this_run`: the identity of this one, see
    `resume.IDENTITY_KEYS`) or a damaged one is refused; one at the run's last step means the run is finished.
    A used output folder needs a resume or `--overwrite_output_dir`, which deletes only a training run's folder
    (nothing is deleted here: `clear_output_dir` does it once every other check has passed)."""
    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    given = resume
    if resume is not None and str(resume).lower() in ("last", "true"):
        resume = last_complete_checkpoint(output_dir)
        if resume is None:
            half = len(checkpoint_folders(output_dir))
            raise SvitInputError(
                f"--resume_from_checkpoint {given}: no complete checkpoint-* folder in {output_dir} to resume from"
                + (f" ({half} half-written, skipped)" if half else "")
                + "; pass --overwrite_output_dir to start afresh"
            )
    if resume is not None:
        if not os.path.isdir(resume):
            raise SvitInputError(f"--resume_from_checkpoint {resume}: no such folder")
        problem = checkpoint_problem(resume)
        if problem:
            raise SvitInputError(
                f"--resume_from_checkpoint {resume}: not a complete checkpoint ({problem}); pass an earlier "
                "checkpoint-* folder, or `last` for the newest complete one"
            )
        check_same_run(str(given), checkpoint_identity(resume), this_run or {})
        check_same_processes(str(given), resume, training_args.world_size)
        finished = finished_step(resume, training_args.max_steps, training_args.num_train_epochs)
        if not final_save_complete(
            output_dir
        ):  # killed in the final save: resuming must still write the model
            finished = None
        return ResumePlan(str(resume), False, finished)
    used = (output_dir.is_dir() and any(output_dir.iterdir())) or (
        output_dir.exists() and not output_dir.is_dir()
    )
    if used and not overwrite:
        raise SvitInputError(
            f"--output_dir {output_dir}: already holds a run; pass --resume_from_checkpoint last to continue it "
            "or --overwrite_output_dir to start afresh"
        )
    if used:
        check_replaceable(
            output_dir,
            "--output_dir",
            True,
            "a training run (svit train's output)",
            is_training_run,
            overwrite_flag="--overwrite_output_dir",
        )
    return ResumePlan(None, used)


def finished_result(output_dir: Path, plan: ResumePlan) -> TrainResult:
    """The result of resuming a run that already ended: nothing trained, the run's own facts reported."""
    facts = recorded_run_facts(output_dir)
    counts = facts.get("counts") if isinstance(facts.get("counts"), dict) else {}
    summary = (
        f"svit train: {output_dir} already finished at step {plan.finished_at} "
        f"({Path(plan.checkpoint).name}); nothing to do. Raise --max_steps or --num_train_epochs to train on, "
        "or pass --overwrite_output_dir instead of --resume_from_checkpoint to start afresh"
    )
    curve = output_dir / LOSS_CURVE_FILE
    return TrainResult(
        output_dir, plan.finished_at, counts, curve if curve.is_file() else None, summary, facts
    )


def clear_output_dir(training_args: SFTConfig) -> None:
    """`--overwrite_output_dir`: the old run goes (process 0 deletes it; nothing reads it before a save)."""
    if training_args.process_index == 0:
        target = Path(training_args.output_dir)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def base_model_id(model_name_or_path: str | None, _depth: int = 0) -> str | None:
    """The Hub id of what a run starts from, for the card's `base_model`: the id itself; for an earlier run's
    folder (stage 2 from stage 1), the base model that run recorded (an older run's local path: followed); for a
    folder of `svit model build`, the LLM its config names; else None (a local checkpoint of unknown origin)."""
    if hub_repo_id(model_name_or_path):
        return model_name_or_path
    folder = Path(model_name_or_path or "")
    if _depth > 4 or not folder.is_dir():
        return None
    run = recorded_run_facts(folder)
    if run:
        return base_model_id(run.get("base_model"), _depth + 1)
    text_config = json_object_or_empty(folder / "config.json").get("text_config")
    return hub_repo_id(text_config.get("_name_or_path")) if isinstance(text_config, dict) else None


def _name(value: str | None) -> str | None:
    """A Hub id as it is, a local path by its folder's name: run facts travel with the run (to the Hub too)."""
    return value if not value or hub_repo_id(value) else Path(value.rstrip("/")).name or value


def static_facts(script_args, training_args, model_args, stage: Stage, data_name: str) -> dict:
    """The run's facts known before training, for the model card (plain values only; no local paths beyond
    a folder's name)."""
    args = training_args.to_dict()
    return {
        "base_model": base_model_id(model_args.model_name_or_path),
        "init_from": _name(model_args.model_name_or_path),
        "datasets": [_name(data_name)],
        "dataset_config": script_args.dataset_config,
        "stage": stage.name,
        "template": stage.template,
        "method": "lora" if model_args.use_peft else "full",
        "lora": {"r": model_args.lora_r, "alpha": model_args.lora_alpha, "dropout": model_args.lora_dropout}
        if model_args.use_peft
        else None,
        "hyperparameters": {
            **{key: args[key] for key in CARD_HYPERPARAMETERS if key in args},
            "projector_lr": script_args.projector_lr or training_args.learning_rate,
            "world_size": training_args.world_size,
            "train_vision_tower": script_args.train_vision_tower,
            "group_by_modality_length": bool(script_args.group_by_modality_length),
        },
        "hub_model_id": training_args.hub_model_id,
    }


def summary_line(steps: int, counts: dict[str, int], dropped_before: dict[str, int]) -> str:
    """One line: steps, tokens trained, samples dropped and why."""
    dropped = {**dropped_before, **{r: counts.get(r, 0) for r in DROP_REASONS}}
    dropped = {reason: n for reason, n in dropped.items() if n}
    why = f" ({', '.join(f'{n} {reason}' for reason, n in dropped.items())})" if dropped else ""
    return (
        f"svit train: {steps} steps, {counts.get('tokens_trained', 0):,} tokens trained, "
        f"{sum(dropped.values())} samples dropped{why}"
    )


def train(
    script_args: SvitScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    *,
    callbacks: list | None = None,
) -> TrainResult:
    """Train SVIT-LLaVA as the arguments say; returns where it went and what happened.

    `callbacks`: transformers `TrainerCallback`s (svit_cli's card writer, a test's stop). With `--push_to_hub`
    the trainer pushes the checkpoints; the final push is the caller's (`TrainResult.hub_model_id`).
    """
    # 1. Everything checkable without a model: arguments, stage, output folder, processor and template, data.
    if training_args.hub_token:
        # The trainer pickles its arguments into every checkpoint (training_args.bin): hand the token to
        # huggingface_hub through the environment instead, so it never lands on disk or on the Hub.
        os.environ["HF_TOKEN"], training_args.hub_token = training_args.hub_token, None
    check_argument_values(script_args, training_args, model_args)
    check_refused_arguments(script_args, training_args, model_args)
    stage = get_stage(script_args.stage)
    grouping = modality_grouping(
        script_args.group_by_modality_length, training_args.train_sampling_strategy, stage.name == "finetune"
    )
    check_output_apart(
        training_args.output_dir,
        "--output_dir",
        {
            "--model_name_or_path": model_args.model_name_or_path,
            "--dataset_name": script_args.dataset_name,
            "--image_folder": script_args.image_folder,
        },
    )
    script_args.group_by_modality_length = grouping  # what the card reports
    facts = static_facts(script_args, training_args, model_args, stage, script_args.dataset_name)
    identity = {key: facts[key] for key in IDENTITY_KEYS}
    plan = resolve_resume(training_args, script_args.overwrite_output_dir, identity)
    if plan.finished_at is not None:
        return finished_result(Path(training_args.output_dir), plan)
    resume, clear = plan.checkpoint, plan.clear
    processor = load_processor(model_args, training_args.trust_remote_code)
    collator = SvitCollator(
        processor,
        template=stage.template,
        max_length=training_args.max_length,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
        assistant_only_loss=training_args.assistant_only_loss,
    )
    data = load_training_data(
        script_args.dataset_name,
        script_args.dataset_config,
        script_args.dataset_train_split,
        script_args.image_folder,
        script_args.drop_missing_images,
    )
    peft_config = lora_config(
        model_args, stage, script_args.train_vision_tower, grounding_token_ids(processor)
    )
    lengths = modality_lengths(data.dataset, image_token_count(processor)) if grouping else None

    # 2. The model, and what of it trains (a used output folder is cleared only once it loaded).
    deepspeed_comm_on_the_process_group()
    model = load_model(model_args, training_args.trust_remote_code)
    if clear:
        clear_output_dir(training_args)
    trained = set_trainable(
        model, trained_prefixes(stage, model_args.use_peft, script_args.train_vision_tower)
    )
    logger.info(
        "stage %s: %s parameters train in full%s", stage.name, f"{trained:,}", " + LoRA" * bool(peft_config)
    )

    trainer = SvitTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=data.samples(),
        processing_class=processor,
        peft_config=peft_config,
        callbacks=callbacks,
        projector_lr=script_args.projector_lr,
        lengths=lengths,
        facts=facts,
    )
    if resume is not None:
        trainer.restore_counts(resume)

    # 3. Train, save, report.
    train_output = trainer.train(resume_from_checkpoint=resume)
    logged_tokens = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
    metrics = {**train_output.metrics, "num_tokens": logged_tokens[-1] if logged_tokens else None}
    counts = trainer.run_counts()
    output_dir = Path(training_args.output_dir)
    curve = None
    if trainer.is_world_process_zero():
        curve = plot_loss_curve(
            trainer.state.log_history, output_dir / LOSS_CURVE_FILE, f"{stage.name} ({facts['method']})"
        )
    summary = summary_line(trainer.state.global_step, counts, dict(data.dropped))
    final = {"counts": counts, "dropped_before": dict(data.dropped), "summary": summary}
    if trainer.is_world_process_zero():
        logger.info(summary)
    # before the final save: a run with these facts (its summary) and whole weights is finished (`resume.py`)
    trainer.save_run_facts(**final)
    trainer.save_model(training_args.output_dir)
    return TrainResult(
        output_dir,
        trainer.state.global_step,
        counts,
        curve,
        summary,
        trainer.run_facts(**final),
        metrics,
        trainer.hub_model_id if training_args.push_to_hub else None,
    )


__all__ = ["ResumePlan", "TrainResult", "resolve_resume", "train"]
