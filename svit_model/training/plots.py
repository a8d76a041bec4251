"""The loss curve of a run, from `trainer_state`'s log history: what people look at first."""

from __future__ import annotations

import os
from pathlib import Path

from svit_dataset.files import save_figure_atomic

LOSS_CURVE_FILE = "loss_curve.png"  # in the run folder, beside the model; the card shows it


def loss_points(log_history: list[dict]) -> list[tuple[int, float]]:
    """(step, training loss) of every logged step."""
    return [
        (entry["step"], float(entry["loss"])) for entry in log_history if "loss" in entry and "step" in entry
    ]


def plot_loss_curve(
    log_history: list[dict], path: str | os.PathLike, title: str = "training loss"
) -> Path | None:
    """Write the loss curve as a PNG (atomically); None when nothing was logged."""
    points = loss_points(log_history)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = zip(*points, strict=True)
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot(steps, losses, marker="." if len(steps) < 50 else None, linewidth=1.2)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    try:
        return save_figure_atomic(figure, path)
    finally:
        plt.close(figure)


__all__ = ["LOSS_CURVE_FILE", "loss_points", "plot_loss_curve"]
