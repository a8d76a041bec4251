"""`svit eval grounding`: the spelling from before RefCOCO and SVIT's referring QAs were two benchmarks, kept
working with its flags as they were. The table picks the benchmark that runs (and whose results are written):
SVIT's sample schema (a `messages` column, e.g. a built folder) is `svit-referring`, any other `refcoco`.
"""

from __future__ import annotations

from dataclasses import dataclass

from svit_dataset.schema import REFERRING_QA
from svit_dataset.settings import setting
from svit_model.evaluation.benchmark import Benchmark, BenchmarkAlias, options_as, register
from svit_model.evaluation.refcoco import Refcoco, RefcocoOptions, check_prompt
from svit_model.evaluation.svit_referring import SvitReferring, is_svit_referring_table, svit_referring_table


@dataclass
class GroundingOptions(RefcocoOptions):
    config: str | None = setting(None, f"dataset config (a built SVIT folder: {REFERRING_QA})")


@register
class Grounding(BenchmarkAlias):
    name = "grounding"
    help = "RefCOCO-shaped tables (ACC@0.5, mean IoU) or SVIT's held-out referring QAs (refcoco or svit-referring)"
    options = GroundingOptions

    @classmethod
    def resolve(cls, options: GroundingOptions) -> Benchmark:
        check_prompt(options.prompt)  # refused whichever table it is, as before
        table = svit_referring_table(options.data, options.split, options.config)
        target = SvitReferring if is_svit_referring_table(table) else Refcoco
        return target(options_as(options, target.options))
