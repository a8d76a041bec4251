"""Trained runs as models: load a LoRA run unmerged, or merge it into a full SVIT-LLaVA checkpoint.

A LoRA run folder (or any of its `checkpoint-*` folders) holds the adapter, the projector trained beside it
(peft `modules_to_save`), the processor and its chat templates; the base model is the one the adapter config
names. `AutoModelForImageTextToText.from_pretrained(run)` also loads it unmerged (transformers' peft
integration); `merge_lora_run` writes a checkpoint that needs neither peft nor the base model.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from svit_dataset.errors import SvitInputError
from svit_model.building import check_output_dir, save_checkpoint

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def adapter_base(run: str | os.PathLike, base_model: str | None = None) -> str:
    """The base model of a LoRA run: `base_model` if given, else the one its adapter config names."""
    config_path = Path(run) / ADAPTER_CONFIG
    if not config_path.is_file():
        raise SvitInputError(
            f"--input {run}: no {ADAPTER_CONFIG}; not a LoRA run (a full run loads as it is)"
        )
    base = base_model or json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise SvitInputError(f"--input {run}: the adapter config names no base model; pass --base-model")
    return base


def load_lora_run(run: str | os.PathLike, base_model: str | None = None, **kwargs):
    """(PeftModel, processor) of a LoRA run, unmerged."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base_path = adapter_base(run, base_model)
    try:
        base = AutoModelForImageTextToText.from_pretrained(base_path, **kwargs)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SvitInputError(
            f"--input {run}: its base model {base_path} does not load ({first_line}); pass --base-model"
        ) from None
    return PeftModel.from_pretrained(base, str(run)), AutoProcessor.from_pretrained(str(run))


def merge_lora_run(
    run: str | os.PathLike,
    output_dir: str | os.PathLike,
    base_model: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Merge a LoRA run (adapter + projector) into its base and save a full checkpoint with the run's processor."""
    check_output_dir(output_dir, overwrite, {"--input": run, "--base-model": base_model})
    model, processor = load_lora_run(run, base_model)
    merged = model.merge_and_unload()
    logger.info("merged %s into %s", run, adapter_base(run, base_model))
    return save_checkpoint(merged, processor, output_dir, overwrite=overwrite)


__all__ = ["adapter_base", "load_lora_run", "merge_lora_run"]
