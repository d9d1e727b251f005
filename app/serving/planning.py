"""How a batch of waiting requests becomes model calls: TF Serving's ``BatchingParameters`` as a
config, the padding of a call's rows up to an allowed batch size, text-length buckets, and the split
of a batch into calls. No threads, no queues and no event loop here: :mod:`app.serving.scheduling`
decides when a batch is taken and on which thread it runs, then asks this module how to run it.

As in TF Serving (``bundle_factory_util.cc``, ``batching_session.cc``, ``batching_util.cc``):

* a call is padded up to the next of ``allowed_batch_sizes`` with copies of a row of its last
  request, and the padding is cut off the outputs;
* ``pad_variable_length_inputs``: requests whose tensors differ beyond the batch dimension are padded
  to the largest with each tensor's first element (``AddPadding``).

Two differences, both for speed on a small CPU:

* Text signatures (one ``[batch]`` string input; the model pads every text to the longest in its
  call) are split by length: the waiting requests are sorted by length and cut into the model calls
  of least total cost (:func:`plan_groups`), so short texts are not padded to long ones.
* Text-length buckets: when the model publishes the length it pads to (a ``word_piece_counts``
  signature, as this project's BERT exports do), every call's padded length is rounded up to one of
  ``length_buckets`` by making its padding row a filler text of exactly that length
  (:func:`call_shape`). With ``allowed_batch_sizes`` the set of shapes the model ever sees is then
  bounded (batch sizes x buckets, plus exact lengths for single requests), so oneDNN's per-shape
  kernels and caches stop growing after warm-up instead of growing with every new (rows, length) pair.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from app.common.errors import UsageError


class InvalidBatchingParameters(UsageError, ValueError):
    """BatchingParameters that TF Serving refuses (the server reports it as a bad flag)."""


# The signature of this project's BERT exports that says how many word pieces each text is padded to.
LENGTH_SIGNATURE = "word_piece_counts"
# Word pieces per call (with [CLS] and [SEP]); SST-2 sentences are 25 pieces on average, 60 at most.
# Steps of 4 where most sentences are: on 2 cores at 32 clients these served ~7 % more than steps of 8;
# with allowed_batch_sizes 1,2,4,8,12,16,24,32 (112 shapes) RSS stayed flat in a soak, while 15 batch
# sizes x these buckets (210 shapes) still grew ~1 %/min after the first minute.
DEFAULT_LENGTH_BUCKETS = (12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 96, 128)
FILLER_WORD = "a"  # one word piece in every BERT vocabulary


@dataclass(frozen=True)
class BatchingConfig:
    """``enabled`` off = every request is its own model call. The rest mirrors TF Serving's
    ``BatchingParameters`` (see :meth:`from_parameters`); ``timeout_ms`` is ``batch_timeout_micros``
    / 1000. ``length_buckets``: padded text lengths (word pieces) for models with a
    ``word_piece_counts`` signature, () = off. ``call_overhead_tokens``: a model call's fixed cost in
    padded word pieces (rows x length), which sets how eagerly text batches are split by length."""

    enabled: bool = False
    max_batch_size: int = 32
    timeout_ms: float = 2.0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None
    length_buckets: tuple[int, ...] = DEFAULT_LENGTH_BUCKETS
    call_overhead_tokens: float = 64.0

    def __post_init__(self):
        problems = check_parameters(self.max_batch_size, self.num_batch_threads, self.allowed_batch_sizes)
        if self.max_enqueued_batches < 1:
            problems.append(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
        if problems:
            raise InvalidBatchingParameters("; ".join(problems))

    @classmethod
    def from_parameters(cls, message: Any, enabled: bool = True, **overrides) -> "BatchingConfig":
        """A ``tensorflow.serving.BatchingParameters`` message (``app.serving.config_protos``), with TF
        Serving's defaults for unset fields: ``max_batch_size`` 1000, ``batch_timeout_micros`` 0,
        ``max_enqueued_batches`` 10 (``SharedBatchScheduler::QueueOptions``), ``num_batch_threads``
        = the number of cores (``port::MaxParallelism()``). Raises ValueError with TF Serving's
        wording for what it refuses (e.g. a last ``allowed_batch_sizes`` entry != max_batch_size)."""

        def value(name: str, default):
            return getattr(message, name).value if message.HasField(name) else default

        max_batch_size = int(value("max_batch_size", 1000))
        splitting = bool(value("enable_large_batch_splitting", False))
        settings = dict(
            enabled=enabled,
            max_batch_size=max_batch_size,
            timeout_ms=value("batch_timeout_micros", 0) / 1000,
            max_enqueued_batches=int(value("max_enqueued_batches", 10)),
            num_batch_threads=int(value("num_batch_threads", os.cpu_count() or 1)),
            allowed_batch_sizes=tuple(int(size) for size in message.allowed_batch_sizes),
            pad_variable_length_inputs=bool(message.pad_variable_length_inputs),
            enable_large_batch_splitting=splitting,
            max_execution_batch_size=int(value("max_execution_batch_size", max_batch_size)) if splitting else None,
        )
        return cls(**{**settings, **overrides})

    @property
    def execution_batch_size(self) -> int:
        """The most rows in one model call."""
        return min(self.max_execution_batch_size or self.max_batch_size, self.max_batch_size)

    def padded_size(self, rows: int) -> int | None:
        """The smallest allowed batch size >= rows (rows itself without allowed sizes); None if none."""
        if not self.allowed_batch_sizes:
            return rows if rows <= self.execution_batch_size else None
        return next((size for size in self.allowed_batch_sizes if size >= rows), None)


def default_allowed_batch_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Allowed sizes for a server configured without a parameters file: 1, 2, 4, 8, then steps of a
    quarter of the next power of two (12, 16, 24, 32, 48, ...), ending at ``max_batch_size``, so
    that a batch wastes at most a third of its rows on padding and few shapes are compiled."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size = size * 2 if size < 8 else size + 2 ** (size.bit_length() - 2)
    return tuple(sizes) + (max_batch_size,)


def check_parameters(max_batch_size: int, num_batch_threads: int, allowed_batch_sizes: Sequence[int]) -> list[str]:
    """What TF Serving refuses in BatchingParameters, in its words (bundle_factory_util.cc,
    batching_session.cc, shared_batch_scheduler.h)."""
    problems = []
    if max_batch_size < 1:
        problems.append(f"max_batch_size must be positive; was {max_batch_size}")
    if num_batch_threads < 1:
        problems.append(f"num_batch_threads must be positive; was {num_batch_threads}")
    if allowed_batch_sizes:
        if any(later <= earlier for earlier, later in zip(allowed_batch_sizes, allowed_batch_sizes[1:])) or allowed_batch_sizes[0] < 1:
            problems.append("allowed_batch_sizes entries must be monotonically increasing")
        if allowed_batch_sizes[-1] != max_batch_size:
            problems.append(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{allowed_batch_sizes[-1]}; expected {max_batch_size}"
            )
    return problems


# ---- which requests share a call -----------------------------------------------------------------


def split_by_length(lengths: list[int], call_overhead: float) -> list[list[int]]:
    """Group requests (by index) into model calls so that the total cost is smallest, where a call
    costs ``call_overhead`` plus its rows x its longest length (one row per request)."""
    return plan_groups(lengths, [1] * len(lengths), lambda rows, longest: call_overhead + rows * longest)


def plan_groups(lengths: Sequence[int], rows: Sequence[int], cost: Callable[[int, int], float], max_rows: int | None = None) -> list[list[int]]:
    """Cut requests (by index; ``rows`` each) into model calls of least total ``cost(rows, longest)``,
    at most ``max_rows`` rows a call. Texts are padded to the longest in a call, so mixing short and
    long ones wastes work, and every call has a fixed cost: dynamic programming over the requests
    sorted by length (each call is a run of neighbours in that order)."""
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    best_cost = [0.0] + [math.inf] * len(order)
    best_start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest, total = lengths[order[end - 1]], 0
        for start in range(end - 1, -1, -1):
            total += rows[order[start]]
            if max_rows is not None and total > max_rows and start < end - 1:
                break
            candidate = best_cost[start] + cost(total, longest)
            if candidate <= best_cost[end]:
                best_cost[end], best_start[end] = candidate, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[best_start[end]:end])
        end = best_start[end]
    return groups[::-1]


def plan_text_calls(
    config: BatchingConfig, lengths: Sequence[int], rows: Sequence[int], buckets: Sequence[int]
) -> list[list[int]]:
    """The calls of a batch of text requests (longest text ``lengths[i]`` pieces, ``rows[i]`` rows
    each), costed as they will be padded (:func:`call_shape`) plus the fixed cost of a call."""
    overhead = config.call_overhead_tokens

    def cost(call_rows: int, longest: int) -> float:
        shape = call_shape(config, call_rows, longest, buckets)
        return overhead + shape.rows * (shape.length or longest)

    return plan_groups(lengths, rows, cost, config.execution_batch_size)


def estimated_text_length(texts: np.ndarray) -> int:
    """A request's longest text in word pieces when the model does not say: UTF-8 bytes / 4 is about
    a word piece, plus [CLS] and [SEP]."""
    return max(len(text) for text in texts) // 4 + 2


# ---- how a call is padded ------------------------------------------------------------------------


@dataclass(frozen=True)
class CallShape:
    """How one model call is padded: to ``rows`` rows, and (text buckets) to ``length`` word pieces by
    a filler row, None = no filler."""

    rows: int
    length: int | None


def call_shape(config: BatchingConfig, rows: int, longest: int | None, buckets: Sequence[int]) -> CallShape:
    """The padded shape of a call of ``rows`` real rows whose longest text is ``longest`` pieces."""
    padded = config.padded_size(rows) or rows
    bucket = next((size for size in buckets if size >= longest), None) if buckets and longest is not None else None
    if bucket is None or bucket == longest:
        return CallShape(padded, None)
    if padded > rows:
        return CallShape(padded, bucket)  # the padding rows become filler texts
    if rows == 1:
        return CallShape(padded, None)  # one request alone: its exact length (shapes stay bounded by the model's maximum)
    bigger = config.padded_size(rows + 1)
    return CallShape(bigger, bucket) if bigger is not None else CallShape(padded, None)


def is_text_signature(signature) -> bool:
    """One input of [batch] strings: a text model, which pads every text to the batch's longest."""
    return len(signature.inputs) == 1 and all(
        info.dtype.name == "string" and info.shape == (None,) for info in signature.inputs.values()
    )


