"""One task of a Slurm job step as one worker: the ``TF_CONFIG`` that srun's environment describes.

``srun --ntasks N python -m app.train ...`` starts N processes with the same command and no
``TF_CONFIG``; each one reads its rank and the step's nodes from Slurm's variables (SLURM_PROCID,
SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE) through TensorFlow's
`SlurmClusterResolver`: worker i is task i, on its node's name (which must resolve on every node).
"""

from __future__ import annotations

import json
import os

from app.common.errors import UsageError

# Each node's tasks of one step listen on consecutive ports from a base derived from the job and step
# ids, so that two jobs sharing a node (or two steps of one job) use different ports unless their job
# ids are a multiple of 100 apart. All below 32768, where Linux's ephemeral ports begin.
FIRST_PORT = 12000
PORTS_PER_STEP = 20  # at most 20 tasks of one step per node
STEP_SLOTS = 1000  # ports 12000-31999


def step_tasks(environ=os.environ) -> int:
    """How many tasks the srun step this process runs in has; 0 outside a step (in an sbatch
    script's own batch step too: there SLURM_NTASKS is set but SLURM_STEP_NUM_TASKS is not)."""
    tasks = environ.get("SLURM_STEP_NUM_TASKS", "")
    return int(tasks) if tasks.isdigit() and "SLURM_PROCID" in environ else 0


def port_base(environ=os.environ) -> int:
    """The first port of this step's tasks on each node."""
    job, step = (int(value) if value.isdigit() else 0 for value in (environ.get("SLURM_JOB_ID", ""), environ.get("SLURM_STEP_ID", "")))
    return FIRST_PORT + (job * 10 + step % 10) % STEP_SLOTS * PORTS_PER_STEP


def tf_config_from_slurm() -> str | None:
    """``TF_CONFIG`` for this process when it is one task of an srun step of several tasks, else None.

    Reads ``os.environ``, as TensorFlow's resolver does; imports TensorFlow only inside such a step."""
    tasks = step_tasks()
    if tasks < 2:
        return None
    from app.common.quiet import native_stderr_captured

    with native_stderr_captured():
        from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import SlurmClusterResolver
    try:
        # The resolver gives a node's tasks their ports while sharing out its GPUs, one port per GPU slot:
        # as many slots as tasks, none touched (auto_set_gpu=False). GPUs are Slurm's to assign
        # (srun --gpus-per-task sets each task's CUDA_VISIBLE_DEVICES).
        resolver = SlurmClusterResolver(port_base=port_base(), gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)
        cluster = resolver.cluster_spec().as_dict()
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"Slurm's variables do not describe this step of {tasks} tasks ({error})") from None
    task_type, index = resolver.get_task_info()
    host, node = cluster[task_type][index].rpartition(":")[0], os.environ.get("SLURMD_NODENAME", "")
    if node and host != node:  # the resolver sorts the nodes by name and fills them in rank order
        raise UsageError(
            f"TensorFlow's Slurm resolver put task {index} on {host} but Slurm runs it on {node}: it needs srun's default "
            "block distribution and node names that sort in Slurm's order (node01, node02 rather than node9, node10)"
        )
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
