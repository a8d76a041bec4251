"""SVIT-LLaVA as an lmms-eval model: `python -m lmms_eval --model svit_llava --model_args pretrained=RUN ...`.

lmms-eval finds the model through the `lmms_eval.models` entry point of svit's pyproject.toml, which names
`MANIFEST` below; the model class (`model.SvitLlava`) is imported only when lmms-eval resolves `svit_llava`.
Nothing else in svit imports this package: lmms-eval is an optional extra (`pip install "svit[lmms]"`).
"""

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(
    model_id="svit_llava", simple_class_path="svit_model.lmms_eval_plugin.model.SvitLlava"
)
