"""Family `train`: random values for the numeric flags of `svit train` and random YAML recipes, through the CLI's
parsing and every check `train()` runs before its work starts (no model is trained).

A case is `svit train ARGV` run as the command runs it (`parse_train_arguments`, then `train()`; the card and push
around it are not reached), with the first piece of real work (`load_training_data`)
replaced by a sentinel: reaching it means the arguments were accepted (the processor is loaded once per
checkpoint and reused). The verdict comes
from our own notion of a valid value (`RULES`: finite, sign, integer bounds), written independently of svit's:
- invalid and refused with one clean line, or valid and accepted: clean;
- invalid and accepted: silent loss (the run would train on it);
- any other exception: traceback;
- valid and refused: `refused_valid` (listed, not a defect: an over-strict check or an over-lax oracle).
"""

from __future__ import annotations

import math
import os
import random
from contextlib import chdir
from pathlib import Path
from unittest import mock

import yaml

from fuzz_families.common import Defect, Refused, Tally, attempt

# flag -> (type, predicate of a valid converted value, whether None is allowed). Our rules, not svit's:
# a learning rate, an epsilon, a count of steps or of samples must be finite and positive; a decay or a
# norm, non-negative; a beta or a dropout in [0, 1); seeds fit numpy's 32 bits; max_steps is -1 (off) or > 0.
RULES: dict[str, tuple[type, object, bool]] = {
    "learning_rate": (float, lambda v: v > 0, False),
    "projector_lr": (float, lambda v: v > 0, True),
    "weight_decay": (float, lambda v: v >= 0, False),
    "adam_beta1": (float, lambda v: 0 <= v < 1, False),
    "adam_beta2": (float, lambda v: 0 <= v < 1, False),
    "adam_epsilon": (float, lambda v: v > 0, False),
    "max_grad_norm": (float, lambda v: v >= 0, False),
    "num_train_epochs": (float, lambda v: v > 0, False),
    "warmup_steps": (float, lambda v: 0 <= v < 1 or (v >= 1 and v == int(v)), False),  # a share, or steps
    "label_smoothing_factor": (float, lambda v: 0 <= v < 1, False),
    # a share of the run's steps when <= 1, else a whole number of steps (transformers' own rule)
    "logging_steps": (float, lambda v: 0 < v <= 1 or (v > 1 and v == int(v)), False),
    "save_steps": (float, lambda v: 0 < v <= 1 or (v > 1 and v == int(v)), False),
    "lora_dropout": (float, lambda v: 0 <= v < 1, False),
    "max_steps": (int, lambda v: v == -1 or v > 0, False),
    "per_device_train_batch_size": (int, lambda v: v >= 1, False),
    "gradient_accumulation_steps": (int, lambda v: v >= 1, False),
    "lora_r": (int, lambda v: v >= 1, False),
    "lora_alpha": (int, lambda v: v >= 1, False),
    "seed": (int, lambda v: 0 <= v < 2**32, False),
    "max_length": (int, lambda v: v >= 1, True),
    "dataloader_num_workers": (int, lambda v: 0 <= v <= 1024, False),
}
FLAG_TEXTS = [
    "nan", "NaN", "inf", "-inf", "1e999", "-1", "-5", "-0.5", "0", "0.0", "-0", "1e-5", "2e-3", "0.5", "0.99",
    "1", "1.0", "2", "3", "8", "1.5", "1e3", "1e30", "abc", "", " 2 ", "0x10", "1_000", "+3", "٣", "1e-400",
    str(2**31), str(2**32), str(2**63), "99999999999999999999999", "None", "true",
]  # fmt: skip
YAML_VALUES = [
    float("nan"), float("inf"), -float("inf"), -1, -5, 0, 0.0, 1e-5, 2e-3, 0.5, 0.99, 1, 2, 3, 8, 1.5, 1e30,
    2**31, 2**40, 2**70, True, False, None, "abc", "1e-3", "0.001", [], [1], {}, {"a": 1}, "nan",
]  # fmt: skip
UNKNOWN_KEYS = ["learning_rat", "lr", "epochs", "use_lora", "projector-lr", "", "__class__", "env"]
BASE_KEYS = ("model_name_or_path", "dataset_name", "output_dir")


