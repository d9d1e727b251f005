"""N worker processes on this host, each with its own ``TF_CONFIG`` on free 127.0.0.1 ports (worker 0
is the chief). If one worker fails the others are stopped; the exit code is the chief's.

TensorFlow's worker server listens on every interface of its port, unauthenticated, whatever
``TF_CONFIG`` says. So by default the launcher first moves itself into a private network namespace
whose only interface is loopback (`loopback_only_command`), where the OS allows unprivileged ones:
there nothing outside this machine, nor outside the job, can reach the workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from app.common.processes import raise_keyboard_interrupt, stop_process
from app.launchers.output import RESUME_ADVICE, Relay, describe_exit

# Set inside the namespace, so that the re-started launcher does not try again.
NAMESPACE_MARKER = "FROMZERO_LOOPBACK_NAMESPACE"
UNSHARE = ["unshare", "--user", "--map-root-user", "--net"]
LO_UP = ["sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def loopback_only_command(command: list[str]) -> tuple[list[str] | None, str]:
    """``command`` wrapped to run in a new network namespace with loopback only, or None and why not."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None, "unshare and ip (util-linux, iproute2) are not installed"
    probe = subprocess.run([*UNSHARE, *LO_UP, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        return None, f"this OS refused an unprivileged network namespace ({reason})"
    return [*UNSHARE, *LO_UP, *command], ""


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
    """One worker process and the thread that relays its output."""

    def __init__(self, index: int, command: list[str], tf_config: str, relay: Relay):
        self.index = index
        self.process = subprocess.Popen(
            command, env={**os.environ, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,  # a Ctrl-C reaches the launcher, which stops the workers
        )
        self.reader = threading.Thread(target=lambda: [relay.line(index, line.rstrip("\n")) for line in self.process.stdout], daemon=True)
        self.reader.start()

    def stop(self, grace_seconds: float):
        stop_process(self.process, grace_seconds)
        self.reader.join()


def launch(command: list[str], workers: int, grace_seconds: float) -> int:
    """Run the job; return the chief's exit code (128 + signal number if a signal ended it)."""
    relay = Relay()
    ports = free_ports(workers)
    processes = [Worker(index, command, config, relay) for index, config in enumerate(tf_configs(ports))]
    for worker, port in zip(processes, ports):
        print(f"[launch] worker {worker.index}: pid {worker.process.pid}, 127.0.0.1:{port}, {' '.join(command)}", flush=True)
    failed = None
    previous = {signum: signal.signal(signum, raise_keyboard_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
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
            f"error: worker {failed.index} {describe_exit(failed.process.returncode)}; stopped the other workers. {RESUME_ADVICE}",
            file=sys.stderr, flush=True,
        )
    elif relay.result_line is not None:
        print(relay.result_line, flush=True)
    code = chief.process.returncode
    return 128 - code if code < 0 else (code or (1 if failed else 0))

