"""Server-side batching (``app.serving.planning`` and ``app.serving.scheduling``) with fake servables:
no TensorFlow model needed.

TF Serving's rules are cited where a test checks one: BatchingParameters' defaults
(tensorflow/core/kernels/batching_util/shared_batch_scheduler.h, QueueOptions and Options), the
allowed_batch_sizes check (tensorflow_serving/servables/tensorflow/bundle_factory_util.cc,
WrapSessionForBatching), padding with a row of the last task and AddPadding with the first element
(tensorflow_serving/batching/batching_session.cc, MergeInputTensors; batching_util.cc, PadTensor).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from app.serving.planning import (
    LENGTH_SIGNATURE,
    BatchingConfig,
    CallShape,
    call_shape,
    default_allowed_batch_sizes,
    plan_groups,
    split_by_length,
)
from app.serving.scheduling import ModelRunner
from app.serving.config_protos import BatchingParameters
from app.serving.errors import InvalidRequest, Unavailable


def _info(dtype: str, shape):
    return SimpleNamespace(dtype=SimpleNamespace(name=dtype), shape=shape)


@dataclass
class FakeSignature:
    name: str
    inputs: dict
    outputs: dict
    batchable: bool = True


TEXT = FakeSignature("serving_default", {"text": _info("string", (None,))}, {"score": _info("float32", (None,))})
COUNTS = FakeSignature(LENGTH_SIGNATURE, {"text": _info("string", (None,))}, {"word_pieces": _info("int32", (None,))})
NUMBERS = FakeSignature("numbers", {"x": _info("float32", (None, None))}, {"y": _info("float32", (None,))})


def word_pieces(text) -> int:
    """The fake tokenizer: one piece a word, plus [CLS] and [SEP]."""
    text = text.decode() if isinstance(text, bytes) else text
    return min(len(text.split()) + 2, 128)


@dataclass
class FakeServable:
    """Answers row by row (so batched answers must equal unbatched ones) and records every call's
    shape: (rows, padded length) for text, the input shape for numbers."""

    name: str = "fake"
    version: int = 1
    signatures: dict = field(default_factory=lambda: {"serving_default": TEXT, LENGTH_SIGNATURE: COUNTS, "numbers": NUMBERS})
    calls: list = field(default_factory=list)
    gate: threading.Event | None = None

    def run(self, signature_name: str, inputs: dict) -> dict:
        if self.gate is not None:
            self.gate.wait(10)
        if signature_name == LENGTH_SIGNATURE:
            return {"word_pieces": np.array([word_pieces(text) for text in inputs["text"]], np.int32)}
        if signature_name == "serving_default":
            texts = inputs["text"]
            if any(b"boom" in (text if isinstance(text, bytes) else text.encode()) for text in texts):
                raise InvalidRequest("the model rejected the input: boom")
            self.calls.append((len(texts), max(word_pieces(text) for text in texts)))
            return {"score": np.array([float(word_pieces(text)) + 0.5 * len(text) for text in texts], np.float32)}
        x = inputs["x"]
        self.calls.append(x.shape)
        return {"y": x.sum(axis=1) + 100 * x[:, 0]}


def answer_all(runner: ModelRunner, servable, signature, requests: list[dict]) -> list:
    async def go():
        return await asyncio.gather(*(runner.run(servable, signature, request) for request in requests), return_exceptions=True)

    return asyncio.run(go())


def texts(words: list[int]) -> list[dict]:
    return [{"text": np.array([" ".join(f"w{i}" for i in range(count)).encode()], dtype=object)} for count in words]


# ---- BatchingParameters -> BatchingConfig ------------------------------------------------------------


def test_unset_parameters_take_tf_servings_defaults():
    # shared_batch_scheduler.h: input_batch_size_limit = 1000, batch_timeout_micros = 0,
    # max_enqueued_batches = 10, num_batch_threads = port::MaxParallelism().
    config = BatchingConfig.from_parameters(BatchingParameters())
    assert config.enabled and config.max_batch_size == 1000 and config.timeout_ms == 0
    assert config.max_enqueued_batches == 10 and config.num_batch_threads == (os.cpu_count() or 1)
    assert config.allowed_batch_sizes == () and not config.pad_variable_length_inputs
    assert not BatchingConfig.from_parameters(BatchingParameters(), enabled=False).enabled


def test_set_parameters_are_mapped():
    message = BatchingParameters()
    message.max_batch_size.value = 16
    message.batch_timeout_micros.value = 2500
    message.max_enqueued_batches.value = 3
    message.num_batch_threads.value = 2
    message.allowed_batch_sizes.extend([2, 8, 16])
    message.pad_variable_length_inputs = True
    config = BatchingConfig.from_parameters(message)
    assert (config.max_batch_size, config.timeout_ms, config.max_enqueued_batches, config.num_batch_threads) == (16, 2.5, 3, 2)
    assert config.allowed_batch_sizes == (2, 8, 16) and config.pad_variable_length_inputs
    assert [config.padded_size(rows) for rows in (1, 2, 3, 9, 16, 17)] == [2, 2, 8, 16, 16, None]


def test_refuses_what_tf_serving_refuses():
    message = BatchingParameters()
    message.max_batch_size.value = 32
    message.allowed_batch_sizes.extend([8, 16])
    # bundle_factory_util.cc: "Last entry in allowed_batch_sizes must match max_batch_size; ..."
    with pytest.raises(ValueError, match="Last entry in allowed_batch_sizes must match max_batch_size; last entry was 16; expected 32"):
        BatchingConfig.from_parameters(message)
    message.allowed_batch_sizes[:] = [16, 8, 32]
    with pytest.raises(ValueError, match="monotonically increasing"):
        BatchingConfig.from_parameters(message)
    unset = BatchingParameters()
    unset.allowed_batch_sizes.extend([4, 8])  # the unset max_batch_size is 1000
    with pytest.raises(ValueError, match="expected 1000"):
        BatchingConfig.from_parameters(unset)
    threads = BatchingParameters()
    threads.num_batch_threads.value = 0
    with pytest.raises(ValueError, match="num_batch_threads must be positive"):
        BatchingConfig.from_parameters(threads)


def test_default_allowed_sizes_end_at_the_maximum():
    assert default_allowed_batch_sizes(32) == (1, 2, 4, 8, 12, 16, 24, 32)
    assert default_allowed_batch_sizes(10) == (1, 2, 4, 8, 10) and default_allowed_batch_sizes(1) == (1,)
    config = BatchingConfig(enabled=True, max_batch_size=100, allowed_batch_sizes=default_allowed_batch_sizes(100))
    assert config.allowed_batch_sizes[-1] == 100


# ---- planning ----------------------------------------------------------------------------------------


def test_split_by_length_keeps_short_and_long_texts_apart():
    assert split_by_length([10, 200, 15, 190, 12], call_overhead=256) == [[0, 4, 2], [3, 1]]
    assert split_by_length([50] * 6, call_overhead=256) == [[0, 1, 2, 3, 4, 5]]
    assert split_by_length([10, 5000], call_overhead=1e9) == [[0, 1]]


def test_plan_groups_respects_the_row_limit():
    groups = plan_groups([5] * 10, [1] * 10, lambda rows, longest: 1000 + rows * longest, max_rows=4)
    assert sorted(len(group) for group in groups) == [2, 4, 4] or sorted(len(group) for group in groups) == [3, 3, 4]
    assert sorted(index for group in groups for index in group) == list(range(10))


def test_call_shapes_come_from_a_bounded_set():
    config = BatchingConfig(enabled=True, max_batch_size=8, allowed_batch_sizes=(1, 2, 4, 8))
    buckets = (16, 32, 64)
    assert call_shape(config, 3, 20, buckets) == CallShape(4, 32)  # the padding row is a 32-piece filler
    assert call_shape(config, 4, 20, buckets) == CallShape(8, 32)  # no room for a filler: next size
    assert call_shape(config, 4, 32, buckets) == CallShape(4, None)  # already a bucket's length
    assert call_shape(config, 8, 20, buckets) == CallShape(8, None)  # full: run as it is
    assert call_shape(config, 1, 20, buckets) == CallShape(1, None)  # one request alone: its own length
    assert call_shape(config, 3, 100, buckets) == CallShape(4, None)  # longer than every bucket
    assert call_shape(config, 3, None, ()) == CallShape(4, None)  # not text: rows only


# ---- the runner ----------------------------------------------------------------------------------


def test_batched_answers_equal_unbatched_ones_and_calls_are_bucketed():
    servable = FakeServable()
    requests = texts([3, 30, 7, 12, 5, 25, 9, 14, 4, 11, 40, 6])
    with ThreadPoolExecutor(2) as executor:
        alone = ModelRunner(executor, BatchingConfig(enabled=False))
        expected = answer_all(alone, servable, TEXT, requests)
        servable.calls.clear()
        config = BatchingConfig(enabled=True, max_batch_size=16, timeout_ms=50, allowed_batch_sizes=(1, 2, 4, 8, 16),
                                length_buckets=(8, 16, 32, 64))
        batched = ModelRunner(executor, config)
        got = answer_all(batched, servable, TEXT, requests)
    assert alone.model_calls == 12 and batched.model_calls < 6
    for want, answer in zip(expected, got):
        np.testing.assert_array_equal(answer["score"], want["score"])
    # Every call's (rows, padded length) is an allowed size x a bucket, or one request's own length.
    for rows, length in servable.calls:
        assert rows in (1, 2, 4, 8, 16) and (length in (8, 16, 32, 64) or rows == 1), servable.calls
    # Short and long texts are not padded to each other: the 5-piece text is not in a call of 32+.
    assert min(length for _, length in servable.calls) <= 16 and max(length for _, length in servable.calls) >= 32


def test_without_a_length_signature_there_is_no_filler():
    servable = FakeServable(signatures={"serving_default": TEXT})
    with ThreadPoolExecutor(2) as executor:
        runner = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8, allowed_batch_sizes=(4, 8)))
        got = answer_all(runner, servable, TEXT, texts([3, 4, 5]))
    assert [answer["score"].shape for answer in got] == [(1,)] * 3
    assert servable.calls == [(4, 7)]  # padded with a copy of a row (TF Serving), not a filler


def test_numbers_are_padded_with_a_row_of_the_last_request_and_sliced_back():
    servable = FakeServable()
    requests = [{"x": np.full((rows, 3), float(rows), np.float32)} for rows in (1, 2, 2)]
    with ThreadPoolExecutor(2) as executor:
        runner = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8, allowed_batch_sizes=(2, 8)))
        got = answer_all(runner, servable, NUMBERS, requests)
    assert servable.calls == [(8, 3)]
    assert [answer["y"].tolist() for answer in got] == [[103.0], [206.0, 206.0], [206.0, 206.0]]


def test_pad_variable_length_inputs_merges_different_widths():
    servable = FakeServable()
    requests = [{"x": np.array([[1.0, 2.0]], np.float32)}, {"x": np.array([[5.0, 1.0, 1.0, 1.0]], np.float32)}]
    with ThreadPoolExecutor(2) as executor:
        apart = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8))
        answer_all(apart, servable, NUMBERS, requests)
        assert sorted(servable.calls) == [(1, 2), (1, 4)]  # without padding: batched apart by shape
        servable.calls.clear()
        padded = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8, pad_variable_length_inputs=True))
        got = answer_all(padded, servable, NUMBERS, requests)
    assert servable.calls == [(2, 4)]
    # batching_util.cc PadTensor: padded with the tensor's first element (1.0): [1, 2, 1, 1].
    assert got[0]["y"].tolist() == [105.0] and got[1]["y"].tolist() == [508.0]


def test_a_bad_request_fails_alone():
    servable = FakeServable()
    requests = texts([3, 4]) + [{"text": np.array([b"boom"], dtype=object)}] + texts([5])
    with ThreadPoolExecutor(2) as executor:
        runner = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8, timeout_ms=50))
        got = answer_all(runner, servable, TEXT, requests)
    assert isinstance(got[2], InvalidRequest)
    assert all(isinstance(answer, dict) for index, answer in enumerate(got) if index != 2)


def test_a_full_queue_answers_unavailable():
    servable = FakeServable(gate=threading.Event())
    config = BatchingConfig(enabled=True, max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1)

    async def go(runner):
        first = asyncio.ensure_future(runner.run(servable, NUMBERS, {"x": np.ones((1, 2), np.float32)}))
        await asyncio.sleep(0.05)  # the first request runs (and blocks on the gate)
        rest = [asyncio.ensure_future(runner.run(servable, NUMBERS, {"x": np.ones((1, 2), np.float32)})) for _ in range(4)]
        await asyncio.sleep(0.05)
        servable.gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    with ThreadPoolExecutor(2) as executor:
        got = asyncio.run(go(ModelRunner(executor, config)))
    refused = [answer for answer in got if isinstance(answer, Unavailable)]
    assert len(refused) == 2 and sum(isinstance(answer, dict) for answer in got) == 3
    assert "The batch scheduling queue to which this task was submitted is full" in str(refused[0])


def test_large_requests_are_refused_or_split():
    servable = FakeServable()
    request = {"x": np.arange(30, dtype=np.float32).reshape(10, 3)}
    with ThreadPoolExecutor(2) as executor:
        strict = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=4))
        (error,) = answer_all(strict, servable, NUMBERS, [request])
        assert isinstance(error, InvalidRequest) and "Task size 10 is larger than maximum input batch size 4" in str(error)
        splitting = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=4, enable_large_batch_splitting=True))
        (answer,) = answer_all(splitting, servable, NUMBERS, [request])
    x = request["x"]
    np.testing.assert_array_equal(answer["y"], x.sum(axis=1) + 100 * x[:, 0])


def test_metrics_get_one_record_per_batched_call():
    records = []
    metrics = SimpleNamespace(record_batch=lambda *args, **kwargs: records.append((args, kwargs)))
    servable = FakeServable()
    with ThreadPoolExecutor(2) as executor:
        runner = ModelRunner(executor, BatchingConfig(enabled=True, max_batch_size=8, allowed_batch_sizes=(4, 8)), metrics)
        answer_all(runner, servable, NUMBERS, [{"x": np.ones((rows, 2), np.float32)} for rows in (1, 2)])
    ((args, kwargs),) = records
    assert args[:4] == ("fake", 1, 3, 4) and args[4] >= 0 and kwargs == {"request_sizes": [1, 2]}


def test_one_client_does_not_wait_for_the_batch_window():
    servable = FakeServable()

    async def go(runner):
        loop = asyncio.get_running_loop()
        start = loop.time()
        await runner.run(servable, NUMBERS, {"x": np.ones((1, 2), np.float32)})
        return loop.time() - start

    with ThreadPoolExecutor(2) as executor:
        seconds = asyncio.run(go(ModelRunner(executor, BatchingConfig(enabled=True, timeout_ms=2000))))
    assert seconds < 1.0
