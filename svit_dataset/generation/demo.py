"""The main job's generation step: a `--dry-run` of `svit generate` on the bundled annotations."""

from __future__ import annotations

import tempfile

from svit_dataset import bundled
from svit_dataset.generation.client import ClientSettings
from svit_dataset.generation.run import GenerationConfig, SceneSource, format_plan, plan_generation


def run_generate_demo(print_fn=print, model: str = "gpt-4o-mini") -> dict:
    """Render every prompt of the bundled sample's VG + COCO annotations and price them; calls no LLM."""
    with tempfile.TemporaryDirectory() as scratch:  # a dry run writes nothing; this just names no real folder
        config = GenerationConfig(output_dir=scratch, client=ClientSettings(model=model), progress=False)
        source = SceneSource(
            annotations=bundled.ANNOTATIONS_DIR,
            coco_captions=(bundled.ANNOTATIONS_DIR / "captions_train2017.json",),
        )
        plan = plan_generation(source, config)
    print_fn(
        "svit generate --dry-run on the bundled annotations (VG-style objects and regions, COCO captions):"
    )
    print_fn(format_plan(plan))
    return plan
