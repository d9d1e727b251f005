"""A real one-node Slurm cluster for the tests (`slurm_cluster`): munged, slurmctld and slurmd, started
as root with their key, configuration, state and logs in a temporary folder, stopped at the end.

The node is ``localhost`` (127.0.0.1) with 2 CPUs, so a job's tasks find each other at
``localhost:port`` whatever this machine is called. Without Slurm (Debian: slurmd slurmctld
slurm-client munge) the tests that use it are skipped, except under CI, where that is a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.common.processes import stop_process
from tests.support.waiting import wait_for

PROGRAMS = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "squeue", "scancel", "scontrol")

CONFIG = """\
ClusterName=fromzero-tests
SlurmctldHost=localhost
SlurmctldPort={controller_port}
SlurmdPort={node_port}
AuthType=auth/munge
AuthInfo=socket={folder}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=tests Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path
    env: dict  # what Slurm's commands need to find this cluster: SLURM_CONF


def why_unavailable() -> str | None:
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} not on PATH; Debian: apt-get install slurmd slurmctld slurm-client munge)"
    if os.geteuid() != 0:
        return "a test Slurm cluster runs its daemons as root"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The running cluster; its jobs are cancelled and its daemons stopped at the end of the session."""
    if reason := why_unavailable():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log"):
        (folder / sub).mkdir()
    (folder / "munge").chmod(0o755)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = folder / "slurm.conf"
    conf.write_text(CONFIG.format(folder=folder, controller_port=_free_port(), node_port=_free_port()))
    env = {"SLURM_CONF": str(conf)}
    munge = [
        f"--key-file={key}", f"--socket={folder}/munge/munge.socket", f"--pid-file={folder}/munge/munged.pid",
        f"--seed-file={folder}/munge/seed", f"--log-file={folder}/log/munged.log",
    ]
    daemons = []
    try:
        daemons.append(_start(["munged", "--foreground", "--force", *munge], folder))
        wait_for(lambda: (folder / "munge" / "munge.socket").exists(), 10, what="munged's socket")
        daemons.append(_start(["slurmctld", "-D", "-f", str(conf), "-L", str(folder / "log" / "slurmctld.log")], folder))
        daemons.append(_start(["slurmd", "-D", "-f", str(conf), "-N", "localhost", "-L", str(folder / "log" / "slurmd.log")], folder))
        wait_for(lambda: _node_state(env, daemons, folder) == "idle", 60, what="the Slurm node to be idle")
        yield SlurmCluster(folder, env)
    finally:
        if daemons:
            _cancel_jobs(env)
        for daemon in reversed(daemons):
            stop_process(daemon, 10)


def submit_and_wait(cluster: SlurmCluster, sbatch: list[str], timeout: float, **run) -> str:
    """Submit a batch job (``sbatch`` arguments) and return its final state (COMPLETED, FAILED, ...) once it
    ends. Polled every 0.2 s: ``sbatch --wait`` notices the end only seconds later (~30 s of a 42 s test)."""
    environ = {**os.environ, **cluster.env, **run.pop("env", {})}
    submitted = subprocess.run(["sbatch", "--parsable", *sbatch], env=environ, capture_output=True, text=True, check=True, **run)
    job_id = submitted.stdout.strip().split(";")[0]

    def final_state() -> str | None:
        shown = subprocess.run(["scontrol", "show", "job", job_id], env=environ, capture_output=True, text=True).stdout
        state = next((word.split("=", 1)[1] for word in shown.split() if word.startswith("JobState=")), None)
        return None if state in (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING") else state

    return wait_for(final_state, timeout, interval=0.2, what=f"Slurm job {job_id} to end")


def _start(command: list[str], folder: Path) -> subprocess.Popen:
    with (folder / "log" / f"{command[0]}.out").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _node_state(env: dict, daemons: list[subprocess.Popen], folder: Path) -> str:
    for daemon in daemons:
        if daemon.poll() is not None:
            logs = "\n".join(f"{path.name}: {path.read_text(errors='replace')[-1500:]}" for path in sorted((folder / "log").iterdir()))
            raise AssertionError(f"{daemon.args[0]} exited with code {daemon.returncode}:\n{logs}")
    result = subprocess.run(["sinfo", "--noheader", "--format=%T"], env={**os.environ, **env}, capture_output=True, text=True)
    return result.stdout.strip()


def _cancel_jobs(env: dict):
    """Cancel whatever a failed test left running, and wait until Slurm has ended it (KillWait is 5 s)."""
    environ = {**os.environ, **env}
    subprocess.run(["scancel", "--user", "root"], env=environ, capture_output=True)

    def no_jobs() -> bool:
        listing = subprocess.run(["squeue", "--noheader"], env=environ, capture_output=True, text=True)
        return listing.returncode != 0 or not listing.stdout.strip()

    try:
        wait_for(no_jobs, 30, what="Slurm's jobs to end")
    except AssertionError:
        pass  # the daemons are stopped anyway


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
