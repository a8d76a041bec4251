"""Which checkpoint a run resumes from, and which folders `--overwrite_output_dir` may delete.

Small pure functions over a run folder, so that every choice is made (and refused) before a model loads:

- `last` is the newest *complete* checkpoint: a disk that filled up, or a kill, mid-save leaves a
  `checkpoint-N` without `trainer_state.json` (the Trainer writes it after the weights) or with a truncated
  weights file; such a folder is skipped with a warning, never picked to fail later.
- a checkpoint knows the run it belongs to (`svit_checkpoint.json`: stage, method, start model, data, written
  by `SvitTrainer` into each one): resuming from another run's, or from a LoRA checkpoint into a full run, is
  refused in one line naming both, instead of training on with the wrong run facts or failing deep inside peft.
- a run that already reached its last step is finished: resuming it does nothing (the Trainer would add a step).
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from svit_dataset.errors import SvitInputError
from svit_dataset.facts import RUN_FACTS_FILE, recorded_run_facts
from svit_dataset.jsonlist import json_object_or_empty

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
IDENTITY_FILE = "svit_checkpoint.json"
# What makes two checkpoints the same run (keys of the run facts, see `train.static_facts`).
IDENTITY_KEYS = ("stage", "method", "init_from", "datasets", "dataset_config")
# Files only the Trainer writes: a folder holding one of them was written by a training run.
_TRAINER_FILES = (RUN_FACTS_FILE, TRAINER_STATE, "training_args.bin", "svit_counts.json", IDENTITY_FILE)
# What a run leaves before its first checkpoint: the Trainer's TensorBoard folder; the loss curve and card later.
_STARTED_RUN_ENTRIES = frozenset({"runs", "loss_curve.png", "README.md"})
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of a run, by step, newest last."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()
    ]
    return [path for _, path in sorted(found)]


def is_training_run(path: str | Path) -> bool:
    """Whether `path` is a folder `svit train` wrote (its run facts, trainer files or checkpoints): what
    `--overwrite_output_dir` may delete."""
    folder = Path(path)
    if not folder.is_dir() or folder.is_symlink():
        return False
    if any((folder / name).is_file() for name in _TRAINER_FILES) or checkpoint_folders(folder):
        return True
    # a run killed before its first save holds only what the Trainer writes when it starts (its logging folder)
    entries = [entry.name for entry in folder.iterdir()]
    return bool(entries) and all(name in _STARTED_RUN_ENTRIES for name in entries)


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (its header names more bytes than the file holds), or None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated"
        (header_size,) = struct.unpack("<Q", head)
        if header_size > size - 8:
            return f"{path.name} is truncated"
        try:
            header = json.loads(f.read(header_size))
        except (ValueError, RecursionError):
            return f"{path.name} is damaged (unreadable header)"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + header_size + max(ends, default=0) > size:
        return f"{path.name} is truncated"
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why `folder` is not a complete checkpoint (half-written, damaged), or None when it is whole.

    Checked without loading anything: the trainer state (written after the weights), the weights' sizes
    against their headers, and torch's zip files (optimizer, scheduler, RNG state) ending in their index."""
    folder = Path(folder)
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE} (saving stopped before the end)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return f"{TRAINER_STATE} is damaged"
    deepspeed = any(p.is_dir() and p.name.startswith("global_step") for p in folder.iterdir())
    weights = [folder / name for name in _WEIGHTS if (folder / name).is_file()]
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    if not weights and not shards and not deepspeed:
        return "no model or adapter weights"
    for path in [*weights, *shards]:
        problem = _safetensors_problem(path) if path.suffix == ".safetensors" else None
        if path.suffix == ".bin" and not zipfile.is_zipfile(path):
            problem = f"{path.name} is truncated"
        if problem:
            return problem
    for path in [*folder.glob("*.pt"), *folder.glob("*.pth")]:
        if not zipfile.is_zipfile(path):
            return f"{path.name} is truncated"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` of a run; half-written ones are skipped with a warning."""
    for folder in reversed(checkpoint_folders(output_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("skipping %s: %s", folder, problem)
    return None


def checkpoint_identity(folder: str | Path) -> dict:
    """The run a checkpoint belongs to: its `svit_checkpoint.json`, or, for one written without it, what its
    files tell (an adapter: LoRA)."""
    folder = Path(folder)
    identity = json_object_or_empty(folder / IDENTITY_FILE)
    if "method" not in identity and any(folder.glob("adapter_config.json")):
        identity["method"] = "lora"
    elif "method" not in identity and any(folder.glob("model*.safetensors")):
        identity["method"] = "full"
    return identity


def _describe(identity: dict) -> str:
    parts = [f"{key} {identity[key]}" for key in IDENTITY_KEYS if identity.get(key) not in (None, [])]
    return ", ".join(parts) or "unknown"


def checkpoint_processes(folder: str | Path) -> int | None:
    """How many processes wrote a checkpoint: transformers' Trainer saves one RNG state per process
    (`rng_state_<rank>.pth`), `rng_state.pth` when it ran alone; None when it saved none."""
    folder = Path(folder)
    ranks = len(list(folder.glob("rng_state_*.pth")))
    return ranks or (1 if (folder / "rng_state.pth").is_file() else None)


def check_same_processes(flag_value: str, checkpoint: str | Path, processes: int) -> None:
    """Refuse to resume on another number of processes: where the data resumes (steps x the global batch) and
    DeepSpeed's per-process optimizer partitions both depend on it, so the run would go on silently wrong or
    fail deep inside DeepSpeed."""
    saved = checkpoint_processes(checkpoint)
    if saved is not None and saved != processes:
        raise SvitInputError(
            f"--resume_from_checkpoint {flag_value}: {Path(checkpoint).name} was written by {saved} process(es), "
            f"this run has {processes}; where the data resumes and DeepSpeed's partitioned states depend on the "
            f"count: resume on {saved} (accelerate launch --num_processes {saved})"
        )


def check_same_run(flag_value: str, checkpoint: dict, this_run: dict) -> None:
    """Refuse a checkpoint whose recorded identity differs from this run's, naming both."""
    differs = [
        key
        for key in IDENTITY_KEYS
        if key in checkpoint and key in this_run and checkpoint[key] != this_run[key]
    ]
    if differs:
        raise SvitInputError(
            f"--resume_from_checkpoint {flag_value}: a checkpoint of another run ({_describe(checkpoint)}), "
            f"not of this one ({_describe(this_run)}; {', '.join(differs)} differ). Resume with that run's "
            "arguments, or start afresh without --resume_from_checkpoint"
        )


def final_save_complete(output_dir: str | Path) -> bool:
    """Whether a run's own folder holds its final model and final run facts (the end of the run writes them with
    its `summary`; those of a checkpoint have none): a run whose last checkpoint is at its last step but that died
    in the final save is not finished."""
    folder = Path(output_dir)
    weights = [path for path in (folder / name for name in _WEIGHTS) if path.is_file()]
    weights += sorted(folder.glob("model-*-of-*.safetensors"))
    whole = all(_safetensors_problem(path) is None for path in weights if path.suffix == ".safetensors")
    return "summary" in recorded_run_facts(folder) and bool(weights) and whole


def finished_step(checkpoint: str | Path, max_steps: int, num_train_epochs: float) -> int | None:
    """The step a run ended at when `checkpoint` is its last one and the arguments ask for no more training
    (no larger `--max_steps`, or no more `--num_train_epochs`); None when there is training left."""
    state = json_object_or_empty(Path(checkpoint) / TRAINER_STATE)
    step, planned = state.get("global_step"), state.get("max_steps")
    if not isinstance(step, int) or not isinstance(planned, int) or planned <= 0 or step < planned:
        return None
    if max_steps > 0:
        return step if max_steps <= step else None
    epochs = state.get("num_train_epochs")
    return step if isinstance(epochs, (int, float)) and num_train_epochs <= epochs else None


__all__ = [
    "final_save_complete",
    "IDENTITY_FILE",
    "IDENTITY_KEYS",
    "check_same_processes",
    "check_same_run",
    "checkpoint_processes",
    "checkpoint_folders",
    "checkpoint_identity",
    "checkpoint_problem",
    "finished_step",
    "is_training_run",
    "last_complete_checkpoint",
]
