"""Training speed of the language models with XLA (``jit_compile``) on and off, and with
``mixed_bfloat16`` against float32 where the CPU has bfloat16 instructions.

Each setting builds the task's default model (``GptTask()``, ``LanguageModelTask()``), compiles it as
``app.training.trainer.train`` does (the task's optimizer, loss, metrics and ``steps_per_execution``) and
fits it on synthetic token ids of the training shape [batch, seq_len]: the first ``--warmup-steps``
(tracing, XLA compilation, the first run) are timed apart as ``first_seconds``, the next ``--steps``
give training tokens/s. Settings alternate within one run; medians of ``--rounds``. Without
AMX-BF16 / AVX512-BF16 (``app.training.devices.cpu_supports_bf16``) bf16 is reported as not supported and
skipped (``--bf16 on`` measures it anyway); the bf16 matrix-product speedup is printed either way.

    python bench/precision_and_xla.py [--rounds 3] [--steps 64] [--models gpt lstm]

``--mixed-precision auto --jit-compile auto`` make the same comparison inside a run (a few steps per
setting, app.training.autotune); this bench measures it carefully, alternating, for the docs. Ends
with one JSON line: tokens/s per setting, xla_speedup (XLA / plain, float32) and bf16_speedup
(mixed_bfloat16 / float32, both at the faster XLA setting).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from types import SimpleNamespace

from common import alternate, matmul_gflops

NOT_SUPPORTED = "not supported on this CPU"
TASKS = ("gpt", "lstm")


def make_task(name: str):
    from app.tasks import GptTask, LanguageModelTask

    return GptTask() if name == "gpt" else LanguageModelTask()


def step_clock(marks: list):
    """A callback appending the time at the start of training and after each ``steps_per_execution``
    group of steps (Keras calls batch end once per group)."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    return StepClock()


def measure(task_name: str, policy: str, jit_compile: bool, args) -> dict:
    """One setting: build, compile like the trainer, fit warm-up + timed steps on synthetic ids."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    task = make_task(task_name)
    batch_size = args.batch_size or task.defaults.batch_size
    steps_per_execution = args.steps_per_execution or task.defaults.steps_per_execution
    seq_len = task.seq_len
    warmup = math.ceil(args.warmup_steps / steps_per_execution) * steps_per_execution if args.warmup_steps else steps_per_execution
    timed = max(1, math.ceil(args.steps / steps_per_execution)) * steps_per_execution

    model = task.build_model(SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=args.vocab_size)))
    model.compile(
        optimizer=task.optimizer(task.defaults.learning_rate, total_steps=args.schedule_steps),
        loss=task.loss(),
        metrics=task.metrics(),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(1, args.vocab_size, size=[batch_size, seq_len + 1]).astype("int32")
    dataset = tf.data.Dataset.from_tensors((ids[:, :-1], ids[:, 1:])).repeat().prefetch(2)
    marks = []
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + timed, shuffle=False, verbose=0, callbacks=[step_clock(marks)])
    warm_mark = marks[warmup // steps_per_execution]
    seconds = marks[-1] - warm_mark
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    return {
        "tokens_per_s": round(timed * batch_size * seq_len / seconds, 1),
        "step_ms": round(1000 * seconds / timed, 2),
        "first_seconds": round(warm_mark - marks[0], 2),  # tracing (+ XLA compilation) and the warm-up steps
    }


def settings_for(bf16: bool) -> dict[str, tuple[str, bool]]:
    settings = {"float32": ("float32", False), "float32_xla": ("float32", True)}
    if bf16:
        settings.update({"bf16": ("mixed_bfloat16", False), "bf16_xla": ("mixed_bfloat16", True)})
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=64, help="timed training steps per setting (rounded up to whole steps_per_execution groups)")
    parser.add_argument("--warmup-steps", type=int, default=0, help="untimed steps first (default: one steps_per_execution group)")
    parser.add_argument("--batch-size", type=int, help="default: the task's")
    parser.add_argument("--steps-per-execution", type=int, help="default: the task's")
    parser.add_argument("--vocab-size", type=int, default=66, help="Tiny Shakespeare: 65 characters + out-of-vocabulary")
    parser.add_argument("--schedule-steps", type=int, default=1000, help="total_steps given to the task's optimizer (its schedule)")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="auto = measure where the CPU has bf16 instructions")
    args = parser.parse_args()

    from app.training.devices import cpu_model, cpu_supports_bf16

    supported = cpu_supports_bf16()
    measure_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and supported)
    matmul_speedup = round(matmul_gflops("bfloat16") / matmul_gflops("float32"), 2)
    print(f"CPU: {cpu_model()}", flush=True)
    print(
        f"bf16 instructions (AMX-BF16 / AVX512-BF16): {'yes' if supported else 'no'}; bf16 / fp32 1024x1024 matmul speed: "
        f"{matmul_speedup}x; mixed_bfloat16 training: {'measured' if measure_bf16 else 'skipped, ' + NOT_SUPPORTED}",
        flush=True,
    )

    payload = {"bench": "precision_and_xla", "cpu": cpu_model(), "rounds": args.rounds, "bf16_supported": supported,
               "bf16_matmul_speedup": matmul_speedup}
    for task_name in args.models:
        task = make_task(task_name)
        sides = {
            label: (lambda workdir, policy=policy, jit=jit: measure(task_name, policy, jit, args))
            for label, (policy, jit) in settings_for(measure_bf16).items()
        }
        results = alternate(sides, args.rounds)
        xla_speedup = round(results["float32_xla"]["tokens_per_s"] / results["float32"]["tokens_per_s"], 2)
        if measure_bf16:
            own = "_xla" if xla_speedup > 1 else ""
            bf16_speedup = round(results[f"bf16{own}"]["tokens_per_s"] / results[f"float32{own}"]["tokens_per_s"], 2)
        else:
            bf16_speedup = NOT_SUPPORTED
        print(f"{task_name} (batch {args.batch_size or task.defaults.batch_size} x {task.seq_len} tokens):", flush=True)
        for label, figures in results.items():
            print(
                f"  {label:<12} {figures['tokens_per_s']:>10.1f} tokens/s  {figures['step_ms']:>9.1f} ms/step  "
                f"first group {figures['first_seconds']:.1f} s",
                flush=True,
            )
        verdict = "pays" if xla_speedup > 1 else "does not pay"
        print(
            f"  xla_speedup {xla_speedup}x (XLA {verdict}), "
            f"bf16_speedup {bf16_speedup if isinstance(bf16_speedup, str) else f'{bf16_speedup}x'}",
            flush=True,
        )
        payload[task_name] = {
            "batch_size": args.batch_size or task.defaults.batch_size,
            "seq_len": task.seq_len,
            "steps_per_execution": args.steps_per_execution or task.defaults.steps_per_execution,
            **results,
            "xla_speedup": xla_speedup,
            "bf16_speedup": bf16_speedup,
        }
    print(json.dumps(payload), flush=True)


if __name__ == "__main__":
    main()
