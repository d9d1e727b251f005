"""Load test of the local TF Serving compatible server on the BERT classifier, batching off vs on.

For each setting a fresh server is started on loopback; one client, then ``--clients`` concurrent
clients, each send one SST-2 dev sentence per request for ``--seconds``. Prints throughput,
p50/p95/p99 latency, errors and the server's RSS (before, during, after), then one JSON line with both sides and
the throughput ratio (batching on / off). Needs an export under ``--model-base``; without one it first
trains a quick one (speed does not depend on accuracy).

    python bench/serve_load.py [--clients 32] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.serving.process import REPO_ROOT, start_server  # noqa: E402
from data_pipelines.sources import resolve_data_file  # noqa: E402
from data_pipelines.text_classification import SST2_DEV  # noqa: E402


async def run_clients(url: str, sentences: list[str], clients: int, seconds: float) -> dict:
    """``clients`` loops each sending one sentence per request until ``seconds`` pass."""
    import aiohttp

    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client(index: int, session: aiohttp.ClientSession):
        nonlocal errors
        position = index
        while time.perf_counter() < deadline:
            body = {"instances": [sentences[position % len(sentences)]]}
            position += clients
            start = time.perf_counter()
            try:
                async with session.post(url, json=body) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(index, session) for index in range(clients)))
    elapsed = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **{f"p{q}_ms": round(float(np.percentile(milliseconds, q)), 1) if len(milliseconds) else None for q in (50, 95, 99)},
    }


async def sample_rss(server, every: float, samples: list[float]) -> None:
    while True:
        samples.append(round(server.rss_mb()))
        await asyncio.sleep(every)


async def run_phase(server, url: str, sentences: list[str], clients: int, seconds: float, rss: list[float]) -> dict:
    """One load phase, with the server's RSS sampled every tenth of it."""
    sampler = asyncio.get_running_loop().create_task(sample_rss(server, seconds / 10, rss))
    try:
        return await run_clients(url, sentences, clients, seconds)
    finally:
        sampler.cancel()


def measure(model_base: Path, model: str, flags: list[str], sentences: list[str], clients: int, seconds: float) -> dict:
    with start_server(model_base, *flags) as server:
        url = f"{server.rest_url}/v1/models/{model}:predict"
        asyncio.run(run_clients(url, sentences, clients, 3))  # warm the bucket shapes up
        rss_before, rss = server.rss_mb(), []
        single = asyncio.run(run_phase(server, url, sentences, 1, seconds, rss))
        concurrent = asyncio.run(run_phase(server, url, sentences, clients, seconds, rss))
        rss_after = server.rss_mb()
    result = {
        "one_client": single,
        f"{clients}_clients": concurrent,
        "rss_mb_before": round(rss_before),
        "rss_mb_after": round(rss_after),
        "rss_mb_samples": rss,
    }
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def ensure_export(model_base: Path, model: str) -> Path:
    if (model_base / model).is_dir():
        return model_base
    quick = Path(tempfile.mkdtemp(prefix="serve-load-"))
    print(f"no {model} export under {model_base}: training a quick one into {quick}", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "app.train", "bert", "--epochs", "1", "--max-train-samples", "128",
         "--out", str(quick), "--runs-dir", str(quick / "runs")],
        cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return quick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=str(REPO_ROOT / "saved_models"))
    parser.add_argument("--model", default="bert_sst2")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    args = parser.parse_args()

    model_base = ensure_export(Path(args.model_base), args.model)
    sentences = pd.read_csv(resolve_data_file(SST2_DEV), sep="\t", quoting=3)["sentence"].tolist()
    off = measure(model_base, args.model, [], sentences, args.clients, args.seconds)
    on = measure(
        model_base, args.model,
        ["--enable-batching", "--max-batch-size", str(args.max_batch_size), "--batch-timeout-ms", str(args.batch_timeout_ms)],
        sentences, args.clients, args.seconds,
    )
    key = f"{args.clients}_clients"
    print(json.dumps({
        "benchmark": "serve_load",
        "model": args.model,
        "seconds": args.seconds,
        "batching_off": off,
        "batching_on": on,
        "throughput_ratio_on_vs_off": round(on[key]["requests_per_s"] / off[key]["requests_per_s"], 2),
    }))


if __name__ == "__main__":
    main()
