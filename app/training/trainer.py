"""One training loop for every task: compile, fit with the standard callbacks, evaluate, plot, export.

A run lives in ``runs/<task>/<timestamp>/``: TensorBoard logs, ``history.csv``, the best checkpoint,
the training-curve PNG and, while it is unfinished, a ``backup/`` that ``--resume`` continues from.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from app.common.errors import CommandFailed, Interrupted, TrainingFailed, UsageError
from app.tasks.base import Task, TaskData
from app.training import autotune, devices
from app.training.adapters import ADAPTER_FILE, LoraBackupAndRestore, merged_copy, parameter_counts, peak_rss_mb, save_adapter
from app.training.cluster import Cluster, cluster_from_environment, describe_cluster, shard_by_data, weights_fingerprint, worker_outputs
from app.training.config import TrainConfig
from app.training.plots import plot_training_curves
from app.training.runs import BACKUP_DIR, run_directory
from data_pipelines.sources import require_data_dir
from models.lora import lora_layers

# What a step raises on the other workers when one of them dies (the cluster's collectives are aborted).
CLUSTER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.DeadlineExceededError)

HISTORY_FILE = "history.csv"


@dataclass(frozen=True)
class TrainResult:
    """The trained model and its data (for notebooks and tests) and the run's JSON summary."""

    model: keras.Model
    data: TaskData
    summary: dict


def build_training_state(model: keras.Model, train: tf.data.Dataset) -> None:
    """Create the metric, loss and optimizer variables before training starts.

    Keras otherwise creates them inside the first traced train step, and a `tf.function` that creates
    variables is traced twice: for a fine-tuned BERT that doubled the first step (20 s of tracing).
    """
    model.evaluate(train.take(1), verbose=0)
    model.optimizer.build(model.trainable_variables)


