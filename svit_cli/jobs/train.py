"""`svit train`: its arguments (flags and a YAML training recipe into the three argument dataclasses), the
listing of shipped training recipes and accelerate configs, and the run with its model card: train
(`svit_model.training.train.train`), then the card (hub_cards, from the run's `svit_run.json`), then the final push
when `--push_to_hub` asks.

The card is also written whenever the trainer saves or pushes a checkpoint (`RunCardCallback`, a transformers
`TrainerCallback`), so that a run's folder and its Hub repo carry a card from the first checkpoint on.
"""

from __future__ import annotations

import math
from pathlib import Path

from transformers import TrainerCallback
from trl import TrlParser

from hub_cards.model_card import write_run_card
from svit_dataset.errors import SvitInputError
from svit_dataset.facts import holds_run_facts
from svit_model.training.accelerate import deepspeed_config_path, list_accelerate_configs
from svit_model.training.arguments import TRAIN_ARGUMENT_TYPES
from svit_model.training.training_recipes import list_training_recipes, load_training_recipe

# What the final push leaves out of the run folder: the trainer's own choice (transformers' `Trainer.push_to_hub`),
# so that the repo holds what it held when the trainer pushed: resumable checkpoints and private files stay home.
FINAL_PUSH_IGNORED = ["_*", "checkpoint-*"]
FINAL_PUSH_MESSAGE = "End of training"


class SvitTrainParser(TrlParser):
    """TrlParser (dataclasses + `--config YAML`) whose errors are `SvitInputError`s: one line, exit 2."""

    def error(self, message):
        raise SvitInputError(message)


def make_parser() -> SvitTrainParser:
    return SvitTrainParser(TRAIN_ARGUMENT_TYPES, prog="svit train")


def listing() -> str:
    """`svit train --list-recipes`: the shipped training recipes and accelerate configs, one a line."""
    recipes = list_training_recipes()
    width = max(map(len, recipes))
    lines = ["Recipes (svit train --config NAME):"]
    lines += [f"  {name:{width}s}  {text}" for name, text in recipes.items()]
    lines.append(
        "Accelerate configs (svit train --accelerate-config NAME > NAME.yaml; accelerate launch --config_file):"
    )
    lines += [f"  {name:{width}s}  {text}" for name, text in list_accelerate_configs().items()]
    return "\n".join(lines)


_NAMED = ("--config", "--deepspeed")  # flags that take a shipped name as well as a path


def plan_training_run(argv: list[str], settings):
    """`svit train ... --plan`: the run's plan (`svit_model.training.plan`) for the hardware in `settings`
    (`PlanSettings`), made from the recipe and flags without loading or training anything."""
    from svit_model.training.plan import make_plan

    # A plan is made anywhere for a run on GPUs: transformers refuses `bf16` where no GPU is, unless told CPU.
    script_args, training_args, model_args = parse_train_arguments([*argv, "--use_cpu", "true"])
    recipe = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else "the command line's run"
    return make_plan(script_args, training_args, model_args, settings, recipe)


def _is_infinite(text: str) -> bool:
    try:
        return math.isinf(float(text))
    except ValueError:
        return False


def parse_train_arguments(argv: list[str]):
    """(script_args, training_args, model_args) of `svit train` flags; `--config` takes a training recipe's name
    or a YAML path, `--deepspeed` a shipped DeepSpeed config's name or a JSON path. Usage errors raise
    `SvitInputError` (one line)."""
    # `--config=NAME` and `--deepspeed=NAME` as two tokens, so that both forms resolve names below.
    argv = [
        part
        for arg in argv
        for part in (arg.split("=", 1) if arg.startswith(tuple(f"{flag}=" for flag in _NAMED)) else [arg])
    ]
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            raise SvitInputError("--config needs a recipe name or a YAML path")
        path, _ = load_training_recipe(argv[at + 1])  # unknown names, keys and wrongly typed values stop here
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


class RunCardCallback(TrainerCallback):
    """Writes the run's model card (README.md, from its `svit_run.json`) before each checkpoint push and after
    each checkpoint save, on the main process: the trainer saves the run's facts into the run folder just before
    (`SvitTrainer._save_checkpoint`)."""

    def _write(self, args, state) -> None:
        if state.is_world_process_zero and holds_run_facts(args.output_dir):
            write_run_card(args.output_dir)

    def on_push_begin(self, args, state, control, **kwargs):
        self._write(args, state)

    def on_save(self, args, state, control, **kwargs):
        self._write(args, state)


def push_run(output_dir: str | Path, repo_id: str, revision: str | None = None) -> str:
    """Upload a finished run folder to its model repo as the trainer's final push does: one commit, everything but
    the checkpoints and private files; returns the commit URL. The token is huggingface_hub's (HF_TOKEN: `train`
    puts `--hub_token` there)."""
    from huggingface_hub import HfApi

    commit = HfApi().upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        commit_message=FINAL_PUSH_MESSAGE,
        ignore_patterns=FINAL_PUSH_IGNORED,
        revision=revision,
    )
    return str(getattr(commit, "commit_url", commit))


def train_with_card(script_args, training_args, model_args, callbacks: list | None = None):
    """Train (`svit_model.training.train.train`), write the run's model card, and push the run with its card when
    `--push_to_hub` asks; returns the `TrainResult`. Under `accelerate launch` every process calls this; the card
    and the push are the main process's."""
    from svit_model.training.train import train

    result = train(script_args, training_args, model_args, callbacks=[RunCardCallback(), *(callbacks or [])])
    if training_args.process_index != 0:
        return result
    write_run_card(result.output_dir)
    if result.hub_model_id is not None:
        push_run(result.output_dir, result.hub_model_id, training_args.hub_revision)
    return result


__all__ = [
    "RunCardCallback",
    "SvitTrainParser",
    "listing",
    "make_parser",
    "parse_train_arguments",
    "push_run",
    "train_with_card",
]
