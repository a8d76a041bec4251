"""The main job's evaluation part (`make demo`): the tiny checkpoint of the training part scored by `svit eval`
on the MME-layout sample shipped with svit (4 subtasks, 2 images each, drawn shapes) and on the held-out
referring QAs (`test` split) of the built bundled sample. A few dozen training steps make no model: the scores
are near zero; the point is the path (predictions ledger, official results folder, results.json)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from svit_dataset.files import check_replaceable
from svit_model.evaluation.mme import SHIPPED_SAMPLE as SAMPLE_MME
from svit_model.evaluation.mme import SHIPPED_SAMPLE_SUBTASKS, MmeOptions
from svit_model.evaluation.run import run_eval
from svit_model.evaluation.svit_referring import SvitReferring, SvitReferringOptions

# part -> the benchmark it runs; one results folder per part, under the part's output folder
DEMO_PARTS = {"mme": "mme", "grounding": SvitReferring.name}


def run_eval_part(
    checkpoint: str | Path,
    dataset_dir: str | Path,
    output_dir: str | Path,
    print_fn: Callable[[str], None] = print,
) -> dict:
    """`svit eval mme` on the shipped sample and `svit eval svit-referring` on `dataset_dir`'s referring-QA test
    split; returns both results documents, by part (`mme`, `grounding`: their folders under `output_dir`).
    `output_dir` is replaced (the demo's checkpoint is new each time)."""
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
        DEMO_PARTS["mme"],
        MmeOptions(
            **common, data=str(SAMPLE_MME), output=str(output_dir / "mme"), subtasks=SHIPPED_SAMPLE_SUBTASKS
        ),
        print_fn=print_fn,
    )
    print_fn(f"  MME results folder (official format): {output_dir / 'mme' / 'mme_results'}")
    grounding = run_eval(
        DEMO_PARTS["grounding"],
        SvitReferringOptions(
            **common, data=str(dataset_dir), output=str(output_dir / "grounding"), max_new_tokens=48
        ),
        print_fn=print_fn,
    )
    print_fn(f"  results: {output_dir / 'mme' / 'results.json'}, {output_dir / 'grounding' / 'results.json'}")
    return {"mme": mme, "grounding": grounding}


__all__ = ["SAMPLE_MME", "run_eval_part"]