class EpochTimer(keras.callbacks.Callback):
    """Measures time spent training (each epoch up to its validation pass), for samples/s, and logs
    the running total as ``elapsed_seconds`` (in history.csv, for loss-against-time plots)."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self.epochs = 0
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _stop_clock(self, *args, **kwargs):
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    on_test_begin = _stop_clock

    def on_epoch_end(self, epoch, logs=None):
        self._stop_clock()
        self.epochs += 1
        if logs is not None:
            logs["elapsed_seconds"] = round(self.seconds, 2)


class StopBetweenSteps(keras.callbacks.Callback):
    """Ctrl-C or SIGTERM stops training at the next step boundary, never while a backup is being written.

    A second signal stops at once. Use as a context manager around ``fit`` so the handlers are restored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._request) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _request(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def _stop_if_requested(self, *args, **kwargs):
        if self.requested:
            raise KeyboardInterrupt

    on_epoch_begin = on_train_batch_end = _stop_if_requested


class StopAfterMinutes(keras.callbacks.Callback):
    """Ends training at the first step boundary after a wall-clock budget (that epoch is still
    validated, and the best epoch is what gets evaluated and exported)."""

    def __init__(self, minutes: float | None):
        super().__init__()
        self.minutes, self.spent = minutes, False
        self._start = time.perf_counter()

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.minutes is not None and time.perf_counter() - self._start >= 60 * self.minutes:
            self.spent = self.model.stop_training = True


class StopOnInvalidLoss(keras.callbacks.Callback):
    """Stops at the first NaN or infinite loss and remembers where, for a clear error."""

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = f"epoch {self._epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True


def validation_curves(history_file: Path) -> dict[str, list[float]]:
    """Each validation metric at every finished epoch (from history.csv, so a resumed run's are complete)."""
    with history_file.open(newline="") as file:
        rows = list(csv.DictReader(file))
    names = [name for name in (rows[0] if rows else {}) if name.startswith("val_")]
    return {name: [round(float(row[name]), 4) for row in rows] for name in names}


def train(task: Task, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train ``task``'s model end to end and return the run's summary (metrics, export, speed).

    With a multi-worker ``TF_CONFIG`` every worker runs this same function (see app.training.cluster)."""
    # First: with several workers, collectives must be set up before TensorFlow runs anything else.
    cluster = cluster_from_environment()
    if cluster and config.max_minutes:
        raise UsageError("--max-minutes cannot stop several workers at the same step (each has its own clock): use --epochs")
    strategy = devices.distribution_strategy(cluster, config.collective, config.cluster_timeout)
    with worker_outputs(cluster, config, task.name) as worker_config, devices.precision_kept():
        return _train(task, worker_config, strategy, cluster)


def _train(task: Task, config: TrainConfig, strategy: tf.distribute.Strategy, cluster: Cluster | None) -> TrainResult:
    say = (lambda *args: None) if config.quiet else (lambda *args: print(*args, flush=True))
    epochs = config.epochs or task.defaults.epochs
    batch_size = config.batch_size or task.defaults.batch_size
    learning_rate = config.learning_rate or task.defaults.learning_rate
    patience = config.patience or task.defaults.patience
    keras.utils.set_random_seed(config.seed)
    require_data_dir(config.data_dir)

    resumed_run = run_directory(config.runs_dir, task.name, resume=True) if config.resume else None
    workers = cluster.num_workers if cluster else 1
    # --batch-size is per worker: each global batch is split between the workers (DATA sharding).
    data = task.load_data(config.data_dir, batch_size * workers, config.seed, config.max_train_samples)
    say(data.description)
    if cluster:
        data = shard_by_data(data)
        say(describe_cluster(cluster, batch_size, learning_rate))

    steps_per_epoch = int(data.train.cardinality())
    if steps_per_epoch <= 0:  # unknown or infinite: estimate from the example count
        steps_per_epoch = math.ceil(data.train_examples / (batch_size * workers))

    def compiled_model(setting: autotune.Candidate) -> keras.Model:
        with strategy.scope():
            model = task.build_model(data)
            model.compile(
                optimizer=task.optimizer(learning_rate, total_steps=epochs * steps_per_epoch),
                loss=task.loss(),
                loss_weights=task.loss_weights(),
                metrics=task.metrics(),
                weighted_metrics=task.weighted_metrics(),
                jit_compile=setting.jit_compile,
                # Several workers: one step per graph call (Keras 3.15's multi-step loop fails under them, see app.training.keras_multi_worker).
                steps_per_execution=1 if cluster else config.steps_per_execution or task.defaults.steps_per_execution,
            )
        return model

    choice = autotune.choose(
        (config.mixed_precision, config.jit_compile), cluster is not None, epochs * steps_per_epoch, task.restored_graph,
        key={"task": repr(task), "batch": repr(data.train.element_spec)}, runs_dir=config.runs_dir, build=compiled_model,
        probe_data=lambda: task.load_data(config.data_dir, batch_size * workers, config.seed, config.max_train_samples).train,
        say=say,
    )
    keras.utils.set_random_seed(config.seed)  # the same first weights whether or not a probe ran
    model = compiled_model(choice.candidate)
    with strategy.scope():
        build_training_state(model, data.train)
    say(devices.describe(model.jit_compile, choice.precision, strategy))
    # Created once the model is built: flags that fail at build time leave no empty run folder.
    run_dir = resumed_run or run_directory(config.runs_dir, task.name, resume=False)
    # Unfinished from the start: a job killed in its first epoch (a worker lost, Ray restarting them) resumes too.
    (run_dir / BACKUP_DIR).mkdir(exist_ok=True)
    trainable_parameters, total_parameters = parameter_counts(model)
    say(f"parameters: {trainable_parameters:,} trainable of {total_parameters:,} ({trainable_parameters / total_parameters:.2%})")
    has_lora = bool(lora_layers(model))
    backup = LoraBackupAndRestore if has_lora else keras.callbacks.BackupAndRestore
    if not config.quiet and not (cluster and not cluster.is_chief):
        model.summary()

    timer, invalid_loss, interrupt = EpochTimer(), StopOnInvalidLoss(), StopBetweenSteps()
    budget = StopAfterMinutes(config.max_minutes)
    mode = "min" if task.monitor.endswith("loss") else "max"
    callbacks = [
        interrupt,
        budget,
        backup(str(run_dir / BACKUP_DIR), double_checkpoint=True),
        keras.callbacks.EarlyStopping(monitor=task.monitor, mode=mode, patience=patience, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "best.keras"), monitor=task.monitor, mode=mode, save_best_only=True),
        timer,  # before the logger, which then writes its elapsed_seconds
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
        keras.callbacks.TensorBoard(log_dir=str(run_dir), profile_batch=config.profile_steps or 0),
        invalid_loss,
    ]
    say(f"training {task.name} for up to {epochs} epochs; logs in {run_dir}")
    try:
        with interrupt:
            model.fit(
                data.train,
                validation_data=data.validation,
                epochs=epochs,
                shuffle=False,  # the training dataset reshuffles itself every epoch
                callbacks=callbacks,
                # A progress bar in a terminal, one line per epoch in logs and notebooks' captured output.
                verbose=0 if config.quiet else (1 if sys.stdout.isatty() else 2),
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"training interrupted; finished epochs are kept in {run_dir / BACKUP_DIR}. "
            f"continue with the same command plus --resume (python -m app.train {task.name} ... --resume)"
        ) from None
    except CLUSTER_ERRORS as error:
        if cluster is None:
            raise
        raise CommandFailed(
            f"worker {cluster.worker_id} lost contact with another worker of the cluster ({type(error).__name__}); "
            f"finished epochs are kept in the chief's {BACKUP_DIR}/: restart every worker with the same command plus --resume"
        ) from None
    if invalid_loss.where:
        raise TrainingFailed(
            f"the loss became NaN or infinite at {invalid_loss.where}; try a lower --learning-rate. "
            f"The best epoch so far is saved in {run_dir / 'checkpoints' / 'best.keras'}"
        )

    metrics = task.summarize(model.evaluate(data.evaluation, verbose=0, return_dict=True), data)
    say(f"{data.evaluation_split} metrics: " + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    curves = plot_training_curves(run_dir / HISTORY_FILE, run_dir / "training_curves.png", f"{task.name} training")
    # LoRA: the updates are merged into their kernels for serving, and kept alone as an adapter.
    export_dir = task.export(merged_copy(model) if has_lora else model, data, config.out)
    say(f"exported SavedModel to {export_dir}; training curves in {curves}")
    facts = task.run_facts()
    if has_lora:
        adapter = run_dir / ADAPTER_FILE
        facts.update(adapter=str(adapter), adapter_bytes=save_adapter(model, adapter, {"model": task.name, **facts}))
        say(f"adapter: {adapter} ({facts['adapter_bytes'] / 1e3:,.0f} KB)")
    summary = {
        "model": task.name,
        **facts,
        "trainable_parameters": trainable_parameters,
        "total_parameters": total_parameters,
        "metrics": metrics,
        "export_dir": str(export_dir),
        "run_dir": str(run_dir),
        "epochs_trained": timer.epochs,
        "validation_curves": validation_curves(run_dir / HISTORY_FILE),
        "stopped_by_time_budget": budget.spent,
        "workers": workers,
        "global_batch_size": batch_size * workers,
        "learning_rate": learning_rate,
        "train_seconds": round(timer.seconds, 1),
        "jit_compile": bool(model.jit_compile),
        "precision": choice.precision,
        "auto": choice.report,
        "train_samples_per_s": round(data.train_examples * timer.epochs / timer.seconds, 1) if timer.seconds else None,
        "peak_rss_mb": peak_rss_mb(),
    }
    if cluster:  # every worker prints it: equal fingerprints = the workers ended with the same weights
        summary["weights_sha256"] = weights_fingerprint(model)
        print(f"worker {cluster.worker_id} of {workers}: weights sha256 {summary['weights_sha256']}", flush=True)
    return TrainResult(model, data, summary)
