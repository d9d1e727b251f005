"""Keras 3 functional-API model builders: a config dataclass in, an uncompiled `keras.Model` out."""
