"""Stopping a child process (a server, a worker) without leaving it behind, and being stopped like Ctrl-C."""

from __future__ import annotations

import signal
import subprocess


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


def raise_keyboard_interrupt(signum, frame):
    """A signal handler: SIGTERM stops a command the way Ctrl-C does (``KeyboardInterrupt``)."""
    raise KeyboardInterrupt
