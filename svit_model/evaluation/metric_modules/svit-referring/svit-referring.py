"""SVIT's referring QAs as an `evaluate` metric (svit_model.evaluation.svit_referring).

Predictions and references are grounded answers, lists of `{"phrase", "boxes"}`, boxes `[x1, y1, x2, y2]` in
[0, 1] of the original image; returns `phrase_recall`, `mean_entity_iou`, `entity_acc@0.5` over the reference
entities, and their count `entities`.

    svit_referring = evaluate.load(svit_model.evaluation.metrics.metric_path("svit-referring"))
    svit_referring.compute(
        predictions=[[{"phrase": "cat", "boxes": [[0.1, 0.1, 0.5, 0.5]]}]],
        references=[[{"phrase": "cat", "boxes": [[0.1, 0.1, 0.5, 0.6]]}]],
    )
"""

import datasets
import evaluate

from svit_model.evaluation.svit_referring import grounded_answer_scores, grounded_qa_metrics

_BOX = datasets.Sequence(datasets.Value("float64"))
_ENTITIES = datasets.List({"phrase": datasets.Value("string"), "boxes": datasets.List(_BOX)})


def _entities(answer):
    return [(entity["phrase"], entity["boxes"]) for entity in answer]


class SvitReferring(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="grounded answers: lists of {phrase, boxes}, boxes in [0, 1] of the original image",
            features=datasets.Features({"predictions": _ENTITIES, "references": _ENTITIES}),
        )

    def _compute(self, predictions, references, threshold=0.5):
        scores = [
            grounded_answer_scores(_entities(p), _entities(r))
            for p, r in zip(predictions, references, strict=True)
        ]
        return grounded_qa_metrics(scores, threshold)
