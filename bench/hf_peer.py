"""The Hugging Face + PyTorch side of bench/bert_vs_peers.py, run in the peer venv (bench/setup_hf_peer.sh).

It imports neither TensorFlow nor the project: the bench hands it the sentences in a JSON file and
reads back one JSON line. The recipe is what a Hugging Face user writes: `AutoTokenizer` padding each
batch to its longest sentence, `AutoModelForSequenceClassification`, `torch.optim.AdamW`, a plain
training loop, then, after one warm-up sentence, `torch.no_grad()` inference over the dev sentences as they come,
raw strings in.

    <peer venv>/bin/python bench/hf_peer.py --data sentences.json --model ../shared/models/all-MiniLM-L6-v2 --precision bf16

``--precision bf16`` runs forward passes under ``torch.autocast("cpu", dtype=torch.bfloat16)``. Optional
keys of the JSON (bench/finetuning_methods.py): ``epochs`` (default 1), ``warmup_fraction`` (a linear
warm-up and decay, as the project's; default a constant rate) and ``lora`` (``rank``, ``alpha``,
``targets``: PEFT's LoRA, the encoder frozen, the classifier head trained; needs ``peft``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time


def peak_rss_mb() -> float:
    """This process's peak memory: VmHWM (``ru_maxrss`` would include the parent's, inherited at the start)."""
    try:
        with open("/proc/self/status") as status:
            return next(round(int(line.split()[1]) / 1024, 1) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="JSON: train_texts, train_labels, dev_texts, dev_labels, settings")
    parser.add_argument("--model", required=True, help="a Hugging Face model folder")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with open(args.data) as file:
        data = json.load(file)
    batch_size, max_length = data["batch_size"], data["max_length"]
    torch.manual_seed(data["seed"])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    if data.get("lora"):
        from peft import LoraConfig, TaskType, get_peft_model

        lora = data["lora"]
        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_CLS, r=lora["rank"], lora_alpha=lora["alpha"], target_modules=lora["targets"], lora_dropout=0.0,
        ))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=data["learning_rate"])
    epochs = data.get("epochs", 1)
    total_steps = epochs * -(-len(data["train_texts"]) // batch_size)
    schedule = None
    if data.get("warmup_fraction") is not None:
        schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(total_steps * data["warmup_fraction"]), total_steps)

    def precision():
        if args.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batches(texts):
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            yield start, tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    train_start = time.perf_counter()
    model.train()
    order = np.arange(len(data["train_texts"]))
    for epoch in range(epochs):
        texts = [data["train_texts"][index] for index in order]
        for start, inputs in batches(texts):
            labels = torch.tensor([data["train_labels"][index] for index in order[start : start + batch_size]], dtype=torch.long)
            with precision():
                loss = model(**inputs, labels=labels).loss
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            optimizer.zero_grad()
        order = np.random.default_rng(data["seed"] + epoch + 1).permutation(len(order))  # reshuffled every epoch
    train_seconds = time.perf_counter() - train_start

    predictions = []
    model.eval()
    with torch.no_grad(), precision():
        model(**tokenizer(data["dev_texts"][:1], return_tensors="pt"))  # warm-up, as every side gets
    inference_start = time.perf_counter()
    with torch.no_grad(), precision():
        for _, inputs in batches(data["dev_texts"]):
            predictions.append(model(**inputs).logits.argmax(dim=1).numpy())
    inference_seconds = time.perf_counter() - inference_start

    print(json.dumps({
        "train_samples_per_s": epochs * len(data["train_texts"]) / train_seconds,
        "trainable_parameters": sum(parameter.numel() for parameter in trainable),
        "total_parameters": sum(parameter.numel() for parameter in model.parameters()),
        "inference_samples_per_s": len(data["dev_texts"]) / inference_seconds,
        "dev_accuracy": float(np.mean(np.concatenate(predictions) == np.array(data["dev_labels"]))),
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
    }), flush=True)


if __name__ == "__main__":
    main()
