"""What every `python -m app.<command>` shares: a parser whose errors are one line, the flag types,
and `run_command` (errors as one line and an exit code, the result as a final JSON line)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Callable, Sequence

from app.common.errors import (
    EXIT_INTERRUPTED, EXIT_USER_ERROR, CommandFailed, DataError, Interrupted, UsageError,
)
from app.common.processes import raise_keyboard_interrupt


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each flag's default as the code holds it: ``(default: X)`` is added to every
    flag that has one, so no help text repeats a default by hand (and none can disagree with the code)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            return text
        default = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {default})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line instead of usage text plus an error, and shows
    every default in ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


INFERENCE_PRECISIONS = ("off", "bf16")


def add_inference_precision_flag(parser) -> None:
    """``--mixed-precision`` of the commands that run an export (serve, evaluate, generate)."""
    parser.add_argument(
        "--mixed-precision", choices=INFERENCE_PRECISIONS, default="off",
        help="off = the model as exported (the answers of TF Serving and tf.saved_model.load); "
        "bf16 = oneDNN's bf16 rewrite: faster on CPUs with AMX/AVX512-BF16, answers differ",
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def unit_weight(text: str) -> float:
    """A weight in [0, 1], such as alpha in a loss alpha * A + (1 - alpha) * B."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a weight in [0, 1], not {text}")
    return value


def step_range(text: str) -> tuple[int, int]:
    """``FIRST,LAST`` training steps (1-based, FIRST <= LAST)."""
    try:
        first, last = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be FIRST,LAST step numbers, e.g. 10,20, not {text}") from None
    if not 1 <= first <= last:
        raise argparse.ArgumentTypeError(f"needs 1 <= FIRST <= LAST, not {text}")
    return first, last


def dropout_rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a dropout rate is in [0, 1), not {text}")
    return value



def run_command(main: Callable[[Sequence[str] | None], dict | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main``; print its result as the last line (JSON), or one error line on stderr and exit non-zero.

    ``None`` prints nothing: a worker that is not the chief of a multi-worker job leaves the report to it."""
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        result = main(argv)
    except (DataError, UsageError) as error:
        sys.exit(_fail(error, EXIT_USER_ERROR))
    except CommandFailed as error:
        sys.exit(_fail(error, 1))
    except Interrupted as error:
        sys.exit(_fail(error, EXIT_INTERRUPTED))
    except KeyboardInterrupt:
        sys.exit(_fail("interrupted", EXIT_INTERRUPTED))
    if result is not None:
        print(json.dumps(result), flush=True)


def _fail(error, code: int) -> int:
    sys.stdout.flush()
    print(f"error: {error}", file=sys.stderr, flush=True)
    return code