class ReachedWork(Exception):
    """The arguments got past every check: `train()` started loading the checkpoint."""


def convert(kind: type, text: str):
    """The value argparse makes of `text` for a field of type `kind`, or raises ValueError (as its `type=`)."""
    return kind(text)


def valid_value(name: str, value) -> bool:
    """Our oracle: is `value` (converted, or from YAML) a sound setting of flag `name`?"""
    kind, ok, nullable = RULES[name]
    if value is None:
        return nullable
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind is int and not isinstance(value, int):
        return False
    return math.isfinite(value) and bool(ok(value))


def flag_case(rng: random.Random, base: dict[str, str]) -> tuple[list[str], bool, str]:
    """(argv, expected valid, description): the base flags, maybe a shipped recipe, 1-3 random numeric flags."""
    argv = []
    if rng.random() < 0.3:
        argv += ["--config", rng.choice(["tiny-stage2-lora", "tiny-stage2-full", "tiny-stage1"])]
    for key, value in base.items():
        argv += [f"--{key}", value]
    valid, picked = True, []
    for name in rng.sample(sorted(RULES), rng.randint(1, 3)):
        text = rng.choice(FLAG_TEXTS) if rng.random() < 0.7 else _good_text(rng, name)
        try:
            value = convert(RULES[name][0], text)
        except ValueError:
            value = text  # argparse refuses it: invalid
        valid &= valid_value(name, value) if not isinstance(value, str) else False
        argv += [f"--{name}={text}"] if rng.random() < 0.5 else [f"--{name}", text]
        if name.startswith("lora_"):  # LoRA's settings act only with LoRA on (a refusal otherwise)
            argv += ["--use_peft", "true"]
        picked.append(f"--{name} {text!r}")
    return argv, valid, " ".join(picked)


def _good_text(rng: random.Random, name: str) -> str:
    kind = RULES[name][0]
    choices = {
        "adam_beta1": ["0.9", "0.0"],
        "adam_beta2": ["0.999", "0.95"],
        "lora_dropout": ["0.05", "0"],
        "label_smoothing_factor": ["0.1", "0"],
        "max_steps": ["-1", "1", "30"],
        "seed": ["0", "42", str(2**32 - 1)],
        "dataloader_num_workers": ["0", "2"],
        "weight_decay": ["0", "0.01"],
        "warmup_steps": ["0", "0.03", "10"],
        "max_grad_norm": ["0", "1.0"],
    }.get(name, ["1", "2", "8"] if kind is int else ["1e-4", "0.002", "1"])
    return rng.choice(choices)


