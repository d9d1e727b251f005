"""Run a command as N local workers of one multi-worker job:
``python -m app.launch --workers 2 -- python -m app.train mnist``.

Each worker gets its own ``TF_CONFIG`` on free 127.0.0.1 ports (worker 0 is the chief), its output
is streamed with a ``[worker i]`` prefix, and if one worker fails the others are stopped. The exit
code is the chief's, and the last line is the chief's JSON result. This is for tests and one-host
multi-process use; on a real cluster Kubeflow, Slurm or Ray set ``TF_CONFIG`` on each host (see the
README and deploy/).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence

from app.common.cli import ArgumentParser, positive_float, positive_int
from app.common.errors import EXIT_USER_ERROR
from app.common.processes import stop_process


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=positive_int, default=2, help="how many worker processes")
    parser.add_argument("--resume", action="store_true", help="add --resume to the command: continue an interrupted job")
    parser.add_argument(
        "--grace-seconds", type=positive_float, default=10,
        help="when a worker fails, how long the others get to stop after SIGTERM before SIGKILL",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command every worker runs")
    return parser


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_configs(ports: list[int]) -> list[str]:
    """One ``TF_CONFIG`` per worker: the same cluster, each with its own index."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(len(ports))]


class Worker:
    """One worker process and the thread that streams its output with a prefix."""

    def __init__(self, index: int, command: list[str], tf_config: str, output_lock: threading.Lock):
        self.index = index
        self.result_line = None  # the chief's JSON result, printed last and without a prefix
        self._lock = output_lock
        self.process = subprocess.Popen(
            command, env={**os.environ, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,  # a Ctrl-C reaches the launcher, which stops the workers
        )
        self.reader = threading.Thread(target=self._stream, daemon=True)
        self.reader.start()

    def _stream(self):
        for line in self.process.stdout:
            line = line.rstrip("\n")
            with self._lock:
                if self.result_line is not None:
                    print(f"[worker {self.index}] {self.result_line}", flush=True)
                    self.result_line = None
                if self.index == 0 and _is_json_object(line):
                    self.result_line = line
                else:
                    print(f"[worker {self.index}] {line}", flush=True)

    def stop(self, grace_seconds: float):
        stop_process(self.process, grace_seconds)
        self.reader.join()


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def describe_exit(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def launch(command: list[str], workers: int, grace_seconds: float) -> int:
    """Run the job; return the chief's exit code (128 + signal number if a signal ended it)."""
    lock = threading.Lock()
    ports = free_ports(workers)
    processes = [Worker(index, command, config, lock) for index, config in enumerate(tf_configs(ports))]
    for worker, port in zip(processes, ports):
        print(f"[launch] worker {worker.index}: pid {worker.process.pid}, 127.0.0.1:{port}, {' '.join(command)}", flush=True)
    failed = None
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(worker.process.poll() is None for worker in processes):
            failed = next((worker for worker in processes if worker.process.poll() not in (None, 0)), None)
            if failed:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("interrupted: stopping the workers", file=sys.stderr, flush=True)
    finally:
        for worker in processes:
            worker.stop(grace_seconds)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    chief = processes[0]
    if failed is not None:
        print(
            f"error: worker {failed.index} {describe_exit(failed.process.returncode)}; stopped the other workers. "
            "An interrupted training job continues from its last finished epoch with the same command plus --resume",
            file=sys.stderr, flush=True,
        )
    elif chief.result_line is not None:
        print(chief.result_line, flush=True)
    code = chief.process.returncode
    return 128 - code if code < 0 else (code or (1 if failed else 0))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command the workers run after --, e.g. -- python -m app.train mnist")
    if args.resume and "--resume" not in command:
        command = [*command, "--resume"]
    if command[0] in ("python", "python3"):  # the launcher's own Python (a virtual environment's, say)
        command = [sys.executable, *command[1:]]
    try:
        return launch(command, args.workers, args.grace_seconds)
    except FileNotFoundError as error:
        print(f"error: cannot start {command[0]}: {error.strerror}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
