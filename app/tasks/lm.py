"""Language-model tasks: next-token prediction on Tiny Shakespeare (or any text), scored on the
held-out end of the text (loss, perplexity, bits per token), exported with in-graph generation.

`NextTokenTask` holds what every language model shares (data, loss, metrics, export); the LSTM here
and the GPT in `app/tasks/gpt.py` only say how to build the model and how it decodes step by step.
"""

from __future__ import annotations

import abc
import json
import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from app.exports import sampler
from app.exports.savedmodel import Endpoint, ExportSpec
from app.tasks.base import Task, TaskData, TrainDefaults, option
from data_pipelines.text import TextConfig, Tokenizer, load_text
from models.decoding import IncrementalDecoder
from models.lstm_lm import LstmLmConfig, build_lstm_lm, lstm_decoder


@dataclass(frozen=True)
class TextData(TaskData):
    """Windows of token ids, and the tokenizer that made them (the model's vocabulary, the export's
    encode/decode); with a given vocabulary, the share of the text's tokens outside it."""

    tokenizer: Tokenizer
    out_of_vocabulary: float | None = None


@dataclass(frozen=True)
class NextTokenTask(Task):
    """Data, loss, metrics and export shared by the language models."""

    tokenizer: str = option("char", "character or word tokens", choices=("char", "word"))
    seq_len: int = option(100, "tokens per training window")
    text_file: str | None = option(help="train on this UTF-8 text file", default_text="Tiny Shakespeare")

    # Windows start at a new random offset every epoch (more distinct contexts for a Transformer).
    random_offsets = False

    @abc.abstractmethod
    def decoder(self, model: keras.Model) -> IncrementalDecoder:
        """How the model generates one token at a time (for the export's ``generate`` signature)."""

    def given_vocabulary(self) -> tuple[str, tuple[str, ...]] | None:
        """(token level, vocabulary) of a trained model to continue from, or None to build one from the text."""
        return None

    def load_data(self, data_dir, batch_size, seed, max_train_samples) -> TextData:
        level, vocabulary = self.given_vocabulary() or (self.tokenizer, None)
        text = load_text(
            TextConfig(
                data_dir=data_dir,
                text_file=self.text_file,
                tokenizer=level,
                seq_len=self.seq_len,
                batch_size=batch_size,
                max_train_samples=max_train_samples,
                seed=seed,
                random_offsets=self.random_offsets,
                vocabulary=vocabulary,
            )
        )
        return TextData(
            train=text.train,
            validation=text.validation,
            evaluation=text.validation,
            evaluation_split="validation",
            train_examples=text.counts["train tokens"],
            description=text.describe(),
            tokenizer=text.tokenizer,
            out_of_vocabulary=text.out_of_vocabulary,
        )

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def summarize(self, evaluation: dict, data: TaskData) -> dict:
        loss = float(evaluation["loss"])
        metrics = {
            "validation_loss": loss,
            "validation_accuracy": float(evaluation["accuracy"]),
            "perplexity": math.exp(loss),
            f"bits_per_{data.tokenizer.level}": loss / math.log(2),
        }
        if data.out_of_vocabulary is not None:
            metrics["out_of_vocabulary_share"] = data.out_of_vocabulary
        return metrics

    def export_spec(self, model: keras.Model, data: TaskData) -> ExportSpec:
        tokenizer = data.tokenizer

        def next_token_logits(token_ids):
            return {"logits": model(token_ids, training=False)}

        def encode(text):
            return {"token_ids": tokenizer.encode(text)}

        def decode(token_ids):
            return {"text": tokenizer.decode(token_ids)}

        warmup_prompt = tokenizer.vocabulary[0]  # in the vocabulary of any text, unlike e.g. "ROMEO:"
        generate, generate_batch = sampler.generate_endpoints(self.decoder(model), tokenizer)
        sampling_warmup = {
            "max_new_tokens": np.array(8, np.int32),
            "temperature": np.array(0.8, np.float32),
            "top_k": np.array(min(5, tokenizer.vocab_size), np.int32),
            "seed": np.array(0, np.int32),
        }
        return ExportSpec(
            endpoints=[
                Endpoint("serving_default", next_token_logits, [tf.TensorSpec([None, None], tf.int32, name="token_ids")]),
                Endpoint("encode", encode, [tf.TensorSpec([], tf.string, name="text")]),
                Endpoint("decode", decode, [tf.TensorSpec([None], tf.int32, name="token_ids")]),
                Endpoint(sampler.SIGNATURE_NAME, generate, sampler.INPUT_SIGNATURE),
                Endpoint(sampler.BATCH_SIGNATURE_NAME, generate_batch, sampler.BATCH_INPUT_SIGNATURE),
            ],
            tracked=[tokenizer.to_ids, tokenizer.to_tokens],
            metadata={
                "task": "lm",
                "architecture": model.name,
                "tokenizer": tokenizer.level,
                "seq_len": self.seq_len,
                "vocab_size": tokenizer.vocab_size,
                "max_new_tokens": sampler.MAX_NEW_TOKENS,
            },
            extra_files={"vocabulary.json": json.dumps(tokenizer.tokens_by_id, ensure_ascii=False)},
            warmup_examples={
                "serving_default": {"token_ids": np.ones([1, self.seq_len], np.int32)},
                "encode": {"text": np.array("ROMEO:", dtype=object)},
                "decode": {"token_ids": np.ones([4], np.int32)},
                sampler.SIGNATURE_NAME: {"prompt": np.array(warmup_prompt.encode("utf-8"), dtype=object), **sampling_warmup},
                sampler.BATCH_SIGNATURE_NAME: {"prompts": np.array([warmup_prompt.encode("utf-8")] * 2, dtype=object), **sampling_warmup},
            },
        )


@dataclass(frozen=True)
class LanguageModelTask(NextTokenTask):
    """The LSTM language model."""

    embedding_dim: int = option(256, "token embedding width")
    lstm_units: int = option(128, "LSTM width")
    num_layers: int = option(1, "stacked LSTM layers")

    name = "lm"
    summary = "LSTM language model on Tiny Shakespeare (or --text-file)"
    export_name = "lm"
    defaults = TrainDefaults(epochs=10, batch_size=64, learning_rate=2e-3, patience=3)

    def build_model(self, data: TextData) -> keras.Model:
        return build_lstm_lm(
            LstmLmConfig(
                vocab_size=data.tokenizer.vocab_size,
                embedding_dim=self.embedding_dim,
                lstm_units=self.lstm_units,
                num_layers=self.num_layers,
            )
        )

    def decoder(self, model: keras.Model) -> IncrementalDecoder:
        return lstm_decoder(model)
