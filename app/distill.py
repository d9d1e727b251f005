"""Distil a fine-tuned classifier into a small encoder:
``python -m app.distill [--teacher saved_models/bert_sst2] [--student-encoder HANDLE]``

The teacher's logits over the training and dev sentences are computed once and cached
(``--cache-dir``; an interrupted run reads the finished chunks back); the student, by default the
from-zero pretrained ``tiny`` encoder of ``python -m app.train mlm``, trains through the one trainer
on the teacher's softened answers and the true labels (`app.tasks.distill`), stops early on dev,
and is exported like every classifier, to ``saved_models/bert_sst2_student/<version>/``.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from app.cli import ArgumentParser, non_negative_int, positive_float, run_command
from app.train import add_sentence_flags, add_training_flags, train_config

STUDENT_FLAGS = {"student_encoder": "encoder", "student_preprocessor": "preprocessor"}
TASK_FLAGS = (
    "teacher", "export_name", "temperature", "teacher_weight", "augment", "cache_dir", "pooling", "train_file", "validation_file",
    "text_column", "label_column", "max_seq_length", "freeze_word_embeddings",
)


def teacher_weight(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a weight in [0, 1], not {text}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.distill", description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=argparse.SUPPRESS, help="classifier export (default saved_models/bert_sst2, newest version)")
    parser.add_argument(
        "--student-encoder", default=argparse.SUPPRESS,
        help="TF-Hub encoder handle, URL or folder (default saved_models/hub/bert_tiny_from_zero/encoder, from python -m app.train mlm)",
    )
    parser.add_argument("--student-preprocessor", default=argparse.SUPPRESS, help="the preprocessor handle matching the student encoder")
    parser.add_argument(
        "--name", dest="export_name", default=argparse.SUPPRESS,
        help="model name of the export: saved_models/<name>/<version> (default bert_sst2_student)",
    )
    parser.add_argument("--temperature", type=positive_float, default=argparse.SUPPRESS, help="softens both answers (default 2)")
    parser.add_argument(
        "--teacher-weight", type=teacher_weight, default=argparse.SUPPRESS,
        help="weight of the teacher's soft targets against the true labels (default 0.5; 0 = labels only)",
    )
    parser.add_argument(
        "--augment", type=non_negative_int, default=argparse.SUPPRESS,
        help="perturbed copies of each training sentence (words dropped, n-grams sampled), labelled by the teacher (default 0)",
    )
    parser.add_argument("--cache-dir", default=argparse.SUPPRESS, help="teacher logits cache (default runs/distill/teacher_logits)")
    parser.add_argument(
        "--freeze-word-embeddings", action="store_true", default=argparse.SUPPRESS,
        help="keep the student's word-piece table fixed (trained by default: the from-zero encoder's was pretrained briefly)",
    )
    add_sentence_flags(parser)
    add_training_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app.tasks import DistillTask
    from app.trainer import train

    flags = {name: value for name, value in vars(args).items() if name in TASK_FLAGS}
    flags.update({field: getattr(args, flag) for flag, field in STUDENT_FLAGS.items() if hasattr(args, flag)})
    return train(DistillTask(**flags), train_config(args)).summary


if __name__ == "__main__":
    run_command(main)
