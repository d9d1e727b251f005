"""A BERT encoder from random weights, with the masked-language-modelling head it is pretrained with.

The encoder is keras-hub's ``BertBackbone`` (token + position + segment embeddings, N Transformer
encoder blocks, a pooler; `models.bert.encoder`); the head is keras-hub's ``BertMaskedLM`` head, which predicts the word
piece at each masked position with the output projection *tied* to the token embedding (the same
matrix reads word pieces in and writes them out, as in BERT). With next-sentence prediction, a
``Dense(2)`` classifier on the backbone's ``pooled_output`` (the ``[CLS]`` vector through the pooler)
says whether segment B follows segment A: the pooler is what that head trains.
"""

from __future__ import annotations

import keras
import keras_hub

from models.bert.encoder import BertEncoderConfig, build_bert_encoder


def build_masked_lm(config: BertEncoderConfig) -> keras_hub.models.BertMaskedLM:
    """Encoder + tied masked-LM head: the inputs plus ``mask_positions`` [batch, P] -> logits [batch, P, vocab]."""
    return keras_hub.models.BertMaskedLM(backbone=build_bert_encoder(config), preprocessor=None)


def build_pretrainer(config: BertEncoderConfig, next_sentence: bool) -> keras.Model:
    """`build_masked_lm`'s model, or with ``next_sentence`` one with two outputs: ``mlm``
    (logits [batch, P, vocab]) and ``nsp`` (logits [batch, 2], class 1 = B follows A). Both
    keep ``backbone`` and ``masked_lm_head`` as attributes, for the TF-Hub export."""
    masked_lm = build_masked_lm(config)
    if not next_sentence:
        return masked_lm
    backbone = masked_lm.backbone
    encoded = backbone(backbone.input)
    mask_positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
    classifier = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype=backbone.dtype_policy, name="next_sentence"
    )
    outputs = {
        "mlm": masked_lm.masked_lm_head(encoded["sequence_output"], mask_positions),
        "nsp": classifier(encoded["pooled_output"]),
    }
    model = keras.Model({**backbone.input, "mask_positions": mask_positions}, outputs, name="bert_pretrainer")
    model.backbone, model.masked_lm_head = backbone, masked_lm.masked_lm_head
    return model


def parameter_count(model: keras.Model) -> int:
    return int(sum(weight.numpy().size for weight in model.weights))
