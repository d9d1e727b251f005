"""The cluster examples in deploy/ (parsed and checked against the trainer's flags, not run)."""

from __future__ import annotations

import ast
import re
import subprocess

import yaml

from app.training.cluster import cluster_from_environment
from app.train import build_parser
from app.training.trainer import TrainConfig
from tests.support.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def test_the_kubeflow_tfjob_runs_two_workers_of_a_valid_training_command():
    job = yaml.safe_load((DEPLOY / "tfjob.yaml").read_text())
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    workers = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert workers["replicas"] == 2
    pod = workers["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "tensorflow"  # the Training Operator finds the container by this name
    command = container["command"]
    assert command[:3] == ["python", "-m", "app.train"]
    args = build_parser().parse_args(command[3:])
    # Data and the runs folder (backups for --resume) live on the volume every worker mounts.
    mount = container["volumeMounts"][0]["mountPath"]
    assert args.data_dir.startswith(mount) and args.runs_dir.startswith(mount)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"]


def test_the_two_hosts_script_sets_tf_config_and_runs_a_valid_command():
    script = (DEPLOY / "two_hosts.sh").read_text()
    assert subprocess.run(["bash", "-n", str(DEPLOY / "two_hosts.sh")]).returncode == 0
    (export,) = [line for line in script.splitlines() if line.startswith("export TF_CONFIG=")]
    tf_config = subprocess.run(["bash", "-c", f'INDEX=1; {export}; printf %s "$TF_CONFIG"'], capture_output=True, text=True).stdout
    cluster = cluster_from_environment({"TF_CONFIG": tf_config})
    assert cluster.num_workers == 2 and cluster.worker_id == 1
    command = re.search(r"exec python -m app\.train (.*) \"\$\{@:2\}\"", script)[1].split()
    assert build_parser().parse_args(command).runs_dir.startswith("/shared")


def test_the_ray_example_gives_the_trainer_a_valid_config_on_two_workers():
    tree = ast.parse((DEPLOY / "ray_train.py").read_text())
    calls = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr: node for node in ast.walk(tree) if isinstance(node, ast.Call)}
    keywords = {keyword.arg: keyword.value for keyword in calls["TensorflowTrainer"].keywords}
    config = ast.literal_eval(keywords["train_loop_config"])
    TrainConfig(**config)  # every key is a trainer setting
    scaling = {keyword.arg: ast.literal_eval(keyword.value) for keyword in calls["ScalingConfig"].keywords}
    assert scaling["num_workers"] == 2
