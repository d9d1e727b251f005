"""Train, evaluate and export a model: ``python -m app.train {mnist,lm,gpt,bert,mlm} [flags]``.

The flags only fill in `TrainConfig` (generic) and the task's own dataclass; `app.trainer.train`
does the work. The last line printed is a JSON summary of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from app.cli import ArgumentParser, dropout_rate, positive_float, positive_int, run_command, step_range
from app.cluster import cluster_from_environment


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.train", description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True, metavar="{mnist,lm,gpt,bert,mlm}", parser_class=ArgumentParser)
    mnist = tasks.add_parser("mnist", help="dense 784-64-64-10 network on MNIST digits")
    mnist.add_argument(
        "--dropout-rate", type=dropout_rate,
        help="dropout after each hidden layer (default 0.2 against overfitting the 4.5k-image subset; 0 = the seeds' exact network)",
    )
    lm = tasks.add_parser("lm", help="LSTM language model on Tiny Shakespeare (or --text-file)")
    # Model flags left out keep the task's defaults (app/tasks/*.py), so they are not repeated here.
    lm.set_defaults(model_flags=("tokenizer", "seq_len", "text_file", "lstm_units", "num_layers"))
    gpt = tasks.add_parser("gpt", help="GPT-style Transformer language model on Tiny Shakespeare (or --text-file)")
    gpt.set_defaults(
        model_flags=("tokenizer", "seq_len", "text_file", "size", "num_layers", "num_heads", "embedding_dim", "dropout_rate")
    )
    for sub, window in ((lm, "default 100"), (gpt, "the context length; default: the preset's")):
        sub.add_argument("--tokenizer", choices=("char", "word"), default=argparse.SUPPRESS, help="char (default) or word tokens")
        sub.add_argument("--seq-len", type=positive_int, default=argparse.SUPPRESS, help=f"tokens per training window ({window})")
        sub.add_argument("--text-file", default=argparse.SUPPRESS, help="train on this UTF-8 text file instead of Tiny Shakespeare")
    lm.add_argument("--lstm-units", type=positive_int, default=argparse.SUPPRESS, help="LSTM width (default 128)")
    lm.add_argument("--num-layers", type=positive_int, default=argparse.SUPPRESS, help="stacked LSTM layers (default 1)")
    gpt.add_argument(
        "--size", choices=("tiny", "small", "base"), default=argparse.SUPPRESS,
        help="preset: tiny 2x64, small 4x128 context 128 (default), base = nanoGPT's Shakespeare model 6x384 context 256 (for a GPU)",
    )
    gpt.add_argument("--num-layers", type=positive_int, default=argparse.SUPPRESS, help="decoder blocks (overrides the preset)")
    gpt.add_argument("--num-heads", type=positive_int, default=argparse.SUPPRESS, help="attention heads (overrides the preset)")
    gpt.add_argument("--embedding-dim", type=positive_int, default=argparse.SUPPRESS, help="model width (overrides the preset)")
    gpt.add_argument("--dropout-rate", type=dropout_rate, default=argparse.SUPPRESS, help="dropout (overrides the preset; small: 0)")

    bert = tasks.add_parser("bert", help="fine-tune a TF-Hub BERT encoder on SST-2 sentiment (or --train-file)")
    bert.set_defaults(
        model_flags=(
            "encoder", "preprocessor", "pooling", "train_file", "validation_file",
            "text_column", "label_column", "label_names", "max_seq_length", "freeze_word_embeddings",
        )
    )
    bert.add_argument("--encoder", default=argparse.SUPPRESS, help="TF-Hub encoder handle: URL or folder (default: local MiniLM)")
    bert.add_argument("--preprocessor", default=argparse.SUPPRESS, help="TF-Hub preprocessor handle matching the encoder")
    add_sentence_flags(bert)
    bert.add_argument(
        "--label-names", type=lambda text: tuple(text.split(",")), default=argparse.SUPPRESS,
        help="comma-separated names of classes 0, 1, ... (default: negative,positive)",
    )
    bert.add_argument(
        "--train-word-embeddings", dest="freeze_word_embeddings", action="store_false", default=argparse.SUPPRESS,
        help="also fine-tune the word-piece embedding table (frozen by default; train it for encoders pretrained briefly or not at all)",
    )

    mlm = tasks.add_parser("mlm", help="pretrain a BERT encoder from random weights by masked language modelling")
    mlm.set_defaults(
        model_flags=("size", "vocab", "corpus", "max_length", "num_layers", "hidden_dim", "num_heads", "intermediate_dim")
    )
    mlm.add_argument("--size", choices=("tiny", "mini"), default=argparse.SUPPRESS, help="preset: tiny 2x128 (default), mini 4x256")
    mlm.add_argument(
        "--vocab", default=argparse.SUPPRESS,
        help="folder with vocab.txt from python -m app.pretrain vocab (default saved_models/pretrain/vocab)",
    )
    mlm.add_argument(
        "--corpus", nargs="+", type=str, default=argparse.SUPPRESS,
        help="UTF-8 text files, one sentence or paragraph per line (default: SST-2 train sentences + Tiny Shakespeare)",
    )
    mlm.add_argument("--max-length", type=positive_int, default=argparse.SUPPRESS, help="word pieces per line, at most (default 128)")
    mlm.add_argument("--num-layers", type=positive_int, default=argparse.SUPPRESS, help="encoder blocks (overrides the preset)")
    mlm.add_argument("--hidden-dim", type=positive_int, default=argparse.SUPPRESS, help="model width (overrides the preset)")
    mlm.add_argument("--num-heads", type=positive_int, default=argparse.SUPPRESS, help="attention heads (overrides the preset)")
    mlm.add_argument("--intermediate-dim", type=positive_int, default=argparse.SUPPRESS, help="feed-forward width (default 4 x width)")

    for sub in (mnist, lm, gpt, bert, mlm):
        add_training_flags(sub)
    return parser


def add_sentence_flags(parser: argparse.ArgumentParser) -> None:
    """Which labelled sentences a BERT classifier trains on, and how it pools them (BertTask's fields)."""
    parser.add_argument("--pooling", choices=("mean", "cls"), default=argparse.SUPPRESS, help="mean (default) or cls")
    parser.add_argument("--train-file", default=argparse.SUPPRESS, help="TSV/CSV with text and label columns (default SST-2 train)")
    parser.add_argument("--validation-file", default=argparse.SUPPRESS, help="for early stopping (default SST-2 dev)")
    parser.add_argument("--text-column", default=argparse.SUPPRESS, help="default: sentence")
    parser.add_argument("--label-column", default=argparse.SUPPRESS, help="default: label")
    parser.add_argument("--max-seq-length", type=positive_int, default=argparse.SUPPRESS, help="word pieces per sentence, at most (default 128)")


def train_config(args: argparse.Namespace):
    """`TrainConfig` from the parsed generic training flags."""
    from app.trainer import TrainConfig

    config_fields = {field.name for field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{name: value for name, value in vars(args).items() if name in config_fields})


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """The generic training flags (they fill `TrainConfig`), shared by every command that trains."""
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=positive_int, help="maximum epochs (early stopping may end sooner)")
    group.add_argument("--batch-size", type=positive_int)
    group.add_argument("--learning-rate", type=positive_float)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--max-train-samples", type=positive_int,
        help="keep only this many training examples (images for mnist, tokens of text for lm)",
    )
    group.add_argument("--data-dir", help="folder holding the data sets (else $FROMZERO_DATA, ../shared/data, online)")
    group.add_argument("--out", default="saved_models", help="export base directory (default saved_models/)")
    group.add_argument("--runs-dir", default="runs", help="where TensorBoard logs, history and checkpoints go")
    group.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto", help="XLA compilation")
    group.add_argument(
        "--mixed-precision", choices=("auto", "bf16", "off"), default="auto",
        help="auto = on a GPU, and bf16 on CPUs with AMX/AVX512-BF16 where it measures faster (gpt, bert); bf16 = always",
    )
    group.add_argument("--steps-per-execution", type=positive_int, help="train steps per graph call")
    group.add_argument("--patience", type=positive_int, help="early-stopping patience in epochs")
    group.add_argument(
        "--max-minutes", type=positive_float,
        help="stop training after this many minutes; the best epoch so far is evaluated and exported",
    )
    group.add_argument(
        "--profile-steps", type=step_range, metavar="FIRST,LAST",
        help="trace these training steps with TensorFlow's profiler (TensorBoard's Profile tab)",
    )
    group.add_argument("--resume", action="store_true", help="continue the last interrupted run of this model")
    group.add_argument(
        "--collective", choices=("auto", "ring", "nccl"), default="auto",
        help="with several workers (TF_CONFIG): how gradients are all-reduced (nccl: GPUs only)",
    )
    group.add_argument(
        "--cluster-timeout", type=positive_float, default=300,
        help="with several workers: seconds to wait for all of them to join before failing (default 300)",
    )
    group.add_argument("--quiet", action="store_true", help="print only the final JSON line")


def main(argv: Sequence[str] | None = None) -> dict | None:
    args = build_parser().parse_args(argv)
    cluster = cluster_from_environment()
    # TensorFlow loads only once the flags (and TF_CONFIG) are known to be good, so a typo fails instantly.
    from app.trainer import train

    summary = train(build_task(args), train_config(args)).summary
    return summary if cluster is None or cluster.is_chief else None  # the chief alone reports the run


def build_task(args):
    """The task object for the chosen model, with its own flags applied."""
    from app.tasks import TASKS

    if args.task == "mnist":
        task = TASKS["mnist"]()
        if args.dropout_rate is not None:
            task = dataclasses.replace(task, model_config=dataclasses.replace(task.model_config, dropout_rate=args.dropout_rate))
        return task
    flags = {name: getattr(args, name) for name in args.model_flags if hasattr(args, name)}
    if "corpus" in flags:
        flags["corpus"] = tuple(flags["corpus"])
    return TASKS[args.task](**flags)


if __name__ == "__main__":
    run_command(main)
