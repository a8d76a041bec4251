"""`setting(...)`: a dataclass field with the help text of its command-line flag, so that a setting's
default and help live in one place, the library's dataclass (the CLI generates its flags from them,
svit_cli/args.py).

    @dataclasses.dataclass
    class BuildOptions:
        test_fraction: float = setting(0.1, "share of images held out")
        images_dir: str | None = setting(None, "VG folder", flag="--images")
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svit_dataset.errors import SvitInputError


def setting(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A field with `default` (none: a required setting) and flag metadata: help, flag, choices, parse,
    metavar, repeat, many, show_default."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def check_number(
    flag: str,
    value: float | int | None,
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    optional: bool = False,
) -> None:
    """Raise SvitInputError naming `flag` unless `value` is a finite number in [low, high] (`above`: in
    (low, high]). NaN fails every comparison, so a gate given NaN would silently never trip: it is
    refused here with infinities, before any work. `optional`: None passes (a setting left unset). The rule is
    `Range`'s; the message is worded for the data commands' flags."""
    if not Range(low=low, high=high, low_open=above, optional=optional).accepts(value):
        lo, hi = _shown(low), _shown(high)
        if lo is not None and hi is not None:
            wanted = f"above {lo} and at most {hi}" if above else f"from {lo} to {hi}"
        elif lo is not None:
            wanted = f"above {lo}" if above else f"{lo} or more"
        else:
            wanted = "a number"
        if isinstance(value, float) and math.isinf(value):
            wanted += " and finite"
        raise SvitInputError(f"{flag} must be {wanted}, got {value!r}")


def _shown(bound: float | None) -> str | None:
    """A bound as a person writes it: 1 not 1.0, 1048576 not 1.04858e+06."""
    return None if bound is None else f"{bound:g}" if bound != int(bound) else str(int(bound))


# --- numeric ranges: the one rule of which numbers a flag accepts ----------------------------------------------


@dataclass(frozen=True)
class Range:
    """The accepted values of a numeric argument: finite, within [low, high] (an end excluded when `open`),
    an integer where `integer`, plus `also` (sentinels such as max_steps' -1), and None where `optional`.
    `step_or_ratio`: transformers reads a value below 1 as a fraction of the run and one from 1 on as a step
    count, which must then be whole (`--save_steps 2.5` would be cut to 2 without a word)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False
    also: tuple = ()
    step_or_ratio: bool = False

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if value in self.also:
            return True
        # an int past 2**1024 has no float: finite by nature
        if not (isinstance(value, int) or math.isfinite(value)) or (self.integer and value != int(value)):
            return False
        if self.step_or_ratio and value >= 1 and value != int(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        text = f"{kind} {' and '.join(bounds)}".strip()
        if self.step_or_ratio:
            text += " (below 1: a fraction of the run; from 1 on: a whole number of steps)"
        for value in self.also:
            text += f", or {value}"
        return text + (", or unset" if self.optional else "")


def out_of_range(flag: str, value, accepted: Range) -> str | None:
    """The error text of `value` for `flag` (naming the flag and the accepted values), or None if it is fine."""
    if accepted.accepts(value):
        return None
    return f"{flag} {value!r}: out of range; expected {accepted.describe()}"


def check_value(flag: str, value, accepted: Range) -> None:
    """Raise `SvitInputError` unless `value` is one of `accepted` (a `Range`)."""
    problem = out_of_range(flag, value, accepted)
    if problem:
        raise SvitInputError(problem)


def range_type(accepted: Range, parse: Callable[[str], object] = int) -> Callable[[str], object]:
    """An argparse `type` that parses a flag's text and checks it against `accepted` (argparse names the
    flag in its one-line error)."""
    import argparse

    def convert(text: str):
        value = parse(text)
        if not accepted.accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected {accepted.describe()}")
        return value

    convert.__name__ = parse.__name__
    return convert
