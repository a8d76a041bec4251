"""The `evaluate` metric modules shipped with svit (`metric_modules/<name>/<name>.py`): `mme`, `pope`, `grounding`.

    import evaluate
    mme = evaluate.load(metric_path("mme"))      # a local path: nothing is downloaded

They are thin: the rules live in `svit_model.evaluation.scoring`, which the modules import.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).parent / "metric_modules"
METRIC_NAMES = ("mme", "pope", "grounding")


def metric_path(name: str) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"no svit metric {name!r}; there are {', '.join(METRIC_NAMES)}")
    return str(METRICS_DIR / name)


def load_metric(name: str, config_name: str | None = None):
    """`evaluate.load` of a shipped metric module (offline)."""
    import evaluate

    return evaluate.load(metric_path(name), config_name)
