"""Server-side batching, like TF Serving's ``--enable_batching`` with a ``BatchingParameters`` file:
requests for the same model version and signature that meet in the queue are concatenated along
the batch dimension, run as one model call and split back. On a CPU one call on 16 sentences costs
far less than 16 calls (a MiniLM call has ~11 ms of fixed cost on one core, then ~0.15 ms per
padded word piece).

This module is the scheduler: the queues, the threads and :class:`ModelRunner`, which the REST and
gRPC services call. How a batch is cut into model calls and padded is :mod:`app.serving.planning`.

As in TF Serving (``shared_batch_scheduler.h``, ``batching_session.cc``):

* at most ``num_batch_threads`` batches run at once; a free thread takes the queued requests once
  ``max_batch_size`` rows are waiting or the oldest has waited ``batch_timeout_micros``;
* more than ``max_enqueued_batches`` batches' worth of waiting rows: UNAVAILABLE, "The batch
  scheduling queue to which this task was submitted is full"; a request larger than
  ``max_batch_size`` is refused unless ``enable_large_batch_splitting``;
* without ``pad_variable_length_inputs``, requests whose tensors differ beyond the batch dimension
  are batched apart by shape.

One difference, for speed on a small CPU: when no batch of this model is running, a request is
started at once instead of waiting for company (one client pays no batching window).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.serving.errors import InvalidRequest, Unavailable
from app.serving.planning import (
    LENGTH_SIGNATURE,
    BatchingConfig,
    call_shape,
    estimated_text_length,
    filler_text,
    is_text_signature,
    merge_inputs,
    plan_text_calls,
    split_outputs,
)

IDLE_SECONDS = 60.0


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future
    enqueued: float


def _rows(inputs: dict[str, np.ndarray]) -> int:
    return next(iter(inputs.values())).shape[0]


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
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives together with
        # the wake-up, and the cancelled scheduler then sleeps another IDLE_SECONDS (asyncio.run and
        # the server's shutdown waited 60 s for it).
        self.wake.clear()
        waiter = asyncio.ensure_future(self.wake.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
        return bool(done)

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
        """Plan the model calls of one batch (:mod:`app.serving.planning`) and run them one after
        another on this thread."""
        try:
            buckets: tuple[int, ...] = ()
            lengths: list[int | None] = [None] * len(batch)
            if self.text and len(batch) > 1:
                buckets = self.runner.length_buckets(self.servable, self.signature)
                (name,) = self.signature.inputs
                if buckets:
                    texts = np.concatenate([task.inputs[name] for task in batch])
                    counts, start = self.runner.text_lengths(self.servable, texts), 0
                    for index, task in enumerate(batch):
                        lengths[index] = max(counts[start:start + task.rows])
                        start += task.rows
                else:  # the model's own length is unknown
                    lengths = [estimated_text_length(task.inputs[name]) for task in batch]
                groups = plan_text_calls(self.config, lengths, [task.rows for task in batch], buckets)
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
        merged = {
            name: merge_inputs(self.config, [task.inputs[name] for task in tasks], rows, shape) for name in self.signature.inputs
        }
        self.runner._count_call()
        try:
            outputs = self.servable.run(self.signature.name, merged)
        except Exception as error:
            self._answer_one_by_one(tasks, error)
            return
        self._record(rows, shape.rows, tasks, started)
        self.loop.call_soon_threadsafe(_resolve, tasks, split_outputs(outputs, [task.rows for task in tasks]))

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
