"""What every `python -m app.<command>` shares: one-line errors, exit codes, a final JSON line."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from typing import Callable, Sequence

from data_pipelines.errors import DataError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command cannot do what was asked (bad combination of flags, nothing to resume, ...)."""


class CommandFailed(Exception):
    """The command ran but its work failed (exit code 1); the message says what and where."""


class TrainingFailed(CommandFailed):
    """Training stopped on its own (e.g. the loss became NaN); the message says what was kept."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; the message says how to continue."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line instead of usage text plus an error."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


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


def stop_process(process: subprocess.Popen, grace_seconds: float) -> int:
    """SIGTERM, then SIGKILL if it is still running after ``grace_seconds`` (a process blocked inside
    TensorFlow cannot run its Python signal handler); returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_command(main: Callable[[Sequence[str] | None], dict | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main``; print its result as the last line (JSON), or one error line on stderr and exit non-zero.

    ``None`` prints nothing: a worker that is not the chief of a multi-worker job leaves the report to it."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
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
