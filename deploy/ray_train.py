"""Ray Train from your own script: what `python -m app.launch --engine ray` does, for users who drive
Ray themselves (their own ray.init, RunConfig storage, several jobs from one driver).

    python deploy/ray_train.py                          # a local Ray cluster with this machine's CPUs
    RAY_ADDRESS=head-node:6379 python deploy/ray_train.py   # a running cluster (`ray start --head` on it)

Each of the WORKERS Ray workers (one CPU each) runs COMMAND with the TF_CONFIG Ray sets; Ray restarts
the whole group up to MAX_FAILURES times after a worker dies, and the restarted workers continue with
--resume. On a cluster of several machines, every node needs this repository and its virtual
environment at the same path, and the data and runs folders on a shared file system (NFS, say).
"""

import sys

import ray

from app.launchers.ray import tensorflow_trainer

WORKERS = 2  # fits one 2-core machine; more workers need more CPUs in the cluster
MAX_FAILURES = 1
COMMAND = [sys.executable, "-m", "app.train", "mnist", "--runs-dir", "runs", "--out", "saved_models", "--batch-size", "32"]

if __name__ == "__main__":
    ray.init()  # joins RAY_ADDRESS if set, else starts a local cluster
    # The workers' lines come through Ray's log forwarding, "[worker 0] {...}" the chief's JSON result.
    tensorflow_trainer(COMMAND, WORKERS, max_failures=MAX_FAILURES).fit()
