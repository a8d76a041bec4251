"""`svit train --config RECIPE [--key value ...]`: TRL-style training of SVIT-LLaVA, stage 1 or 2, LoRA or full.

Everything after `train` is TrlParser's (TRL's and transformers' flag names, a YAML training recipe by name or
path: `svit_cli/jobs/train.py`). `--list-recipes` lists the shipped training recipes and accelerate configs;
`--accelerate-config NAME` prints one for `accelerate launch --config_file`; `--plan` prints what the run will need
(parameters, memory per GPU by ZeRO stage, steps, hours) without loading anything.
"""

from __future__ import annotations

import argparse

from svit_cli.args import add_dataclass_flags, add_passthrough_command, dataclass_from_args
from svit_dataset.errors import SvitInputError


def _run(args) -> None:
    argv = args.argv
    if "--list-recipes" in argv:
        from svit_cli.jobs.train import listing

        print(listing())
        return
    if "--accelerate-config" in argv:
        from svit_model.training.accelerate import accelerate_config_text

        at = argv.index("--accelerate-config")
        print(accelerate_config_text(argv[at + 1] if at + 1 < len(argv) else ""), end="")
        return
    if "--plan" in argv:
        from svit_cli.jobs.train import plan_training_run
        from svit_model.training.plan import check_fits

        settings, rest = _plan_settings(argv)
        plan = plan_training_run(rest, settings)
        print(plan.report())
        check_fits(plan)
        return
    from svit_cli.jobs.train import parse_train_arguments, train_with_card

    script_args, training_args, model_args = parse_train_arguments(argv)
    result = train_with_card(script_args, training_args, model_args)
    if training_args.process_index == 0:
        print(result.summary)


class _PlanFlags(argparse.ArgumentParser):
    def error(self, message):
        raise SvitInputError(message)


def _plan_settings(argv: list[str]):
    """(PlanSettings of the `--plan` flags, the other flags): TrlParser reads the rest."""
    from svit_model.training.plan import PlanSettings

    parser = _PlanFlags(prog="svit train", add_help=False)
    add_dataclass_flags(parser, PlanSettings)
    parser.add_argument("--plan", action="store_true")
    known, rest = parser.parse_known_args(argv)
    return dataclass_from_args(PlanSettings, known), rest


def register(sub) -> None:
    add_passthrough_command(
        sub,
        "train",
        "train SVIT-LLaVA with TRL: svit train --config RECIPE [--key value ...]; --list-recipes",
        _run,
    )
