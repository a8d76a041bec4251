"""`SvitTrainer`: TRL's `SFTTrainer` with LLaVA-1.5's few training needs.

- the projector at its own learning rate (LLaVA's `mm_projector_lr`), as optimizer parameter groups
  (`create_optimizer`);
- the modality- and length-grouped sampler (`sampler.py`) when asked;
- the collator's drop counts and the tokens trained summed over processes and kept across resumes
  (`svit_counts.json` in every checkpoint);
- the run's facts (`svit_run.json`: what the model card is written from) saved in the run folder at every
  checkpoint, before the checkpoint is pushed; no card of TRL's (the card is svit_cli's: `svit_cli/jobs/train.py`);
- the learning rate logged per optimizer group by name (`learning_rate` is the LLM's, `learning_rate/projector`
  the projector's), not the first group's;
- a run whose loss or trained weights stop being finite stops with an error before anything is saved;
- every checkpoint records the run it belongs to (`svit_checkpoint.json`, see `resume.py`), and a full disk
  while saving is reported as such (`building.writing_checkpoint`).

Public hooks of transformers' `Trainer` wherever one serves (`create_optimizer`, `compute_loss`, `training_step`,
`prediction_step`, `save_model`, `log`, `create_model_card`); the private methods overridden name, each, the
upstream behaviour they work around (transformers 5.24.0, trl 1.16.0).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from peft import PeftModel
from transformers import Trainer
from trl import SFTTrainer

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE
from svit_dataset.files import write_json_atomic
from svit_model.building import writing_checkpoint
from svit_model.training.collator import DROP_REASONS, IGNORE_INDEX
from svit_model.training.data import SAMPLE_COLUMNS
from svit_model.training.plots import LOSS_CURVE_FILE, loss_points
from svit_model.training.resume import IDENTITY_FILE, IDENTITY_KEYS
from svit_model.training.sampler import ModalityLengthGroupedSampler
from svit_model.training.stages import PROJECTOR
from svit_model.training.zero3 import use_rows_gathered_without_cuda, uses_fused_lm_head

logger = logging.getLogger(__name__)

COUNTS_FILE = "svit_counts.json"


def is_peft_model(model) -> bool:
    return isinstance(model, PeftModel)


def expose_lm_head_bias(model) -> None:
    """TRL's fused LM head reads `lm_head.weight` and `lm_head.bias`; peft's trainable-tokens wrapper (the
    grounding tokens' rows, see `model.lora_config`) serves `weight` with the trained rows merged in, but not
    `bias`. Give it the wrapped layer's bias (None for Llama)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and hasattr(head, "token_adapter") and "bias" not in dir(head):
        head.bias = head.original_module.bias


PROJECTOR_NAME = PROJECTOR.rsplit(".", 1)[-1]
# Names of the optimizer groups (an extra key of each param group, which torch optimizers keep).
GROUP_KEY = "svit_group"
LLM_GROUP = "llm"
PROJECTOR_GROUP = "projector"
# What to try when a run stops being finite.
_NON_FINITE_ADVICE = (
    "check --learning_rate, --projector_lr, --weight_decay and --max_grad_norm (lower the learning rate, "
    "clip gradients), or train in bf16 rather than fp16"
)


def named_learning_rates(param_groups) -> dict[str, float]:
    """{group name: learning rate} of the optimizer's named groups (the first of each name), {} if unnamed."""
    rates: dict[str, float] = {}
    for group in param_groups:
        if GROUP_KEY in group:
            lr = group["lr"]
            rates.setdefault(group[GROUP_KEY], float(lr.item() if torch.is_tensor(lr) else lr))
    return rates


class SvitTrainer(SFTTrainer):
    def __init__(
        self,
        *args,
        projector_lr: float | None = None,
        lengths: list[int] | None = None,
        facts: dict | None = None,
        **kwargs,
    ):
        """`lengths`: the modality lengths of the grouped sampler (`sampler.modality_lengths`), None for
        transformers' own sampler (`--train_sampling_strategy`). `facts`: the run's facts known before training
        (`train.static_facts`), saved with what the run has done at every checkpoint."""
        self.projector_lr = projector_lr
        self.facts = dict(facts or {})
        self.run_identity = {key: self.facts[key] for key in IDENTITY_KEYS if key in self.facts} or None
        self.lengths = lengths
        self._weights_checked_at: int | None = None
        # [samples dropped by reason..., tokens trained] on this process since the run (or the resume) started
        self.svit_counts = torch.zeros(len(DROP_REASONS) + 1, dtype=torch.long)
        self._counts_restored = torch.zeros_like(
            self.svit_counts
        )  # totals read from a checkpoint (process 0)
        use_rows_gathered_without_cuda()  # before TRL applies LoRA (zero3.py)
        super().__init__(*args, **kwargs)
        expose_lm_head_bias(self.model)
        self._fused_lm_head = uses_fused_lm_head(self.model)

    # --- data -------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self):
        # Private: TRL's `SFTTrainer._set_signature_columns_if_needed` (trl/trainer/sft_trainer.py) keeps only
        # messages, prompt, completion, image and images of image rows, and transformers'
        # `Trainer._remove_unused_columns` (transformers/trainer.py) drops every other column before the data
        # loader reads a row; no public hook names the columns to keep. The sample transform
        # (`data.SampleLoader`) also reads `image_path` (rows whose image is a file under --image_folder) and `id`
        # (to name a sample whose image is damaged).
        super()._set_signature_columns_if_needed()
        missing = [column for column in SAMPLE_COLUMNS if column not in self._signature_columns]
        self._signature_columns = [*self._signature_columns, *missing]

    def _get_train_sampler(self, train_dataset=None):
        # Private: transformers' `Trainer._get_train_sampler` (transformers/trainer.py) picks its sampler only among
        # `--train_sampling_strategy`'s fixed choices (random, sequential, group_by_length, batch_rebalance); no
        # public hook takes another sampler. With `lengths` unset (`arguments.modality_grouping`), the user's
        # strategy acts through it.
        if self.lengths is None:
            return super()._get_train_sampler(train_dataset)
        seed = self.args.seed if self.args.data_seed is None else self.args.data_seed
        return ModalityLengthGroupedSampler(
            self.lengths, self.args.per_device_train_batch_size, self.args.world_size, seed=seed
        )

    # --- optimisation -----------------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        if self.projector_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name in decay, PROJECTOR_NAME in name), []).append(param)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if decayed else 0.0,
                **({"lr": self.projector_lr} if projector else {}),
                GROUP_KEY: PROJECTOR_GROUP if projector else LLM_GROUP,
            }
            for (decayed, projector), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def _get_learning_rate(self) -> float:
        """The LLM's learning rate (the projector's when only it trains), not the first group's."""
        # Private: transformers' `Trainer._get_learning_rate` (transformers/trainer.py) logs
        # `lr_scheduler.get_last_lr()[0]`, the first parameter group's rate, which `create_optimizer`'s groups
        # (ordered by weight decay, then module) make the projector's in a LoRA run; `log` is public, but the
        # Trainer fills `logs["learning_rate"]` from this method before calling it.
        rates = named_learning_rates(getattr(self.optimizer, "param_groups", []))
        if not rates:
            return super()._get_learning_rate()
        return rates.get(LLM_GROUP, next(iter(rates.values())))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "learning_rate" in logs:
            for name, lr in named_learning_rates(getattr(self.optimizer, "param_groups", [])).items():
                logs[f"learning_rate/{name}"] = lr
        super().log(logs, start_time)

    # --- finite or stop ---------------------------------------------------------------------------------------

    def _any_process(self, flag: bool) -> bool:
        """`flag` on any process (a collective call: every process makes it, so all stop together)."""
        if self.accelerator.num_processes == 1:
            return flag
        total = self.accelerator.reduce(torch.tensor([float(flag)], device=self.accelerator.device), "sum")
        return bool(total.item() > 0)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # transformers' `logging_nan_inf_filter` would hide a NaN loss from the log and train on
        if self._any_process(not bool(torch.isfinite(loss).all())):
            raise SvitInputError(
                f"the training loss became {loss.item()} at step {self.state.global_step + 1}; "
                f"the run stopped and nothing of this step was saved; {_NON_FINITE_ADVICE}"
            )
        return loss

    def check_finite_weights(self) -> None:
        """Raise `SvitInputError` if a trained parameter holds NaN or infinity (checked before every save: an
        optimizer step can break the weights while the loss that led to it was still finite)."""
        bad = []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                tensor = getattr(param, "ds_tensor", param)  # ZeRO-3: this process's partition
                if tensor.numel() and not bool(torch.isfinite(tensor.detach()).all()):
                    bad.append(name)
        if self._any_process(bool(bad)):
            where = f" ({bad[0]}{' and others' if len(bad) > 1 else ''})" if bad else ""
            raise SvitInputError(
                f"the trained weights became NaN or infinite by step {self.state.global_step}{where}; "
                f"nothing was saved; {_NON_FINITE_ADVICE}"
            )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if self._weights_checked_at != self.state.global_step:  # `_save_checkpoint` checked them at this step
            self.check_finite_weights()
        with writing_checkpoint(output_dir or self.args.output_dir):
            super().save_model(output_dir, _internal_call)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        dropped = inputs.pop("svit_dropped", None)
        if model.training:
            if dropped is not None:
                self.svit_counts[: len(DROP_REASONS)] += dropped.cpu()
            self.svit_counts[-1] += int((inputs["labels"] != IGNORE_INDEX).sum())
        if not self._fused_lm_head:  # the loss from the model's logits (zero3.py, gap 2)
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop("svit_dropped", None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    # --- resume -----------------------------------------------------------------------------------------------

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Full checkpoints are read with `from_pretrained`, which maps the saved weight names (transformers
        writes LLaVA's in their legacy `model.language_model.model.*` form) back to the module's; the Trainer's
        raw state-dict load would leave the language model unrestored with only a warning. Adapters (peft) and
        DeepSpeed / FSDP checkpoints take the Trainer's own path."""
        # Private: transformers' `Trainer._load_from_checkpoint` (transformers/trainer.py) loads the checkpoint's
        # state dict into the module as it is (`load_state_dict(strict=False)`), with no hook to map the names.
        model = self.model if model is None else model
        if is_peft_model(model) or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=dtype).state_dict()
        model.load_state_dict(saved, strict=True)
        logger.info("model weights restored from %s", resume_from_checkpoint)

    # --- counts -----------------------------------------------------------------------------------------------

    def run_counts(self, all_processes: bool = True) -> dict[str, int]:
        """Samples dropped by reason and tokens trained across resumes, summed over every process (a collective
        call: every process must make it) or, with `all_processes=False`, this process's alone."""
        total = self.svit_counts
        if all_processes and self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total.to(self.accelerator.device), reduction="sum")
        total = total.cpu() + self._counts_restored
        return {**dict(zip(DROP_REASONS, total[:-1].tolist(), strict=True)), "tokens_trained": int(total[-1])}

    def restore_counts(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, COUNTS_FILE)
        if self.is_world_process_zero() and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self._counts_restored = torch.tensor([saved.get(r, 0) for r in (*DROP_REASONS, "tokens_trained")])

    def run_facts(self, **final) -> dict:
        """The run's facts so far: those known before training, the steps, the counts (this process's during
        training: no collective call), the last logged loss and the loss curve; `final` adds or replaces
        facts (the end of the run passes the counts summed over processes and the summary)."""
        facts = {**self.facts, **final}
        points = loss_points(self.state.log_history)
        curve = Path(self.args.output_dir) / LOSS_CURVE_FILE
        return {
            **facts,
            "global_step": self.state.global_step,
            "counts": facts["counts"] if "counts" in facts else self.run_counts(all_processes=False),
            "final_loss": points[-1][1] if points else None,
            "loss_curve": LOSS_CURVE_FILE if curve.is_file() else None,
        }

    def save_run_facts(self, **final) -> None:
        """Write `svit_run.json` into the run folder (process 0; atomically)."""
        if self.is_world_process_zero():
            write_json_atomic(Path(self.args.output_dir) / RUN_FACTS_FILE, self.run_facts(**final))

    def _save_checkpoint(self, model, trial):
        # Private: transformers' `Trainer._save_checkpoint` (transformers/trainer.py) saves the checkpoint and
        # pushes it (`_push_from_checkpoint`) in one call; `TrainerCallback.on_save` runs only after the push has
        # started, so files that must go up with a checkpoint (the run's facts, from which the card is written
        # on `on_push_begin`) and files that must be inside it (counts, the run's identity) are written here.
        counts = self.run_counts()  # every process takes part in the reduction
        self.check_finite_weights()  # before anything of this step is written
        self._weights_checked_at = self.state.global_step
        self.save_run_facts(counts=counts)
        folder = os.path.join(self._get_output_dir(trial), f"checkpoint-{self.state.global_step}")
        with writing_checkpoint(folder):
            super()._save_checkpoint(model, trial)
            if self.is_world_process_zero():
                with open(os.path.join(folder, COUNTS_FILE), "w", encoding="utf-8") as f:
                    json.dump(counts, f, indent=1)
                if self.run_identity is not None:
                    with open(os.path.join(folder, IDENTITY_FILE), "w", encoding="utf-8") as f:
                        json.dump(self.run_identity, f, indent=1)

    # --- card -------------------------------------------------------------------------------------------------

    def create_model_card(self, *args, **kwargs):
        """No card here: TRL's `SFTTrainer._save_checkpoint` (trl/trainer/sft_trainer.py) and the Trainer's
        `push_to_hub` call this to write TRL's generic README.md into the run folder; svit's card is written
        from `svit_run.json` by `svit_cli/jobs/train.py`."""


__all__ = ["COUNTS_FILE", "SvitTrainer"]
