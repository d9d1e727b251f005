"""Task: knowledge distillation: a small encoder (the student) learns a fine-tuned classifier's (the
teacher's) answers, softened by a temperature, as well as the true labels.

loss = (1 - w) * CE(label, student) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(Hinton et al., 2015.) The KL part is `keras.distillation.LogitsDistillation`. `keras.distillation.
Distiller` itself is not used: it runs the teacher in every training step (the MiniLM teacher costs
~20x the tiny student, every epoch again) and feeds both models the same inputs, while here teacher
and student have different vocabularies. So the teacher's logits are computed once per sentence,
cached (`app.tasks.teacher`), and travel through the dataset beside the label: each target row is
``[label, teacher logit 0, teacher logit 1, ...]``. The student is otherwise a `BertTask`: same data
pipeline, model, optimizer and TF Serving export.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from app.common import paths
from app.common.cli import non_negative_int, unit_weight
from app.tasks.base import TaskData, TrainDefaults, option
from app.tasks.bert import BertTask
from app.tasks.teacher import Teacher
from data_pipelines.augmentation import perturbed_copies
from data_pipelines.text_classification import LabelledText, read_splits

class DistillationLoss(keras.losses.Loss):
    """Targets ``[label, teacher logits...]`` against the student's logits (formula in the module docstring)."""

    def __init__(self, temperature: float, teacher_weight: float, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature, self.teacher_weight = temperature, teacher_weight
        # T^2 * KL(teacher_T || student_T). The loss is passed as a KLDivergence *instance*: with
        # LogitsDistillation's default string "kl_divergence" (a plain function), Keras 3.15 skips the
        # softmax and takes the KL of the scaled logits themselves.
        self.soft = keras.distillation.LogitsDistillation(temperature, loss=keras.losses.KLDivergence())
        self.hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def call(self, targets, student_logits):
        labels, teacher_logits = targets[:, 0], targets[:, 1:]
        hard = self.hard(labels, student_logits)
        soft = self.soft.compute_loss(teacher_logits, student_logits)
        return (1 - self.teacher_weight) * hard + self.teacher_weight * soft

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "teacher_weight": self.teacher_weight}


class LabelAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy against the true label, the first column of the distillation targets."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, :1], y_pred, sample_weight)


@dataclass(frozen=True)
class DistillTask(BertTask):
    teacher: str = option(str(paths.TEACHER), "classifier export, newest version (python -m app.train bert)")
    temperature: float = option(2.0, "softens both answers")
    teacher_weight: float = option(0.5, "weight of the teacher's soft targets against the true labels (0 = labels only)", type=unit_weight)
    # Perturbed copies of each training sentence, labelled by the teacher (data_pipelines.augmentation).
    augment: int = option(
        0, "perturbed copies of each training sentence (words dropped, n-grams sampled), labelled by the teacher", type=non_negative_int
    )
    cache_dir: str = option(str(paths.TEACHER_LOGITS), "teacher logits cache")
    encoder: str = option(
        str(paths.FROM_ZERO_HUB / "encoder"), "TF-Hub encoder handle of the student, URL or folder (from python -m app.train mlm)",
        flag="--student-encoder",
    )
    preprocessor: str = option(
        str(paths.FROM_ZERO_HUB / "preprocessor"), "the preprocessor handle matching the student encoder", flag="--student-preprocessor"
    )
    # The from-zero student's embeddings were pretrained briefly on a small vocabulary: train them.
    freeze_word_embeddings: bool = option(
        False, "keep the student's word-piece table fixed", flags=("--freeze-word-embeddings", "--train-word-embeddings")
    )
    # The student answers with the teacher's class names.
    label_names: tuple[str, ...] = ("negative", "positive")
    # Where the student is exported: saved_models/<export_name>/<version>.
    export_name: str = option("bert_sst2_student", "model name of the export: <out>/<name>/<version>", flag="--name")

    name = "distill"
    summary = "distil a fine-tuned classifier (the teacher) into a small encoder (the student)"
    handle_flags = ("--student-encoder", "--student-preprocessor")
    defaults = TrainDefaults(epochs=6, batch_size=32, learning_rate=3e-4, patience=2, steps_per_execution=1)

    def load_data(self, data_dir, batch_size, seed, max_train_samples) -> TaskData:
        config = self.text_config(data_dir, batch_size, seed, max_train_samples)
        teacher = Teacher(self.teacher)
        train, validation = read_splits(config)
        for split in (train, validation):
            teacher.check_labels(split.labels, split.source)
        targets = [self.with_teacher_logits(train, teacher, seed), self.with_teacher_logits(validation, teacher)]
        data = replace(self, label_names=tuple(teacher.label_names)).batched(config, targets, len(teacher.label_names))
        agreement = float(np.mean(np.argmax(targets[1].labels[:, 1:], axis=1) == validation.labels))
        return replace(data, description=f"{data.description}; teacher {teacher.export_dir} (dev accuracy {agreement:.4f})")

    def with_teacher_logits(self, split: LabelledText, teacher: Teacher, augment_seed: int | None = None) -> LabelledText:
        """The split with target rows ``[label, teacher logits]``; with ``augment_seed``, plus
        ``self.augment`` perturbed copies of each sentence, labelled by the teacher's best class."""
        texts, labels = split.texts, split.labels
        logits = teacher.logits(texts, Path(self.cache_dir))
        if augment_seed is not None and self.augment:
            copies = perturbed_copies(texts, self.augment, augment_seed)
            copy_logits = teacher.logits(copies, Path(self.cache_dir))  # cached apart: the originals' are reused
            texts, logits = np.concatenate([texts, copies]), np.concatenate([logits, copy_logits])
            labels = np.concatenate([labels, np.argmax(copy_logits, axis=1)])
        return LabelledText(texts, np.concatenate([labels[:, None], logits], axis=1).astype(np.float32), split.source)

    def loss(self):
        return DistillationLoss(self.temperature, self.teacher_weight)

    def metrics(self) -> list:
        return [LabelAccuracy(name="accuracy")]

    def export_spec(self, model, data):
        # The student answers with the teacher's class names.
        as_teacher = replace(self, label_names=tuple(Teacher(self.teacher).label_names))
        spec = BertTask.export_spec(as_teacher, model, data)
        metadata = {
            **spec.metadata, "task": "bert", "distilled_from": self.teacher, "student_encoder": self.encoder,
            "temperature": self.temperature, "teacher_weight": self.teacher_weight, "augment": self.augment,
        }
        return replace(spec, metadata=metadata)
