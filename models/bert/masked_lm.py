"""A BERT encoder from random weights, with the masked-language-modelling head it is pretrained with.

The encoder is keras-hub's ``BertBackbone`` (token + position + segment embeddings, N Transformer
encoder blocks, a pooler; `models.bert.encoder`); the head is keras-hub's ``BertMaskedLM`` head, which predicts the word
piece at each masked position with the output projection *tied* to the token embedding (the same
matrix reads word pieces in and writes them out, as in BERT).
"""

from __future__ import annotations

import keras
import keras_hub

from models.bert.encoder import BertEncoderConfig, build_bert_encoder


def build_masked_lm(config: BertEncoderConfig) -> keras_hub.models.BertMaskedLM:
    """Encoder + tied masked-LM head: the inputs plus ``mask_positions`` [batch, P] -> logits [batch, P, vocab]."""
    return keras_hub.models.BertMaskedLM(backbone=build_bert_encoder(config), preprocessor=None)


def parameter_count(model: keras.Model) -> int:
    return int(sum(weight.numpy().size for weight in model.weights))
