"""POPE as an `evaluate` metric: LLaVA's `eval_pope.py` (svit_model.evaluation.pope.pope_metrics).

    pope = evaluate.load(svit_model.evaluation.metrics.metric_path("pope"))
    pope.compute(predictions=["Yes", "No, there is not."], references=["yes", "no"])

Predictions are the model's answers (stripped); `missing` (one bool per prediction) marks answers that do
not exist (an image that did not load), counted wrong; evaluate's inputs cannot hold None. Returns accuracy,
precision, recall, F1, yes_ratio and the confusion counts; with `categories`, the same per category under
`categories` too, and `mean_f1`: the mean of the categories' F1, LLaVA's POPE number.
"""

import datasets
import evaluate

from svit_model.evaluation.pope import pope_mean_f1, pope_metrics

_CITATION = """@inproceedings{li2023pope, title={Evaluating Object Hallucination in Large Vision-Language Models},
author={Li, Yifan and others}, booktitle={EMNLP}, year={2023}}"""


class Pope(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description="predictions: answers; references: yes/no labels; missing, categories: optional",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, categories=None, missing=None):
        if missing is not None:
            predictions = [None if gone else p for p, gone in zip(predictions, missing, strict=True)]
        result = pope_metrics(predictions, references)
        if categories is not None:
            split = {}
            for pred, label, category in zip(predictions, references, categories, strict=True):
                split.setdefault(category, ([], []))
                split[category][0].append(pred)
                split[category][1].append(label)
            result["categories"] = {name: pope_metrics(p, lab) for name, (p, lab) in split.items()}
            result["mean_f1"] = pope_mean_f1(result["categories"])
        return result
