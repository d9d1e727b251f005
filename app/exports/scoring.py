"""Scores of a classifier's answers against true labels, computed with `keras.metrics`."""

from __future__ import annotations

import numpy as np


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
