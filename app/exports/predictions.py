"""Answers of exported models, computed in this process: a classifier's probabilities (SavedModel or
LiteRT) over many inputs in length-sorted batches, and a pretrained encoder's guesses for ``[MASK]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BATCHES_IN_FLIGHT = 2


def predict(export_dir: Path, inputs: dict, batch_size: int) -> np.ndarray:
    """Class probabilities from the export's ``serving_default``."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF Text ops of the BERT preprocessor)

    return classify(tf.saved_model.load(str(export_dir)), inputs, batch_size)


def classify(loaded, inputs: dict, batch_size: int) -> np.ndarray:
    """A loaded export's ``serving_default`` over ``inputs`` in batches, answers in input order.

    Sentences are batched with others of the same length in word pieces (from the export's
    ``word_piece_counts`` signature where it has one, else characters), so batches carry little
    padding; two batches are in flight at once, so one batch's tokenization and small ops overlap the
    other's matrix products."""
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf

    from data_pipelines.text_classification import length_sorted_groups

    serve = loaded.signatures["serving_default"]
    values = next(iter(inputs.values()))  # the first input (a sentence pair's segment A, or the only one)

    def feed(rows) -> dict:
        return {name: tf.constant(column[rows]) for name, column in inputs.items()}

    if values.dtype == object and "word_piece_counts" in loaded.signatures:
        count = loaded.signatures["word_piece_counts"]
        lengths = np.concatenate([count(**feed(slice(start, start + 1024)))["word_pieces"].numpy()
                                  for start in range(0, len(values), 1024)])
        groups = length_sorted_groups(lengths, batch_size)
    elif values.dtype == object:
        groups = length_sorted_groups([len(value) for value in values], batch_size)
    else:
        groups = [np.arange(start, min(start + batch_size, len(values))) for start in range(0, len(values), batch_size)]
    with ThreadPoolExecutor(BATCHES_IN_FLIGHT) as pool:
        answers = pool.map(lambda group: serve(**feed(group))["probabilities"].numpy(), groups)
        return in_input_order(groups, list(answers))


def predict_litert(classifier, texts: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities from a LiteRT classifier (`app.exports.litert`), in batches of similar length."""
    from data_pipelines.text_classification import length_sorted_groups

    groups = length_sorted_groups([len(text) for text in texts], batch_size)
    return in_input_order(groups, [classifier.probabilities(texts[group]) for group in groups])


def in_input_order(groups: list[np.ndarray], answers: list[np.ndarray]) -> np.ndarray:
    """Answers given batch by batch for the examples in ``groups`` (index arrays), in input order."""
    probabilities = np.concatenate(answers)
    ordered = np.empty_like(probabilities)
    ordered[np.concatenate(groups)] = probabilities
    return ordered


def fill_mask(encoder, preprocessor, texts: list[str], top_k: int = 5) -> list[list[list[tuple[str, float]]]]:
    """For each text, for each ``[MASK]`` in it, the ``top_k`` (word piece, probability) of ``encoder.mlm``.

    ``encoder`` and ``preprocessor`` are loaded TF-Hub objects (``tf.saved_model.load``).
    """
    import tensorflow as tf

    special = {name: int(value) for name, value in preprocessor.get_special_tokens_dict().items()}
    vocabulary = Path(encoder.vocab_file.asset_path.numpy().decode()).read_text(encoding="utf-8").splitlines()
    rows = []
    for text in texts:
        parts = preprocessor.tokenize(tf.constant(text.split("[MASK]"))).merge_dims(-2, -1).to_list()
        ids = [special["start_of_sequence_id"]]
        for index, part in enumerate(parts):
            ids += ([special["mask_id"]] if index else []) + part
        rows.append(ids + [special["end_of_segment_id"]])
    length = max(map(len, rows))
    word_ids = np.full((len(rows), length), special["padding_id"], np.int32)
    for row, ids in zip(word_ids, rows):
        row[: len(ids)] = ids
    positions = [np.flatnonzero(row == special["mask_id"]) for row in word_ids]
    padded_positions = np.zeros((len(rows), max(1, max(map(len, positions)))), np.int32)
    for row, found in zip(padded_positions, positions):
        row[: len(found)] = found
    logits = encoder.mlm({
        "input_word_ids": tf.constant(word_ids), "input_mask": tf.constant((word_ids != special["padding_id"]).astype(np.int32)),
        "input_type_ids": tf.zeros_like(word_ids), "masked_lm_positions": tf.constant(padded_positions),
    })["mlm_logits"]
    probabilities = tf.nn.softmax(logits, axis=-1).numpy()
    results = []
    for text_index, found in enumerate(positions):
        results.append([
            [(vocabulary[i], round(float(probabilities[text_index, slot, i]), 4)) for i in np.argsort(-probabilities[text_index, slot])[:top_k]]
            for slot in range(len(found))
        ])
    return results
