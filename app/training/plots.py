"""The figures the commands write as PNGs: training curves, confusion matrices, ROC curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_training_curves(history_csv: Path, out_png: Path, title: str) -> Path:
    """Plot every metric in a Keras CSVLogger file against its ``val_`` twin."""
    history = pd.read_csv(history_csv)
    metrics = [column for column in history.columns if column != "epoch" and not column.startswith("val_")]
    metrics = [m for m in metrics if m not in ("learning_rate", "elapsed_seconds")]
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
    return _saved(figure, out_png)


def plot_loss_against_time(histories: dict[str, Path], out_png: Path, title: str) -> Path:
    """Validation loss of several runs against their training time (the ``elapsed_seconds`` column the
    trainer logs), so models of different speeds are compared at equal compute."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, history_csv in histories.items():
        history = pd.read_csv(history_csv)
        axis.plot(history["elapsed_seconds"], history["val_loss"], marker="o", label=label)
    axis.set_xlabel("training time (s)")
    axis.set_ylabel("validation loss (nats per token)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _saved(figure, out_png)


def plot_confusion_matrix(matrix, class_names: list[str], out_png: Path, title: str) -> Path:
    """Counts per (true, predicted) class, darker = more."""
    size = max(4, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, int(count), ha="center", va="center", color="white" if count > threshold else "black")
    axis.set_title(title)
    return _saved(figure, out_png)


def plot_roc_curves(curves: dict[str, tuple], out_png: Path, title: str) -> Path:
    """One ROC curve per entry: name -> (false positive rates, true positive rates, AUC)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (false_positive_rate, true_positive_rate, auc) in curves.items():
        axis.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    return _saved(figure, out_png)


def plot_image_grid(images, captions: list[str], out_png: Path, title: str, columns: int = 8) -> Path:
    """Small grey images (e.g. digits) in a grid, each with its caption."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption in zip(axes.flat, images, captions):
        axis.imshow(np.asarray(image).reshape(28, 28) if np.size(image) == 784 else image, cmap="gray")
        axis.set_title(caption, fontsize=9)
    figure.suptitle(title)
    return _saved(figure, out_png)


def _saved(figure, out_png: Path) -> Path:
    """Lay the figure out, write it as a PNG and free it (pyplot keeps every open figure)."""
    figure.tight_layout()
    figure.savefig(out_png, dpi=100)
    plt.close(figure)
    return out_png
