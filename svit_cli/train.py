"""`svit train --config RECIPE [--key value ...]`: TRL-style training of SVIT-LLaVA, stage 1 or 2, LoRA or full.

Everything after `train` goes to `svit_model.training.command.train_command` (TrlParser: TRL's and transformers'
flag names, a YAML recipe by name or path). `--list-recipes` lists the shipped recipes and accelerate configs;
`--accelerate-config NAME` prints one for `accelerate launch --config_file`.
"""

from __future__ import annotations

import argparse

# This subparser reads no option itself: with no usable prefix character, every flag lands in `argv`.
_NO_OPTIONS = "\x00"


def _run(args) -> None:
    from hub_cards.model_card import write_model_card
    from svit_model.training.command import train_command

    train_command(args.argv, card_writer=write_model_card)


def register(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="train SVIT-LLaVA with TRL: svit train --config RECIPE [--key value ...]; --list-recipes",
        add_help=False,
        prefix_chars=_NO_OPTIONS,
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_run)
