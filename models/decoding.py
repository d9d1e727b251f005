"""What a language model offers for generation one token at a time (used by the in-graph sampler)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class IncrementalDecoder:
    """A model seen as a state machine over tokens, so each new token costs one step, not a window.

    ``prefill(token_ids [B, T])`` reads B prompts and returns (next-token logits [B, vocab], state);
    ``step(history [B, T], state)`` reads the newest tokens ``history[:, -1]`` and returns the same pair.
    The whole history is passed so a model with a bounded context (a Transformer's key/value cache)
    can start again from its recent end when the cache is full.
    """

    prefill: Callable
    step: Callable
    context_length: int | None = None  # longest prompt it reads at once; None = unbounded (recurrent)
