"""Training curves as a PNG: one panel per metric, training and validation side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import pandas as pd  # noqa: E402


def plot_training_curves(history_csv: Path, out_png: Path, title: str) -> Path:
    """Plot every metric in a Keras CSVLogger file against its ``val_`` twin."""
    history = pd.read_csv(history_csv)
    metrics = [column for column in history.columns if column != "epoch" and not column.startswith("val_")]
    metrics = [m for m in metrics if m != "learning_rate"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    epochs = history["epoch"] + 1
    for axis, metric in zip(axes[0], metrics):
        axis.plot(epochs, history[metric], marker="o", label="training")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out_png, dpi=100)
    plt.close(figure)
    return out_png
