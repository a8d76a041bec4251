"""Facts about SVIT itself that data files, cards and checkpoints all state: one home for each."""

from __future__ import annotations

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
# is written from it, and `svit push` knows a training run by it. Here because cards and the CLI import no torch.
RUN_FACTS_FILE = "svit_run.json"
