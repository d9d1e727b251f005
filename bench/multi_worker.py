"""When do several machines pay? Each training step's all-reduces, measured on loopback, fitted, and
projected with each model's measured compute to clusters of 2 to 64 hosts.

    python bench/multi_worker.py [--rounds 3] [--largest-mib 64] [--wire-latency-us 30]

Models: MNIST's dense network (batch 32 per worker), the test suite's tiny BERT (2 layers, 32 wide,
as tests/conftest.py builds it; batch 16) and the shared 6-layer MiniLM (batch 16); both BERTs keep
their word embeddings frozen, as ``app.train bert`` does. A gradient is the trainable parameters x 4
bytes (MNIST's counted on its model, the BERTs' from their runs).

1. Compute: seconds per training step of one worker, from short real runs of ``python -m app.train``
   (float32 without XLA, one step per graph call: how workers train on CPUs): the median of the
   epochs after the first (which traces the graphs), from the run's history.csv. The BERTs run once;
   MNIST in every round (below).
2. All-reduce, in ``--rounds`` alternating rounds, each side a fresh ``python -m app.launch`` job:
   2 and 4 local workers time one all-reduce of each synthetic size (4 KiB to ``--largest-mib``, x4
   apart), of each model's gradient size and of one scalar (bench/allreduce.py); per worker count, a
   least-squares line ``latency + bytes / bandwidth`` through the synthetic sizes. In the same rounds
   MNIST trains on one worker and on two (batch 32 each): what a real step pays for the second
   worker, beside what its all-reduces cost. Figures are medians over the rounds.
3. Projection, weak scaling (every host keeps its batch): speed-up(H) = H x compute / (compute +
   allreduces(H)), the step's all-reduces being the gradients' and ``SCALAR_ALLREDUCES`` scalars',
   each by the ring model ring(bytes) = 2(H-1) x hop latency + 2(H-1)/H x bytes / link bandwidth,
   for 10 and 100 Gbit/s links. Hop latency: the 2-worker loopback fit's, read as
   TensorFlow's and gRPC's own cost per ring step, plus ``--wire-latency-us`` for NICs and switches.
   Two bounds beside it: the wire latency alone (as if that software cost vanished on hosts with
   their own cores), and this machine's loopback latency and bandwidth (as if it did not improve).

Every worker process shares this machine's cores: the loopback figures are pessimistic for hosts with
their own cores. Prints the CPU model, then one JSON line with all measurements, fits and projections.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from allreduce import fit_line, ring_allreduce_seconds
from common import REPO_ROOT, alternate

HOSTS = (2, 4, 8, 16, 32, 64)
LINKS = {"10gbit": 10e9 / 8, "100gbit": 100e9 / 8}  # bytes/s
MEASURED_WORKERS = (2, 4)
# Besides the gradients (one all-reduce: TensorFlow packs them), each step of app.train's model.fit
# under the strategy all-reduces 3 scalars (Keras's loss and metric bookkeeping): counted as
# CollectiveReduceV2 ops in the compiled step of a 2-worker MNIST run; the BERT tasks compile the
# same loss and metric. Each costs latency only; they are timed as one float32.
SCALAR_ALLREDUCES = 3
SCALAR_BYTES = 4
# The tiny BERT of tests/conftest.py (fixture tiny_hub): MiniLM's vocabulary, random weights.
TINY_BERT = dict(vocabulary_size=30522, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=128)
MNIST_BATCH, MNIST_SAMPLES, MNIST_EPOCHS = 32, 4096, 4
DEV_SENTENCES = 64  # validation slice for the BERT runs: their validation is not timed, only waited for


def train_command(task: list[str], batch: int, samples: int, epochs: int, workdir: Path) -> list[str]:
    """``app.train`` as multi-worker training runs on CPUs, quiet, writing under ``workdir``."""
    return [
        "-m", "app.train", *task, "--batch-size", str(batch), "--max-train-samples", str(samples),
        "--epochs", str(epochs), "--patience", str(epochs), "--steps-per-execution", "1", "--jit-compile", "off",
        "--mixed-precision", "off", "--quiet", "--out", str(workdir / "saved"), "--runs-dir", str(workdir / "runs"),
    ]


def last_json_line(arguments: list[str]) -> dict:
    """Run ``python <arguments>`` in the repository; its last line, a JSON object."""
    completed = subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        sys.exit(f"error: {' '.join(arguments)} failed: {tail}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def step_figures(summary: dict, samples: int) -> dict:
    """Milliseconds per step: the median epoch after the first (history.csv's running
    ``elapsed_seconds``), over ``samples`` / global batch steps."""
    with (Path(summary["run_dir"]) / "history.csv").open(newline="") as file:
        elapsed = [float(row["elapsed_seconds"]) for row in csv.DictReader(file)]
    epoch_seconds = [later - earlier for earlier, later in zip(elapsed, elapsed[1:])]
    steps = samples // summary["global_batch_size"]
    return {"ms_per_step": round(1000 * statistics.median(epoch_seconds) / steps, 3), "trainable_parameters": summary["trainable_parameters"]}


def tiny_bert_files(folder: Path) -> list[str]:
    """The tiny BERT exported as TF-Hub handles, and a small dev file: its ``app.train bert`` flags."""
    import keras_hub
    import pandas as pd

    from app.common.paths import MINILM_CHECKPOINT
    from app.exports.hub import export_hub
    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_DEV
    from models.bert.vocabulary import read_vocabulary

    vocab_file, lower_case = read_vocabulary(MINILM_CHECKPOINT)
    export_hub(keras_hub.models.BertBackbone(**TINY_BERT), vocab_file, lower_case, folder / "tiny")
    dev = pd.read_csv(resolve_data_file(SST2_DEV), sep="\t", quoting=3).head(DEV_SENTENCES)
    dev.to_csv(folder / "dev.tsv", sep="\t", index=False)
    return ["--encoder", str(folder / "tiny" / "encoder"), "--preprocessor", str(folder / "tiny" / "preprocessor"),
            "--validation-file", str(folder / "dev.tsv")]


def measure_bert_compute(workdir: Path) -> dict:
    """The BERTs' one-worker compute per step and parameter counts (step 1)."""
    tiny = tiny_bert_files(workdir)
    models = {  # task flags, batch per worker, training samples (whole batches), epochs
        "bert_tiny": (["bert", *tiny], 16, 640, 3),
        "minilm": (["bert", "--validation-file", tiny[-1]], 16, 320, 3),
    }
    compute = {}
    for name, (task, batch, samples, epochs) in models.items():
        compute[name] = {**step_figures(last_json_line(train_command(task, batch, samples, epochs, workdir / name)), samples), "batch_per_worker": batch}
        print(f"compute {name}: {compute[name]}", file=sys.stderr, flush=True)
    return compute


