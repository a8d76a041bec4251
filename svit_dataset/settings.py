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
