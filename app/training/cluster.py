"""Training on several machines: who is in the cluster (``TF_CONFIG``) and what each worker writes.

Every worker runs the same ``python -m app.train ...`` with its own ``TF_CONFIG`` (set by
``python -m app.launch``, Ray Train, a Kubernetes job's pods, or built from Slurm's variables)::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

Worker 0 (or the ``chief`` task, if the cluster names one) is the chief: only it writes the export,
plots, history, TensorBoard logs and the JSON line. The other workers write those to a temporary
folder that is removed, but they take part in every step, evaluation and save, because each of
those runs collective operations that need all workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.common.errors import UsageError
from app.training.runs import BACKUP_DIR, run_directory
from app.training.slurm import tf_config_from_slurm

ROLES = ("chief", "worker")
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job: ``worker_id`` 0 is the chief."""

    addresses: tuple[str, ...]  # every task: the chief's first when the cluster names one, then the workers'
    worker_id: int

    @property
    def num_workers(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.worker_id == 0


def cluster_from_environment(environ=os.environ) -> Cluster | None:
    """The cluster ``TF_CONFIG`` describes, or None when it is unset or names a single task. Unset in
    ``os.environ`` inside an srun step of several tasks, it is set from Slurm's variables (app.training.slurm).

    A malformed ``TF_CONFIG`` is one clear error here, before TensorFlow would hang or fail deep inside."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text and environ is os.environ and (text := tf_config_from_slurm() or ""):
        os.environ["TF_CONFIG"] = text  # one task of an srun step: where MultiWorkerMirroredStrategy reads it
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}); expected e.g. {EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise UsageError(f'TF_CONFIG needs a "cluster" object; expected e.g. {EXAMPLE}')
    unknown = sorted(set(cluster) - set(ROLES))
    if unknown:
        raise UsageError(f"TF_CONFIG's cluster has {', '.join(unknown)} tasks: only chief and worker are supported (no parameter servers)")
    for role in ROLES:
        members = cluster.get(role, [])
        if not isinstance(members, list) or not all(isinstance(address, str) and _is_host_port(address) for address in members):
            raise UsageError(f'TF_CONFIG\'s cluster "{role}" must be a list of "host:port" strings, not {json.dumps(members)[:200]}')
    if len(cluster.get("chief", [])) > 1:
        raise UsageError("TF_CONFIG's cluster names more than one chief")
    addresses = cluster.get("chief", []) + cluster.get("worker", [])
    if len(set(addresses)) != len(addresses):
        raise UsageError(f"TF_CONFIG's cluster lists an address twice: {addresses}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in ROLES or type(task.get("index")) is not int:
        raise UsageError('TF_CONFIG needs "task": {"type": "worker" (or "chief"), "index": N}')
    count = len(cluster.get(task["type"], []))
    if not 0 <= task["index"] < count:
        raise UsageError(f"TF_CONFIG's task index {task['index']} is out of range: its cluster has {count} {task['type']} task(s)")
    if len(addresses) < 2:
        return None
    first = 0 if task["type"] == "chief" else len(cluster.get("chief", []))
    return Cluster(tuple(addresses), first + task["index"])


def _is_host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


@contextlib.contextmanager
def worker_outputs(cluster: Cluster | None, config, task_name: str):
    """The training config this worker runs with. The chief's is unchanged; another worker's writes
    into a temporary folder that is removed at the end and, with ``resume``, starts from a copy of
    the chief's last backup (so the runs folder must be shared between workers)."""
    if cluster is None or cluster.is_chief:
        yield config
        return
    with tempfile.TemporaryDirectory(prefix=f"fromzero-worker{cluster.worker_id}-") as scratch:
        runs = Path(scratch) / "runs"
        if config.resume:
            chief_run = run_directory(config.runs_dir, task_name, resume=True)
            shutil.copytree(chief_run / BACKUP_DIR, runs / task_name / chief_run.name / BACKUP_DIR)
        yield dataclasses.replace(config, out=str(Path(scratch) / "out"), runs_dir=str(runs))


def multi_worker_strategy(cluster: Cluster, collective: str, timeout_seconds: float):
    """`tf.distribute.MultiWorkerMirroredStrategy` for this cluster, once every worker has joined.

    Must run before TensorFlow executes anything else (collectives are configured at start-up). If
    the others have not joined within ``timeout_seconds`` (a wrong address, a worker that never
    started), this process stops with one error line instead of waiting forever."""
    import tensorflow as tf

    from app.training.keras_multi_worker import patch_keras_for_multi_worker

    patch_keras_for_multi_worker()
    implementation = getattr(tf.distribute.experimental.CommunicationImplementation, collective.upper())
    if collective == "nccl" and not tf.config.list_physical_devices("GPU"):
        raise UsageError("--collective nccl needs GPUs; on CPUs use ring or auto")
    message = (
        f"error: worker {cluster.worker_id} ({cluster.addresses[cluster.worker_id]}) waited {timeout_seconds:g} s for the "
        f"other workers of TF_CONFIG's cluster {list(cluster.addresses)}: check that every address is right and "
        "reachable and that every worker was started (--cluster-timeout sets the wait)"
    )
    with deadline(timeout_seconds, message):
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation)
            )
        except tf.errors.UnknownError as error:
            raise UsageError(
                f"worker {cluster.worker_id} could not serve on {cluster.addresses[cluster.worker_id]} ({error.message}): "
                "is that port already in use?"
            ) from None


# Sleeps until its parent closes stdin; if that takes longer than the deadline, prints the message
# and kills the parent.
WATCHDOG = """
import os, select, signal, sys
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    sys.stderr.write(message + "\\n"); sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def deadline(seconds: float, message: str):
    """Kill this process, printing ``message``, if the block has not finished within ``seconds``.

    A separate watchdog process, because TensorFlow waits for the cluster holding Python's global
    lock: no thread, timer or signal handler of this process would run until it returns."""
    watchdog = subprocess.Popen([sys.executable, "-S", "-c", WATCHDOG, str(os.getpid()), str(seconds), message], stdin=subprocess.PIPE)
    try:
        yield
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def shard_by_data(data):
    """Each worker takes every N-th element of each global batch (DATA sharding): the datasets are
    built in memory, not read from one file per worker, so FILE sharding does not apply."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataclasses.replace(
        data, **{split: getattr(data, split).with_options(options) for split in ("train", "validation", "evaluation")}
    )


def describe_cluster(cluster: Cluster, batch_size: int, learning_rate: float) -> str:
    role = "chief" if cluster.is_chief else "worker"
    return (
        f"cluster: worker {cluster.worker_id} of {cluster.num_workers} ({role}); global batch {batch_size * cluster.num_workers} = "
        f"{cluster.num_workers} workers x {batch_size} (--batch-size is per worker); learning rate {learning_rate:g} as given "
        f"(the linear scaling rule would use {learning_rate * cluster.num_workers:g}: pass it with --learning-rate)"
    )


def weights_fingerprint(model) -> str:
    """SHA-256 of every weight's bytes, to check that all workers hold the same model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(weight.numpy().tobytes())
    return digest.hexdigest()[:16]
