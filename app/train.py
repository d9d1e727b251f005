"""Train, evaluate and export a model: ``python -m app.train {mnist,lm,gpt,bert,mlm,distill} [flags]``.

Each subcommand and its flags come from the task registry (`app.tasks.TASKS`): a task's own options
are its dataclass fields, the training flags `TrainConfig`'s (`app.training.flags`), and ``--help``
shows the defaults the code uses. `app.training.trainer.train` does the work; the last line printed
is a JSON summary of the run.
"""

from __future__ import annotations

from typing import Sequence

from app.common.cli import ArgumentParser, run_command
from app.common.quiet import native_stderr_captured
from app.training.cluster import cluster_from_environment


def build_parser() -> ArgumentParser:
    with native_stderr_captured():  # the task classes import TensorFlow
        from app.tasks import TASKS
    from app.training.flags import add_task_flags

    parser = ArgumentParser(prog="python -m app.train", description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True, metavar="{" + ",".join(TASKS) + "}", parser_class=ArgumentParser)
    for name, task_class in TASKS.items():
        add_task_flags(tasks.add_parser(name, help=task_class.summary, description=task_class.summary), task_class)
    return parser


def main(argv: Sequence[str] | None = None) -> dict | None:
    cluster = cluster_from_environment()  # a bad TF_CONFIG fails before TensorFlow is imported
    args = build_parser().parse_args(argv)
    from app.tasks import TASKS
    from app.training.flags import task_and_config
    from app.training.trainer import train

    summary = train(*task_and_config(TASKS[args.task], args)).summary
    return summary if cluster is None or cluster.is_chief else None  # the chief alone reports the run


if __name__ == "__main__":
    run_command(main)
