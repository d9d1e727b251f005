"""Task: fine-tune a TF-Hub BERT encoder as a sentence classifier (SST-2 sentiment by default).

Early stopping and the reported metrics use the dev split; ``test.tsv`` is never read here (only
``python -m app.evaluate`` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.common import paths
from app.common.errors import UsageError
from app.exports.savedmodel import Endpoint, ExportSpec
from app.training.adapters import load_adapter
from app.tasks.base import Task, TaskData, TrainDefaults, option
from app.tasks.finetuning import LoraOptions
from app.tasks.schedules import LinearWarmupDecay
from data_pipelines.errors import DataError
from data_pipelines.text_classification import TextClassificationConfig, load_text_classification, read_splits
from models.bert.classifier import BertClassifierConfig, build_bert_classifier, build_text_classifier, encoder_positions
from models.bert.encoder import backbone_from_hub, build_encoder_model, has_keras_form
from models.bert.preprocessor import BERT_INPUTS, load_preprocessor
from models.hub_layer import resolve_handle

FINETUNE_METHODS = ("full", "lora", "frozen")


def require_handle(handle: str, flag: str) -> None:
    """A local TF-Hub handle must be a SavedModel folder (URLs are resolved, and checked, on download)."""
    if "://" in handle:
        return
    if not (Path(handle) / "saved_model.pb").is_file():
        found = "is not a SavedModel folder (no saved_model.pb)" if Path(handle).exists() else "does not exist"
        raise UsageError(f"{flag} {handle} {found}: give a TF-Hub URL or a folder exported by app.export_hub / app.train mlm")


def local_or_url(handle: str) -> str:
    """A handle as the export's metadata records it: a URL as it is, a folder as an absolute path (so
    that app.compress finds it from any working directory)."""
    return handle if "://" in handle else str(Path(handle).resolve())


@dataclass(frozen=True)
class ClassificationData(TaskData):
    """Labelled sentences; the classifier's output size is the number of classes found."""

    num_classes: int


