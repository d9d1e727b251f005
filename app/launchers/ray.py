"""A training command as N Ray Train workers: ``python -m app.launch --engine ray --workers 2 -- ...``.

Ray Train places the workers (one CPU each) and sets ``TF_CONFIG`` in each of them (its
``DataParallelTrainer`` with `app.launchers.ray_backend`: Ray's ``TensorflowTrainer`` would do the same
but import TensorFlow into every Ray process); each worker runs the command as a child process with
that environment, so the command is the same one ``app.launch`` and Slurm run.

With ``max_failures`` Ray restarts the whole group after a worker dies; the restarted workers run
the command with ``--resume``, which continues from the chief's last finished epoch. Without a
cluster address, a local Ray cluster is started with this machine's CPUs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from app.common.errors import UsageError
from app.common.processes import raise_keyboard_interrupt
from app.launchers.output import RESUME_ADVICE, Relay, describe_exit

PR_SET_PDEATHSIG = 1


def tensorflow_trainer(command: list[str], workers: int, max_failures: int = 0, output=None, storage_path: str | None = None):
    """A configured Ray Train ``DataParallelTrainer`` that runs ``command`` on ``workers`` TensorFlow
    workers (``TF_CONFIG`` set in each); ``.fit()`` runs it. The workers print their lines
    (``[worker i] ...``, the chief's JSON result among them), or put ``(worker, line)`` on ``output``,
    a ``ray.util.queue.Queue``, if given."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from app.launchers.ray_backend import TfConfig

    if not ray.is_initialized():
        raise UsageError("connect to Ray first (ray.init), then build the trainer")
    # Ray gives a worker group 60 s to start by default, which a loaded 2-core machine nearly used up
    # (when each worker still imported TensorFlow). Ray Train passes this variable on to its controller.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
    starts = ray.remote(num_cpus=0)(StartCounter).remote()
    config = {"command": command, "cwd": os.getcwd(), "output": output, "starts": starts}
    return DataParallelTrainer(
        train_loop_per_worker=run_worker,
        train_loop_config=config,
        backend_config=TfConfig(),
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(failure_config=FailureConfig(max_failures=max_failures), storage_path=storage_path),
    )


class StartCounter:
    """How many times each worker has started: Ray restarts the whole group after a failure, and a
    restarted worker must resume rather than start over."""

    def __init__(self):
        self.starts = {}

    def start(self, rank: int) -> int:
        self.starts[rank] = self.starts.get(rank, 0) + 1
        return self.starts[rank] - 1


def run_worker(config: dict):
    """Ray Train's per-worker loop: run the command with Ray's ``TF_CONFIG`` and relay its output."""
    import ray
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    restarts = ray.get(config["starts"].start.remote(rank))
    command = list(config["command"])
    if restarts and "--resume" not in command:
        command.append("--resume")
    cwd = config["cwd"] if os.path.isdir(config["cwd"]) else None

    def emit(line: str):
        if config["output"] is not None:
            config["output"].put((rank, line))
        else:  # Ray forwards a worker's stdout to the driver (Ray Train's patched print() shows lines twice)
            sys.stdout.write(f"[worker {rank}] {line}\n")
            sys.stdout.flush()

    process = subprocess.Popen(
        command, cwd=cwd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        preexec_fn=_die_with_parent,
    )
    emit(f"[launch] pid {process.pid}, {os.environ['TF_CONFIG']}" + (", with --resume (restarted by Ray)" if restarts else ""))
    try:
        for line in process.stdout:
            emit(line.rstrip("\n"))
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    if code != 0:
        emit(f"[launch] {describe_exit(code)}")  # seen by the launcher before Ray restarts the group or gives up
        raise RuntimeError(f"worker {rank} {describe_exit(code)}")


def _die_with_parent():
    """In the child: get SIGKILL when the Ray worker that started it dies (Ray kills the group on a failure)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def check_request(address: str | None, workers: int, timeout_seconds: float):
    """Refuse at once, before Ray and TensorFlow load: more workers than a local cluster's CPUs, or
    nothing listening at a ``host:port`` address."""
    if not address and workers > os.cpu_count():
        raise UsageError(f"the local Ray cluster has this machine's {os.cpu_count()} CPU(s): it cannot place {workers} "
                         f"workers of one CPU each; use --workers {os.cpu_count()} or fewer, or --address of a larger cluster")
    if address and not address.startswith("ray://") and address != "auto":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=min(timeout_seconds, 10)).close()
        except (OSError, ValueError) as error:
            raise UsageError(f"no Ray cluster answers at {address} ({getattr(error, 'strerror', None) or error}); "
                             "start one with `ray start --head` or check the address") from None


def connect(address: str | None, workers: int, timeout_seconds: float):
    """Join the cluster at ``address`` within ``timeout_seconds``, or start a local one with this
    machine's CPUs; refuse when it cannot place ``workers`` workers of one CPU each. Ray's native
    retry and network warnings are dropped: a failure is one line."""
    import ray

    from app.common.quiet import native_stderr_captured

    outcome = {}

    def init():
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", include_dashboard=False,
                         log_to_driver=False, logging_level="ERROR")
        except Exception as error:  # ConnectionError, Ray's AuthenticationError, RuntimeError
            outcome["error"] = error

    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    with native_stderr_captured():
        if address:  # bounded, in a thread: Ray retries an address that does not answer for minutes
            thread = threading.Thread(target=init, daemon=True)
            thread.start()
            thread.join(timeout_seconds)
        else:  # in this thread: Ray's processes die with the thread that started them
            init()
    if address and thread.is_alive():
        _native_stderr_silenced()
        raise UsageError(f"{where} did not answer within {timeout_seconds:g} s (--connect-timeout); "
                         "start one with `ray start --head` or check the address")
    failure = outcome.get("error")
    if failure is not None and "InvalidAuthToken" in f"{failure!r} {failure.__cause__!r}":
        raise UsageError(f"{where} uses token authentication: set RAY_AUTH_MODE=token "
                         "and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token), as on its nodes")
    if failure is not None:
        raise UsageError(f"could not reach {where}: {(str(failure).strip().splitlines() or [type(failure).__name__])[-1]}")
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if workers > cpus:
        raise UsageError(f"{where} has {cpus} CPU(s): it cannot place {workers} workers of one CPU each; "
                         f"use --workers {cpus} or fewer")


def _native_stderr_silenced():
    """Ray keeps retrying in its thread until this process exits: its native warnings go nowhere, while
    Python's ``sys.stderr`` (the error line) keeps the original stderr."""
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def launch(command: list[str], workers: int, address: str | None, max_failures: int, connect_timeout: float) -> int:
    """Run the job on Ray; print the workers' lines and the chief's JSON line last; return an exit code."""
    from app.common.quiet import native_stderr_captured

    check_request(address, workers, connect_timeout)
    with native_stderr_captured():  # Ray's native start-up messages
        import ray
        import ray.train  # noqa: F401
        from ray.util.queue import Empty, Queue

    connect(address, workers, connect_timeout)
    print(f"[launch] Ray cluster: {int(ray.cluster_resources().get('CPU', 0))} CPU(s), {workers} workers, "
          f"{max_failures} restart(s) allowed; {' '.join(command)}", flush=True)
    output, relay, outcome = Queue(actor_options={"num_cpus": 0}), Relay(), {}  # outcome: fit's error, if any
    # A local cluster's run records (Ray's storage_path) go with it; a real cluster keeps Ray's default.
    storage = tempfile.TemporaryDirectory(prefix="fromzero-ray-")

    def fit():
        try:
            storage_path = None if address else storage.name
            tensorflow_trainer(command, workers, max_failures, output, storage_path).fit()
        except Exception as error:  # Ray's TrainingFailedError wraps the worker's error
            outcome["error"] = error

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        while thread.is_alive() or not output.empty():
            try:
                worker, line = output.get(timeout=0.5)
            except Empty:
                continue
            if line.startswith("[launch] "):
                print(f"[launch] worker {worker}: {line[len('[launch] '):]}", flush=True)
            else:
                relay.line(worker, line)
    except KeyboardInterrupt:
        print("interrupted: stopping the workers", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()  # a local cluster stops; Ray stops this job's workers on a real one
        storage.cleanup()
    if "error" in outcome:
        print(f"error: {_worker_error(outcome['error'])}; Ray stopped the other workers"
              f"{f' after {max_failures} restart(s)' if max_failures else ''}. {RESUME_ADVICE}", file=sys.stderr, flush=True)
        return 1
    if relay.result_line is not None:
        print(relay.result_line, flush=True)
    return 0



def _worker_error(error: Exception) -> str:
    """The first ``worker N ...`` message inside Ray's wrapped error, else its first line."""
    import re

    match = re.search(r"worker \d+ (?:was killed by \w+|exited with code -?\d+)", str(error))
    return match[0] if match else (str(error).strip().splitlines() or [type(error).__name__])[0]
