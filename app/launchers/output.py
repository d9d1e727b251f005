"""What a launcher prints: each worker's lines prefixed with ``[worker i]``, and the chief's JSON
result held back so that it can be the launcher's own last line."""

from __future__ import annotations

import json
import signal
import threading


class Relay:
    """Prints workers' lines as they come (from any thread); keeps the chief's last JSON object, which
    lines the chief prints after it (TensorFlow's shutdown notes when another worker left first) do not
    displace: the launcher prints it last."""

    def __init__(self):
        self.result_line: str | None = None
        self._lock = threading.Lock()

    def line(self, worker: int, text: str):
        with self._lock:
            if worker == 0 and is_json_object(text):
                if self.result_line is not None:  # an earlier JSON line was not the chief's result after all
                    print(f"[worker 0] {self.result_line}", flush=True)
                self.result_line = text
            else:
                print(f"[worker {worker}] {text}", flush=True)


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def describe_exit(code: int) -> str:
    """``was killed by SIGKILL`` / ``exited with code 3`` for a Popen return code."""
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


RESUME_ADVICE = "An interrupted training job continues from its last finished epoch with the same command plus --resume"
