"""The cluster examples in deploy/ (parsed and checked against the trainer's flags, not run)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys

import yaml

from app.launchers.ray import tensorflow_trainer
from app.train import build_parser
from app.training.cluster import cluster_from_environment
from tests.support.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def test_the_kubernetes_indexed_job_gives_each_worker_its_tf_config_and_a_valid_command():
    service, job = yaml.safe_load_all((DEPLOY / "kubernetes" / "train-job.yaml").read_text())
    assert (service["apiVersion"], service["kind"], service["spec"]["clusterIP"]) == ("v1", "Service", "None")  # headless
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec, job_name, service_name = job["spec"], job["metadata"]["name"], service["metadata"]["name"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 2
    assert service["spec"]["selector"] == {"job-name": job_name}
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service_name  # each pod's DNS name: <job>-<index>.<service>
    (container,) = pod["containers"]
    command = container["args"]
    assert command[:3] == ["python", "-m", "app.train"]
    args = build_parser().parse_args(command[3:])
    # Data and the runs folder (backups for --resume) live on the volume every worker mounts.
    mount = container["volumeMounts"][0]["mountPath"]
    assert args.data_dir.startswith(mount) and args.runs_dir.startswith(mount)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    # The script that sets TF_CONFIG, run as pod 1 runs it, with `printenv TF_CONFIG` instead of training.
    variables = {variable["name"]: variable["value"] for variable in container["env"]}
    shell, flag, script, zeroth = container["command"]
    assert not re.search(r"\$\$|\$\((%s)\)" % "|".join(variables), script)  # nothing Kubernetes would expand first
    settings = [f"{name}={value}" for name, value in {**variables, "JOB_COMPLETION_INDEX": "1"}.items()]
    run = subprocess.run(["env", *settings, shell, flag, script, zeroth, "printenv", "TF_CONFIG"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    cluster = cluster_from_environment({"TF_CONFIG": run.stdout})
    assert cluster.num_workers == 2 and cluster.worker_id == 1
    port = service["spec"]["ports"][0]["port"]
    assert container["ports"][0]["containerPort"] == port
    assert cluster.addresses == tuple(f"{job_name}-{index}.{service_name}:{port}" for index in range(2))


def test_the_two_hosts_script_sets_tf_config_and_runs_a_valid_command():
    script = (DEPLOY / "two_hosts.sh").read_text()
    assert subprocess.run(["bash", "-n", str(DEPLOY / "two_hosts.sh")]).returncode == 0
    (export,) = [line for line in script.splitlines() if line.startswith("export TF_CONFIG=")]
    tf_config = subprocess.run(["bash", "-c", f'INDEX=1; {export}; printf %s "$TF_CONFIG"'], capture_output=True, text=True).stdout
    cluster = cluster_from_environment({"TF_CONFIG": tf_config})
    assert cluster.num_workers == 2 and cluster.worker_id == 1
    command = re.search(r"exec python -m app\.train (.*) \"\$\{@:2\}\"", script)[1].split()
    assert build_parser().parse_args(command).runs_dir.startswith("/shared")


def test_the_ray_example_runs_a_valid_training_command_on_two_workers():
    example = runpy.run_path(str(DEPLOY / "ray_train.py"))  # not as __main__: nothing starts
    command = example["COMMAND"]
    assert command[:3] == [sys.executable, "-m", "app.train"]
    build_parser().parse_args(command[3:])
    assert example["WORKERS"] == 2 and example["tensorflow_trainer"] is tensorflow_trainer  # the engine app.launch uses
