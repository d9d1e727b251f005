"""Start ``python -m app.serve`` in the background on free loopback ports and stop it again:
for notebooks, tests and benchmarks that need a real server process to talk to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.common.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"REST API on (http://[\d.]+:\d+)\S*(?: gRPC on ([\d.]+:\d+))?")


@dataclass
class ServerProcess:
    """A running server: its REST URL, gRPC address and log file."""

    process: subprocess.Popen
    rest_url: str
    grpc_address: str
    log_path: Path
    final_log: str | None = None  # kept once stopped (the file is removed then)

    def log(self) -> str:
        return self.final_log if self.final_log is not None else self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        """The server's resident memory now (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM, wait, remove the log file and return its text (whose last line is the server's JSON summary)."""
        if self.final_log is None:
            stop_process(self.process, timeout)
            self.final_log = self.log()
            self.log_path.unlink(missing_ok=True)
        return self.final_log

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_server(model_base: str | Path | None, *flags: str, startup_timeout: float = 180) -> ServerProcess:
    """``python -m app.serve [--model-base model_base] --rest_api_port 0 --port 0 *flags`` (free ports);
    returns once it listens."""
    log_path = Path(tempfile.mkstemp(prefix="fromzero-serve-", suffix=".log")[1])
    base = ["--model-base", str(model_base)] if model_base is not None else []
    command = [sys.executable, "-m", "app.serve", *base, "--rest_api_port", "0", "--port", "0", *flags]
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        match = READY.search(log_path.read_text(errors="replace"))
        if match:
            return ServerProcess(process, match.group(1), match.group(2), log_path)
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}:\n{_removed(log_path)[-2000:]}")
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise RuntimeError(f"the server did not start within {startup_timeout:.0f} s:\n{_removed(log_path)[-2000:]}")


def _removed(log_path: Path) -> str:
    """The log's text; the file is removed."""
    text = log_path.read_text(errors="replace")
    log_path.unlink(missing_ok=True)
    return text
