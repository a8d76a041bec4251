"""Standalone copies of svit modules, for code that runs where svit is not installed: which modules are copied,
under which names, and how their imports are rewritten.

Two places run svit code without the package:
- a checkpoint loaded with `trust_remote_code=True`: transformers imports the checkpoint's `.py` files as modules
  of one package, so a copy imports another relatively (`from .svit_boxes import ...`); the processor writes
  them (`processing_svit_llava.write_processor_code`);
- a Space folder written by `svit space`: its `app.py` runs as a script from the folder, so a copy imports
  another absolutely (`from svit_boxes import ...`).

A copy is its module's source as it is, with every `from <svit module> import` of a module copied beside it
pointed at that copy. After the rewrite no copy may import svit: a module that grows an import of one that is
not copied fails when the copies are written, not later, where svit is missing.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class VendoredModule:
    """An svit module (`module`, its import name) and the module name of its standalone copy (`copy`)."""

    module: str
    copy: str

    @property
    def file_name(self) -> str:
        return f"{self.copy}.py"


BOXES = VendoredModule("svit_dataset.boxes", "svit_boxes")
GROUNDED_TEXT = VendoredModule("svit_dataset.grounded_text", "svit_grounding")
DRAW = VendoredModule("svit_model.draw", "svit_draw")

# What `processing_svit_llava.py` imports beside a checkpoint (its `except ImportError` branch names them).
REMOTE_CODE_MODULES = (BOXES, GROUNDED_TEXT)
# What the Space's `app.py` imports beside it (`svit_draw`, which draws with `svit_boxes`).
SPACE_MODULES = (DRAW, BOXES)

_SVIT_PACKAGES = ("svit_dataset", "svit_model", "svit_cli", "hub_cards")
_SVIT_IMPORT = re.compile(rf"^[ \t]*(?:from|import)[ \t]+(?:{'|'.join(_SVIT_PACKAGES)})\b.*$", re.MULTILINE)


def rewrite_imports(source: str, modules: Sequence[VendoredModule], relative: bool) -> str:
    """`source` with each `from <module> import` of `modules` pointed at its copy: `from .copy import` when
    `relative` (remote code), `from copy import` otherwise (a Space)."""
    prefix = "." if relative else ""
    for vendored in modules:
        source = source.replace(f"from {vendored.module} import", f"from {prefix}{vendored.copy} import")
    return source


def svit_imports(source: str) -> list[str]:
    """The import statements of `source` that need the svit package (each line as written, stripped)."""
    return [match.group(0).strip() for match in _SVIT_IMPORT.finditer(source)]


def vendored_sources(modules: Sequence[VendoredModule], *, relative: bool) -> dict[str, str]:
    """File name -> source of the standalone copy of each of `modules`, importing each other's copies
    (`rewrite_imports`). RuntimeError when a copy would still import svit: the set of copied modules must
    follow what they import."""
    sources = {}
    for vendored in modules:
        source = rewrite_imports(
            inspect.getsource(importlib.import_module(vendored.module)), modules, relative
        )
        if left := svit_imports(source):
            copied = ", ".join(m.module for m in modules)
            raise RuntimeError(
                f"{vendored.module} imports svit in its standalone copy ({left[0]!r}): only {copied} are copied; "
                "add the module it needs to the copied set (svit_model.vendoring) or drop the import"
            )
        sources[vendored.file_name] = source
    return sources


__all__ = [
    "BOXES",
    "DRAW",
    "GROUNDED_TEXT",
    "REMOTE_CODE_MODULES",
    "SPACE_MODULES",
    "VendoredModule",
    "rewrite_imports",
    "svit_imports",
    "vendored_sources",
]
