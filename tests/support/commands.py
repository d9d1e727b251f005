"""Running ``python -m app.<command>`` as a user would, and reading what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from tests.support.paths import REPO_ROOT


def python_command(args: Sequence[str], prefix: Sequence[str] = ()) -> list[str]:
    """``[*prefix, python, *args]``: this interpreter, optionally inside a wrapper (e.g. a network namespace)."""
    return [*prefix, sys.executable, *args]


def run_python(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 300, prefix: Sequence[str] = ()):
    """Run ``python <args>`` to the end as a user would; returns the CompletedProcess (text output captured)."""
    return subprocess.run(
        python_command(args, prefix), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


def run_app(*args: str, **options) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` (e.g. ``run_app("app.train", "mnist")``); options as `run_python`."""
    return run_python("-m", *args, **options)


def run_in_process(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` run in this process, through the same `run_command` as the real
    command: the same error line and exit code, without a second TensorFlow start-up (~5 s of CPU).
    For the commands' error paths; what a user runs end to end is tested with `run_app`."""
    import contextlib
    import importlib
    import io
    import signal

    from app.common.cli import run_command

    main = importlib.import_module(module).main
    stdout, stderr, handler = io.StringIO(), io.StringIO(), signal.getsignal(signal.SIGTERM)
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                run_command(main, list(args))
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    return subprocess.CompletedProcess(["-m", module, *args], code, stdout.getvalue(), stderr.getvalue())


def start_app(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, prefix: Sequence[str] = (), **popen) -> subprocess.Popen:
    """Start ``python -m <args>`` in the background (text output piped unless ``popen`` says otherwise)."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(python_command(["-m", *args], prefix), cwd=cwd, env={**os.environ, **(env or {})}, **popen)


def last_json_line(stdout: str) -> dict:
    """The result every command prints as its last line."""
    return json.loads(stdout.strip().splitlines()[-1])


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str, code: int = 2) -> str:
    """The command failed with ``code`` and one ``error:`` line (no traceback) containing each of ``expected``."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    for text in expected:
        assert text in last, last
    return last
