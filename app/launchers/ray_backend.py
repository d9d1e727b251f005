"""Ray Train's backend for the TensorFlow workers here: it sets each worker's ``TF_CONFIG``, and nothing else.

Ray's own ``TensorflowTrainer`` is its ``DataParallelTrainer`` with ``TensorflowConfig``, whose package
imports TensorFlow into the driver, the train controller and every worker actor (~3.5 s of CPU each)
only to write ``TF_CONFIG``, and it also sets ``TF_USE_LEGACY_KERAS=1``. Here a Ray worker only starts
the training command as a child process, which imports TensorFlow itself, so this backend writes the
same ``TF_CONFIG`` without loading TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket

import ray
from ray.train.backend import Backend, BackendConfig


def worker_address() -> str:
    """``host:port`` for this worker's TensorFlow server: the node's Ray address and a free port."""
    host = ray.util.get_node_ip_address()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def set_tf_config(addresses: list[str], rank: int) -> None:
    """The cluster TensorFlow's ``MultiWorkerMirroredStrategy`` reads: every worker's address, and this one's rank."""
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}})


class TfConfigBackend(Backend):
    """Before the training function runs: every worker's address collected, then each worker's ``TF_CONFIG`` set."""

    def on_start(self, worker_group, backend_config):
        addresses = worker_group.execute(worker_address)
        ray.get([worker_group.execute_single_async(rank, set_tf_config, addresses, rank) for rank in range(len(worker_group))])


class TfConfig(BackendConfig):
    """Pass as ``backend_config`` of Ray Train's ``DataParallelTrainer``."""

    @property
    def backend_cls(self):
        return TfConfigBackend
