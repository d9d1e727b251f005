"""Task: fine-tune a TF-Hub BERT encoder as a sentence classifier (SST-2 sentiment by default).

Early stopping and the reported metrics use the dev split; ``test.tsv`` is never read here (only
``python -m app.evaluate`` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.cli import UsageError
from app.export import Endpoint, ExportSpec
from app.tasks.base import Task, TaskData, TrainDefaults
from data_pipelines.errors import DataError
from data_pipelines.text_classification import TextClassificationConfig, load_text_classification, read_splits
from models.bert_classifier import BERT_INPUTS, BertClassifierConfig, build_bert_classifier, build_text_classifier, encoder_positions
from models.hub_layer import resolve_handle

DEFAULT_HUB = Path("saved_models") / "hub" / "minilm_l6"


def require_handle(handle: str, flag: str) -> None:
    """A local TF-Hub handle must be a SavedModel folder (URLs are resolved, and checked, on download)."""
    if "://" in handle:
        return
    if not (Path(handle) / "saved_model.pb").is_file():
        found = "is not a SavedModel folder (no saved_model.pb)" if Path(handle).exists() else "does not exist"
        raise UsageError(f"{flag} {handle} {found}: give a TF-Hub URL or a folder exported by app.export_hub / app.train mlm")


class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rise linearly to ``peak`` over ``warmup_steps``, then fall linearly to 0 at ``total_steps`` (BERT's schedule)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, max(1, warmup_steps), max(2, total_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = step / self.warmup_steps
        decay = (self.total_steps - step) / (self.total_steps - self.warmup_steps)
        return self.peak * keras.ops.maximum(0.0, keras.ops.minimum(warmup, decay))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


@dataclass(frozen=True)
class BertTask(Task):
    encoder: str = str(DEFAULT_HUB / "encoder")
    preprocessor: str = str(DEFAULT_HUB / "preprocessor")
    pooling: str = "mean"
    trainable_encoder: bool = True
    # Frozen by default: most rows of a 30k-piece table never occur in a small fine-tuning set.
    # Train them for encoders whose embeddings are not pretrained (or a small, corpus-specific vocabulary).
    freeze_word_embeddings: bool = True
    train_file: str | None = None
    validation_file: str | None = None
    text_column: str = "sentence"
    label_column: str = "label"
    label_names: tuple[str, ...] = ("negative", "positive")
    max_seq_length: int = 128
    warmup_fraction: float = 0.1

    name = "bert"
    export_name = "bert_sst2"
    handle_flags = ("--encoder", "--preprocessor")  # the command-line flags that set them, for error messages
    # Batch 16: on 4,000 SST-2 sentences x 2 epochs it reached dev 0.845-0.846 against 0.839 with 32.
    # Learning rate 5e-5 (Hugging Face's default): dev 0.861 / 0.841 (seeds 0 / 1) there, 3e-5 gave 0.849.
    defaults = TrainDefaults(epochs=3, batch_size=16, learning_rate=5e-5, patience=1, steps_per_execution=1)
    # Length-grouped batches have many shapes, each an XLA compile; on CPU that costs more than it
    # saves (measured with keras-hub's backbone: 7.1 vs 19.0 samples/s with and without XLA; and XLA's
    # fused steady state ran the MiniLM encoder no faster than oneDNN's kernels, see bench/profile_bert.py).
    jit_compile_on_cpu = False
    # bf16 is measured before use (auto), and reaches the restored TF-Hub encoder by oneDNN's rewrite.
    bf16_candidate_on_cpu = True
    restored_graph = True

    def ensure_default_hub(self) -> None:
        """Export the shared MiniLM in TF-Hub format on first use of the default handles."""
        if self.encoder == str(DEFAULT_HUB / "encoder") and not (DEFAULT_HUB / "encoder" / "saved_model.pb").is_file():
            from app.export_hub import DEFAULT_CHECKPOINT, export_hub, load_backbone, read_vocabulary

            print(f"exporting {DEFAULT_CHECKPOINT} in TF-Hub format to {DEFAULT_HUB} (first use)", flush=True)
            vocab_file, lower_case = read_vocabulary(DEFAULT_CHECKPOINT)
            export_hub(load_backbone(DEFAULT_CHECKPOINT), vocab_file, lower_case, DEFAULT_HUB)

    def load_data(self, data_dir, batch_size, seed, max_train_samples) -> TaskData:
        self.ensure_default_hub()
        config = self.text_config(data_dir, batch_size, seed, max_train_samples)
        return self.batched(config, read_splits(config))

    def text_config(self, data_dir, batch_size, seed, max_train_samples) -> TextClassificationConfig:
        """Where the sentences come from and how they are batched; the handles are checked first."""
        for handle, flag in zip((self.encoder, self.preprocessor), self.handle_flags):
            require_handle(handle, flag)
        return TextClassificationConfig(
            data_dir=data_dir, train_file=self.train_file, validation_file=self.validation_file,
            text_column=self.text_column, label_column=self.label_column, max_train_samples=max_train_samples,
            max_seq_length=self.max_seq_length, batch_size=batch_size, seed=seed,
        )

    def batched(self, config: TextClassificationConfig, splits, num_classes: int | None = None) -> TaskData:
        """Tokenize the splits with the preprocessor and batch them by length."""
        preprocessor = tf.saved_model.load(resolve_handle(self.preprocessor))
        train, validation, train_split, validation_split = load_text_classification(config, preprocessor, splits)
        num_classes = num_classes or int(max(train_split.labels.max(), validation_split.labels.max())) + 1
        if num_classes > len(self.label_names):
            raise DataError(f"the data has {num_classes} classes but only {len(self.label_names)} --label-names")
        return TaskData(
            train=train,
            validation=validation,
            evaluation=validation,
            evaluation_split="dev",
            train_examples=len(train_split.labels),
            description=(
                f"sentences from {train_split.source} (train {len(train_split.labels):,}) and "
                f"{validation_split.source} (dev {len(validation_split.labels):,}), {num_classes} classes"
            ),
            extras=num_classes,
        )

    def build_model(self, data: TaskData) -> keras.Model:
        model = build_bert_classifier(
            BertClassifierConfig(
                self.encoder, data.extras, self.pooling,
                trainable_encoder=self.trainable_encoder, freeze_word_embeddings=self.freeze_word_embeddings,
            )
        )
        positions = encoder_positions(model)
        if positions is not None and self.max_seq_length > positions:
            # Else the first long sentence fails deep in the encoder's graph (a Slice error).
            raise UsageError(
                f"--max-seq-length {self.max_seq_length} is longer than the {positions} word pieces encoder {self.encoder} "
                f"was built for: pass --max-seq-length {positions} or less"
            )
        return model

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        schedule = LinearWarmupDecay(learning_rate, int(total_steps * self.warmup_fraction), total_steps)
        return keras.optimizers.AdamW(schedule, weight_decay=0.01)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def export_spec(self, model: keras.Model, data: TaskData) -> ExportSpec:
        text_model = build_text_classifier(model, self.preprocessor, self.max_seq_length)
        label_names = tf.constant(list(self.label_names[: data.extras]))

        def predictions(logits):
            probabilities = tf.nn.softmax(logits, axis=-1)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"probabilities": probabilities, "class_ids": class_ids, "labels": tf.gather(label_names, class_ids)}

        def classify(text):
            return predictions(text_model(text, training=False))

        def classify_token_ids(input_word_ids, input_mask, input_type_ids):
            # No TF Text ops in this graph: TF Serving images older than this TensorFlow can run it.
            token_inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
            return predictions(model(token_inputs, training=False))

        def word_piece_counts(text):
            # Lets a client sort sentences by their true length before batching (less padding).
            return {"word_pieces": tf.reduce_sum(text_model.get_layer("preprocessor")(text)["input_mask"], axis=1)}

        example = ["a gorgeous, witty film"]
        example_tokens = text_model.get_layer("preprocessor")(tf.constant(example))
        return ExportSpec(
            endpoints=[
                Endpoint("serving_default", classify, [tf.TensorSpec([None], tf.string, name="text")]),
                Endpoint(
                    "classify_token_ids", classify_token_ids,
                    [tf.TensorSpec([None, None], tf.int32, name=name) for name in BERT_INPUTS],
                ),
                Endpoint("word_piece_counts", word_piece_counts, [tf.TensorSpec([None], tf.string, name="text")]),
            ],
            tracked=[text_model],
            metadata={
                "task": self.name, "label_names": list(self.label_names[: data.extras]), "pooling": self.pooling,
                "max_seq_length": self.max_seq_length,
            },
            warmup_examples={
                "serving_default": {"text": np.array(example, dtype=object)},
                "classify_token_ids": {name: example_tokens[name].numpy() for name in BERT_INPUTS},
                "word_piece_counts": {"text": np.array(example, dtype=object)},
            },
        )
