"""Distil a fine-tuned classifier into a small encoder:
``python -m app.distill [--teacher saved_models/bert_sst2] [--student-encoder HANDLE]``

The same command as ``python -m app.train distill`` (its flags come from `app.tasks.distill.DistillTask`):
the teacher's logits over the training and dev sentences are computed once and cached
(``--cache-dir``; an interrupted run reads the finished chunks back); the student, by default the
from-zero pretrained ``tiny`` encoder of ``python -m app.train mlm``, trains through the one trainer
on the teacher's softened answers and the true labels, stops early on dev, and is exported like
every classifier, to ``saved_models/bert_sst2_student/<version>/``.
"""

from __future__ import annotations

import sys
from typing import Sequence

from app.common.cli import ArgumentParser, run_command
from app.common.quiet import native_stderr_captured
from app.training.flags import check_training_flags


PROG = "python -m app.distill"


def build_parser() -> ArgumentParser:
    with native_stderr_captured():  # the task classes import TensorFlow
        from app.tasks import DistillTask
    from app.training.flags import add_task_flags

    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_task_flags(parser, DistillTask)
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    check_training_flags(PROG, argv)
    args = build_parser().parse_args(argv)
    from app.tasks import DistillTask
    from app.training.flags import task_and_config
    from app.training.trainer import train

    return train(*task_and_config(DistillTask, args)).summary


if __name__ == "__main__":
    run_command(main)