def comma_separated(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


# Peak learning rate by --finetune, measured on the MiniLM (4,000 SST-2 sentences, 2 epochs, batch 16,
# 64 word pieces, AMD EPYC; dev accuracy): full 5e-5 (Hugging Face's default) 0.861 / 0.841 (seeds 0 / 1),
# 3e-5 0.849; LoRA rank 8: 3e-3 0.848 / 0.843, 5e-3 0.851 / 0.836, 2e-3 0.836, 1e-3 0.812, 1e-2 0.773;
# frozen: 1e-2 0.803, 1e-3 0.765.
# Small matrices that start from zero (LoRA's B, the head) want steps ~100x larger than a pretrained encoder.
LEARNING_RATES = {"full": 5e-5, "lora": 3e-3, "frozen": 1e-2}


@dataclass(frozen=True)
class BertTask(LoraOptions, Task):
    encoder: str = option(str(paths.MINILM_HUB / "encoder"), "TF-Hub encoder handle: URL or folder (the default is the shared MiniLM, exported on first use)")
    preprocessor: str = option(str(paths.MINILM_HUB / "preprocessor"), "TF-Hub preprocessor handle matching the encoder")
    pooling: str = option("mean", "sentence vector: mean of the token vectors, or the encoder's pooled [CLS] output", choices=("mean", "cls"))
    finetune: str = option(
        "full", "which weights train: full = the encoder's and the head's; lora = low-rank updates of --lora-targets "
        "and the head (the encoder frozen; needs an encoder exported by this project); frozen = the head only. "
        f"Default --learning-rate by method: {', '.join(f'{method} {rate:g}' for method, rate in LEARNING_RATES.items())}",
        choices=FINETUNE_METHODS,
    )
    adapter: str | None = option(help="start from this adapter (the adapter.lora.h5 of an earlier --finetune lora run)")
    # Frozen by default: most rows of a 30k-piece table never occur in a small fine-tuning set.
    # Train them for encoders whose embeddings are not pretrained (or a small, corpus-specific vocabulary):
    # app.train mlm's encoders recommend it (and a learning rate) in assets.extra/fine_tuning.json.
    freeze_word_embeddings: bool | None = option(
        help="keep the word-piece embedding table fixed (train it for encoders pretrained briefly or not at all)",
        flags=("--freeze-word-embeddings", "--train-word-embeddings"),
        default_text="as the encoder recommends (app.train mlm's: trained), else fixed",
    )
    train_file: str | None = option(help="TSV/CSV with text and label columns", default_text="SST-2 train")
    validation_file: str | None = option(help="for early stopping and the reported metrics", default_text="SST-2 dev")
    text_column: str = option("sentence", "column of the sentences")
    second_text_column: str | None = option(
        help="a second text column: sentence pairs, packed [CLS] A [SEP] B [SEP] with segment ids 0 and 1 (the export then takes "
        "text and second_text)", default_text="none, one sentence per example",
    )
    label_column: str = option("label", "column of the integer labels")
    label_names: tuple[str, ...] = option(("negative", "positive"), "comma-separated names of classes 0, 1, ...", type=comma_separated)
    max_seq_length: int = option(128, "word pieces per sentence, at most")
    monitor: str = option(
        "val_loss", "the dev metric that early stopping, the best checkpoint and so the exported epoch follow",
        choices=("val_loss", "val_accuracy"),
    )
    warmup_fraction: float = 0.1

    name = "bert"
    summary = "fine-tune a TF-Hub BERT encoder on SST-2 sentiment (or --train-file)"
    export_name = "bert_sst2"
    handle_flags = ("--encoder", "--preprocessor")  # the command-line flags that set them, for error messages
    # bf16 is oneDNN's graph rewrite: a TF-Hub encoder allows nothing else, and for LoRA's Keras-layer
    # encoder it trained faster than a mixed_bfloat16 policy (docs/finetuning.md).
    restored_graph = True

    @property
    def defaults(self) -> TrainDefaults:
        """Batch 16: on 4,000 SST-2 sentences x 2 epochs it reached dev 0.845-0.846 against 0.839 with 32.
        The learning rate depends on what trains (`LEARNING_RATES`); for full fine-tuning, an encoder that
        recommends another (`recommended`) gets its own."""
        recommended = self.recommended().get("learning_rate") if self.finetune == "full" else None
        learning_rate = recommended or LEARNING_RATES[self.finetune]
        return TrainDefaults(epochs=3, batch_size=16, learning_rate=learning_rate, patience=1, steps_per_execution=1)

    def recommended(self) -> dict:
        """The encoder's recommended fine-tuning settings (app.train mlm exports them), {} if none."""
        from app.exports.hub import read_fine_tuning

        return read_fine_tuning(self.encoder)

    def word_embeddings_frozen(self) -> bool:
        if self.freeze_word_embeddings is not None:
            return self.freeze_word_embeddings
        return self.recommended().get("freeze_word_embeddings", True)

    def ensure_default_hub(self) -> None:
        """Export the shared MiniLM in TF-Hub format on first use of the default handles (again if an
        earlier version exported it without its Keras form)."""
        if self.encoder == str(paths.MINILM_HUB / "encoder") and not has_keras_form(paths.MINILM_HUB / "encoder"):
            from app.exports.hub import export_checkpoint

            print(f"exporting {paths.MINILM_CHECKPOINT} in TF-Hub format to {paths.MINILM_HUB} (first use)", flush=True)
            export_checkpoint(paths.MINILM_CHECKPOINT, paths.MINILM_HUB)

    def load_data(self, data_dir, batch_size, seed, max_train_samples) -> ClassificationData:
        self.ensure_default_hub()
        config = self.text_config(data_dir, batch_size, seed, max_train_samples)
        data = self.batched(config, read_splits(config))
        if recommended := self.recommended():
            settings = ", ".join(f"{key} {value}" for key, value in recommended.items() if key != "why")
            data = replace(data, description=f"{data.description}; the encoder recommends {settings} (used where no flag says otherwise)")
        return data

    def text_config(self, data_dir, batch_size, seed, max_train_samples) -> TextClassificationConfig:
        """Where the sentences come from and how they are batched; the handles are checked first."""
        for handle, flag in zip((self.encoder, self.preprocessor), self.handle_flags):
            require_handle(handle, flag)
        self.check_finetune_flags()
        return TextClassificationConfig(
            data_dir=data_dir, train_file=self.train_file, validation_file=self.validation_file,
            text_column=self.text_column, label_column=self.label_column, second_text_column=self.second_text_column,
            max_train_samples=max_train_samples,
            max_seq_length=self.max_seq_length, batch_size=batch_size, seed=seed,
        )

    def batched(self, config: TextClassificationConfig, splits, num_classes: int | None = None) -> ClassificationData:
        """Tokenize the splits with the preprocessor and batch them by length."""
        preprocessor = load_preprocessor(self.preprocessor)
        train, validation, train_split, validation_split = load_text_classification(config, preprocessor, splits)
        num_classes = num_classes or int(max(train_split.labels.max(), validation_split.labels.max())) + 1
        if num_classes > len(self.label_names):
            raise DataError(f"the data has {num_classes} classes but only {len(self.label_names)} --label-names")
        return ClassificationData(
            train=train,
            validation=validation,
            evaluation=validation,
            evaluation_split="dev",
            train_examples=len(train_split.labels),
            description=(
                f"sentences from {train_split.source} (train {len(train_split.labels):,}) and "
                f"{validation_split.source} (dev {len(validation_split.labels):,}), {num_classes} classes"
            ),
            num_classes=num_classes,
        )

    def check_finetune_flags(self) -> None:
        """LoRA needs the encoder as Keras layers, which only this project's exports describe."""
        if self.adapter and self.finetune != "lora":
            raise UsageError("--adapter holds LoRA updates: pass it with --finetune lora")
        if self.adapter and not Path(self.adapter).is_file():
            raise UsageError(f"--adapter {self.adapter} does not exist")
        if self.finetune == "lora" and ("://" in self.encoder or not has_keras_form(self.encoder)):
            raise UsageError(
                f"--finetune lora needs the encoder as Keras layers, and {self.handle_flags[0]} {self.encoder} is a plain TF-Hub "
                "SavedModel: export its checkpoint with python -m app.export_hub --checkpoint CHECKPOINT --out DIR and pass "
                f"{self.handle_flags[0]} DIR/encoder (app.train mlm's handles work too), or use --finetune full or frozen"
            )

    def build_model(self, data: ClassificationData) -> keras.Model:
        config = BertClassifierConfig(
            self.encoder, data.num_classes, self.pooling,
            trainable_encoder=self.finetune == "full", freeze_word_embeddings=self.word_embeddings_frozen(),
        )
        model = build_bert_classifier(config, self.lora_encoder() if self.finetune == "lora" else None)
        positions = encoder_positions(model)
        if positions is not None and self.max_seq_length > positions:
            # Else the first long sentence fails deep in the encoder's graph (a Slice error).
            raise UsageError(
                f"--max-seq-length {self.max_seq_length} is longer than the {positions} word pieces encoder {self.encoder} "
                f"was built for: pass --max-seq-length {positions} or less"
            )
        if self.adapter:
            try:
                load_adapter(model, Path(self.adapter))
            except ValueError as error:
                raise UsageError(f"--adapter: {error}") from None
        return model

    def lora_encoder(self) -> keras.Model:
        """The encoder as Keras layers, frozen, with LoRA updates on ``lora_targets``."""
        encoder = build_encoder_model(backbone_from_hub(resolve_handle(self.encoder)), model_name="encoder")
        self.add_lora(encoder)
        return encoder

    def run_facts(self) -> dict:
        facts = {"finetune": self.finetune, "monitor": self.monitor, "word_embeddings": "fixed" if self.word_embeddings_frozen() else "trained"}
        if recommended := self.recommended():
            facts["encoder_recommends"] = {key: value for key, value in recommended.items() if key != "why"}
        if self.finetune == "lora":
            facts["lora"] = self.lora_facts()
        return facts

    def optimizer(self, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
        schedule = LinearWarmupDecay(learning_rate, int(total_steps * self.warmup_fraction), total_steps)
        return keras.optimizers.AdamW(schedule, weight_decay=0.01)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def export_spec(self, model: keras.Model, data: ClassificationData) -> ExportSpec:
        pairs = bool(self.second_text_column)
        text_model = build_text_classifier(model, self.preprocessor, self.max_seq_length, pairs)
        label_names = tf.constant(list(self.label_names[: data.num_classes]))
        text_names = ("text", "second_text") if pairs else ("text",)
        text_specs = [tf.TensorSpec([None], tf.string, name=name) for name in text_names]

        def segments(texts):
            """The preprocessor's input: one string tensor, or a list of two for sentence pairs."""
            return list(texts) if pairs else texts[0]

        def predictions(logits):
            probabilities = tf.nn.softmax(logits, axis=-1)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"probabilities": probabilities, "class_ids": class_ids, "labels": tf.gather(label_names, class_ids)}

        def classify(*texts):
            return predictions(text_model(segments(texts), training=False))

        def classify_token_ids(input_word_ids, input_mask, input_type_ids):
            # No TF Text ops in this graph: TF Serving images older than this TensorFlow can run it.
            token_inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
            return predictions(model(token_inputs, training=False))

        def word_piece_counts(*texts):
            # Lets a client sort sentences by their true length before batching (less padding).
            inputs = text_model.get_layer("preprocessor")(segments(texts))
            return {"word_pieces": tf.reduce_sum(inputs["input_mask"], axis=1)}

        example = {"text": ["a gorgeous, witty film"], "second_text": ["a dull, lifeless film"]}
        example = {name: np.array(example[name], dtype=object) for name in text_names}
        example_tokens = text_model.get_layer("preprocessor")(segments([tf.constant(example[name]) for name in text_names]))
        return ExportSpec(
            endpoints=[
                Endpoint("serving_default", classify, text_specs),
                Endpoint(
                    "classify_token_ids", classify_token_ids,
                    [tf.TensorSpec([None, None], tf.int32, name=name) for name in BERT_INPUTS],
                ),
                Endpoint("word_piece_counts", word_piece_counts, text_specs),
            ],
            tracked=[text_model],
            metadata={
                "task": self.name, "label_names": list(self.label_names[: data.num_classes]), "pooling": self.pooling,
                "max_seq_length": self.max_seq_length, "encoder": local_or_url(self.encoder),
                "preprocessor": local_or_url(self.preprocessor),
                **({"second_text_column": self.second_text_column} if pairs else {}),
            },
            warmup_examples={
                "serving_default": example,
                "classify_token_ids": {name: example_tokens[name].numpy() for name in BERT_INPUTS},
                "word_piece_counts": example,
            },
        )
