"""Several workers: real worker processes on 127.0.0.1 started by `app.launch`, as a user runs them
(in a network namespace with loopback only, where the OS allows one)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from app.common.errors import UsageError
from app.launchers.local import loopback_only_command
from app.training.cluster import cluster_from_environment
from tests.support.commands import last_json_line, run_app, run_in_process, start_app
from tests.support.workers import MNIST, assert_chief_only_outputs, fingerprints, history_epochs


# app.train run directly with a TF_CONFIG: in a private network namespace whose only interface is
# loopback, where the OS allows it, as app.launch runs its workers (TensorFlow's worker servers listen
# on every interface of their port).
LOOPBACK_ONLY = loopback_only_command([])[0] or []


def launch(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_app("app.launch", *args, timeout=timeout, env=env)


def test_two_workers_train_the_same_model_as_one_worker_with_the_same_global_batch(tmp_path):
    two = launch("--workers", "2", "--", *MNIST, "--max-train-samples", "1500", "--epochs", "2", "--batch-size", "16", "--out", str(tmp_path / "out2"), "--runs-dir", str(tmp_path / "runs2"))
    assert two.returncode == 0, two.stderr[-2000:]
    digests = fingerprints(two.stdout)
    assert set(digests) == {0, 1} and digests[0] == digests[1]  # identical weights on both workers
    result = last_json_line(two.stdout)
    assert result["workers"] == 2 and result["global_batch_size"] == 32 and result["weights_sha256"] == digests[0]
    # The chief alone reports and writes: one JSON line, one export, one run; worker 1's scratch is removed.
    assert_chief_only_outputs(two.stdout, tmp_path / "out2", tmp_path / "runs2")
    scratch = re.findall(r"\[worker 1\] .*logs in (\S+)", two.stdout)
    assert scratch and not os.path.exists(scratch[0])

    one = run_app("app.train", *MNIST[3:], "--max-train-samples", "1500", "--epochs", "2", "--batch-size", "32", "--out", str(tmp_path / "out1"), "--runs-dir", str(tmp_path / "runs1"))
    assert one.returncode == 0, one.stderr[-2000:]
    single = last_json_line(one.stdout)["validation_curves"]["val_loss"][-1]
    assert result["validation_curves"]["val_loss"][-1] == pytest.approx(single, rel=1e-3)


def test_a_killed_worker_stops_the_job_and_resume_continues_from_the_last_finished_epoch(tmp_path):
    command = ("--", *MNIST, "--max-train-samples", "3000", "--epochs", "2", "--batch-size", "8", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"))
    # A killed worker cannot remove its scratch folder (app.training.cluster.worker_outputs): keep it in tmp_path.
    scratch = {"TMPDIR": str(tmp_path)}
    job = start_app("app.launch", "--workers", "2", *command, env=scratch)
    pids, killed = {}, False
    for line in job.stdout:
        if match := re.match(r"\[launch\] worker (\d+): pid (\d+)", line):
            pids[int(match[1])] = int(match[2])
        if line.startswith("[worker 1] Epoch 2/2"):
            os.kill(pids[1], signal.SIGKILL)
            killed = True
            break
    stdout, stderr = job.communicate(timeout=120)
    assert killed and job.returncode != 0
    assert "error: worker 1 was killed by SIGKILL; stopped the other workers" in stderr and "Traceback" not in stderr
    assert history_epochs(tmp_path / "runs") == [0]  # epoch 1 finished and backed up, epoch 2 not

    resumed = launch("--workers", "2", "--resume", *command, env=scratch)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "[worker 0] Epoch 2/2" in resumed.stdout and "Epoch 1/2" not in resumed.stdout
    assert history_epochs(tmp_path / "runs") == [0, 1]  # no epoch lost or run twice
    assert last_json_line(resumed.stdout)["epochs_trained"] == 1
    digests = fingerprints(resumed.stdout)
    assert digests[0] == digests[1]


def test_the_bert_task_trains_on_two_workers(tiny_hub, small_sst2, tmp_path):
    bert = launch(
        "--workers", "2", "--", "python", "-m", "app.train", "bert", "--encoder", str(tiny_hub / "encoder"),
        "--preprocessor", str(tiny_hub / "preprocessor"), "--train-file", str(small_sst2 / "train.tsv"),
        "--validation-file", str(small_sst2 / "dev.tsv"), "--epochs", "1", "--batch-size", "8", "--quiet",
        "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
    )
    assert bert.returncode == 0, bert.stderr[-2000:]
    digests = fingerprints(bert.stdout)
    assert digests[0] == digests[1]
    result = last_json_line(bert.stdout)
    assert result["model"] == "bert" and result["global_batch_size"] == 16
    assert (tmp_path / "out" / "bert_sst2" / "1" / "saved_model.pb").exists()


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ('{"cluster": {"worker": ["127.0.0.1:1", ', "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2 is out of range"),
        ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', '"host:port" strings'),
    ],
)
def test_a_malformed_tf_config_is_one_clear_error(tf_config, message):
    start = time.perf_counter()
    result = run_app("app.train", "mnist", "--epochs", "1", env={"TF_CONFIG": tf_config})
    assert result.returncode == 2 and time.perf_counter() - start < 30
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]]
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_a_worker_whose_peer_never_answers_fails_within_the_cluster_timeout():
    with socket.socket() as own, socket.socket() as absent:
        own.bind(("127.0.0.1", 0))
        absent.bind(("127.0.0.1", 0))  # reserved, never listening: nobody answers there
        cluster = {"worker": [f"127.0.0.1:{own.getsockname()[1]}", f"127.0.0.1:{absent.getsockname()[1]}"]}
        own.close()
        start = time.perf_counter()
        result = run_app(
            "app.train", "mnist", "--epochs", "1", "--cluster-timeout", "1", prefix=LOOPBACK_ONLY, timeout=120,
            env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})},
        )
    assert result.returncode != 0 and time.perf_counter() - start < 60
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "waited 1 s for the other workers" in errors[0] and "Traceback" not in result.stderr


def test_the_chief_is_worker_0_or_the_named_chief():
    def cluster(tf_config):
        return cluster_from_environment({"TF_CONFIG": json.dumps(tf_config)})

    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert cluster({"cluster": workers, "task": {"type": "worker", "index": 0}}).is_chief
    assert cluster({"cluster": workers, "task": {"type": "worker", "index": 2}}).worker_id == 2
    with_chief = {"chief": ["z:1"], **workers}
    assert cluster({"cluster": with_chief, "task": {"type": "chief", "index": 0}}).is_chief
    assert cluster({"cluster": with_chief, "task": {"type": "worker", "index": 0}}).worker_id == 1
    assert cluster({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}) is None  # one machine
    assert cluster_from_environment({}) is None
    with pytest.raises(UsageError, match="no parameter servers"):
        cluster({"cluster": {"ps": ["p:1"], **workers}, "task": {"type": "worker", "index": 0}})


def test_the_launcher_stops_the_others_when_a_worker_fails_and_exits_with_the_chiefs_code():
    # Worker 1 fails at once; worker 0 would sleep for a minute but is stopped (SIGTERM) by the launcher.
    script = "import json, os, sys, time; index = json.loads(os.environ['TF_CONFIG'])['task']['index']; sys.exit(3) if index else time.sleep(60)"
    start = time.perf_counter()
    result = launch("--workers", "2", "--grace-seconds", "2", "--", "python", "-c", script, timeout=60)
    assert time.perf_counter() - start < 30
    assert "error: worker 1 exited with code 3; stopped the other workers" in result.stderr
    assert result.returncode == 128 + signal.SIGTERM  # the chief's: stopped by SIGTERM

    done = launch("--workers", "3", "--", "python", "-c", "print('{\"ok\": true}')")
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == '{"ok": true}'


def test_launch_needs_a_command():
    result = launch("--workers", "2")
    assert result.returncode == 2 and result.stderr.startswith("error: give the command")


def test_a_time_budget_is_refused_with_several_workers():
    tf_config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    result = run_in_process("app.train", "mnist", "--max-minutes", "1", env={"TF_CONFIG": json.dumps(tf_config)})
    assert result.returncode == 2 and "error: --max-minutes cannot stop several workers" in result.stderr


# Worker 0 listens on its TF_CONFIG port on every interface, as TensorFlow's server does; worker 1
# connects to it (so it does listen), then worker 0 keeps listening until the test has probed the port
# from the host (the file named by PROBED exists).
LISTENER = """
import json, os, pathlib, socket, time
config = json.loads(os.environ["TF_CONFIG"])
host, port = config["cluster"]["worker"][0].rsplit(":", 1)
if config["task"]["index"] == 0:
    server = socket.create_server(("0.0.0.0", int(port)))
    print("listening", flush=True)
    server.accept()
    print("reached by worker 1", flush=True)
    for attempt in range(300):
        if pathlib.Path(os.environ["PROBED"]).exists():
            break
        time.sleep(0.1)
else:
    for attempt in range(100):
        try:
            socket.create_connection((host, int(port))).close()
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
"""


@pytest.mark.parametrize("open_ports", [False, True])
def test_the_workers_ports_cannot_be_reached_from_the_host_unless_asked(open_ports, tmp_path):
    if not LOOPBACK_ONLY and not open_ports:
        pytest.skip("this OS refuses unprivileged network namespaces: app.launch says so and runs the workers in the host's")
    probed = tmp_path / "probed"
    job = start_app("app.launch", "--workers", "2", *(["--open-ports"] if open_ports else []), "--", "python", "-c", LISTENER,
                    env={"PROBED": str(probed)})
    port = None
    for line in job.stdout:
        if match := re.match(r"\[launch\] worker 0: pid \d+, 127\.0\.0\.1:(\d+)", line):
            port = int(match[1])
        if line.startswith("[worker 0] reached by worker 1"):
            break
    with socket.socket() as probe:
        reachable = probe.connect_ex(("127.0.0.1", port)) == 0
    probed.touch()
    stdout, stderr = job.communicate(timeout=30)
    assert job.returncode == 0, stderr
    assert reachable == open_ports
