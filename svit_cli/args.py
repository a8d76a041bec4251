"""Command-line flags generated from the library's dataclasses: a default or a help text lives in one place.

transformers' `HfArgumentParser` (what TRL's scripts and `svit train` use) needs every field of a
dataclass to be a flag; our settings dataclasses also hold nested settings (`GenerationConfig.client`)
and parsed values (`RecipeParams.core_split`). This is the same idea for them, in a few lines:

- one flag per field, `--field-name` unless `metadata["flag"]` names another (`images_dir` -> `--images`);
- the type from the annotation (`int`, `float`, `str`, `bool`, `X | None`), or `metadata["parse"]`;
- `metadata["help"]`, `metadata["choices"]`; the default from the field (shown in `--help`);
- `metadata["repeat"]`: the flag given again adds a value; `metadata["many"]`: also several after one flag;
- a field without a default is a required flag; `skip` leaves fields out (set by the caller).

    add_dataclass_flags(parser, BuildOptions)
    options = dataclass_from_args(BuildOptions, args)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

_SIMPLE = {int: int, float: float, str: str}


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _value_type(field: dataclasses.Field, hints: dict[str, Any]):
    hint = hints[field.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    return hint


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, skip: tuple[str, ...] = ()
) -> None:
    """One flag per init field of the dataclass `cls` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init or field.name in skip:
            continue
        meta = field.metadata
        kwargs: dict[str, Any] = {"dest": field.name, "help": meta.get("help", "")}
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        value_type = _value_type(field, hints)
        if value_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if kwargs.get("default") else "store_true"
        else:
            kwargs["type"] = (
                as_flag_type(meta["parse"]) if meta.get("parse") else _SIMPLE.get(value_type, str)
            )
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            kwargs["metavar"] = meta.get("metavar") or flag_of(field).lstrip("-").replace("-", "_").upper()
            if meta.get("repeat"):  # `--flag A --flag B`; argparse appends to a fresh list
                kwargs["action"], kwargs["default"] = "append", None
            elif meta.get("many"):  # `--flag A B C` (and `--flag A --flag B`)
                kwargs["action"], kwargs["nargs"], kwargs["default"] = "extend", "+", None
        default = kwargs.get("default")
        if not (
            default is None
            or default is False
            or default in ("", ())
            or meta.get("repeat")
            or meta.get("many")
        ):
            shown = meta.get("show_default", kwargs["default"])
            kwargs["help"] = f"{kwargs['help']} (default: {shown})".lstrip()
        parser.add_argument(flag_of(field), **kwargs)


def as_flag_type(parse, name: str | None = None):
    """`parse` as an argparse type: our errors become argparse's own (usage, then `svit CMD: error: ...`,
    exit 2); argparse passes only ValueError and its own type on, anything else escapes parse_args as a
    traceback (`--shard 3/2` did)."""
    from svit_dataset.errors import SvitError

    def convert(text: str):
        try:
            return parse(text)
        except SvitError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name or getattr(parse, "__name__", "value")  # argparse names the type in some errors
    return convert


def dataclass_from_args(cls: type, args: argparse.Namespace, **given: Any):
    """`cls(...)` from the parsed flags of its fields, plus `given` values (for skipped fields)."""
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in given or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.metadata.get("repeat") or f.metadata.get("many"):
            if value is None:
                continue  # not given: the field's default
            value = tuple(value)
        values[f.name] = value
    return cls(**values, **given)


# A sub-command that parses its own arguments (TrlParser for `svit train`, eval's sub-commands): argparse
# reads no option of it, because no character is a prefix of its options, and hands it every word.
_NO_OPTIONS = "\x00"


def add_passthrough_command(sub, name: str, help: str, func) -> None:
    """`svit NAME ...`: everything after NAME reaches `func(args)` as `args.argv`, untouched."""
    parser = sub.add_parser(name, help=help, add_help=False, prefix_chars=_NO_OPTIONS)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(func=func)
