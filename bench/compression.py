"""Size, speed and accuracy of a teacher, its distilled student and their LiteRT variants, in one run:

    python bench/compression.py [--teacher saved_models/bert_sst2] [--students tiny=saved_models/bert_sst2_student ...]
                                [--hard-label-students tiny=saved_models/hard_labels/bert_sst2_student ...]
                                [--pruned heads50_ffn50=saved_models/bert_sst2_pruned ...] [--rounds 3]
                                [--intra-op-threads 1] [--inter-op-threads 0]

For every variant (each export's float32 SavedModel and the ``.tflite`` models `app.compress` wrote
next to it; missing ones are converted first): parameters, file size, SST-2 dev accuracy, latency
at batch 1 (one sentence per call, text in, probabilities out, tokenization included; p50/p99 over
``--sentences`` dev sentences) and throughput at batch 32. Variants take turns within each round;
figures are medians over ``--rounds``. The SavedModels run with TensorFlow's threads set as
``app.serve`` sets them: one thread inside each call (``--intra-op-threads 1``; 0 = TensorFlow's
default of every core, whose hand-offs cost a small model more than its arithmetic) and TensorFlow's
default between ops (``--inter-op-threads 0``). Each student trained on hard labels only (``python -m
app.distill --teacher-weight 0``, same settings) shows what the teacher's soft targets added. Pruned
exports (``python -m app.compress --prune-heads F --prune-ffn F``) are compared with the teacher they
were pruned from, SavedModel with SavedModel and LiteRT int8 with int8. Ends with a
Markdown table and one JSON line. The SavedModels run in float32 (no bf16 rewrite), as served.
"""

from __future__ import annotations

import argparse
import json
import statistics

import pandas as pd
from common import REPO_ROOT  # noqa: F401  (offline defaults)

from app.training.devices import cpu_model, set_threads, thread_settings
from app.exports.savedmodel import resolve_version
from app.exports.variants import SavedModelVariant, dev_accuracy, timed_round, variants_of
from data_pipelines.sources import resolve_data_file
from data_pipelines.text_classification import SST2_DEV


def markdown_table(results: dict) -> str:
    lines = [
        "| variant | parameters | file MB | dev accuracy | batch-1 p50 ms | batch-1 p99 ms | batch-32 sentences/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['parameters'] / 1e6:.1f} M | {row['file_mb']:.1f} | {row['dev_accuracy']:.4f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['batch32_per_s']:.0f} |"
        )
    return "\n".join(lines)


