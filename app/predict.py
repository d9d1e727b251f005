"""Ask a running TF Serving (or ``python -m app.serve``) for predictions, over REST or gRPC:

    python -m app.predict --server http://localhost:8501 --model bert_sst2 "a gorgeous, witty film"
    python -m app.predict --grpc localhost:8500 --model mnist digit.png
    python -m app.predict --server http://localhost:8501 --model gpt "ROMEO:" --length 200

What to send is read from the model's own metadata: a string input gets the texts, a float image
input gets the PNG files, a language model gets a prompt to continue (one request to its
``generate`` signature; older exports without it get one request per token). Only the public
protocol is used, so this works against real TF Serving unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from app.common.cli import ArgumentParser, non_negative_float, positive_int, run_command
from app.common.errors import UsageError
from app.exports.generation import SamplingConfig, continue_text

MNIST_SIDE = 28


def read_digit(path: str) -> np.ndarray:
    """A PNG/JPEG as MNIST sees digits: 28x28 grey, white ink on black, scaled to [0, 1], flattened."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
    except tf.errors.NotFoundError:
        raise UsageError(f"cannot read image {path}: no such file") from None
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"cannot read image {path}: not a PNG, JPEG, GIF, BMP or WebP file") from None
    pixels = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [MNIST_SIDE, MNIST_SIDE]).numpy()[..., 0]
    if pixels.mean() > 0.5:  # dark ink on light paper: flip to MNIST's white-on-black
        pixels = 1.0 - pixels
    return pixels.reshape(-1).astype(np.float32)


def _plain(value) -> object:
    """An array element as plain Python (lists, numbers, str) for printing and JSON."""
    value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def classify_texts(client, model: str, signature, texts: list[str], batch_size: int = 64) -> list[dict]:
    """One request per batch of similar-length texts (the model pads a batch to its longest; characters
    stand in for word pieces here), answers printed in input order."""
    from data_pipelines.text_classification import length_sorted_groups

    (name,) = signature.inputs
    answers = [None] * len(texts)
    for group in length_sorted_groups([len(text) for text in texts], batch_size):
        batch = np.array([texts[i].encode("utf-8") for i in group], dtype=object)
        outputs = client.predict(model, signature, {name: batch})
        for row, i in enumerate(group):
            answers[i] = {key: value[row] for key, value in outputs.items()}
    return _rows({key: [answer[key] for answer in answers] for key in answers[0]}, texts)


def classify_images(client, model: str, signature, paths: list[str]) -> list[dict]:
    (name,) = signature.inputs
    outputs = client.predict(model, signature, {name: np.stack([read_digit(path) for path in paths])})
    return _rows(outputs, paths)


def _rows(outputs: dict[str, np.ndarray], sources: list[str]) -> list[dict]:
    """One dict per example (its outputs, and what it came from), printed as one line each."""
    rows = []
    for index, source in enumerate(sources):
        row = {name: _plain(value[index]) for name, value in outputs.items()}
        best = max(row["probabilities"]) if "probabilities" in row else None
        answer = row.get("labels", row.get("class_ids"))
        print(f"{answer}" + (f"  ({best:.3f})" if best is not None else "") + f"  {source}")
        rows.append({"input": source, **row})
    return rows


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.predict", description="Query a TF Serving compatible server.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://localhost:8501", help="REST address")
    where.add_argument("--grpc", help="gRPC address host:port, used instead of REST")
    parser.add_argument("--model", required=True, help="model name, e.g. bert_sst2, mnist or lm")
    parser.add_argument("inputs", nargs="+", help="texts, image files, or the prompt for a language model")
    parser.add_argument("--signature", default="serving_default", help="signature to call")
    parser.add_argument("--length", type=positive_int, default=200, help="language model: tokens to generate")
    parser.add_argument("--temperature", type=non_negative_float, default=0.8, help="language model: 0 = greedy")
    parser.add_argument("--top-k", type=int, default=20, help="language model: sample among the k most likely")
    parser.add_argument(
        "--window", type=positive_int, default=100,
        help="language model without a generate signature: tokens of context per step",
    )
    parser.add_argument("--seed", type=int, default=0, help="language model: same seed, same text")
    parser.add_argument("--timeout", type=positive_int, default=30, help="seconds per request")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from app.serving.client import GrpcClient, RestClient, ServerError

    client = GrpcClient(args.grpc, args.timeout) if args.grpc else RestClient(args.server, args.timeout)
    try:
        signatures = client.signatures(args.model)
        if args.signature not in signatures:
            raise UsageError(f"model {args.model} has no signature {args.signature!r} (it has {sorted(signatures)})")
        signature = signatures[args.signature]
        (input_info, *others) = signature.inputs.values()
        if input_info.dtype.is_integer and {"encode", "decode"} <= set(signatures):
            config = SamplingConfig(args.length, args.temperature, args.top_k, args.seed)

            def remote(name: str, inputs: dict) -> dict:
                return client.predict(args.model, signatures[name], inputs)

            text = continue_text(remote, set(signatures), " ".join(args.inputs), config, args.window)
            print(text)
            result = {"text": text, **vars(config)}
        elif others:
            raise UsageError(
                f"signature {args.signature!r} takes several inputs ({signature.expected_inputs()}); "
                "call it with curl or a client library"
            )
        elif input_info.dtype.name == "string":
            result = {"predictions": classify_texts(client, args.model, signature, args.inputs)}
        elif input_info.dtype.is_floating:
            result = {"predictions": classify_images(client, args.model, signature, args.inputs)}
        else:
            raise UsageError(f"do not know how to build {signature.expected_inputs()} from the command line")
    except ServerError as error:
        raise UsageError(str(error)) from None
    return {"server": args.grpc or args.server, "model": args.model, "signature": args.signature, **result}


if __name__ == "__main__":
    run_command(main)
