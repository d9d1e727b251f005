"""Load test of the local TF Serving compatible server on the BERT classifier: batching off vs on.

Two servers run side by side on loopback, one with ``--enable_batching`` (a BatchingParameters file
written from the flags below) and one without, both serving only ``--model``. After a warm-up,
``--rounds`` rounds alternate between them (off/on, then on/off, ...), each measuring one client and
then ``--clients`` concurrent clients for ``--seconds``; every client sends one SST-2 dev sentence
per request and waits for the answer. The figures are the medians over rounds: throughput,
p50/p95/p99 latency, errors. Then ``--soak-minutes`` at ``--clients`` clients on a fresh batching
server, sampling its RSS every ``--soak-sample-seconds``, and the growth after the first minute.
Ends with one JSON line with everything and the ratios on/off. Needs an export under
``--model-base``; without one it first trains a quick one (speed does not depend on accuracy).

    python bench/serve_load.py [--clients 32] [--seconds 30] [--rounds 3] [--soak-minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from app.serving.process import REPO_ROOT, start_server
from data_pipelines.sources import resolve_data_file
from data_pipelines.text_classification import SST2_DEV


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


async def run_clients(url: str, sentences: list[str], clients: int, seconds: float, offset: int = 0) -> dict:
    """``clients`` loops each sending one sentence per request until ``seconds`` pass."""
    import aiohttp

    latencies, errors, statuses = [], 0, {}
    deadline = time.perf_counter() + seconds

    async def client(index: int, session: aiohttp.ClientSession):
        nonlocal errors
        position = offset + index
        while time.perf_counter() < deadline:
            body = json.dumps({"instances": [sentences[position % len(sentences)]]})
            position += clients
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                    await answer.read()
                    ok = answer.status == 200
                    if not ok:
                        statuses[answer.status] = statuses.get(answer.status, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                ok = False
                statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(index, session) for index in range(clients)))
    elapsed = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        **({"error_kinds": {str(key): value for key, value in statuses.items()}} if statuses else {}),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **{f"p{q}_ms": round(float(np.percentile(milliseconds, q)), 1) if len(milliseconds) else None for q in (50, 95, 99)},
    }


def median_of(rounds: list[dict]) -> dict:
    """Per-figure medians over rounds (errors summed)."""
    keys = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms")
    result = {key: round(statistics.median(r[key] for r in rounds if r[key] is not None), 1) for key in keys}
    result["errors"] = sum(r["errors"] for r in rounds)
    result["requests"] = sum(r["requests"] for r in rounds)
    return result


def batching_parameters(args) -> str:
    lines = [
        f"max_batch_size {{ value: {args.max_batch_size} }}",
        f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}",
        f"max_enqueued_batches {{ value: {args.max_enqueued_batches} }}",
        f"num_batch_threads {{ value: {args.num_batch_threads} }}",
    ]
    lines += [f"allowed_batch_sizes: {size}" for size in args.allowed_batch_sizes]
    return "\n".join(lines) + "\n"


def server_flags(args, batching: bool, parameters_file: Path) -> list[str]:
    flags = ["--mixed-precision", args.mixed_precision, *args.server_flag]
    if batching:
        flags += ["--enable_batching", "--batching_parameters_file", str(parameters_file)]
    return flags


def soak(model_base: Path, args, parameters_file: Path, sentences: list[str]) -> dict:
    """``--soak-minutes`` at ``--clients`` clients on a fresh batching server, RSS sampled as it goes."""
    seconds = args.soak_minutes * 60
    with start_server(model_base, *server_flags(args, True, parameters_file)) as server:
        url = f"{server.rest_url}/v1/models/{args.model}:predict"
        samples: list[tuple[float, int]] = []

        async def sample(started: float):
            while True:
                samples.append((round(time.perf_counter() - started), round(server.rss_mb())))
                log(f"soak t={samples[-1][0]:>4d} s  RSS {samples[-1][1]} MB")
                await asyncio.sleep(args.soak_sample_seconds)

        async def go():
            started = time.perf_counter()
            sampler = asyncio.get_running_loop().create_task(sample(started))
            try:
                return await run_clients(url, sentences, args.clients, seconds)
            finally:
                sampler.cancel()
                samples.append((round(time.perf_counter() - started), round(server.rss_mb())))

        load = asyncio.run(go())
    after_first_minute = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
    base = after_first_minute[0]
    return {
        "minutes": args.soak_minutes,
        "load": load,
        "rss_mb_curve": [[t, rss] for t, rss in samples],
        "rss_mb_start": samples[0][1],
        "rss_mb_at_1_min": base,
        "rss_mb_end": samples[-1][1],
        "rss_mb_max_after_1_min": max(after_first_minute),
        "rss_growth_after_1_min_pct": round(100 * (samples[-1][1] - base) / base, 2),
        "rss_max_growth_after_1_min_pct": round(100 * (max(after_first_minute) - base) / base, 2),
    }


def ensure_export(model_base: Path, model: str) -> Path:
    if (model_base / model).is_dir():
        return model_base
    quick = Path(tempfile.mkdtemp(prefix="serve-load-"))
    log(f"no {model} export under {model_base}: training a quick one into {quick}")
    subprocess.run(
        [sys.executable, "-m", "app.train", "bert", "--epochs", "1", "--max-train-samples", "128",
         "--out", str(quick), "--runs-dir", str(quick / "runs")],
        cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return quick


def only_model(model_base: Path, model: str) -> Path:
    """A base folder holding just ``model`` (a link), so the servers load nothing else."""
    base = Path(tempfile.mkdtemp(prefix="serve-load-base-"))
    (base / model).symlink_to((model_base / model).resolve(), target_is_directory=True)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=str(REPO_ROOT / "saved_models"))
    parser.add_argument("--model", default="bert_sst2")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30, help="each measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating off/on rounds (medians are reported)")
    parser.add_argument("--warmup-seconds", type=float, default=10)
    parser.add_argument("--soak-minutes", type=float, default=10, help="0 = no soak")
    parser.add_argument("--soak-sample-seconds", type=float, default=10)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--max-enqueued-batches", type=int, default=100)
    parser.add_argument("--num-batch-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--allowed-batch-sizes", default="1,2,4,8,12,16,24,32", help="comma-separated; '' = any size")
    parser.add_argument("--mixed-precision", choices=("off", "bf16"), default="bf16",
                        help="the same for both servers (off = the exports as they are, app.serve's default)")
    parser.add_argument("--server-flag", action="append", default=[], help="another flag for both servers (repeatable)")
    args = parser.parse_args()
    args.allowed_batch_sizes = [int(size) for size in args.allowed_batch_sizes.split(",") if size.strip()]

    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    model_base = only_model(ensure_export(Path(args.model_base), args.model), args.model)
    sentences = pd.read_csv(resolve_data_file(SST2_DEV), sep="\t", quoting=3)["sentence"].tolist()
    parameters_file = model_base / "batching.config"
    parameters_file.write_text(batching_parameters(args))
    print(f"batching parameters: {batching_parameters(args).strip().replace(chr(10), '; ')}", flush=True)

    settings = {"off": False, "on": True}
    servers = {name: start_server(model_base, *server_flags(args, batching, parameters_file)) for name, batching in settings.items()}
    results: dict[str, dict[str, list]] = {name: {"one_client": [], "many_clients": []} for name in settings}
    rss: dict[str, list] = {name: [] for name in settings}
    try:
        urls = {name: f"{server.rest_url}/v1/models/{args.model}:predict" for name, server in servers.items()}
        for name in settings:  # warm up: the shapes each setting will see
            asyncio.run(run_clients(urls[name], sentences, args.clients, args.warmup_seconds))
            asyncio.run(run_clients(urls[name], sentences, 1, min(args.warmup_seconds, 3)))
            rss[name].append(round(servers[name].rss_mb()))
        for round_index in range(args.rounds):
            order = ["off", "on"] if round_index % 2 == 0 else ["on", "off"]
            for name in order:
                offset = round_index * 997
                one = asyncio.run(run_clients(urls[name], sentences, 1, args.seconds, offset))
                many = asyncio.run(run_clients(urls[name], sentences, args.clients, args.seconds, offset))
                results[name]["one_client"].append(one)
                results[name]["many_clients"].append(many)
                rss[name].append(round(servers[name].rss_mb()))
                log(f"round {round_index + 1} batching {name}: 1 client {one['requests_per_s']} req/s p99 {one['p99_ms']} ms; "
                    f"{args.clients} clients {many['requests_per_s']} req/s p50 {many['p50_ms']} p99 {many['p99_ms']} ms, "
                    f"{many['errors']} errors; RSS {rss[name][-1]} MB")
    finally:
        logs = {name: server.stop() for name, server in servers.items()}
    calls = {}
    for name, text in logs.items():
        try:
            calls[name] = json.loads(text.strip().splitlines()[-1]).get("model_calls")
        except (ValueError, IndexError, AttributeError):
            calls[name] = None

    summary = {name: {"one_client": median_of(r["one_client"]), f"{args.clients}_clients": median_of(r["many_clients"])} for name, r in results.items()}
    key = f"{args.clients}_clients"
    off, on = summary["off"], summary["on"]
    ratio = round(on[key]["requests_per_s"] / off[key]["requests_per_s"], 2)
    per_round = [round(b["requests_per_s"] / a["requests_per_s"], 2) for a, b in zip(results["off"]["many_clients"], results["on"]["many_clients"])]
    p99_one = round(on["one_client"]["p99_ms"] / off["one_client"]["p99_ms"], 2)
    print(f"\n{'':>14}{'1 client req/s':>16}{'p50':>8}{'p95':>8}{'p99':>8}{f'{args.clients} clients req/s':>20}{'p50':>8}{'p95':>8}{'p99':>8}{'errors':>8}")
    for name in settings:
        a, b = summary[name]["one_client"], summary[name][key]
        print(f"batching {name:>5}{a['requests_per_s']:>16}{a['p50_ms']:>8}{a['p95_ms']:>8}{a['p99_ms']:>8}"
              f"{b['requests_per_s']:>20}{b['p50_ms']:>8}{b['p95_ms']:>8}{b['p99_ms']:>8}{a['errors'] + b['errors']:>8}")
    print(f"on/off throughput at {args.clients} clients: {ratio}x (rounds: {per_round}); on/off p99 at 1 client: {p99_one}x")
    print(f"model calls: {calls}; RSS after each round (MB): {rss}")

    soaked = None
    if args.soak_minutes > 0:
        soaked = soak(model_base, args, parameters_file, sentences)
        curve = ", ".join(f"{t}s:{mb}" for t, mb in soaked["rss_mb_curve"])
        print(f"soak {args.soak_minutes} min at {args.clients} clients, batching on: {soaked['load']['requests_per_s']} req/s, "
              f"p99 {soaked['load']['p99_ms']} ms, {soaked['load']['errors']} errors")
        print(f"RSS (MB) curve: {curve}")
        print(f"RSS growth after the first minute: {soaked['rss_growth_after_1_min_pct']}% "
              f"({soaked['rss_mb_at_1_min']} -> {soaked['rss_mb_end']} MB; max {soaked['rss_mb_max_after_1_min']} MB)")

    print(json.dumps({
        "benchmark": "serve_load",
        "cpu": cpu_model(),
        "model": args.model,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "clients": args.clients,
        "mixed_precision": args.mixed_precision,
        "batching_parameters": batching_parameters(args).strip().splitlines(),
        "batching_off": {**off, "rounds": results["off"], "model_calls": calls["off"], "rss_mb": rss["off"]},
        "batching_on": {**on, "rounds": results["on"], "model_calls": calls["on"], "rss_mb": rss["on"]},
        "throughput_ratio_on_vs_off": ratio,
        "throughput_ratio_per_round": per_round,
        "p99_ratio_one_client_on_vs_off": p99_one,
        "soak": soaked,
    }), flush=True)


if __name__ == "__main__":
    main()