def filler_text(length: int, like: object) -> object:
    """A text of exactly ``length`` word pieces ([CLS] and [SEP] included), as bytes if ``like`` is."""
    text = " ".join([FILLER_WORD] * max(length - 2, 1))
    return text.encode() if isinstance(like, bytes) else text


def pad_to_shape(value: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """TF Serving's ``AddPadding``: pad every dimension but the first up to ``dims`` with the
    tensor's first element."""
    widths = [(0, 0)] + [(0, want - have) for have, want in zip(value.shape[1:], dims)]
    if all(after == 0 for _, after in widths) or value.size == 0:
        return value
    return np.pad(value, widths, mode="constant", constant_values=value.flat[0])


def merge_inputs(config: BatchingConfig, values: list[np.ndarray], rows: int, shape: CallShape) -> np.ndarray:
    """One input of a call: the requests' ``values`` (``rows`` rows in all) concatenated, padded as
    ``shape`` says (filler texts, else copies of the first row of the last request, as TF Serving does)."""
    if config.pad_variable_length_inputs and values[0].ndim > 1:
        dims = tuple(max(sizes) for sizes in zip(*(value.shape[1:] for value in values)))
        values = [pad_to_shape(value, dims) for value in values]
    if shape.rows > rows:
        if shape.length is not None:
            padding = np.array([filler_text(shape.length, values[-1][0])] * (shape.rows - rows), dtype=values[-1].dtype)
        else:  # TF Serving: copies of the first row of the last task
            padding = np.repeat(values[-1][:1], shape.rows - rows, axis=0)
        values = [*values, padding]
    return values[0] if len(values) == 1 else np.concatenate(values)


def split_outputs(outputs: dict[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """A call's outputs cut back into one answer per request (``rows`` each); padding rows are dropped."""
    answers, start = [], 0
    for count in rows:
        answers.append({name: value[start:start + count] for name, value in outputs.items()})
        start += count
    return answers
