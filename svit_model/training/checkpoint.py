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
from svit_model.loading import _looks_local, loading

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def adapter_base(
    run: str | os.PathLike,
    base_model: str | None = None,
    *,
    run_flag: str = "--input",
    base_flag: str = "--base-model",
) -> str:
    """The base model of a LoRA run: `base_model` if given, else the one its adapter config names.

    `run_flag` and `base_flag` are the flags an error names: the command's own (`svit model merge` takes
    --input and --base-model; `svit space` takes RUN and --base-model)."""
    config_path = Path(run) / ADAPTER_CONFIG
    if not config_path.is_file():
        raise SvitInputError(
            f"{run_flag} {run}: no {ADAPTER_CONFIG}; not a LoRA run (a full run loads as it is)"
        )
    try:
        adapter = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise SvitInputError(
            f"{run_flag} {run}: {ADAPTER_CONFIG} cannot be read ({err}); the run folder is damaged: pass "
            "another checkpoint-* folder of the run"
        ) from None
    if not isinstance(adapter, dict):
        raise SvitInputError(
            f"{run_flag} {run}: {ADAPTER_CONFIG} is not a JSON object; the run folder is damaged"
        )
    base = base_model or adapter.get("base_model_name_or_path")
    if not base:
        raise SvitInputError(f"{run_flag} {run}: the adapter config names no base model; pass {base_flag}")
    return base


def tried_as(base: str) -> str:
    """Where the loader looked for `base`, for an error. A relative path is resolved against the current
    directory, as transformers' `from_pretrained` does (training wrote it as it was given, relative to where
    training ran), not against the run folder; a Hub id or an absolute path is named as it is."""
    if Path(base).expanduser().is_absolute() or not _looks_local(base):
        return base
    return f"{base} (tried {Path(base).expanduser().absolute()}: relative to the current directory)"


def load_lora_run(
    run: str | os.PathLike,
    base_model: str | None = None,
    *,
    run_flag: str = "--input",
    base_flag: str = "--base-model",
    **kwargs,
):
    """(PeftModel, processor) of a LoRA run, unmerged; errors name `run_flag` and `base_flag`."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base_path = adapter_base(run, base_model, run_flag=run_flag, base_flag=base_flag)
    try:
        if _looks_local(base_path) and not Path(base_path).expanduser().exists():
            raise OSError("not found")  # else transformers reads it as a malformed Hub id
        base = AutoModelForImageTextToText.from_pretrained(base_path, **kwargs)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SvitInputError(
            f"{run_flag} {run}: its base model {tried_as(base_path)} does not load ({first_line}); "
            f"pass {base_flag}"
        ) from None
    # a damaged adapter (truncated weights, garbage config) fails inside peft or safetensors: name the run
    with loading(
        run_flag, run, "a LoRA run folder (adapter_config.json, adapter_model.safetensors, processor)"
    ):
        return PeftModel.from_pretrained(base, str(run)), AutoProcessor.from_pretrained(str(run))


def merge_lora_run(
    run: str | os.PathLike,
    output_dir: str | os.PathLike,
    base_model: str | None = None,
    overwrite: bool = False,
    *,
    run_flag: str = "--input",
    base_flag: str = "--base-model",
) -> Path:
    """Merge a LoRA run (adapter + projector) into its base and save a full checkpoint with the run's processor.

    Errors name `run_flag` and `base_flag` (default: `svit model merge`'s)."""
    check_output_dir(output_dir, overwrite, {run_flag: run, base_flag: base_model})
    model, processor = load_lora_run(run, base_model, run_flag=run_flag, base_flag=base_flag)
    merged = model.merge_and_unload()
    logger.info("merged %s into %s", run, adapter_base(run, base_model))
    return save_checkpoint(merged, processor, output_dir, overwrite=overwrite)


__all__ = ["adapter_base", "load_lora_run", "merge_lora_run"]
