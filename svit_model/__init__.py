"""SVIT-LLaVA in transformers: configuration, model and grounding processor, registered with the Auto classes.

`import svit_model` is quick: it imports neither torch nor transformers, so the modules of this package that
need neither (the drawing, the Space's app) load without them. The classes load on first use
(`svit_model.SvitLlavaConfig`, `from svit_model import SvitLlavaProcessor`).

`svit_llava` is registered with `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor`,
and the classes are marked for `auto_map` (so saved checkpoints also load with `trust_remote_code=True` where
svit is not installed), as soon as transformers is there: at `import svit_model` when transformers is already
imported, else right after transformers' own import (an import hook, `_RegisterAfterImport`). So, as before,

    import svit_model
    from transformers import AutoModelForImageTextToText
    model = AutoModelForImageTextToText.from_pretrained("out/svit-v1.5-7b")
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

# Public name -> the module that defines it.
_PUBLIC = {
    "SvitLlavaConfig": "svit_model.configuration_svit_llava",
    "SvitLlavaForConditionalGeneration": "svit_model.modeling_svit_llava",
    "SvitLlavaModel": "svit_model.modeling_svit_llava",
    "SvitLlavaPreTrainedModel": "svit_model.modeling_svit_llava",
    "SvitLlavaProcessor": "svit_model.processing_svit_llava",
    "build": "svit_model.building",
    "build_svit_llava": "svit_model.building",
}
# The modules whose classes are registered: none may be half-imported when the registration imports them.
_CLASS_MODULES = (
    "svit_model.configuration_svit_llava",
    "svit_model.modeling_svit_llava",
    "svit_model.processing_svit_llava",
)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'svit_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


def register_auto_classes() -> None:
    """Register `svit_llava` with the Auto classes and mark the classes for `auto_map` (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from svit_model.configuration_svit_llava import SvitLlavaConfig
    from svit_model.modeling_svit_llava import SvitLlavaForConditionalGeneration, SvitLlavaModel
    from svit_model.processing_svit_llava import SvitLlavaProcessor

    AutoConfig.register(SvitLlavaConfig.model_type, SvitLlavaConfig, exist_ok=True)
    AutoModel.register(SvitLlavaConfig, SvitLlavaModel, exist_ok=True)
    AutoModelForImageTextToText.register(SvitLlavaConfig, SvitLlavaForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(SvitLlavaConfig, SvitLlavaProcessor, exist_ok=True)
    # `save_pretrained` then writes `auto_map` and copies the code files (the processor does it itself, see
    # `SvitLlavaProcessor.save_pretrained`: its copier also vendors the svit box and grounding modules).
    SvitLlavaConfig.register_for_auto_class()
    SvitLlavaForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Calls `register_auto_classes` once transformers has been imported and no class module of svit_model is
    half-imported: each import of transformers or of a class module tries when it ends (a class module that
    imports transformers is finished first). Leaves `sys.meta_path` once the classes are registered.

    It finds nothing itself: for the modules it watches it asks the other finders, and wraps the spec's
    `exec_module` to know when the import ends."""

    watched = ("transformers", *_CLASS_MODULES)

    def __init__(self) -> None:
        self.importing: set[str] = set()
        self.registering = False

    def find_spec(self, name, path=None, target=None):
        if name not in self.watched:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader.exec_module = self._watching(name, spec.loader.exec_module)
                return spec
        return None

    def _watching(self, name: str, exec_module):
        def exec_then_register(module) -> None:
            self.importing.add(name)
            try:
                exec_module(module)
            finally:
                self.importing.discard(name)
            self.register_when_ready()

        return exec_then_register

    def register_when_ready(self) -> None:
        half_imported = self.importing & set(self.watched)
        if self.registering or half_imported or "transformers" not in sys.modules:
            return
        self.registering = True
        try:
            register_auto_classes()
        finally:
            self.registering = False
        if self in sys.meta_path:
            sys.meta_path.remove(self)


if "transformers" in sys.modules:
    register_auto_classes()
else:
    sys.meta_path.insert(0, _RegisterAfterImport())


__all__ = [
    "SvitLlavaConfig",
    "SvitLlavaForConditionalGeneration",
    "SvitLlavaModel",
    "SvitLlavaPreTrainedModel",
    "SvitLlavaProcessor",
    "build",
    "build_svit_llava",
    "register_auto_classes",
]
