"""BERT in one place, layered as keras-hub layers it: ``vocabulary`` (WordPiece), ``preprocessor``
(strings -> packed word-piece ids, the TF-Hub interface), ``encoder`` (keras-hub's ``BertBackbone``),
``classifier`` (a TF-Hub encoder + pooling + logits) and ``masked_lm`` (encoder + tied masked-LM head)."""
