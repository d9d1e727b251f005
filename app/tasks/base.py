"""The contract between a model and the shared trainer."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from app.exports.savedmodel import ExportSpec, export_model
from app.training.flags import option

__all__ = ["Task", "TaskData", "TrainDefaults", "option"]


@dataclass(frozen=True)
class TrainDefaults:
    """A task's own defaults for the generic training flags (the user's flags override them)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    # Train steps per graph call: many for small models (less Python overhead), 1 for BERT, whose
    # bucketed dataset has no known length and whose steps take a second each anyway.
    steps_per_execution: int = 32


@dataclass(frozen=True)
class TaskData:
    """Batched datasets ready for `fit`/`evaluate`. A task whose model or export needs more from its
    data (a tokenizer, the number of classes) returns a subclass with those fields."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    evaluation: tf.data.Dataset
    evaluation_split: str
    train_examples: int
    description: str


class Task(abc.ABC):
    """One model: its data, its architecture, its loss and metrics, its serving signatures.

    A task is a frozen dataclass; its fields declared with `app.training.flags.option` are its
    command-line flags under ``python -m app.train <name>`` (help and default written once, there).
    """

    name: str  # the subcommand of python -m app.train
    summary: str  # its one-line help
    export_name: str
    defaults: TrainDefaults
    # Whether the model runs a restored SavedModel graph (a TF-Hub encoder), which bf16 reaches only
    # through oneDNN's graph rewrite, not a Keras dtype policy.
    restored_graph: bool = False
    # The validation metric that early stopping and the best checkpoint (so the exported epoch) follow;
    # one that ends in "loss" is minimized, any other maximized.
    monitor: str = "val_loss"

    @abc.abstractmethod
    def load_data(self, data_dir: str | None, batch_size: int, seed: int, max_train_samples: int | None) -> TaskData:
        """Locate and read the data, returning batched datasets."""

    @abc.abstractmethod
    def build_model(self, data: TaskData) -> keras.Model:
        """Build the (uncompiled) model for this data."""

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        """The optimizer; ``total_steps`` (approximate) lets a task schedule its learning rate."""
        return keras.optimizers.Adam(learning_rate)

    @abc.abstractmethod
    def loss(self) -> keras.losses.Loss:
        """The training loss, matched to the model's outputs and labels."""

    def metrics(self) -> list:
        return ["accuracy"]

    def loss_weights(self) -> dict | None:
        """Weights of the per-output losses in the total, for a model with several outputs (None: one loss)."""
        return None

    def weighted_metrics(self) -> list | None:
        """Metrics weighted by the dataset's sample weights (e.g. only the masked positions count)."""
        return None

    def summarize(self, evaluation: dict, data: TaskData) -> dict:
        """Turn `model.evaluate` results into the reported metrics."""
        return {f"{data.evaluation_split}_{name}": float(value) for name, value in evaluation.items()}

    def run_facts(self) -> dict:
        """What the run's JSON line says about the task's own choices (e.g. how it fine-tunes)."""
        return {}

    def export_spec(self, model: keras.Model, data: TaskData) -> ExportSpec:
        """The serving signatures (and side files) of a TF Serving export; tasks that keep the
        default `export` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no TF Serving export")

    def export(self, model: keras.Model, data: TaskData, out: str) -> Path:
        """Write the trained model under ``out``; by default the next version of a TF Serving SavedModel."""
        return export_model(model, self.export_spec(model, data), out, self.export_name)
