"""Where the GPT's training step spends its time: TensorFlow's profiler over a few steps of the default
GPT (``GptTask()``, its batch and steps per execution), in float32 without XLA, so that the trace names
TensorFlow's own op types (with XLA they are fused into one compiled cluster).

    python bench/profile_gpt.py [--steps 4] [--top 15]

The traced steps are graph calls of ``steps_per_execution`` training steps each, after warm-up; the
trace goes with the run's temporary folder. Prints one JSON line with the CPU and the top op types by
time, summed over TensorFlow's compute threads (read and reported as `bench/profile_bert.py` does).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from profile_bert import op_type_times, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="graph calls traced")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    from app.tasks import GptTask
    from app.training.devices import cpu_model
    from app.training.trainer import TrainConfig, train

    task = GptTask()
    per_call = task.defaults.steps_per_execution * task.defaults.batch_size * task.seq_len  # tokens per graph call
    first = 3  # after tracing and warm-up
    with tempfile.TemporaryDirectory() as workdir:
        config = TrainConfig(
            epochs=1, max_train_samples=(first + args.steps + 2) * per_call, jit_compile="off", mixed_precision="off",
            quiet=True, out=f"{workdir}/saved", runs_dir=f"{workdir}/runs", profile_steps=(first, first + args.steps - 1),
        )
        summary = train(task, config).summary
        report("train", op_type_times(Path(summary["run_dir"])), args.top, bench="profile_gpt", cpu=cpu_model(),
               graph_calls=args.steps, steps_per_call=task.defaults.steps_per_execution)


if __name__ == "__main__":
    main()
