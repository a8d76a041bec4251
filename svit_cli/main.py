"""The `svit` command. Each subcommand parses its arguments and calls one library function, or one job of
svit_cli/jobs/ where several layers run in order (build then card then push, the main job of `svit demo`).

Command groups live in their own modules, each with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from svit_dataset.errors import describe_error
from svit_dataset.secrets import install_log_redaction

# One module per command group; each adds its subcommands with `register(subparsers)`.
COMMAND_MODULES = [
    "svit_cli.data",
    "svit_cli.stats",
    "svit_cli.generate",
    "svit_cli.model",
    "svit_cli.train",
    "svit_cli.eval",
    "svit_cli.space",
    "svit_cli.card",
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
    install_log_redaction()
    # The command's words as the user typed them, for the error line: `svit export llava`, `svit eval mme`
    # (train and eval parse their own sub-commands: the first word of what they were given).
    passed_on = (getattr(args, "argv", None) or [])[:1]
    passed_on = [word for word in passed_on if not word.startswith("-")]
    command = " ".join(
        filter(
            None,
            [args.command, getattr(args, "model_command", None), getattr(args, "format", None), *passed_on],
        )
    )
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(
            f"svit {command}: interrupted; run the same command again to resume or rebuild", file=sys.stderr
        )
        return 130
    except Exception as err:  # every error ends as one line; -v shows the traceback
        message, users = describe_error(err)
        if args.verbose:
            traceback.print_exc()
        if users:
            print(f"svit {command}: error: {message}", file=sys.stderr)
            return 2
        print(
            f"svit {command}: internal error: {message}. Run again with -v for the traceback and report it.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