def mnist_parameters() -> int:
    """Trainable parameters of the dense MNIST network, built as ``app.train mnist`` builds it."""
    from app.tasks import MnistTask

    return sum(int(weight.numpy().size) for weight in MnistTask().build_model(None).trainable_weights)


def allreduce_side(workers: int, sizes: list[int]):
    def run(workdir: Path) -> dict:
        launch = ["-m", "app.launch", "--workers", str(workers), "--", "python", "bench/allreduce.py", *map(str, sizes)]
        return last_json_line(launch)["seconds_per_allreduce"]

    return run


def mnist_side(workers: int):
    def run(workdir: Path) -> dict:
        command = train_command(["mnist"], MNIST_BATCH, MNIST_SAMPLES, MNIST_EPOCHS, workdir)
        if workers > 1:
            command = ["-m", "app.launch", "--workers", str(workers), "--", "python", *command]
        return {"ms_per_step": step_figures(last_json_line(command), MNIST_SAMPLES)["ms_per_step"]}

    return run


def speedup(hosts: int, compute_s: float, gradient_bytes: int, hop_latency: float, bandwidth: float) -> float:
    """H hosts against one, each host with the measured one-worker compute per step and the step's
    all-reduces: the gradients' and the scalars'."""
    allreduces = ring_allreduce_seconds(gradient_bytes, hosts, hop_latency, bandwidth) + SCALAR_ALLREDUCES * ring_allreduce_seconds(
        SCALAR_BYTES, hosts, hop_latency, bandwidth
    )
    return round(hosts * compute_s / (compute_s + allreduces), 2)


def speedups(compute: dict, hop_latency: float, links: dict[str, float]) -> dict:
    """The projection table: model -> link -> hosts -> speed-up."""
    return {
        name: {
            link: {str(hosts): speedup(hosts, model["ms_per_step"] / 1000, model["gradient_bytes"], hop_latency, bandwidth) for hosts in HOSTS}
            for link, bandwidth in links.items()
        }
        for name, model in compute.items()
    }


