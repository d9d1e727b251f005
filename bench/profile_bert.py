"""Where the BERT hot path spends its time: TensorFlow's profiler over a few fine-tuning steps and a few
inference batches of the project's classifier (shared MiniLM, SST-2, batch 32, at most 64 word pieces).

    python bench/profile_bert.py [--steps 10] [--top 12]

Training steps are traced with `app.train`'s ``--profile-steps`` (TrainConfig.profile_steps), inference
batches into runs/profile_bert/ (open either in TensorBoard's Profile tab); the top operation types by
time, summed over TensorFlow's compute threads, are printed as one JSON line for each phase.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
from pathlib import Path

from common import REPO_ROOT

BATCH_SIZE, MAX_LENGTH, TRAIN_SAMPLES = 32, 64, 2000
LOG_DIR = REPO_ROOT / "runs" / "profile_bert"


def op_type_times(log_dir: Path) -> collections.Counter:
    """Milliseconds per TensorFlow op type in the newest trace under ``log_dir`` (host compute threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    newest = max(log_dir.rglob("*.xplane.pb"), key=lambda path: path.stat().st_mtime)
    space = xplane_pb2.XSpace.FromString(newest.read_bytes())
    times = collections.Counter()
    for plane in space.planes:
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if "ExecutorState" in name or "/" not in name and ":" not in name:
                    continue
                # Op events are named "<node path>:<OpType>"; older traces have only the node name.
                op_type = name.rsplit(":", 1)[1] if ":" in name else re.sub(r"_\d+$", "", name.rsplit("/", 1)[-1])
                times[op_type] += event.duration_ps / 1e9
    return times


def report(phase: str, times: collections.Counter, top: int, bench: str = "profile_bert", **figures) -> None:
    """One JSON line: the ``top`` op types by time, with their share of the traced total."""
    total = sum(times.values())
    ops = [{"op": op, "ms": round(ms, 1), "share": round(ms / total, 3)} for op, ms in times.most_common(top)]
    print(json.dumps({"bench": bench, "phase": phase, **figures, "total_ms": round(total, 1), "top_ops": ops}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps and inference batches traced")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from app.tasks import BertTask
    from app.training.trainer import TrainConfig, train
    from data_pipelines.sources import resolve_data_file
    from data_pipelines.text_classification import SST2_DEV, length_sorted_groups, read_labelled_text

    if TRAIN_SAMPLES // BATCH_SIZE <= 10 + args.steps:
        raise SystemExit(f"error: --steps must be below {TRAIN_SAMPLES // BATCH_SIZE - 10}")
    with tempfile.TemporaryDirectory() as workdir:
        # Steps 10 .. 10 + steps: after tracing and warm-up.
        config = TrainConfig(
            epochs=1, batch_size=BATCH_SIZE, learning_rate=5e-5, max_train_samples=TRAIN_SAMPLES, quiet=True,
            out=f"{workdir}/saved", runs_dir=f"{workdir}/runs", profile_steps=(10, 10 + args.steps),
        )
        summary = train(BertTask(max_seq_length=MAX_LENGTH), config).summary
        report("train", op_type_times(Path(summary["run_dir"])), args.top)

        serve = tf.saved_model.load(summary["export_dir"]).signatures["serving_default"]
        texts = read_labelled_text(resolve_data_file(SST2_DEV), "sentence", "label").texts.astype(object)
        groups = length_sorted_groups([len(text) for text in texts], BATCH_SIZE)
        chosen = [groups[i] for i in np.linspace(0, len(groups) - 1, args.steps).astype(int)]
        for group in chosen:  # warm-up: every traced shape seen once
            serve(text=tf.constant(texts[group]))
        tf.profiler.experimental.start(str(LOG_DIR / "inference"))
        for group in chosen:
            serve(text=tf.constant(texts[group]))
        tf.profiler.experimental.stop()
        report("inference", op_type_times(LOG_DIR / "inference"), args.top)


if __name__ == "__main__":
    main()