def labelled(pairs: list[str]) -> dict[str, str]:
    """``LABEL=EXPORT`` arguments as a dict."""
    return dict(pair.split("=", 1) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="saved_models/bert_sst2")
    parser.add_argument("--students", nargs="*", default=["tiny=saved_models/bert_sst2_student"], metavar="LABEL=EXPORT",
                        help="distilled students (default tiny=saved_models/bert_sst2_student; the flag alone = none)")
    parser.add_argument("--pruned", nargs="*", default=[], metavar="LABEL=EXPORT",
                        help="pruned copies of the teacher (app.compress --prune-heads/--prune-ffn); default none")
    parser.add_argument("--hard-label-students", nargs="*", default=["tiny=saved_models/hard_labels/bert_sst2_student"],
                        metavar="LABEL=EXPORT", help="the same students trained on labels only (app.distill --teacher-weight 0); "
                        "the flag alone = none (speed and size only, no distillation gain)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=200, help="dev sentences timed one at a time per round")
    parser.add_argument("--data-dir")
    parser.add_argument("--intra-op-threads", type=int, default=1,
                        help="threads inside one SavedModel call (default 1, as app.serve; 0 = TensorFlow's default)")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="threads running independent ops of one call (default 0: TensorFlow's, as app.serve)")
    args = parser.parse_args()
    set_threads(args.intra_op_threads, args.inter_op_threads)
    students, hard_label_students, pruned = labelled(args.students), labelled(args.hard_label_students), labelled(args.pruned)

    frame = pd.read_csv(resolve_data_file(SST2_DEV, args.data_dir), sep="\t", quoting=3, keep_default_na=False)
    texts, labels = frame["sentence"].to_numpy(dtype=object), frame["label"].to_numpy()
    variants = variants_of("teacher", args.teacher)
    for label, export in students.items():
        variants.update(variants_of(f"student {label}", export))
    for label, export in pruned.items():
        variants.update(variants_of(f"pruned {label}", export))
    threads = thread_settings()  # 0 = TensorFlow's default
    print(f"CPU: {cpu_model()}; scoring {len(variants)} variants on {len(texts)} dev sentences; threads {threads}", flush=True)
    results = {name: {"parameters": v.parameters, "file_mb": round(v.bytes / 1e6, 2), "dev_accuracy": dev_accuracy(v, texts, labels)}
               for name, v in variants.items()}
    hard_label_accuracy = {label: dev_accuracy(SavedModelVariant(resolve_version(export)), texts, labels)
                           for label, export in hard_label_students.items()}
    rounds = {name: [] for name in variants}
    for variant in variants.values():  # warm-up: first calls trace graphs and size LiteRT's tensors
        timed_round(variant, texts[:64], 8)
    for number in range(args.rounds):
        for name, variant in variants.items():
            rounds[name].append(timed_round(variant, texts, args.sentences))
            print(f"round {number + 1}: {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in rounds[name][-1].items()), flush=True)
    for name, runs in rounds.items():
        results[name].update({key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]})

    teacher, teacher_int8 = results["teacher SavedModel fp32"], results["teacher LiteRT int8"]
    ratios = {
        "teacher_int8_smaller_than_savedmodel": round(teacher["file_mb"] / teacher_int8["file_mb"], 2),
        "teacher_int8_smaller_than_its_fp32_parameters": round(4 * teacher["parameters"] / 1e6 / teacher_int8["file_mb"], 2),
        "teacher_int8_accuracy_points": round(100 * (teacher_int8["dev_accuracy"] - teacher["dev_accuracy"]), 2),
        "teacher_int8_batch1_speedup": round(teacher["p50_ms"] / teacher_int8["p50_ms"], 2),
    }
    for label in students:
        student = results[f"student {label} SavedModel fp32"]
        ratios[label] = {
            "batch1_speedup": round(teacher["p50_ms"] / student["p50_ms"], 2),
            "int8_batch1_speedup": round(teacher["p50_ms"] / results[f"student {label} LiteRT int8"]["p50_ms"], 2),
            "minus_teacher_points": round(100 * (student["dev_accuracy"] - teacher["dev_accuracy"]), 2),
        }
        if label in hard_label_accuracy:
            ratios[label]["distillation_gain_points"] = round(100 * (student["dev_accuracy"] - hard_label_accuracy[label]), 2)
    for label in pruned:
        savedmodel, int8 = results[f"pruned {label} SavedModel fp32"], results[f"pruned {label} LiteRT int8"]
        ratios[f"pruned {label}"] = {
            "batch1_speedup": round(teacher["p50_ms"] / savedmodel["p50_ms"], 2),
            "int8_batch1_speedup_over_teacher_int8": round(teacher_int8["p50_ms"] / int8["p50_ms"], 2),
            "minus_teacher_points": round(100 * (savedmodel["dev_accuracy"] - teacher["dev_accuracy"]), 2),
            "int8_minus_teacher_int8_points": round(100 * (int8["dev_accuracy"] - teacher_int8["dev_accuracy"]), 2),
        }
    print(markdown_table(results))
    print("students trained on labels only, dev accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in hard_label_accuracy.items()))
    print(json.dumps({"bench": "compression", "cpu": cpu_model(), "threads": threads, "rounds": args.rounds, "sentences_batch1": args.sentences,
                      "variants": results, "hard_label_dev_accuracy": hard_label_accuracy, "ratios": ratios}), flush=True)


if __name__ == "__main__":
    main()
