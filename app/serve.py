"""Serve SavedModels with TensorFlow Serving's REST and gRPC protocols, flags and config files:
``python -m app.serve --model_config_file=serving/models.config [--enable_batching ...]``, or
``python -m app.serve`` alone to serve every export under ``saved_models/``.

It takes ``tensorflow_model_server``'s flag names (``--port`` = gRPC, ``--rest_api_port``,
``--model_name``/``--model_base_path``, ``--model_config_file``, ``--enable_batching``,
``--batching_parameters_file``, ``--monitoring_config_file``, ...), so the README's Docker command
line runs unchanged against it; clients work unchanged against either. It listens on 127.0.0.1
unless ``--host`` says otherwise (TF Serving listens on every interface), picks up new versions as
the exporter publishes them, and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from app.common import paths
from app.common.cli import ArgumentParser, add_inference_precision_flag, non_negative_float, positive_float, positive_int, run_command
from app.common.errors import UsageError


@dataclass(frozen=True)
class ServeConfig:
    """What to serve, where to listen (port 0 = any free port), batching, monitoring and limits."""

    model_base: str = str(paths.SAVED_MODELS)
    model_name: str = "default"
    model_base_path: str | None = None
    model_config_file: str | None = None
    model_config_file_poll_wait_seconds: float = 0.0
    volume: tuple[str, ...] = field(default=("saved_models:/models", "serving:/config"))
    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 8501
    enable_batching: bool = False
    batching_parameters_file: str | None = None
    max_batch_size: int = 32
    batch_timeout_ms: float = 2.0
    monitoring_config_file: str | None = None
    rest_api_timeout_in_ms: int = 30_000
    enable_model_warmup: bool = True
    enable_cors_support: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    max_body_bytes: int = 16 * 2**20
    file_system_poll_wait_seconds: float = 1.0
    threads: int = 4
    # Threads inside one model call. 1 = each request on one core, requests in parallel: on 2 cores
    # this served 1.4-1.7x more BERT requests/s than TensorFlow's default (all cores per call), and
    # cut one client's p99 latency from 35 to 23 ms. 0 = TensorFlow's default.
    tensorflow_intra_op_parallelism: int = 1
    # Threads running a call's independent ops (TF Serving's flag). 0 = TensorFlow's default. 1 made
    # one request at a time faster for a small model (bench/compression.py), but concurrent calls then
    # share that one thread: a latency setting for one client, not the default.
    tensorflow_inter_op_parallelism: int = 0
    # off = every model runs as exported (its answers are TF Serving's); bf16 = oneDNN's bf16 rewrite
    # (faster on CPUs with bf16 instructions, other answers; see app.training.devices).
    mixed_precision: str = "off"


def log(message: str) -> None:
    print(message, flush=True)


def batching_config(config: ServeConfig, volumes):
    """Batching from ``--batching_parameters_file`` (TF Serving's BatchingParameters), else the flags."""
    from app.serving.planning import BatchingConfig, default_allowed_batch_sizes
    from app.serving.config_protos import BatchingParameters, read_text_proto
    from app.serving.model_config import host_path

    if config.batching_parameters_file:
        parameters = read_text_proto(host_path(config.batching_parameters_file, volumes), BatchingParameters)
        try:
            return BatchingConfig.from_parameters(parameters, enabled=config.enable_batching)
        except ValueError as error:
            raise UsageError(f"{config.batching_parameters_file}: {error}") from None
    return BatchingConfig(
        config.enable_batching, config.max_batch_size, config.batch_timeout_ms,
        allowed_batch_sizes=default_allowed_batch_sizes(config.max_batch_size),
    )


def monitoring(config: ServeConfig, volumes):
    """(metrics, Prometheus path) from ``--monitoring_config_file``; (None, None) when not enabled."""
    from app.serving.config_protos import MonitoringConfig, read_text_proto
    from app.serving.metrics import Metrics, prometheus_path
    from app.serving.model_config import host_path

    if not config.monitoring_config_file:
        return None, None
    path = prometheus_path(read_text_proto(host_path(config.monitoring_config_file, volumes), MonitoringConfig))
    return (Metrics(), path) if path else (None, None)


async def serve(config: ServeConfig) -> dict:
    """Load the models, listen until SIGINT/SIGTERM, and return a summary."""
    from aiohttp import web

    from app.training import devices
    from app.serving.scheduling import ModelRunner
    from app.serving.grpc_service import build_grpc_server
    from app.serving.model_config import Volume, model_sources
    from app.serving.repository import ModelRepository
    from app.serving.rest import build_rest_app

    volumes = tuple(Volume.parse(text) for text in config.volume)
    batching = batching_config(config, volumes)
    metrics, metrics_path = monitoring(config, volumes)
    list_sources, where = model_sources(
        config.model_base, config.model_name, config.model_base_path, config.model_config_file, volumes, log,
        reload_config=config.model_config_file_poll_wait_seconds > 0,
    )
    devices.set_threads(config.tensorflow_intra_op_parallelism, config.tensorflow_inter_op_parallelism)
    precision = devices.set_inference_precision(config.mixed_precision)
    log(f"precision: {precision}; serving {where}")
    loop = asyncio.get_running_loop()
    loader = ThreadPoolExecutor(1, thread_name_prefix="loader")
    repository = ModelRepository(
        list_sources, log, metrics, warm_up=config.enable_model_warmup,
        labels_for_unavailable=config.allow_version_labels_for_unavailable_models,
    )
    await loop.run_in_executor(loader, repository.refresh)

    runner = ModelRunner(ThreadPoolExecutor(config.threads, thread_name_prefix="model"), batching, metrics=metrics)
    rest_app = build_rest_app(
        repository, runner, config.max_body_bytes, metrics=metrics, metrics_path=metrics_path,
        timeout_seconds=config.rest_api_timeout_in_ms / 1000, cors=config.enable_cors_support,
    )
    web_runner = web.AppRunner(rest_app, access_log=None)
    await web_runner.setup()
    grpc_server = build_grpc_server(repository, runner, config.max_body_bytes, metrics)
    try:
        await web.TCPSite(web_runner, config.host, config.rest_api_port).start()
        rest_url = f"http://{config.host}:{web_runner.addresses[0][1]}"
        grpc_port = grpc_server.add_insecure_port(f"{config.host}:{config.port}")
        await grpc_server.start()
        grpc_address = f"{config.host}:{grpc_port}"
    except (OSError, RuntimeError) as error:
        await web_runner.cleanup()
        raise UsageError(f"cannot listen on {config.host}: {error}") from None

    log(f"REST API on {rest_url}/v1/models/<name>[:predict] gRPC on {grpc_address}")
    if metrics_path:
        log(f"Prometheus metrics on {rest_url}{metrics_path}")
    log(f"batching {'on' if batching.enabled else 'off'}; Ctrl-C stops")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def poll_for_new_versions():
        while True:
            await asyncio.sleep(config.file_system_poll_wait_seconds)
            await loop.run_in_executor(loader, repository.refresh)

    poller = loop.create_task(poll_for_new_versions())
    await stop.wait()
    poller.cancel()
    await grpc_server.stop(grace=1)
    await web_runner.cleanup()
    return {
        "rest": rest_url, "grpc": grpc_address, "models": repository.served, "precision": precision,
        "batching": batching.enabled, "model_calls": runner.model_calls,
        "threads": devices.thread_settings(),
    }


def flag_bool(text: str) -> bool:
    """absl's boolean flag values: ``--flag``, ``--flag=true``/``false``/``1``/``0``."""
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return lowered in ("true", "1", "yes")


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, not {text}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.serve", description="Serve exports with TF Serving's REST and gRPC APIs and flags.")
    add = parser.add_argument
    tfs = parser.add_argument_group("tensorflow_model_server's flags")
    tfs.add_argument("--port", "--grpc-port", type=port, default=8500, help="gRPC port (0 = any free port)")
    tfs.add_argument("--rest_api_port", "--rest-port", type=port, default=8501, help="REST port (0 = any free port)")
    tfs.add_argument("--model_name", default="default", help="the model's name with --model_base_path")
    tfs.add_argument("--model_base_path", help="one model's folder of numbered versions")
    tfs.add_argument("--model_config_file", help="text ModelServerConfig: several models, version policies and labels")
    tfs.add_argument("--model_config_file_poll_wait_seconds", type=non_negative_float, default=0.0, help="re-read the config file (0 = never)")
    for name, alias, help_text in (
        ("--enable_batching", "--enable-batching", "merge concurrent requests into one model call"),
        ("--enable_model_warmup", None, "replay assets.extra/tf_serving_warmup_requests after loading"),
        ("--enable_cors_support", None, "answer CORS preflights and add CORS headers"),
        ("--allow_version_labels_for_unavailable_models", None, "a label may name a version that is not loaded (yet)"),
    ):
        names = (name, alias) if alias else (name,)
        tfs.add_argument(*names, type=flag_bool, nargs="?", const=True, default=name == "--enable_model_warmup", help=help_text)
    tfs.add_argument("--batching_parameters_file", help="text BatchingParameters (max_batch_size, allowed_batch_sizes, ...)")
    tfs.add_argument("--monitoring_config_file", help="text MonitoringConfig: prometheus_config { enable: true }")
    tfs.add_argument("--rest_api_timeout_in_ms", type=positive_int, default=30_000, help="a REST request's deadline")
    tfs.add_argument("--file_system_poll_wait_seconds", "--poll-seconds", type=positive_float, default=1.0, help="how often to look for new versions")
    tfs.add_argument("--tensorflow_intra_op_parallelism", "--intra-op-threads", type=int, default=1, help="threads inside one model call (0 = TF default)")
    tfs.add_argument(
        "--tensorflow_inter_op_parallelism", "--inter-op-threads", type=int, default=0,
        help="threads running a call's independent ops (0 = TF default; 1 = lowest one-client latency, concurrent calls share it)",
    )
    add("--model-base", default=str(paths.SAVED_MODELS), help="without a config or base path: serve every <name>/<version>/ under it")
    add("--volume", action="append", help="HOST:CONTAINER, maps TF Serving container paths in flags and configs (default saved_models:/models and serving:/config)")
    add("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 = every interface)")
    add("--max-batch-size", type=positive_int, default=32, help="examples per batched call (without --batching_parameters_file)")
    add("--batch-timeout-ms", type=non_negative_float, default=2.0, help="how long a batch waits to fill (without a parameters file)")
    add("--max-body-bytes", type=positive_int, default=16 * 2**20, help="larger requests get 413")
    add("--threads", type=positive_int, default=4, help="model calls running at once")
    add_inference_precision_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    for flag in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag} must be 0 (TensorFlow's default) or more, not {getattr(args, flag)}")
    settings = vars(args)
    settings["volume"] = tuple(args.volume) if args.volume else ServeConfig.volume
    return asyncio.run(serve(ServeConfig(**settings)))


if __name__ == "__main__":
    run_command(main)
