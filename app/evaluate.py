"""Score an exported classifier on a labelled file:
``python -m app.evaluate --model-dir saved_models/bert_sst2 --data ../shared/data/sst2/dev.tsv``

Works for the BERT sentiment export (a TSV/CSV of sentences and labels) and the MNIST export (an
``mnist.npz``, scored on its test split). Prints accuracy, precision, recall and F1 per class and
macro-averaged, ROC-AUC and the confusion matrix; writes a confusion-matrix PNG and an ROC-curve PNG;
ends with one JSON line. The metrics are `keras.metrics`; this file only feeds them. This command is
the only one that reads SST-2's held-out ``test.tsv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from app.cli import ArgumentParser, UsageError, positive_int, run_command

BATCHES_IN_FLIGHT = 2


def load_examples(metadata: dict, data: Path, text_column: str, label_column: str):
    """(inputs for the export's serving_default, integer labels) for the export's kind of model."""
    if metadata.get("task") == "mnist":
        from data_pipelines.mnist import flatten_images, read_mnist_arrays

        arrays = read_mnist_arrays(data)
        return {"images": flatten_images(arrays["x_test"])}, arrays["y_test"].astype("int32")
    if metadata.get("task") == "bert":
        from data_pipelines.text_classification import read_labelled_text

        examples = read_labelled_text(data, text_column, label_column)
        return {"text": examples.texts.astype(object)}, examples.labels
    raise UsageError(f"cannot evaluate a {metadata.get('task')!r} export: only classifiers (mnist, bert)")


def predict(export_dir: Path, inputs: dict, batch_size: int) -> np.ndarray:
    """Class probabilities from the export's ``serving_default``."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF Text ops of the BERT preprocessor)

    return classify(tf.saved_model.load(str(export_dir)), inputs, batch_size)


def classify(loaded, inputs: dict, batch_size: int) -> np.ndarray:
    """A loaded export's ``serving_default`` over ``inputs`` in batches, answers in input order.

    Sentences are batched with others of the same length in word pieces (from the export's
    ``word_piece_counts`` signature where it has one, else characters), so batches carry little
    padding; two batches are in flight at once, so one batch's tokenization and small ops overlap the
    other's matrix products."""
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf

    from data_pipelines.text_classification import length_sorted_groups

    serve = loaded.signatures["serving_default"]
    (name, values), = inputs.items()
    if values.dtype == object and "word_piece_counts" in loaded.signatures:
        count = loaded.signatures["word_piece_counts"]
        lengths = np.concatenate([count(**{name: tf.constant(values[start : start + 1024])})["word_pieces"].numpy()
                                  for start in range(0, len(values), 1024)])
        groups = length_sorted_groups(lengths, batch_size)
    elif values.dtype == object:
        groups = length_sorted_groups([len(value) for value in values], batch_size)
    else:
        groups = [np.arange(start, min(start + batch_size, len(values))) for start in range(0, len(values), batch_size)]
    with ThreadPoolExecutor(BATCHES_IN_FLIGHT) as pool:
        answers = pool.map(lambda group: serve(**{name: tf.constant(values[group])})["probabilities"].numpy(), groups)
        return in_input_order(groups, list(answers))


def predict_litert(classifier, texts: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities from a LiteRT classifier (`app.litert`), in batches of similar length."""
    from data_pipelines.text_classification import length_sorted_groups

    groups = length_sorted_groups([len(text) for text in texts], batch_size)
    return in_input_order(groups, [classifier.probabilities(texts[group]) for group in groups])


def in_input_order(groups: list[np.ndarray], answers: list[np.ndarray]) -> np.ndarray:
    """Answers given batch by batch for the examples in ``groups`` (index arrays), in input order."""
    probabilities = np.concatenate(answers)
    ordered = np.empty_like(probabilities)
    ordered[np.concatenate(groups)] = probabilities
    return ordered


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC and confusion matrix, from keras.metrics."""
    import keras
    import tensorflow as tf

    num_classes = probabilities.shape[1]
    one_hot = keras.ops.one_hot(labels, num_classes)
    predicted = keras.ops.one_hot(np.argmax(probabilities, axis=1), num_classes)

    def score(metric, y_true, y_pred):
        metric.update_state(y_true, y_pred)
        return metric.result().numpy()

    precision = [float(score(keras.metrics.Precision(class_id=c), one_hot, predicted)) for c in range(num_classes)]
    recall = [float(score(keras.metrics.Recall(class_id=c), one_hot, predicted)) for c in range(num_classes)]
    f1 = score(keras.metrics.F1Score(average=None, threshold=None), one_hot, probabilities).tolist()
    # ROC: the positive class for two classes, else each class against the rest (macro-averaged AUC).
    curves = {}
    for c in [1] if num_classes == 2 else range(num_classes):
        auc = keras.metrics.AUC(curve="ROC", num_thresholds=500)
        curves[class_names[c]] = (*roc_points_of(auc, one_hot[:, c], probabilities[:, c]), float(auc.result()))
    roc_auc = float(np.mean([auc for _, _, auc in curves.values()]))
    return {
        "accuracy": float(score(keras.metrics.Accuracy(), labels, np.argmax(probabilities, axis=1))),
        "precision": dict(zip(class_names, precision)),
        "recall": dict(zip(class_names, recall)),
        "f1": dict(zip(class_names, map(float, f1))),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(score(keras.metrics.F1Score(average="macro", threshold=None), one_hot, probabilities)),
        "roc_auc": roc_auc,
        "confusion_matrix": tf.math.confusion_matrix(labels, np.argmax(probabilities, axis=1), num_classes).numpy().tolist(),
        "_roc_curves": curves,
    }


def roc_points_of(auc, y_true, y_score) -> tuple:
    """Update a binary keras AUC metric; return its false and true positive rates at each threshold."""
    auc.update_state(y_true, y_score)
    true_positives, false_positives = np.asarray(auc.true_positives), np.asarray(auc.false_positives)
    false_negatives, true_negatives = np.asarray(auc.false_negatives), np.asarray(auc.true_negatives)
    true_positive_rate = true_positives / np.maximum(true_positives + false_negatives, 1)
    false_positive_rate = false_positives / np.maximum(false_positives + true_negatives, 1)
    return false_positive_rate, true_positive_rate


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.evaluate", description="Score an exported classifier on a labelled file.")
    parser.add_argument(
        "--model-dir", required=True,
        help="export base (newest version), one version folder, or a .tflite model from python -m app.compress",
    )
    parser.add_argument("--version", type=positive_int, help="version under --model-dir (default: newest)")
    parser.add_argument("--data", required=True, type=Path, help="TSV/CSV of text and labels, or an mnist.npz")
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument(
        "--mixed-precision", choices=("auto", "bf16", "off"), default="auto",
        help="bf16 via oneDNN's rewrite: auto = on CPUs with AMX/AVX512-BF16 where it measures faster",
    )
    parser.add_argument("--out-dir", type=Path, help="where the PNGs go (default: runs/evaluate/<model>/<version>/<data>)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app import devices
    from app.export import read_metadata, resolve_version
    from app.plots import plot_confusion_matrix, plot_roc_curves

    litert = Path(args.model_dir).suffix == ".tflite"
    try:
        export_dir = Path(args.model_dir) if litert else resolve_version(args.model_dir, args.version)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if not args.data.is_file():
        raise UsageError(f"data file not found: {args.data}")
    if litert:
        from app.litert import LiteRtClassifier

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
            precision = devices.set_precision_policy(args.mixed_precision, bf16_candidate_on_cpu=True, restored_graph=True)
            probabilities = predict(export_dir, inputs, args.batch_size)
    class_names = metadata.get("label_names") or [str(c) for c in range(probabilities.shape[1])]
    if labels.max() >= len(class_names):
        raise UsageError(f"{args.data} has label {labels.max()} but the model knows {len(class_names)} classes")
    metrics = classification_metrics(labels, probabilities, class_names)
    curves = metrics.pop("_roc_curves")

    out_dir = args.out_dir or Path("runs") / "evaluate" / metadata["name"] / export_dir.name / args.data.stem
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
