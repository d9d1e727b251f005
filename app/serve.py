"""Serve every export under ``saved_models/`` with TensorFlow Serving's REST and gRPC protocols:
``python -m app.serve --model-base saved_models --port 8501 --grpc-port 8500 [--enable-batching]``

Clients written against this server work unchanged against ``tensorflow/serving`` (see
``serving/docker-compose.yml``). It listens on 127.0.0.1 unless ``--host`` says otherwise, picks up
new versions as the exporter publishes them, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from app.cli import ArgumentParser, UsageError, non_negative_float, positive_float, positive_int, run_command


@dataclass(frozen=True)
class ServeConfig:
    """Where the models are, where to listen (port 0 = any free port), and the request limits."""

    model_base: str = "saved_models"
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = None
    enable_batching: bool = False
    max_batch_size: int = 32
    batch_timeout_ms: float = 2.0
    max_body_bytes: int = 16 * 2**20
    poll_seconds: float = 1.0
    threads: int = 4
    # Threads inside one model call. 1 = each request on one core, requests in parallel: on 2 cores
    # this served 1.4-1.7x more BERT requests/s than TensorFlow's default (all cores per call), and
    # cut one client's p99 latency from 35 to 23 ms. 0 = TensorFlow's default.
    intra_op_threads: int = 1
    # bf16 for the loaded graphs through oneDNN's rewrite: auto = on CPUs with bf16 instructions where
    # it measures faster (see app.devices).
    mixed_precision: str = "auto"


def log(message: str) -> None:
    print(message, flush=True)


async def serve(config: ServeConfig) -> dict:
    """Load the models, listen until SIGINT/SIGTERM, and return a summary."""
    from aiohttp import web

    from app.serving.batching import BatchingConfig, ModelRunner
    from app.serving.grpc_service import build_grpc_server
    from app.serving.repository import ModelRepository
    from app import devices
    from app.serving.rest import build_rest_app

    if config.intra_op_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    precision = devices.set_precision_policy(config.mixed_precision, bf16_candidate_on_cpu=True, restored_graph=True)
    print(f"precision: {precision}", flush=True)
    base = Path(config.model_base)
    if not base.is_dir():
        raise UsageError(f"--model-base {base} is not a folder; export a model first: python -m app.train mnist")
    loop = asyncio.get_running_loop()
    loader = ThreadPoolExecutor(1, thread_name_prefix="loader")
    repository = ModelRepository(base, log)
    await loop.run_in_executor(loader, repository.refresh)
    if not repository.servables:
        raise UsageError(f"no exported models under {base.resolve()} (expected <name>/<version>/saved_model.pb)")

    batching = BatchingConfig(config.enable_batching, config.max_batch_size, config.batch_timeout_ms)
    runner = ModelRunner(ThreadPoolExecutor(config.threads, thread_name_prefix="model"), batching)
    web_runner = web.AppRunner(build_rest_app(repository, runner, config.max_body_bytes), access_log=None)
    await web_runner.setup()
    grpc_server = None
    try:
        await web.TCPSite(web_runner, config.host, config.port).start()
        rest_url = f"http://{config.host}:{web_runner.addresses[0][1]}"
        grpc_address = None
        if config.grpc_port is not None:
            grpc_server = build_grpc_server(repository, runner, config.max_body_bytes)
            grpc_port = grpc_server.add_insecure_port(f"{config.host}:{config.grpc_port}")
            await grpc_server.start()
            grpc_address = f"{config.host}:{grpc_port}"
    except (OSError, RuntimeError) as error:
        await web_runner.cleanup()
        raise UsageError(f"cannot listen on {config.host}: {error}") from None

    log(f"REST API on {rest_url}/v1/models/<name>[:predict]" + (f", gRPC on {grpc_address}" if grpc_address else ""))
    log(f"batching {'on' if batching.enabled else 'off'}; Ctrl-C stops")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def poll_for_new_versions():
        while True:
            await asyncio.sleep(config.poll_seconds)
            await loop.run_in_executor(loader, repository.refresh)

    poller = loop.create_task(poll_for_new_versions())
    await stop.wait()
    poller.cancel()
    if grpc_server is not None:
        await grpc_server.stop(grace=1)
    await web_runner.cleanup()
    return {
        "rest": rest_url,
        "grpc": grpc_address,
        "models": {name: servable.version for name, servable in repository.servables.items()},
        "batching": batching.enabled,
        "model_calls": runner.model_calls,
    }


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.serve", description="Serve exports with TF Serving's REST and gRPC APIs.")
    parser.add_argument("--model-base", default="saved_models", help="folder of <name>/<version>/ exports")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 = every interface)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (0 = any free port)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port (off unless given; 0 = any free port)")
    parser.add_argument("--enable-batching", action="store_true", help="merge concurrent requests into one model call")
    parser.add_argument("--max-batch-size", type=positive_int, default=32, help="examples per batched call")
    parser.add_argument("--batch-timeout-ms", type=non_negative_float, default=2.0, help="how long a batch waits to fill")
    parser.add_argument("--max-body-bytes", type=positive_int, default=16 * 2**20, help="larger requests get 413")
    parser.add_argument("--poll-seconds", type=positive_float, default=1.0, help="how often to look for new versions")
    parser.add_argument("--threads", type=positive_int, default=4, help="model calls running at once")
    parser.add_argument(
        "--mixed-precision", choices=("auto", "bf16", "off"), default="auto",
        help="bf16 via oneDNN's rewrite: auto = on CPUs with AMX/AVX512-BF16 where it measures faster",
    )
    parser.add_argument("--intra-op-threads", type=int, default=1, help="threads inside one model call (0 = TF default)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    for flag in ("port", "grpc_port"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= 65535:
            raise UsageError(f"--{flag.replace('_', '-')} must be between 0 and 65535, not {value}")
    if args.intra_op_threads < 0:
        raise UsageError(f"--intra-op-threads must be 0 (TensorFlow's default) or more, not {args.intra_op_threads}")
    return asyncio.run(serve(ServeConfig(**vars(args))))


if __name__ == "__main__":
    run_command(main)
