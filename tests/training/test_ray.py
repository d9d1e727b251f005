"""Ray Train as the engine: `python -m app.launch --engine ray` on a real local Ray cluster (started by
the launcher, in a loopback-only network namespace where the OS allows one), as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

from tests.support.commands import assert_one_line_error, last_json_line, run_app, start_app
from tests.support.workers import MNIST, assert_chief_only_outputs, fingerprints, history_epochs


def test_two_ray_workers_train_like_local_ones_and_ray_restarts_them_after_one_is_killed(tmp_path):
    """One Ray job checks both: the workers train one model (equal fingerprints, chief-only outputs, one
    JSON line) and, after worker 1 is killed in epoch 2, Ray restarts the group, which resumes from
    epoch 1's checkpoint. (Each Ray job costs ~1 minute of start-up on 2 cores, so one job, not two.)"""
    job = start_app(
        "app.launch", "--engine", "ray", "--workers", "2", "--max-failures", "1", "--", *MNIST, "--max-train-samples", "1500",
        "--epochs", "2", "--batch-size", "8", "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
        # A killed worker cannot remove its scratch folder: keep it in tmp_path (and Ray's sockets, whose paths are short, in /tmp).
        env={"TMPDIR": str(tmp_path), "RAY_TMPDIR": "/tmp"},
    )
    pids, killed, lines = {}, False, []
    for line in job.stdout:
        lines.append(line)
        if match := re.match(r"\[launch\] worker (\d+): pid (\d+)", line):
            pids[int(match[1])] = int(match[2])
        if line.startswith("[worker 1] Epoch 2/2") and not killed:
            os.kill(pids[1], signal.SIGKILL)
            killed = True
    stderr = job.communicate(timeout=400)[1]
    stdout = "".join(lines)
    assert killed and job.returncode == 0, stderr[-2000:]
    assert "[launch] worker 1: was killed by SIGKILL" in stdout and "with --resume (restarted by Ray)" in stdout
    assert history_epochs(tmp_path / "runs") == [0, 1]  # epoch 1 not repeated, epoch 2 once
    digests = fingerprints(stdout)
    assert set(digests) == {0, 1} and digests[0] == digests[1]
    result = last_json_line(stdout)
    assert result["epochs_trained"] == 1  # the restarted group trained epoch 2 only
    assert result["workers"] == 2 and result["global_batch_size"] == 16 and result["weights_sha256"] == digests[0]
    assert_chief_only_outputs(stdout, tmp_path / "out", tmp_path / "runs")
    # Ray Train V2 sets TF_USE_LEGACY_KERAS=1 in its workers; the project's code does not use tf.keras.
    assert '"TF_USE_LEGACY_KERAS"' not in stdout and "Traceback" not in stdout


def test_bad_ray_requests_are_one_line_without_a_hang():
    unknown = run_app("app.launch", "--engine", "spark", "--", "python", "-c", "pass")
    assert_one_line_error(unknown, "--engine", "invalid choice")
    too_many = run_app("app.launch", "--engine", "ray", "--workers", str(os.cpu_count() + 1), "--", "python", "-c", "pass", timeout=60)
    assert_one_line_error(too_many, "cannot place", f"--workers {os.cpu_count()}")
    absent = run_app("app.launch", "--engine", "ray", "--address", "127.0.0.1:1", "--connect-timeout", "1", "--", "python", "-c", "pass", timeout=60)
    assert_one_line_error(absent, "no Ray cluster answers at 127.0.0.1:1")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers like Ray
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        mute = run_app("app.launch", "--engine", "ray", "--address", address, "--connect-timeout", "1", "--", "python", "-c", "pass", timeout=90)
    assert_one_line_error(mute, f"the Ray cluster at {address} did not answer within 1 s")
    assert time.perf_counter() - start < 60
    local_only = run_app("app.launch", "--address", "127.0.0.1:1", "--", "python", "-c", "pass")
    assert_one_line_error(local_only, "--address and --max-failures are for --engine ray")
