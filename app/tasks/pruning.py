"""Task: a BERT classifier export made smaller by structured pruning (``python -m app.compress
--prune-heads F --prune-ffn F``), then a short recovery fine-tune.

1. The export is rebuilt as Keras layers: its encoder's keras-hub config (the handle it was fine-tuned
   from) with the export's own fine-tuned weights.
2. Importance, on training batches (Michel et al. 2019): removing head h of a layer is multiplying its
   output by a gate g_h = 0, and dL/dg_h = sum(W_O[h] * dL/dW_O[h]) over the output projection's rows
   for that head, so one gradient of the loss per batch scores every head (|.|, summed over batches);
   a feed-forward unit likewise, from its row of the output kernel.
3. The least important fraction of each layer's heads and units is removed (`models.bert.pruning`).
4. Recovery: the pruned model learns from the unpruned export's answers and the labels (a
   `DistillTask` whose student is the pruned model), and is exported with the same signatures.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.common.errors import UsageError
from app.exports.savedmodel import read_metadata, resolve_version
from app.tasks.base import TrainDefaults, option
from app.tasks.distill import DistillTask
from models.bert.classifier import WORD_EMBEDDING_NAMES, BertClassifierConfig, build_bert_classifier
from models.bert.encoder import KERAS_BACKBONE_ASSET, backbone_from_hub, build_encoder_model, has_keras_form
from models.bert.pruning import PruningPlan, plan_from_importance, pruned_transformer_layers
from models.hub_layer import resolve_handle
from models.saved_weights import copy_saved_weights


def pruning_fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a fraction in [0, 1), not {text}")
    return value


@dataclass(frozen=True)
class PruningOptions:
    """What to remove: the flags of ``python -m app.compress`` that prune."""

    prune_heads: float = option(0.0, "fraction of each layer's attention heads removed, least important first", type=pruning_fraction)
    prune_ffn: float = option(0.0, "fraction of each layer's feed-forward units removed, least important first", type=pruning_fraction)
    importance_batches: int = option(32, "training batches on which head and unit importance is measured")


def head_and_unit_importance(classifier: keras.Model, backbone, batches: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """[layers, heads] and [layers, units] importance: |dL/dgate| summed over ``batches`` (module docstring)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernels = [
        kernel for layer in backbone.transformer_layers
        for kernel in (layer._self_attention_layer._output_dense.kernel, layer._feedforward_output_dense.kernel)
    ]
    heads = np.zeros([len(backbone.transformer_layers), kernels[0].shape[0]])
    units = np.zeros([len(backbone.transformer_layers), kernels[1].shape[0]])
    values = [kernel.numpy() for kernel in kernels]  # attention [heads, head_dim, hidden], feed-forward [units, hidden]
    for inputs, targets in batches:
        with tf.GradientTape() as tape:
            value = loss(targets[:, 0], classifier(inputs, training=False))  # column 0: the true label
        gradients = [gradient.numpy() for gradient in tape.gradient(value, kernels)]
        for index in range(len(heads)):
            heads[index] += np.abs((values[2 * index] * gradients[2 * index]).sum(axis=(1, 2)))
            units[index] += np.abs((values[2 * index + 1] * gradients[2 * index + 1]).sum(axis=1))
    return heads, units


