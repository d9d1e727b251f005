"""Score an exported classifier on a labelled file:
``python -m app.evaluate --model-dir saved_models/bert_sst2 --data ../shared/data/sst2/dev.tsv``

Works for the BERT sentiment export (a TSV/CSV of sentences and labels) and the MNIST export (an
``mnist.npz``, scored on its test split). Prints accuracy, precision, recall and F1 per class and
macro-averaged, ROC-AUC and the confusion matrix; writes a confusion-matrix PNG and an ROC-curve PNG;
ends with one JSON line. The metrics are `keras.metrics` (`app.exports.scoring`); this file only feeds them. This command is
the only one that reads SST-2's held-out ``test.tsv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from app.common import paths
from app.common.cli import ArgumentParser, UsageError, add_inference_precision_flag, positive_int, run_command


def load_examples(metadata: dict, data: Path, text_column: str, label_column: str):
    """(inputs for the export's serving_default, integer labels) for the export's kind of model."""
    if metadata.get("task") == "mnist":
        from data_pipelines.mnist import flatten_images, read_mnist_arrays

        arrays = read_mnist_arrays(data)
        return {"images": flatten_images(arrays["x_test"])}, arrays["y_test"].astype("int32")
    if metadata.get("task") == "bert":
        from data_pipelines.text_classification import read_labelled_text

        second = metadata.get("second_text_column")  # a sentence-pair classifier reads that column too
        examples = read_labelled_text(data, text_column, label_column, second)
        texts = examples.texts.astype(object)
        return ({"text": texts[:, 0], "second_text": texts[:, 1]} if second else {"text": texts}), examples.labels
    raise UsageError(f"cannot evaluate a {metadata.get('task')!r} export: only classifiers (mnist, bert)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.evaluate", description="Score an exported classifier on a labelled file.")
    parser.add_argument(
        "--model-dir", required=True,
        help="export base (newest version), one version folder, or a .tflite model from python -m app.compress",
    )
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--data", required=True, type=Path, help="TSV/CSV of text and labels, or an mnist.npz")
    parser.add_argument("--text-column", default="sentence", help="column of the sentences")
    parser.add_argument("--label-column", default="label", help="column of the integer labels")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="examples per model call")
    add_inference_precision_flag(parser)
    parser.add_argument("--out-dir", type=Path, help=f"where the PNGs go (default: {paths.EVALUATIONS}/<model>/<version>/<data>)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app.exports.predictions import predict, predict_litert
    from app.exports.savedmodel import read_metadata, resolve_version
    from app.exports.scoring import classification_metrics
    from app.training import devices
    from app.training.plots import plot_confusion_matrix, plot_roc_curves

    litert = Path(args.model_dir).suffix == ".tflite"
    try:
        export_dir = Path(args.model_dir) if litert else resolve_version(args.model_dir, args.version)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if not args.data.is_file():
        raise UsageError(f"data file not found: {args.data}")
    if litert:
        from app.exports.litert import LiteRtClassifier

        classifier = LiteRtClassifier(export_dir)
        metadata = {"task": "bert", "name": f"{classifier.description['name']}_{export_dir.stem}", **classifier.description}
    else:
        metadata = read_metadata(export_dir)
    inputs, labels = load_examples(metadata, args.data, args.text_column, args.label_column)
    if litert:
        precision = f"LiteRT {export_dir.stem}"
        probabilities = predict_litert(classifier, inputs["text"], args.batch_size)
    else:
        with devices.precision_kept():
            precision = devices.set_inference_precision(args.mixed_precision)
            probabilities = predict(export_dir, inputs, args.batch_size)
    class_names = metadata.get("label_names") or [str(c) for c in range(probabilities.shape[1])]
    if labels.max() >= len(class_names):
        raise UsageError(f"{args.data} has label {labels.max()} but the model knows {len(class_names)} classes")
    metrics = classification_metrics(labels, probabilities, class_names)
    curves = metrics.pop("_roc_curves")

    out_dir = args.out_dir or paths.EVALUATIONS / metadata["name"] / export_dir.name / args.data.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{metadata['name']} v{export_dir.name} on {args.data.name}"
    plots = {
        "confusion_matrix": str(plot_confusion_matrix(np.array(metrics["confusion_matrix"]), class_names, out_dir / "confusion_matrix.png", title)),
        "roc_curve": str(plot_roc_curves(curves, out_dir / "roc_curve.png", title)),
    }
    print_report(metrics, class_names, len(labels), title)
    return {
        "export_dir": str(export_dir), "data": str(args.data), "examples": len(labels), "precision": precision,
        "metrics": metrics, "plots": plots,
    }


def print_report(metrics: dict, class_names: list[str], count: int, title: str) -> None:
    print(f"{title}: {count:,} examples")
    print(f"accuracy {metrics['accuracy']:.4f}   ROC-AUC {metrics['roc_auc']:.4f}")
    width = max(len(name) for name in class_names + ["macro"])
    print(f"{'class':>{width}}  precision  recall      f1")
    for name in class_names:
        print(f"{name:>{width}}  {metrics['precision'][name]:9.4f}  {metrics['recall'][name]:6.4f}  {metrics['f1'][name]:6.4f}")
    print(f"{'macro':>{width}}  {metrics['macro_precision']:9.4f}  {metrics['macro_recall']:6.4f}  {metrics['macro_f1']:6.4f}")
    print("confusion matrix (rows = true, columns = predicted):")
    for name, row in zip(class_names, metrics["confusion_matrix"]):
        print(f"{name:>{width}}  " + " ".join(f"{count:6d}" for count in row))


if __name__ == "__main__":
    run_command(main)
