"""`make demo`, evaluation part: the tiny checkpoint of the training part scored by `svit eval` on the MME-layout
sample shipped with svit (4 subtasks, 2 images each, drawn shapes: `tools/eval_samples.py` made it) and on the
held-out referring QAs (`test` split) of the built bundled sample. A few dozen training steps make no model:
the scores are near zero; the point is the path (predictions ledger, official results folder, results.json)."""

from __future__ import annotations

import shutil
from pathlib import Path

from svit_dataset.files import check_replaceable
from svit_model.evaluation.run import GroundingOptions, MmeOptions, run_eval

SAMPLE_MME = Path(__file__).parent / "sample" / "mme"
SAMPLE_SUBTASKS = "existence,count,color,commonsense_reasoning"
DEMO_PARTS = ("mme", "grounding")  # one results folder per benchmark, under the demo's output folder


def run_eval_demo(
    checkpoint: str | Path, dataset_dir: str | Path, output_dir: str | Path, print_fn=print
) -> dict:
    """`svit eval mme` on the shipped sample and `svit eval grounding` on `dataset_dir`'s referring-QA test split;
    returns both results documents. `output_dir` is replaced (the demo's checkpoint is new each time)."""
    import torch

    output_dir = Path(output_dir)
    # Replaced whole, so only when it is what this function writes (or empty): never a folder of the user's.
    check_replaceable(
        output_dir, "output_dir", True, "an evaluation demo folder (mme/, grounding/)", _is_eval_demo
    )
    shutil.rmtree(output_dir, ignore_errors=True)
    common = {"model": str(checkpoint), "batch_size": 8, "progress": False}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model generates fastest on one thread (far slower when threads compete)
    try:
        return _run(common, dataset_dir, output_dir, print_fn)
    finally:
        torch.set_num_threads(threads)


def _is_eval_demo(folder: Path) -> bool:
    return folder.is_dir() and {p.name for p in folder.iterdir() if not p.name.startswith(".")} <= set(
        DEMO_PARTS
    )


def _run(common: dict, dataset_dir, output_dir: Path, print_fn) -> dict:
    print_fn(f"svit eval of {common['model']} (a few dozen training steps: scores near 0 are expected)")
    mme = run_eval(
        "mme",
        MmeOptions(**common, data=str(SAMPLE_MME), output=str(output_dir / "mme"), subtasks=SAMPLE_SUBTASKS),
        print_fn=print_fn,
    )
    print_fn(f"  MME results folder (official format): {output_dir / 'mme' / 'mme_results'}")
    grounding = run_eval(
        "grounding",
        GroundingOptions(
            **common, data=str(dataset_dir), output=str(output_dir / "grounding"), max_new_tokens=48
        ),
        print_fn=print_fn,
    )
    print_fn(f"  results: {output_dir / 'mme' / 'results.json'}, {output_dir / 'grounding' / 'results.json'}")
    return {"mme": mme, "grounding": grounding}


__all__ = ["SAMPLE_MME", "run_eval_demo"]
