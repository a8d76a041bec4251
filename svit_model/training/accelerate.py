"""Shipped `accelerate` configs (one GPU, DDP, DeepSpeed ZeRO-2, ZeRO-3, ZeRO-3 with CPU offload) and their
DeepSpeed JSON files.

The DeepSpeed files leave batch sizes, precision, clipping and bucket sizes `auto`: the trainer fills them from
the training arguments, so one file serves every recipe. They set no `optimizer`, so the trainer's own AdamW
(with the projector's parameter group) is used; the offload file allows it on CPU
(`zero_force_ds_cpu_optimizer: false`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from svit_dataset.errors import SvitInputError

CONFIGS_DIR = Path(__file__).parent / "accelerate_configs"
DEEPSPEED_DIR = CONFIGS_DIR / "deepspeed"


def accelerate_configs() -> dict[str, Path]:
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))}


def list_accelerate_configs() -> dict[str, str]:
    """Name -> its first comment line."""
    return {
        name: next((line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#")), "")
        for name, path in accelerate_configs().items()
    }


def deepspeed_config_path(name: str) -> Path:
    """The shipped DeepSpeed JSON `name` (zero2, zero3, zero3_offload)."""
    path = DEEPSPEED_DIR / f"{name}.json"
    if not path.is_file():
        names = ", ".join(p.stem for p in sorted(DEEPSPEED_DIR.glob("*.json")))
        raise SvitInputError(f"DeepSpeed config {name!r}: not shipped; one of {names}")
    return path


def accelerate_config(name: str) -> dict:
    """A shipped accelerate config as a mapping, its DeepSpeed file as an absolute path."""
    configs = accelerate_configs()
    if name not in configs:
        raise SvitInputError(f"--accelerate-config {name!r}: not shipped; one of {', '.join(configs)}")
    config = yaml.safe_load(configs[name].read_text())
    deepspeed = config.get("deepspeed_config") or {}
    if "deepspeed_config_file" in deepspeed:
        deepspeed["deepspeed_config_file"] = str((CONFIGS_DIR / deepspeed["deepspeed_config_file"]).resolve())
    return config


def accelerate_config_text(name: str) -> str:
    """The YAML for `accelerate launch --config_file` (`svit train --accelerate-config NAME > NAME.yaml`)."""
    return (
        f"# svit: {list_accelerate_configs()[name] if name in accelerate_configs() else ''}\n"
        + yaml.safe_dump(accelerate_config(name), sort_keys=False)
    )


__all__ = ["accelerate_config", "accelerate_config_text", "deepspeed_config_path", "list_accelerate_configs"]