@dataclass(frozen=True)
class PruneTask(PruningOptions, DistillTask):
    """Build with `PruneTask.of_export`: the teacher is the export being pruned, the student its pruned copy."""

    # The export's weights and the pruning plan, read and measured once per run (the trainer may build
    # the model several times: `auto`'s probe builds one per candidate setting).
    plans: dict = field(default_factory=dict, repr=False, compare=False)

    name = "prune"
    summary = "prune a BERT classifier export's heads and feed-forward units, then recover by distillation from it"
    # One epoch of recovery; 5e-5 as for fine-tuning the MiniLM it came from.
    defaults = TrainDefaults(epochs=1, batch_size=16, learning_rate=5e-5, patience=1, steps_per_execution=1)
    # The model is float32 Keras layers: bf16 (if auto picks it) through oneDNN's rewrite at run time,
    # so the export stays float32 and answers as the unpruned export does.
    restored_graph = True

    @classmethod
    def of_export(cls, export_dir: Path, **options) -> "PruneTask":
        """The task pruning ``export_dir`` (one version folder); UsageError if it cannot be pruned as asked."""
        metadata = read_metadata(export_dir)
        if metadata.get("task") != "bert":
            raise UsageError(f"--prune-heads/--prune-ffn prune BERT classifiers, and {export_dir} is a {metadata.get('task')!r} export")
        if metadata.get("second_text_column"):
            raise UsageError(f"{export_dir} classifies sentence pairs: pruning recovers on single sentences (not supported)")
        encoder = metadata.get("encoder")
        if encoder and "://" not in encoder and not Path(encoder).is_dir():
            raise UsageError(f"{export_dir} was fine-tuned from the encoder {encoder}, which is not there any more")
        if not encoder or "://" in encoder or not has_keras_form(encoder):
            raise UsageError(
                f"{export_dir} was fine-tuned from {encoder or 'an encoder it does not name (an older export)'}; pruning rebuilds the "
                "encoder as Keras layers, which only handles exported by app.export_hub or app.train mlm describe: fine-tune one of those"
            )
        task = cls(
            teacher=str(export_dir), encoder=encoder, preprocessor=metadata["preprocessor"], pooling=metadata["pooling"],
            max_seq_length=metadata["max_seq_length"], freeze_word_embeddings=True, export_name=f"{metadata['name']}_pruned", **options,
        )
        config = json.loads((Path(encoder) / "assets" / KERAS_BACKBONE_ASSET).read_text())["config"]
        for flag, fraction, count, what in (
            ("--prune-heads", task.prune_heads, config["num_heads"], "heads"),
            ("--prune-ffn", task.prune_ffn, config["intermediate_dim"], "feed-forward units"),
        ):
            if count - round(fraction * count) < 1:
                raise UsageError(f"{flag} {fraction} removes all {count} {what} of each layer: give a smaller fraction")
        return task

    def source_classifier(self, num_classes: int):
        """The export as Keras layers with its fine-tuned weights: (classifier, its keras-hub backbone)."""
        backbone = backbone_from_hub(resolve_handle(self.encoder))
        encoder = build_encoder_model(backbone, model_name="encoder")
        classifier = build_bert_classifier(BertClassifierConfig(self.encoder, num_classes, self.pooling), encoder)
        if "weights" not in self.plans:
            copy_saved_weights(classifier.trainable_weights, resolve_version(self.teacher))
            self.plans["weights"] = [weight.numpy() for weight in classifier.trainable_weights]
        for weight, value in zip(classifier.trainable_weights, self.plans["weights"]):
            weight.assign(value)
        return classifier, backbone

    def build_model(self, data) -> keras.Model:
        classifier, backbone = self.source_classifier(data.num_classes)
        if "plan" not in self.plans:
            heads, units = head_and_unit_importance(classifier, backbone, data.train.take(self.importance_batches))
            self.plans["plan"] = plan_from_importance(heads, units, self.prune_heads, self.prune_ffn)
        encoder = build_encoder_model(backbone, "encoder", pruned_transformer_layers(backbone, self.plans["plan"]))
        model = build_bert_classifier(BertClassifierConfig(self.encoder, data.num_classes, self.pooling), encoder)
        model.get_layer("logits").set_weights(classifier.get_layer("logits").get_weights())
        for weight in encoder.weights:
            if self.freeze_word_embeddings and any(name in weight.path for name in WORD_EMBEDDING_NAMES):
                weight.trainable = False
        backbone.pooled_dense.trainable = self.pooling == "cls"  # mean pooling never reads the pooler
        return model

    def pruning_facts(self) -> dict:
        plan: PruningPlan = self.plans["plan"]
        return {
            "pruned_from": self.teacher, "prune_heads": self.prune_heads, "prune_ffn": self.prune_ffn,
            "heads_kept": [list(heads) for heads in plan.heads], "ffn_units_kept_per_layer": [len(units) for units in plan.units],
        }

    def run_facts(self) -> dict:
        return {"pruning": self.pruning_facts()}

    def export_spec(self, model, data):
        spec = super().export_spec(model, data)
        return replace(spec, metadata={**spec.metadata, "pruning": self.pruning_facts()})

