"""The Hugging Face + PyTorch side of bench/gpt_vs_peers.py, run in the peer venv (bench/setup_hf_peer.sh).

A GPT-2 (`GPT2LMHeadModel`) of the project's default GPT shape, written as a Hugging Face user would:
`torch.optim.AdamW`, a plain training loop on [batch, context] token ids, then `model.generate` with
its key/value cache and the same sampling (top-k, temperature). It imports neither TensorFlow nor
the project and prints one JSON line.

    <peer venv>/bin/python bench/hf_gpt_peer.py --mode fp32 --vocab-size 66 --context 128 --layers 4 --heads 4 --width 128

``--mode bf16`` runs under ``torch.autocast("cpu", dtype=torch.bfloat16)``; ``--mode compile`` trains
``torch.compile(model)`` (fp32; generation stays eager, as `generate` runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fp32", "bf16", "compile"), default="fp32")
    for flag, default in (("--vocab-size", 66), ("--context", 128), ("--layers", 4), ("--heads", 4), ("--width", 128),
                          ("--batch-size", 16), ("--warmup-steps", 5), ("--steps", 40), ("--new-tokens", 120),
                          ("--top-k", 20), ("--generations", 3), ("--generation-batch", 8)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=args.vocab_size, n_positions=args.context, n_embd=args.width, n_layer=args.layers, n_head=args.heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu", bos_token_id=0, eos_token_id=None,
        pad_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    trained = torch.compile(model) if args.mode == "compile" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)

    def precision():
        return torch.autocast("cpu", dtype=torch.bfloat16) if args.mode == "bf16" else contextlib.nullcontext()

    ids = torch.randint(1, args.vocab_size, (args.batch_size, args.context))
    model.train()
    start = None
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            start = time.perf_counter()
        with precision():
            loss = trained(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    train_seconds = time.perf_counter() - start

    model.eval()
    prompt = torch.randint(1, args.vocab_size, (1, 6))
    sampling = dict(do_sample=True, top_k=args.top_k, temperature=args.temperature, max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, pad_token_id=0)

    def generate(batch: torch.Tensor) -> float:
        with torch.no_grad(), precision():
            began = time.perf_counter()
            out = model.generate(batch, attention_mask=torch.ones_like(batch), **sampling)
            assert out.shape[1] == batch.shape[1] + args.new_tokens
            return time.perf_counter() - began

    generate(prompt)  # warm-up
    one = min(generate(prompt) for _ in range(args.generations))
    batched = min(generate(prompt.repeat(args.generation_batch, 1)) for _ in range(args.generations))
    print(json.dumps({
        "train_tokens_per_s": args.steps * args.batch_size * args.context / train_seconds,
        "generate_ms_per_token": 1000 * one / args.new_tokens,
        f"generate_batch{args.generation_batch}_tokens_per_s": args.generation_batch * args.new_tokens / batched,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__, "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
    }), flush=True)


if __name__ == "__main__":
    main()
