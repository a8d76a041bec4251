"""`svit train --config RECIPE [--key value ...]`: TRL-style training of SVIT-LLaVA, stage 1 or 2, LoRA or full.

Everything after `train` goes to `svit_model.training.command.train_command` (TrlParser: TRL's and transformers'
flag names, a YAML recipe by name or path). `--list-recipes` lists the shipped recipes and accelerate configs;
`--accelerate-config NAME` prints one for `accelerate launch --config_file`.
"""

from __future__ import annotations

from svit_cli.args import add_passthrough_command


def _run(args) -> None:
    from hub_cards.model_card import write_model_card
    from svit_model.training.command import train_command

    train_command(args.argv, card_writer=write_model_card)


def register(sub) -> None:
    add_passthrough_command(
        sub,
        "train",
        "train SVIT-LLaVA with TRL: svit train --config RECIPE [--key value ...]; --list-recipes",
        _run,
    )
