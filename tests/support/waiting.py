"""Waiting for something that happens in another process (a server loading a model, a file appearing)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], seconds: float = 60, interval: float = 0.25, what: str = "the condition") -> T:
    """Call ``check`` until it returns something true, and return that; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} was still false after {seconds} s")
        time.sleep(interval)