def fit(synthetic: list[int], measured: dict[str, float], workers: int) -> dict:
    """The least-squares line through one worker count's all-reduces, also read through the ring model."""
    latency, bandwidth = fit_line(synthetic, [measured[str(size)] for size in synthetic])
    errors = [abs(latency + size / bandwidth - measured[str(size)]) / measured[str(size)] for size in synthetic]
    return {
        "latency_ms": round(1000 * latency, 3), "bandwidth_mb_per_s": round(bandwidth / 1e6, 1), "max_relative_error": round(max(errors), 3),
        "hop_latency_ms": round(1000 * latency / (2 * (workers - 1)), 3),
        "link_mb_per_s": round(2 * (workers - 1) / workers * bandwidth / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--largest-mib", type=int, default=64, help="largest synthetic all-reduce, MiB")
    parser.add_argument("--wire-latency-us", type=float, default=30, help="per hop, added to the measured software latency")
    args = parser.parse_args()

    from app.training.devices import cpu_model

    print(f"CPU: {cpu_model()}", file=sys.stderr, flush=True)
    synthetic = [4096 * 4**power for power in range(20) if 4096 * 4**power <= args.largest_mib * 2**20]
    with tempfile.TemporaryDirectory() as scratch:
        compute = {"mnist": {"trainable_parameters": mnist_parameters(), "batch_per_worker": MNIST_BATCH}, **measure_bert_compute(Path(scratch))}
    for model in compute.values():
        model["gradient_bytes"] = 4 * model["trainable_parameters"]
    model_sizes = sorted({model["gradient_bytes"] for model in compute.values()})
    sides = {f"allreduce_{workers}_workers": allreduce_side(workers, synthetic + model_sizes + [SCALAR_BYTES]) for workers in MEASURED_WORKERS}
    sides.update(mnist_one_worker=mnist_side(1), mnist_two_workers=mnist_side(2))
    rounds = alternate(sides, args.rounds)
    for side in rounds.values():
        side.pop("peak_rss_mb")  # the bench process's own, not the workers'
    compute["mnist"]["ms_per_step"] = rounds["mnist_one_worker"]["ms_per_step"]

    allreduce = {str(workers): rounds[f"allreduce_{workers}_workers"] for workers in MEASURED_WORKERS}
    fits = {workers: fit(synthetic, measured, int(workers)) for workers, measured in allreduce.items()}
    software_hop, loopback_link = fits["2"]["hop_latency_ms"] / 1000, fits["2"]["link_mb_per_s"] * 1e6
    wire = args.wire_latency_us / 1e6
    one, two = rounds["mnist_one_worker"]["ms_per_step"], rounds["mnist_two_workers"]["ms_per_step"]
    step_allreduces = 1000 * (allreduce["2"][str(compute["mnist"]["gradient_bytes"])] + SCALAR_ALLREDUCES * allreduce["2"][str(SCALAR_BYTES)])
    print(json.dumps({
        "bench": "multi_worker", "cpu": cpu_model(), "rounds": args.rounds,
        "machine": "one host: every worker process shares its cores; all-reduce over loopback",
        "compute": compute,
        "allreduce_seconds": allreduce,
        "fits": fits,
        "mnist_two_workers": {
            "one_worker_ms_per_step": one, "two_workers_ms_per_step": two, "second_worker_cost_ms": round(two - one, 3),
            "of_which_step_allreduces_ms": round(step_allreduces, 3), "other_ms": round(two - one - step_allreduces, 3),
        },
        "projection": {
            "model": f"speed-up(H) = H*compute/(compute + ring(gradient_bytes) + {SCALAR_ALLREDUCES}*ring({SCALAR_BYTES})), "
                     "ring(bytes) = 2(H-1)*hop_latency + 2(H-1)/H*bytes/link_bandwidth; batch per host fixed",
            "hop_latency_ms": {
                "main": round(1000 * (software_hop + wire), 3), "wire_only": round(1000 * wire, 3), "loopback": round(1000 * software_hop, 3),
            },
            "hop_latency_is": f"main: the 2-worker loopback fit's {1000 * software_hop:.3f} ms per hop (TensorFlow and gRPC software) "
                              f"+ {args.wire_latency_us:g} us wire; wire_only: the wire alone; loopback: this machine's latency and bandwidth",
            "link_mb_per_s": {**{link: round(bandwidth / 1e6, 1) for link, bandwidth in LINKS.items()}, "loopback": round(loopback_link / 1e6, 1)},
            "speedup": speedups(compute, software_hop + wire, LINKS),
            "speedup_wire_latency_only": speedups(compute, wire, LINKS),
            "speedup_at_loopback_rates": speedups(compute, software_hop, {"loopback": loopback_link}),
        },
    }), flush=True)


if __name__ == "__main__":
    main()
