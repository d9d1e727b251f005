"""Slurm: workers as the tasks of an srun step, on a real one-node Slurm cluster (tests.support.slurm),
and the cluster TensorFlow's resolver builds from Slurm's variables."""

from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest

from app.common.errors import UsageError
from app.training.cluster import cluster_from_environment
from app.training.slurm import port_base
from tests.support.commands import assert_one_line_error, run_app
from tests.support.paths import REPO_ROOT, SHARED_DATA
from tests.support.slurm import submit_and_wait

SBATCH = REPO_ROOT / "deploy" / "slurm" / "train.sbatch"


def test_the_sbatch_script_trains_mnist_on_two_tasks(slurm_cluster, tmp_path):
    # The script's folders (/shared/...) replaced by later flags; small, and without dropout.
    state = submit_and_wait(
        slurm_cluster,
        [f"--output={tmp_path / 'job.out'}", str(SBATCH), "--data-dir", str(SHARED_DATA),
         "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
         "--max-train-samples", "1500", "--epochs", "1", "--batch-size", "16", "--dropout-rate", "0"],
        timeout=300, cwd=REPO_ROOT, env={"PYTHON": sys.executable},
    )
    output = (tmp_path / "job.out").read_text()
    assert state == "COMPLETED", output[-3000:]
    lines = [labelled.groups() for line in output.splitlines() if (labelled := re.match(r"\s*(\d+): (.*)", line))]  # srun --label
    digests = {task: digest[1] for task, text in lines if (digest := re.fullmatch(r"worker \d of 2: weights sha256 (\w+)", text))}
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]  # both tasks ended with the same weights
    results = [(task, json.loads(text)) for task, text in lines if text.startswith("{")]
    assert [task for task, _ in results] == ["0"]  # the chief alone reports, exports and keeps a run
    assert results[0][1]["workers"] == 2 and results[0][1]["global_batch_size"] == 32
    assert [path.name for path in (tmp_path / "out" / "mnist").iterdir()] == ["1"]
    assert len(list((tmp_path / "runs" / "mnist").iterdir())) == 1


# Each task prints its rank and the TF_CONFIG it was given (none: each builds its own), then the chief its result.
TASK = "import json, os; rank = os.environ['SLURM_PROCID']; print('rank', rank, 'TF_CONFIG', os.environ.get('TF_CONFIG')); print(json.dumps({'rank': rank}))"


def test_app_launch_runs_the_workers_as_the_tasks_of_one_srun_step(slurm_cluster):
    env = {**slurm_cluster.env, "TF_CONFIG": '{"cluster": {}}'}
    result = run_app("app.launch", "--engine", "slurm", "--workers", "2", "--", "python", "-c", TASK, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "[worker 0] rank 0 TF_CONFIG None" in lines and "[worker 1] rank 1 TF_CONFIG None" in lines
    assert "[worker 1] {\"rank\": \"1\"}" in lines and lines[-1] == '{"rank": "0"}'  # the chief's result last


def test_a_failed_task_stops_the_others_with_one_error_line(slurm_cluster):
    task = "import os, sys, time; sys.exit(3) if os.environ['SLURM_PROCID'] == '1' else time.sleep(60)"
    start = time.perf_counter()
    result = run_app("app.launch", "--engine", "slurm", "--workers", "2", "--", "python", "-c", task, env=slurm_cluster.env, timeout=60)
    assert result.returncode != 0 and time.perf_counter() - start < 30
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [result.stderr.strip()]
    assert result.stderr.startswith("error: worker 1 (on localhost) exited with code 3; srun stopped the other workers")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SLURM_JOB_ID": "41", "SLURM_NTASKS": "3"}, "this Slurm allocation (job 41) has 3 tasks but --workers is 2: use --workers 3"),
        ({"SLURM_JOB_ID": "41", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"}, "app.launch runs as one of 2 tasks of an srun step"),
        ({"PATH": "/nonexistent"}, "--engine slurm needs Slurm's srun on PATH"),
    ],
)
def test_launching_where_slurm_cannot_start_the_workers_is_one_error(env, message):
    result = run_app("app.launch", "--engine", "slurm", "--workers", "2", "--", "python", "-m", "app.train", "mnist", env=env, timeout=60)
    assert_one_line_error(result, message)


# Slurm's variables for task 3 of a step of 4 tasks, 2 on each of node1 and node2 (job 1234, step 0).
STEP = {
    "SLURM_JOB_ID": "1234", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURMD_NODENAME": "node2", "SLURM_NTASKS": "4",
}


def _slurm_environment(monkeypatch, variables: dict):
    for name in [name for name in os.environ if name.startswith("SLURM")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TF_CONFIG", "")  # unset for the trainer, restored (removed) after the test


def test_the_trainer_builds_tf_config_from_slurms_variables(monkeypatch):
    _slurm_environment(monkeypatch, STEP)
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    cluster = cluster_from_environment()
    port = 12000 + 340 * 20  # from the job id: (1234 * 10 + 0) % 1000 slots of 20 ports
    addresses = (f"node1:{port}", f"node1:{port + 1}", f"node2:{port}", f"node2:{port + 1}")
    assert cluster.addresses == addresses and cluster.worker_id == 3
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": 3}}
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == cuda  # GPUs are left to Slurm
    assert port_base({**STEP, "SLURM_JOB_ID": "1235"}) == port + 10 * 20  # the next job on the node: other ports
    assert port_base({**STEP, "SLURM_STEP_ID": "1"}) == port + 20  # another step of the same job too

    # An sbatch script's own batch step (SLURM_NTASKS but no step variables) is no cluster: one worker.
    _slurm_environment(monkeypatch, {"SLURM_JOB_ID": "1234", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"})
    assert cluster_from_environment() is None and os.environ["TF_CONFIG"] == ""


def test_nodes_the_resolver_would_misplace_are_one_error(monkeypatch):
    # TensorFlow's resolver sorts nodes by name (node10 before node9) but Slurm gave rank 0 to node9.
    step = {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[9-10]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}
    _slurm_environment(monkeypatch, {**STEP, **step, "SLURMD_NODENAME": "node9"})
    with pytest.raises(UsageError, match="put task 0 on node10 but Slurm runs it on node9"):
        cluster_from_environment()