def recipe_case(
    rng: random.Random, base: dict[str, str], folder: Path, k: int
) -> tuple[list[str], bool, str]:
    """(argv, expected valid, description) of `--config` a random recipe YAML."""
    path = folder / f"recipe-{k}.yaml"
    fault = rng.randrange(10)
    if fault == 0:  # not YAML, a list, a scalar, deep nesting: refused as a file
        text = rng.choice(
            ["a: [1, 2\n", "- 1\n- 2\n", "just words\n", "{" * rng.choice([50, 2000]), "\t: x\n"]
        )
        path.write_text(text, encoding="utf-8")
        return ["--config", str(path)], False, f"recipe text {text[:30]!r}"
    if fault == 1:
        depth = rng.choice([100, 1000, 5000])
        path.write_text("learning_rate: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
        return ["--config", str(path)], False, f"recipe nested {depth} deep"
    values: dict = dict(base)
    valid, described = True, []
    for name in rng.sample(sorted(RULES), rng.randint(0, 3)):
        value = (
            rng.choice(YAML_VALUES) if rng.random() < 0.7 else convert(RULES[name][0], _good_text(rng, name))
        )
        values[name] = value
        if name.startswith("lora_"):  # LoRA's settings act only with LoRA on (a refusal otherwise)
            values["use_peft"] = True
        valid &= valid_value(name, value)
        described.append(f"{name}: {value!r}")
    if fault == 2:
        key = rng.choice(UNKNOWN_KEYS)
        values[key] = rng.choice([1, "x", None])
        valid = False  # unknown keys, or TrlParser's own `env` with a value that is no mapping
        described.append(f"unknown {key!r}")
    if fault == 3:
        key = rng.choice(BASE_KEYS[:2])
        values.pop(key)
        valid = False
        described.append(f"no {key}")
    if fault == 4:
        key = rng.choice(BASE_KEYS)
        values[key] = rng.choice([3, 1.5, [], {}, True, None, ""])
        valid = False
        described.append(f"{key}: {values[key]!r}")
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return ["--config", str(path)], valid, "; ".join(described) or "a plain recipe"


def fixtures(work: Path) -> dict[str, str]:
    """A tiny checkpoint and a LLaVA JSON to point the flags at (the JSON is never read: the sentinel stops first)."""
    from svit_model.tiny import save_tiny_svit_llava

    model = work / "tiny-model"
    if not model.is_dir():
        save_tiny_svit_llava(model)
    data = work / "llava.json"
    data.write_text('[{"id": "1", "image": "a.jpg", "conversations": []}]', encoding="utf-8")
    return {"model_name_or_path": str(model), "dataset_name": str(data)}


def run(rng: random.Random, n: int, tally: Tally, work: Path) -> None:
    from svit_cli.jobs.train import parse_train_arguments
    from svit_model.training import train as train_module

    def train_command(argv: list[str]):
        return train_module.train(*parse_train_arguments(argv))

    real_load_processor, real_load_data = train_module.load_processor, train_module.load_training_data
    processors: dict = {}

    def load_processor(model_args, *args, **kwargs):  # the real one, loaded once per checkpoint
        key = model_args.model_name_or_path
        if not (key and Path(key).is_dir()):
            return real_load_processor(model_args, *args, **kwargs)  # a missing path: its own refusal
        if key not in processors:
            processors[key] = real_load_processor(model_args, *args, **kwargs)
        return processors[key]

    def sentinel(dataset_name, *args, **kwargs):
        """The data is the first real work: reaching it with a dataset named means every check passed."""
        if dataset_name:
            raise ReachedWork
        return real_load_data(dataset_name, *args, **kwargs)  # none named: its own refusal

    paths = fixtures(work)
    with (
        mock.patch.object(train_module, "load_processor", load_processor),
        mock.patch.object(train_module, "load_training_data", sentinel),
        chdir(work),
    ):
        for k in range(n):
            # output folders that do not exist yet: a used one is another check (resume), not this family's
            base = {**paths, "output_dir": str(work / f"out-{k}"), "use_cpu": "true", "report_to": "none"}
            if rng.random() < 0.6:
                argv, valid, what = flag_case(rng, base)
            else:
                argv, valid, what = recipe_case(rng, base, work, k)
            env = dict(os.environ)
            _classify(train_command, tally, argv, valid, what)
            os.environ.clear()
            os.environ.update(env)  # train() moves a hub token into the environment: none leaks across cases


def _classify(train_command, tally: Tally, argv: list[str], valid: bool, what: str) -> None:
    kind = "recipe" if "--config" in argv and argv[argv.index("--config") + 1].endswith(".yaml") else "flags"
    try:
        with attempt((ReachedWork,)):
            train_command(argv)
    except ReachedWork:
        outcome, detail = ("clean", "") if valid else ("silent", "accepted")
    except Refused as err:
        outcome, detail = ("clean", "") if not valid else ("refused_valid", err.message)
    except Defect as err:
        outcome, detail = "traceback", err.text
    else:
        outcome, detail = "traceback", "train_command returned without reaching the model"
    tally.add(outcome, what, detail, kind)
