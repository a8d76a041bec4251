"""The `svit train` command line: flags and a YAML recipe into the three argument dataclasses, then `train()`.

Kept beside the library so that `svit_cli/train.py` only hands over `argv`. Usage errors are one line
(`svit train: error: ...`, exit 2), as every svit command's.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

from trl import TrlParser

from svit_dataset.errors import SvitInputError
from svit_model.training.accelerate import (
    accelerate_config_text,
    deepspeed_config_path,
    list_accelerate_configs,
)
from svit_model.training.arguments import TRAIN_ARGUMENT_TYPES
from svit_model.training.recipes import list_recipes, load_recipe


class SvitTrainParser(TrlParser):
    """TrlParser (dataclasses + `--config YAML`) whose errors are one line."""

    def error(self, message):
        print(f"svit train: error: {message}", file=sys.stderr)
        sys.exit(2)


def make_parser() -> SvitTrainParser:
    return SvitTrainParser(TRAIN_ARGUMENT_TYPES, prog="svit train")


def listing() -> str:
    recipes = list_recipes()
    width = max(map(len, recipes))
    lines = ["Recipes (svit train --config NAME):"]
    lines += [f"  {name:{width}s}  {text}" for name, text in recipes.items()]
    lines.append(
        "Accelerate configs (svit train --accelerate-config NAME > NAME.yaml; accelerate launch --config_file):"
    )
    lines += [f"  {name:{width}s}  {text}" for name, text in list_accelerate_configs().items()]
    return "\n".join(lines)


_NAMED = ("--config", "--deepspeed")  # flags that take a shipped name as well as a path


def _is_infinite(text: str) -> bool:
    try:
        return math.isinf(float(text))
    except ValueError:
        return False


def parse_train_arguments(argv: list[str]):
    """(script_args, training_args, model_args) of `svit train` flags; `--config` takes a recipe name or path."""
    # `--config=NAME` and `--deepspeed=NAME` as two tokens, so that both forms resolve names below.
    argv = [
        part
        for arg in argv
        for part in (arg.split("=", 1) if arg.startswith(tuple(f"{flag}=" for flag in _NAMED)) else [arg])
    ]
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            make_parser().error("--config needs a recipe name or a YAML path")
        path, _ = load_recipe(argv[at + 1])  # unknown names, keys and wrongly typed values stop here
        argv[at + 1] = str(path)
    if "--deepspeed" in argv:  # a shipped DeepSpeed config by name: --deepspeed zero3
        at = argv.index("--deepspeed")
        if at + 1 < len(argv) and not argv[at + 1].endswith(".json"):
            argv[at + 1] = str(deepspeed_config_path(argv[at + 1]))
    try:
        return make_parser().parse_args_and_config(argv)
    except OverflowError:  # the dataclasses' int() of an infinite value (`--save_steps inf`)
        infinite = [
            f"{flag} {value}" for flag, value in zip(argv, argv[1:], strict=False) if _is_infinite(value)
        ]
        raise SvitInputError(
            f"{', '.join(infinite) or 'a flag'}: not a finite number; pass a finite value"
        ) from None
    # the dataclasses' own checks (bf16 without a GPU, inconsistent strategies...)
    except ValueError as err:
        raise SvitInputError(str(err).strip().splitlines()[0]) from None


def train_command(argv: list[str], card_writer: Callable | None = None, print_fn=print):
    """Run `svit train ARGV`; returns the `TrainResult` (None for the listing options)."""
    if "--list-recipes" in argv:
        print_fn(listing())
        return None
    if "--accelerate-config" in argv:
        at = argv.index("--accelerate-config")
        print_fn(accelerate_config_text(argv[at + 1] if at + 1 < len(argv) else ""), end="")
        return None
    script_args, training_args, model_args = parse_train_arguments(argv)
    from svit_model.training.train import train  # after parsing: --help stays quick

    result = train(script_args, training_args, model_args, card_writer=card_writer)
    if training_args.process_index == 0:
        print_fn(result.summary)
    return result


__all__ = ["listing", "make_parser", "parse_train_arguments", "train_command"]
