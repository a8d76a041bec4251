"""Grounding as an `evaluate` metric (svit_model.evaluation.scoring).

Config `refcoco` (default): one predicted box per referring expression against its reference box, both
`[x1, y1, x2, y2]` in [0, 1] of the original image; an empty prediction is missing and counted wrong. Returns
`acc@0.5` (IoU >= 0.5), `mean_iou`, `missing`, `total`.

Config `referring_qa`: predictions and references are grounded answers, lists of `{"phrase", "boxes"}`; returns
`phrase_recall`, `mean_entity_iou`, `entity_acc@0.5` over the reference entities.

    grounding = evaluate.load(svit_model.evaluation.metrics.metric_path("grounding"))
    grounding.compute(predictions=[[0.1, 0.1, 0.5, 0.5]], references=[[0.1, 0.1, 0.5, 0.6]])
"""

import datasets
import evaluate

from svit_model.evaluation.scoring import grounded_answer_scores, grounded_qa_metrics, referring_metrics

_BOX = datasets.Sequence(datasets.Value("float64"))
_ENTITIES = datasets.List({"phrase": datasets.Value("string"), "boxes": datasets.List(_BOX)})


def _entities(answer):
    return [(entity["phrase"], entity["boxes"]) for entity in answer]


class Grounding(evaluate.Metric):
    def _info(self):
        kind = _ENTITIES if self.config_name == "referring_qa" else _BOX
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="boxes [x1, y1, x2, y2] in [0, 1] of the original image (see the description)",
            features=datasets.Features({"predictions": kind, "references": kind}),
        )

    def _compute(self, predictions, references, threshold=0.5):
        if self.config_name == "referring_qa":
            scores = [
                grounded_answer_scores(_entities(p), _entities(r))
                for p, r in zip(predictions, references, strict=True)
            ]
            return grounded_qa_metrics(scores, threshold)
        return referring_metrics([p or None for p in predictions], references, threshold)
