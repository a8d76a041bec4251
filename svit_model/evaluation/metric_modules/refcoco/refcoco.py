"""RefCOCO as an `evaluate` metric (svit_model.evaluation.refcoco.referring_metrics).

One predicted box per referring expression against its reference box, both `[x1, y1, x2, y2]` in [0, 1] of the
original image; an empty prediction is missing and counted wrong. `protocol`: `strict` (the box as written, as
lmms-eval scores it; the default) or `lenient` (clamped, corners ordered). Returns `acc@0.5` (IoU >= 0.5),
`mean_iou`, `missing`, `total`, `protocol`.

    refcoco = evaluate.load(svit_model.evaluation.metrics.metric_path("refcoco"))
    refcoco.compute(predictions=[[0.1, 0.1, 0.5, 0.5]], references=[[0.1, 0.1, 0.5, 0.6]])
"""

import datasets
import evaluate

from svit_model.evaluation.refcoco import referring_metrics

_BOX = datasets.Sequence(datasets.Value("float64"))


class Refcoco(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="boxes [x1, y1, x2, y2] in [0, 1] of the original image",
            features=datasets.Features({"predictions": _BOX, "references": _BOX}),
        )

    def _compute(self, predictions, references, threshold=0.5, protocol="strict"):
        return referring_metrics([p or None for p in predictions], references, threshold, protocol)
