"""Server-side batching, like TF Serving's ``--enable_batching`` with a ``BatchingParameters`` file:
requests for the same model version and signature that meet in the queue are concatenated along
the batch dimension, run as one model call and split back. On a CPU one call on 16 sentences costs
far less than 16 calls (a MiniLM call has ~11 ms of fixed cost on one core, then ~0.15 ms per
padded word piece).

As in TF Serving (``shared_batch_scheduler.h``, ``batching_session.cc``):

* at most ``num_batch_threads`` batches run at once; a free thread takes the queued requests once
  ``max_batch_size`` rows are waiting or the oldest has waited ``batch_timeout_micros``;
* a batch is padded up to the next of ``allowed_batch_sizes`` with copies of a row of its last
  request, and the padding is cut off the outputs;
* more than ``max_enqueued_batches`` batches' worth of waiting rows: UNAVAILABLE, "The batch
  scheduling queue to which this task was submitted is full"; a request larger than
  ``max_batch_size`` is refused unless ``enable_large_batch_splitting``;
* ``pad_variable_length_inputs``: requests whose tensors differ beyond the batch dimension are padded
  to the largest with each tensor's first element (without it they are batched apart by shape).

Three differences, all for speed on a small CPU:

* When no batch of this model is running, a request is started at once instead of waiting for
  company (one client pays no batching window).
* Text signatures (one ``[batch]`` string input; the model pads every text to the longest in its
  call) are split by length: the waiting requests are sorted by length and cut into the model calls
  of least total cost (:func:`plan_groups`), so short texts are not padded to long ones.
* Text-length buckets: when the model publishes the length it pads to (a ``word_piece_counts``
  signature, as this project's BERT exports do), every call's padded length is rounded up to one of
  ``length_buckets`` by making its padding row a filler text of exactly that length. With
  ``allowed_batch_sizes`` the set of shapes the model ever sees is then bounded (batch sizes x
  buckets, plus exact lengths for single requests), so oneDNN's per-shape kernels and caches stop
  growing after warm-up instead of growing with every new (rows, length) pair.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from app.cli import UsageError
from app.serving.errors import InvalidRequest, Unavailable

IDLE_SECONDS = 60.0


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


# ---- planning: which requests share a call, and how it is padded -------------------------------------


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


def _rows(inputs: dict[str, np.ndarray]) -> int:
    return next(iter(inputs.values())).shape[0]


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


# ---- the runner ------------------------------------------------------------------------------------


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future
    enqueued: float


class ModelRunner:
    """Runs requests on a thread pool (model calls block), batching them when configured.
    ``metrics`` (optional): ``record_batch(model, version, batch_size, padded_size, queuing_seconds,
    request_sizes=...)`` is called once per batched model call."""

    def __init__(self, executor: Executor, config: BatchingConfig, metrics: Any = None):
        self.executor, self.config, self.metrics = executor, config, metrics
        self._queues: dict[tuple, _BatchQueue] = {}
        self._lock = threading.Lock()
        self._length_checks: dict[tuple, tuple[int, ...]] = {}
        self.model_calls = 0

    async def run(self, servable, signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not (self.config.enabled and signature.batchable and inputs):
            return await self._call(servable, signature, inputs)
        rows = _rows(inputs)
        if rows > self.config.max_batch_size and not self.config.enable_large_batch_splitting:
            raise InvalidRequest(f"Task size {rows} is larger than maximum input batch size {self.config.max_batch_size}")
        if rows > self.config.execution_batch_size:
            return await self._run_split(servable, signature, inputs, rows)
        if rows == 0:
            return await self._call(servable, signature, inputs)
        key = (servable.name, servable.version, signature.name)
        if not self.config.pad_variable_length_inputs:
            # Without padding only requests whose examples have the same shape can share a call.
            key += tuple((name, value.shape[1:]) for name, value in sorted(inputs.items()))
        queue = self._queues.get(key)
        if queue is None or queue.closed or queue.loop is not asyncio.get_running_loop():
            queue = self._queues[key] = _BatchQueue(self, key, servable, signature)
        return await queue.submit(inputs, rows)

    async def _run_split(self, servable, signature, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """``enable_large_batch_splitting``: a large request goes through the queue in pieces."""
        size = self.config.execution_batch_size
        pieces = [{name: value[start:start + size] for name, value in inputs.items()} for start in range(0, rows, size)]
        answers = await asyncio.gather(*(self.run(servable, signature, piece) for piece in pieces))
        return {name: np.concatenate([answer[name] for answer in answers]) for name in answers[0]}

    async def _call(self, servable, signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._count_call()
        return await asyncio.get_running_loop().run_in_executor(self.executor, servable.run, signature.name, inputs)

    def _count_call(self) -> None:
        with self._lock:
            self.model_calls += 1

    def length_buckets(self, servable, signature) -> tuple[int, ...]:
        """The buckets usable with this servable's text signature: those its ``word_piece_counts``
        confirms the filler text hits exactly (checked once; () = no bucketing)."""
        key = (servable.name, servable.version, signature.name)
        with self._lock:
            if key in self._length_checks:
                return self._length_checks[key]
        buckets: tuple[int, ...] = ()
        counter = getattr(servable, "signatures", {}).get(LENGTH_SIGNATURE)
        if self.config.length_buckets and counter is not None and is_text_signature(counter):
            try:
                fillers = np.array([filler_text(size, "") for size in self.config.length_buckets], dtype=object)
                counts = self.text_lengths(servable, fillers)
                buckets = tuple(size for size, count in zip(self.config.length_buckets, counts) if count == size)
            except Exception:
                buckets = ()
        with self._lock:
            self._length_checks[key] = buckets
        return buckets

    def text_lengths(self, servable, texts: np.ndarray) -> list[int]:
        counter = servable.signatures[LENGTH_SIGNATURE]
        (name,), (output,) = counter.inputs, counter.outputs
        return [int(count) for count in servable.run(LENGTH_SIGNATURE, {name: texts})[output]]


class _BatchQueue:
    """The waiting requests of one model version + signature (+ example shape), and the scheduler
    that hands them to at most ``num_batch_threads`` model calls at a time."""

    def __init__(self, runner: ModelRunner, key: tuple, servable, signature):
        self.runner, self.config, self.key = runner, runner.config, key
        self.servable, self.signature = servable, signature
        self.text = is_text_signature(signature)
        self.tasks: deque[_Task] = deque()
        self.waiting_rows = 0
        self.running = 0
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.scheduler = self.loop.create_task(self._schedule())

    async def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        limit = self.config.max_enqueued_batches * self.config.max_batch_size
        if self.waiting_rows + rows > limit:
            enqueued = math.ceil(self.waiting_rows / self.config.max_batch_size)
            raise Unavailable(
                "The batch scheduling queue to which this task was submitted is full; currently "
                f"{enqueued} batches enqueued and max_enqueued_batches is {self.config.max_enqueued_batches}"
            )
        future = self.loop.create_future()
        self.tasks.append(_Task(inputs, rows, future, self.loop.time()))
        self.waiting_rows += rows
        self.wake.set()
        return await future

    async def _sleep_until_woken(self, timeout: float) -> bool:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _schedule(self) -> None:
        config = self.config
        limit = config.execution_batch_size
        timeout = config.timeout_ms / 1000
        while True:
            while not self.tasks or self.running >= config.num_batch_threads:
                if not await self._sleep_until_woken(IDLE_SECONDS) and not self.tasks and not self.running:
                    self.closed = True  # the event loop is single-threaded: nothing was queued meanwhile
                    if self.runner._queues.get(self.key) is self:
                        del self.runner._queues[self.key]
                    return
            # A thread is free. With other batches running, wait (up to the window, counted from the
            # oldest request) for the batch to fill; with none running there is nobody to wait for.
            if self.running:
                deadline = self.tasks[0].enqueued + timeout
                while self.waiting_rows < limit and self.loop.time() < deadline:
                    await self._sleep_until_woken(deadline - self.loop.time())
            batch, rows = [], 0
            while self.tasks and (not batch or rows + self.tasks[0].rows <= limit):
                task = self.tasks.popleft()
                batch.append(task)
                rows += task.rows
            self.waiting_rows -= rows
            self.running += 1
            started = self.loop.time()
            done = self.loop.run_in_executor(self.runner.executor, self._process, batch, started)
            done.add_done_callback(self._finished)

    def _finished(self, done: asyncio.Future) -> None:
        self.running -= 1  # _process answers every request of its batch itself, even on failure
        self.wake.set()

    # -- in a model thread --------------------------------------------------------------------------

    def _process(self, batch: list[_Task], started: float) -> None:
        """Plan the model calls of one batch and run them one after another on this thread."""
        try:
            buckets: tuple[int, ...] = ()
            lengths: list[int | None] = [None] * len(batch)
            if self.text and len(batch) > 1:
                buckets = self.runner.length_buckets(self.servable, self.signature)
                (name,) = self.signature.inputs
                texts = np.concatenate([task.inputs[name] for task in batch])
                if buckets:
                    counts, start = self.runner.text_lengths(self.servable, texts), 0
                    for index, task in enumerate(batch):
                        lengths[index] = max(counts[start:start + task.rows])
                        start += task.rows
                else:  # the model's own length is unknown: UTF-8 bytes / 4 is about a word piece
                    for index, task in enumerate(batch):
                        lengths[index] = max(len(text) for text in task.inputs[name]) // 4 + 2
                overhead = self.config.call_overhead_tokens

                def cost(rows: int, longest: int) -> float:
                    shape = call_shape(self.config, rows, longest, buckets)
                    return overhead + shape.rows * (shape.length or longest)

                groups = plan_groups(lengths, [task.rows for task in batch], cost, self.config.execution_batch_size)
            else:
                groups = [list(range(len(batch)))]
            for group in groups:
                tasks = [batch[index] for index in group]
                longest = max(lengths[index] for index in group) if self.text and lengths[group[0]] is not None else None
                self._run_call(tasks, longest, buckets, started)
        except BaseException as error:  # never leave a request unanswered
            self.loop.call_soon_threadsafe(_fail, batch, error)

    def _run_call(self, tasks: list[_Task], longest: int | None, buckets: tuple[int, ...], started: float) -> None:
        rows = sum(task.rows for task in tasks)
        shape = call_shape(self.config, rows, longest, buckets)
        merged = {}
        for name in self.signature.inputs:
            values = [task.inputs[name] for task in tasks]
            if self.config.pad_variable_length_inputs and values[0].ndim > 1:
                dims = tuple(max(sizes) for sizes in zip(*(value.shape[1:] for value in values)))
                values = [pad_to_shape(value, dims) for value in values]
            if shape.rows > rows:
                if shape.length is not None:
                    padding = np.array([filler_text(shape.length, values[-1][0])] * (shape.rows - rows), dtype=values[-1].dtype)
                else:  # TF Serving: copies of the first row of the last task
                    padding = np.repeat(values[-1][:1], shape.rows - rows, axis=0)
                values.append(padding)
            merged[name] = values[0] if len(values) == 1 else np.concatenate(values)
        self.runner._count_call()
        try:
            outputs = self.servable.run(self.signature.name, merged)
        except Exception as error:
            self._answer_one_by_one(tasks, error)
            return
        self._record(rows, shape.rows, tasks, started)
        answers, start = [], 0
        for task in tasks:
            end = start + task.rows
            answers.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        self.loop.call_soon_threadsafe(_resolve, tasks, answers)

    def _answer_one_by_one(self, tasks: list[_Task], error: Exception) -> None:
        """A failed call is rerun request by request, so one bad request cannot fail its neighbours."""
        answers = []
        for task in tasks:
            if len(tasks) == 1:
                answers.append(error)
                continue
            try:
                self.runner._count_call()
                answers.append(self.servable.run(self.signature.name, task.inputs))
            except Exception as own_error:
                answers.append(own_error)
        self.loop.call_soon_threadsafe(_resolve, tasks, answers)

    def _record(self, rows: int, padded: int, tasks: list[_Task], started: float) -> None:
        metrics = self.runner.metrics
        if metrics is None:
            return
        try:
            metrics.record_batch(
                self.servable.name, self.servable.version, rows, padded, max(0.0, started - tasks[0].enqueued),
                request_sizes=[task.rows for task in tasks],
            )
        except Exception:  # metrics must never fail a request
            pass


def _resolve(tasks: list[_Task], answers: list) -> None:
    for task, answer in zip(tasks, answers):
        if task.future.done():
            continue
        if isinstance(answer, BaseException):
            task.future.set_exception(answer)
        else:
            task.future.set_result(answer)


def _fail(tasks: list[_Task], error: BaseException) -> None:
    for task in tasks:
        if not task.future.done():
            task.future.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
