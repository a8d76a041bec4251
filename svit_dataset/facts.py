"""Facts about SVIT itself that data files, cards and checkpoints all state, and the facts a training run
records: one home for each. Imports no torch (cards and the CLI read run facts too)."""

from __future__ import annotations

import os
from pathlib import Path

from svit_dataset.jsonlist import json_object_or_empty, read_json_object

SVIT_CITATION = """@article{zhao2023svit,
  title={SVIT: Scaling up Visual Instruction Tuning},
  author={Zhao, Bo and Wu, Boya and He, Muyang and Huang, Tiejun},
  journal={arXiv preprint arXiv:2307.04087},
  year={2023}
}"""
SVIT_PAPER_URL = "https://arxiv.org/abs/2307.04087"
SVIT_DATA_HOMEPAGE = "https://huggingface.co/datasets/BAAI/SVIT"
SVIT_DATA_LICENSE = "cc-by-4.0"  # the released data; upstream's code is MIT
# What `svit train` saves of a run beside its weights (stage, data, hyper-parameters, counts): the model card
# is written from it, and `svit push` knows a training run by it.
RUN_FACTS_FILE = "svit_run.json"
# What `svit eval` writes and the model card reads: results.json, whose `model_index` list holds the entries its
# benchmark states (huggingface_hub.EvalResult's keyword arguments plus `whole`). Here because cards import no torch.
RESULTS_FILE = "results.json"
MODEL_INDEX_KEY = "model_index"
RUN_FACTS_FIX = "pass a folder written by `svit train` (it saves its facts there)"


def holds_run_facts(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a training run's facts: how a finished `svit train` run is told from other
    folders (a built dataset, a bare checkpoint)."""
    return (Path(folder) / RUN_FACTS_FILE).is_file()


def read_run_facts(run_dir: str | os.PathLike, fix: str = RUN_FACTS_FIX) -> dict:
    """The facts `svit train` recorded in `run_dir`; SvitInputError naming the file and ending with `fix` when
    they are missing, not JSON, nested too deep or not an object."""
    return read_json_object(Path(run_dir) / RUN_FACTS_FILE, fix)


def recorded_run_facts(run_dir: str | os.PathLike) -> dict:
    """The facts recorded in `run_dir`, or {} when there are none that read (missing, damaged, hand-edited
    into something else): for hints and for following a run's origin, where unknown is an answer."""
    return json_object_or_empty(Path(run_dir) / RUN_FACTS_FILE)


__all__ = [
    "RUN_FACTS_FILE",
    "MODEL_INDEX_KEY",
    "RESULTS_FILE",
    "RUN_FACTS_FIX",
    "SVIT_CITATION",
    "SVIT_DATA_HOMEPAGE",
    "SVIT_DATA_LICENSE",
    "SVIT_PAPER_URL",
    "holds_run_facts",
    "read_run_facts",
    "recorded_run_facts",
]
