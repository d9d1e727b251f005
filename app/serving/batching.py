"""Server-side batching, like TF Serving's ``--enable_batching``: requests that arrive within a short
window for the same model version and signature are concatenated along the batch dimension, run as
one model call and split back. On a CPU one call on 32 sentences costs far less than 32 calls.

Unlike TF Serving, text requests are first sorted by length and split where that is cheaper
(``split_by_length``), because a text model pads every sentence to the longest in its call.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from app.serving.repository import Servable
from app.serving.tensors import Signature

IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class BatchingConfig:
    """``enabled`` off = every request is its own model call. ``timeout_ms``: how long the first request
    of a batch waits for company; ``max_batch_size``: examples per model call."""

    enabled: bool = False
    max_batch_size: int = 32
    timeout_ms: float = 2.0
    # The fixed cost of one model call, in padded text bytes (rows x longest text), as measured for
    # MiniLM on 2 CPU cores (~14 ms a call, ~0.06 ms a padded byte). Sets how eagerly text batches split.
    call_overhead_bytes: int = 256
    # Batches running at once: two keep both CPU cores busy through each call's serial parts.
    concurrent_batches: int = 3


def _rows(inputs: dict[str, np.ndarray]) -> int:
    return next(iter(inputs.values())).shape[0]


def _is_text_signature(signature: Signature) -> bool:
    """One input of [batch] strings: a text model, which pads every text to the batch's longest."""
    return len(signature.inputs) == 1 and all(info.dtype.name == "string" and info.shape == (None,) for info in signature.inputs.values())


def split_by_length(lengths: list[int], call_overhead: float) -> list[list[int]]:
    """Group requests (by index) into model calls so that the total cost is smallest, where a call
    costs ``call_overhead`` plus its rows x its longest length. Texts are padded to the longest in a
    call, so mixing short and long ones wastes work; many small calls waste the per-call overhead.
    Dynamic programming over the requests sorted by length."""
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    best_cost = [0.0] + [float("inf")] * len(order)
    best_start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        for start in range(end):
            cost = best_cost[start] + call_overhead + (end - start) * longest
            if cost < best_cost[end]:
                best_cost[end], best_start[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[best_start[end]:end])
        end = best_start[end]
    return groups[::-1]


class ModelRunner:
    """Runs requests on a thread pool (model calls block), batching them when configured."""

    def __init__(self, executor: Executor, config: BatchingConfig):
        self.executor, self.config = executor, config
        self._queues: dict[tuple, asyncio.Queue] = {}
        self.model_calls = 0

    async def run(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not (self.config.enabled and signature.batchable) or _rows(inputs) >= self.config.max_batch_size:
            return await self._call(servable, signature, inputs)
        # Only requests whose examples have the same shape can share a call (e.g. equal-length token windows).
        key = (servable.name, servable.version, signature.name) + tuple((name, value.shape[1:]) for name, value in sorted(inputs.items()))
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._batch_loop(key, queue, servable, signature))
        future = asyncio.get_running_loop().create_future()
        queue.put_nowait((inputs, future))
        return await future

    async def _call(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.model_calls += 1
        return await asyncio.get_running_loop().run_in_executor(self.executor, servable.run, signature.name, inputs)

    async def _batch_loop(self, key: tuple, queue: asyncio.Queue, servable: Servable, signature: Signature) -> None:
        """Collect a batch (until full or the window closes), start it, repeat; at most
        ``concurrent_batches`` run at once, and requests queue up meanwhile."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.config.concurrent_batches)
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), IDLE_SECONDS)
            except TimeoutError:
                del self._queues[key]  # nothing can be queued meanwhile: the event loop is single-threaded
                return
            await slots.acquire()
            batch, rows = [first], _rows(first[0])
            deadline = loop.time() + self.config.timeout_ms / 1000
            while rows < self.config.max_batch_size:
                remaining = deadline - loop.time()
                try:
                    item = queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(queue.get(), remaining)
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                batch.append(item)
                rows += _rows(item[0])
            task = loop.create_task(self._run_batch(batch, servable, signature))
            task.add_done_callback(lambda _: slots.release())

    async def _run_batch(self, batch: list, servable: Servable, signature: Signature) -> None:
        if _is_text_signature(signature):
            (name,) = signature.inputs
            lengths = [max(len(text) for text in inputs[name]) for inputs, _ in batch]
            groups = split_by_length(lengths, self.config.call_overhead_bytes)
            await asyncio.gather(*(self._run_merged([batch[index] for index in group], servable, signature) for group in groups))
        else:
            await self._run_merged(batch, servable, signature)

    async def _run_merged(self, batch: list, servable: Servable, signature: Signature) -> None:
        merged = {name: np.concatenate([inputs[name] for inputs, _ in batch]) for name in signature.inputs}
        try:
            outputs = await self._call(servable, signature, merged)
        except Exception as error:
            await self._answer_one_by_one(batch, servable, signature, error)
            return
        start = 0
        for inputs, future in batch:
            end = start + _rows(inputs)
            if not future.done():
                future.set_result({name: value[start:end] for name, value in outputs.items()})
            start = end

    async def _answer_one_by_one(self, batch: list, servable: Servable, signature: Signature, error: Exception) -> None:
        """A failed batch is rerun request by request, so one bad request cannot fail its neighbours."""
        for inputs, future in batch:
            try:
                result = error if len(batch) == 1 else await self._call(servable, signature, inputs)
            except Exception as own_error:
                result = own_error
            if not future.done():
                (future.set_exception if isinstance(result, Exception) else future.set_result)(result)
