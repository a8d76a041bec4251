"""The `svit` command. Each subcommand parses its arguments and calls one library function.

Command groups live in their own modules, each with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from svit_dataset.errors import SvitError

# One module per command group; each adds its subcommands with `register(subparsers)`.
COMMAND_MODULES = [
    "svit_cli.data",
    "svit_cli.stats",
    "svit_cli.generate",
    "svit_cli.model",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svit", description="SVIT data, recipes and models for the HF ecosystem."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except SvitError as err:
        print(f"svit {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
