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
from typing import Any


def setting(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A field with `default` (none: a required setting) and flag metadata: help, flag, choices, parse,
    metavar, repeat, show_default."""
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
    refused here with infinities, before any work. `optional`: None passes (a setting left unset)."""
    import math

    from svit_dataset.errors import SvitInputError

    if value is None and optional:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (isinstance(value, int) or math.isfinite(value))  # an int past 2**1024 has no float
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
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
