"""MME as an `evaluate` metric: the official `eval_tool/calculation.py` rules (svit_model.evaluation.mme).

    mme = evaluate.load(svit_model.evaluation.metrics.metric_path("mme"))
    mme.compute(predictions=["Yes", "no."], references=["Yes", "No"], subtasks=["existence", "existence"])

Predictions are the answers as written in the results file's 4th column; the two questions of an image are
paired by `image_names`, or, without them, are adjacent, as the official tool pairs them. Returns `perception`, `cognition`, `subtasks` (name -> score),
per-subtask `details` (acc, acc+, yes/no/other counts) and the predictions' `yes_no_ratio`.
"""

import datasets
import evaluate

from svit_model.evaluation.mme import mme_results_line, mme_subtask_metrics, mme_totals

_CITATION = """@article{fu2023mme, title={MME: A Comprehensive Evaluation Benchmark for Multimodal Large Language Models},
author={Fu, Chaoyou and others}, journal={arXiv preprint arXiv:2306.13394}, year={2023}}"""


class Mme(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description="predictions: answers; references: Yes/No; subtasks: each question's subtask",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, subtasks, image_names=None):
        # the two questions of an image are paired by its name; without names, by position (adjacent pairs)
        image_names = image_names or [f"#{i // 2}" for i in range(len(predictions))]
        lines = {}
        for pred, gt, subtask, image in zip(predictions, references, subtasks, image_names, strict=True):
            lines.setdefault(subtask, []).append(mme_results_line(image, "", gt, pred))
        return mme_totals({name: mme_subtask_metrics(found, name) for name, found in lines.items()})
