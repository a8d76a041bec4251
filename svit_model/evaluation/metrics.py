"""The `evaluate` metric modules shipped with svit: `metric_modules/<benchmark>/<benchmark>.py`, one per benchmark
(`mme`, `pope`, `refcoco`, `svit-referring`).

    import evaluate
    mme = evaluate.load(metric_path("mme"))      # a local path: nothing is downloaded

They are thin: the rules live in the benchmark's module (`svit_model.evaluation.mme`, ...), which they import.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).parent / "metric_modules"


def metric_names() -> list[str]:
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def metric_path(name: str) -> str:
    if not (METRICS_DIR / name / f"{name}.py").is_file():
        raise ValueError(f"no svit metric {name!r}; there are {', '.join(metric_names())}")
    return str(METRICS_DIR / name)


def load_metric(name: str, config_name: str | None = None):
    """`evaluate.load` of a shipped metric module (offline)."""
    import evaluate

    return evaluate.load(metric_path(name), config_name)
