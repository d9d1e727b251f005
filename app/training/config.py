"""The generic training settings every task shares, and the training flags of every command that
trains (`app.training.flags` makes one flag per field). Light on purpose: ``python -m app.train``
checks these flags before it imports TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

from app.common import paths
from app.common.cli import step_range
from app.training.flags import option


@dataclass(frozen=True)
class TrainConfig:
    """Generic training settings, and the training flags of every command that trains; ``None``
    means "the task's default" (`Task.defaults`)."""

    epochs: int | None = option(help="maximum epochs (early stopping may end sooner)")
    batch_size: int | None = option(help="examples per training step (per worker with several workers)")
    learning_rate: float | None = option(help="peak learning rate")
    seed: int = option(0, "random seed of weights, shuffling and dropout", type=int)
    max_train_samples: int | None = option(
        help="keep only this many training examples (images for mnist, tokens of text for lm and gpt, sentences or lines for the BERTs)",
        default_text="all",
    )
    data_dir: str | None = option(
        help="folder holding the data sets", default_text="$FROMZERO_DATA, ../shared/data beside the checkout, else online"
    )
    out: str = option(str(paths.SAVED_MODELS), "export base directory")
    runs_dir: str = option(str(paths.RUNS), "where TensorBoard logs, history and checkpoints go")
    jit_compile: str = option(
        "auto", "XLA compilation; auto = on a GPU; on a CPU if a few timed steps of this model run faster with it",
        choices=("auto", "on", "off"),
    )
    mixed_precision: str = option(
        "auto", "auto = on a GPU; on a CPU with AMX/AVX512-BF16, bf16 if a few timed steps of this model run faster "
        "(remembered in <runs-dir>/autotune.json); bf16 = always",
        choices=("auto", "bf16", "off"),
    )
    steps_per_execution: int | None = option(help="train steps per graph call")
    patience: int | None = option(help="early-stopping patience in epochs")
    max_minutes: float | None = option(
        help="stop training after this many minutes; the best epoch so far is evaluated and exported", default_text="no limit"
    )
    # Several workers (TF_CONFIG): how their collectives talk and how long to wait for them to join.
    collective: str = option(
        "auto", "with several workers (TF_CONFIG): how gradients are all-reduced (nccl: GPUs only)", choices=("auto", "ring", "nccl")
    )
    cluster_timeout: float = option(300.0, "with several workers: seconds to wait for all of them to join before failing")
    # Training steps (first, last) traced by TensorFlow's profiler into the run's TensorBoard logs.
    profile_steps: tuple[int, int] | None = option(
        help="trace these training steps with TensorFlow's profiler (TensorBoard's Profile tab)", type=step_range, metavar="FIRST,LAST"
    )
    resume: bool = option(False, "continue the last interrupted run of this model", flags=("--resume", None))
    quiet: bool = option(False, "print only the final JSON line", flags=("--quiet", None))
