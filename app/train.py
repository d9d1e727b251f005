"""Train, evaluate and export a model: ``python -m app.train {mnist,lm,gpt,bert,mlm,distill} [flags]``.

Each subcommand and its flags come from the task registry (`app.tasks.REGISTRY`): a task's own options
are its dataclass fields, the training flags `TrainConfig`'s (`app.training.flags`), and ``--help``
shows the defaults the code uses. `app.training.trainer.train` does the work; the last line printed
is a JSON summary of the run.
"""

from __future__ import annotations

import sys
from typing import Sequence

from app.common.cli import ArgumentParser, run_command
from app.common.quiet import native_stderr_captured
from app.tasks import REGISTRY, task_class
from app.training.cluster import cluster_from_environment
from app.training.flags import add_task_flags, check_training_flags, task_and_config

PROG = "python -m app.train"


def build_parser(names: Sequence[str] = tuple(REGISTRY)) -> ArgumentParser:
    """The full parser: the named tasks' own flags and the training flags (this imports those tasks)."""
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True, metavar="{" + ",".join(REGISTRY) + "}", parser_class=ArgumentParser)
    for name in REGISTRY:
        if name in names:
            with native_stderr_captured():  # the task classes import TensorFlow
                task = task_class(name)
            add_task_flags(tasks.add_parser(name, help=task.summary, description=task.summary), task)
        else:
            tasks.add_parser(name)
    return parser


def main(argv: Sequence[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cluster = cluster_from_environment()  # a bad TF_CONFIG fails before TensorFlow is imported
    check_training_flags(PROG, argv, tuple(REGISTRY))
    chosen = [name for name in REGISTRY if name in argv[:1]]
    args = build_parser(chosen or tuple(REGISTRY)).parse_args(argv)
    from app.training.trainer import train

    summary = train(*task_and_config(task_class(args.task), args)).summary
    return summary if cluster is None or cluster.is_chief else None  # the chief alone reports the run


if __name__ == "__main__":
    run_command(main)
