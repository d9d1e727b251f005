"""Text from an exported language model, through its signatures only (never training code), so it is
exactly what a served model produces: one call of the ``generate`` signature (the sampling loop runs
inside the graph), or, for exports made before that signature existed, a loop over ``encode``,
``serving_default`` and ``decode`` that re-reads the last window for every token. Same seed, same text.
Several prompts go through one call of ``generate_batch`` (their texts depend on the batch they are
in, as rows share one random stream; at temperature 0 each is the text of its prompt alone).

``predict(signature name, input arrays) -> output arrays`` is a loaded SavedModel or a server client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app.common.errors import UsageError

# app.exports.sampler's SIGNATURE_NAME and BATCH_SIGNATURE_NAME (not imported: this module must stay light for clients)
GENERATE_SIGNATURE, BATCH_SIGNATURE = "generate", "generate_batch"


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick each next token: ``temperature`` 0 = always the most likely; ``top_k`` 0 = no cut."""

    length: int = 300
    temperature: float = 0.8
    top_k: int = 20
    seed: int = 0


def sample_next(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """Pick a token id from one position's logits, never the out-of-vocabulary id 0."""
    logits = logits.astype("float64").copy()
    logits[0] = -np.inf
    if config.temperature == 0:
        return int(np.argmax(logits))
    if config.top_k:
        cutoff = np.sort(logits)[-min(config.top_k, len(logits))]
        logits[logits < cutoff] = -np.inf
    scaled = logits / config.temperature
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    return int(rng.choice(len(probabilities), p=probabilities))


def sample_text(predict: Callable[[str, dict], dict], prompt: str, config: SamplingConfig, window: int, separator: str = "") -> str:
    """Continue ``prompt`` by ``config.length`` tokens, calling the model's ``encode``, ``serving_default``
    and ``decode`` signatures through ``predict(signature name, input arrays) -> output arrays``,
    so the same loop runs on a loaded SavedModel or against a server."""
    token_ids = [int(token) for token in predict("encode", {"text": np.array(prompt.encode("utf-8"), dtype=object)})["token_ids"]]
    if not token_ids:
        raise UsageError("the prompt is empty: give at least one character")
    rng = np.random.default_rng(config.seed)
    prompt_length = len(token_ids)
    for _ in range(config.length):
        context = np.array([token_ids[-window:]], dtype=np.int32)
        logits = predict("serving_default", {"token_ids": context})["logits"][0, -1]
        token_ids.append(sample_next(logits, config, rng))
    continuation = predict("decode", {"token_ids": np.array(token_ids[prompt_length:], dtype=np.int32)})["text"]
    return prompt + separator + continuation.item().decode("utf-8")


def sampling_inputs(config: SamplingConfig) -> dict:
    """The sampling inputs of the ``generate`` and ``generate_batch`` signatures."""
    return {
        "max_new_tokens": np.array(config.length, np.int32),
        "temperature": np.array(config.temperature, np.float32),
        "top_k": np.array(config.top_k, np.int32),
        "seed": np.array(config.seed, np.int32),
    }


def generate_in_graph(predict: Callable[[str, dict], dict], prompt: str, config: SamplingConfig, separator: str = "") -> str:
    """Continue ``prompt`` with one call of the export's ``generate`` signature."""
    outputs = predict(GENERATE_SIGNATURE, {"prompt": np.array(prompt.encode("utf-8"), dtype=object), **sampling_inputs(config)})
    return prompt + separator + outputs["text"].item().decode("utf-8")


def generate_batch_in_graph(predict: Callable[[str, dict], dict], prompts: list[str], config: SamplingConfig, separator: str = "") -> list[str]:
    """Continue every prompt with one call of the export's ``generate_batch`` signature."""
    encoded = np.array([prompt.encode("utf-8") for prompt in prompts], dtype=object)
    outputs = predict(BATCH_SIGNATURE, {"prompts": encoded, **sampling_inputs(config)})
    return [prompt + separator + text.decode("utf-8") for prompt, text in zip(prompts, outputs["texts"])]


def continue_text(predict, signature_names, prompt: str, config: SamplingConfig, window: int, separator: str = "") -> str:
    """In-graph generation where the export has it, else the per-token loop (older exports)."""
    if GENERATE_SIGNATURE in signature_names:
        return generate_in_graph(predict, prompt, config, separator)
    return sample_text(predict, prompt, config, window, separator)


def continue_texts(predict, signature_names, prompts: list[str], config: SamplingConfig, window: int, separator: str = "") -> list[str]:
    """Several prompts in one ``generate_batch`` call where the export has it, else one at a time."""
    if len(prompts) > 1 and BATCH_SIGNATURE in signature_names:
        return generate_batch_in_graph(predict, prompts, config, separator)
    return [continue_text(predict, signature_names, prompt, config, window, separator) for prompt in prompts]


def generate(export_dir, prompt: str, config: SamplingConfig = SamplingConfig(), in_graph: bool = True) -> str:
    """Continue ``prompt`` with the exported model in ``export_dir`` (loaded in this process);
    ``in_graph=False`` forces the per-token loop (for comparisons)."""
    (text,) = generate_texts(export_dir, [prompt], config, in_graph)
    return text


def generate_texts(export_dir, prompts: list[str], config: SamplingConfig = SamplingConfig(), in_graph: bool = True) -> list[str]:
    """Continue each of ``prompts`` with the exported model in ``export_dir``, as a batch where it can."""
    from app.exports.savedmodel import read_metadata
    from app.serving.errors import InvalidRequest
    from app.serving.repository import Servable

    metadata = read_metadata(export_dir)
    if metadata.get("task") != "lm":
        raise UsageError(f"{export_dir} is not a language-model export (it is {metadata.get('task')!r})")
    servable = Servable.load(metadata["name"], 0, Path(export_dir))
    signature_names = set(servable.signatures) if in_graph else set()
    try:
        return continue_texts(servable.run, signature_names, prompts, config, metadata["seq_len"], metadata_separator(metadata))
    except InvalidRequest as error:
        raise UsageError(str(error)) from None


def metadata_separator(metadata: dict) -> str:
    """Words are joined by spaces, characters by nothing."""
    return " " if metadata.get("tokenizer") == "word" else ""
