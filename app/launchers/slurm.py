"""N workers as the N tasks of one ``srun`` step, inside an sbatch/salloc allocation or from a login
node (srun then asks for one). Each task builds its ``TF_CONFIG`` from Slurm's variables
(app.training.slurm); ``srun --label`` prefixes their lines with the task number, which is the worker
number. If one task fails, srun stops the others (``--kill-on-bad-exit``); the exit code is srun's."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading

from app.common.errors import UsageError
from app.common.processes import raise_keyboard_interrupt, stop_process
from app.launchers.output import RESUME_ADVICE, Relay, describe_exit
from app.training.slurm import step_tasks

TASK_LINE = re.compile(r"\s*(\d+): ?(.*)")  # "0: Epoch 1/2": srun --label's prefix
LOST_TASK = re.compile(r"srun: error: (\S+): tasks? (\d+)\S*: (.*)")  # "srun: error: node1: task 1: Exited with exit code 3"
SIGNAL_NAMES = {signal.strsignal(number): number for number in signal.Signals}  # "Killed": SIGKILL


def srun_command(command: list[str], workers: int, environ=os.environ) -> list[str]:
    """The srun command line, or a UsageError when this launcher's place in Slurm cannot start ``workers`` tasks."""
    if step_tasks(environ) > 1:
        raise UsageError(
            f"app.launch runs as one of {step_tasks(environ)} tasks of an srun step: start it once (in the sbatch script "
            "without srun), it starts the workers with srun itself"
        )
    allocated = environ.get("SLURM_NTASKS")
    if environ.get("SLURM_JOB_ID") and allocated and allocated != str(workers):
        raise UsageError(
            f"this Slurm allocation (job {environ['SLURM_JOB_ID']}) has {allocated} tasks but --workers is {workers}: "
            f"use --workers {allocated} or ask sbatch/salloc for --ntasks={workers}"
        )
    if shutil.which("srun") is None:
        raise UsageError("--engine slurm needs Slurm's srun on PATH (run it on a node of the Slurm cluster)")
    return ["srun", "--ntasks", str(workers), "--kill-on-bad-exit=1", "--label", *command]


class SrunOutput:
    """What srun prints: the tasks' lines (relayed as workers') and its own, the first failed task among them."""

    def __init__(self):
        self.relay, self.lost, self.last_own_line = Relay(), None, ""

    def line(self, text: str):
        if task := TASK_LINE.fullmatch(text):
            self.relay.line(int(task[1]), task[2])
            return
        print(f"[srun] {text}", flush=True)
        self.last_own_line = text
        if self.lost is None and (failure := LOST_TASK.fullmatch(text)):
            self.lost = failure.groups()


def launch(command: list[str], workers: int, grace_seconds: float) -> int:
    """Run the job; return srun's exit code (128 + signal number if a signal ended it)."""
    srun = srun_command(command, workers)
    print(f"[launch] {' '.join(srun)}", flush=True)
    output = SrunOutput()
    process = subprocess.Popen(
        srun, env={name: value for name, value in os.environ.items() if name != "TF_CONFIG"},  # each task builds its own
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        start_new_session=True,  # a Ctrl-C reaches the launcher, which stops srun (and srun the tasks)
    )
    reader = threading.Thread(target=lambda: [output.line(line.rstrip("\n")) for line in process.stdout], daemon=True)
    reader.start()
    interrupted = False
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        process.wait()
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: stopping the workers", file=sys.stderr, flush=True)
    finally:
        stop_process(process, grace_seconds)  # srun passes SIGTERM on to the tasks
        signal.signal(signal.SIGTERM, previous)
        reader.join()
    code = process.returncode
    if not interrupted:
        _report(output, code)
    return 128 - code if code < 0 else code


def _report(output: SrunOutput, code: int):
    """The launcher's last line: the first failed task, srun's own failure, or the chief's JSON result."""
    if output.lost is not None:
        node, task, how = output.lost
        print(f"error: worker {task} (on {node}) {_describe(how)}; srun stopped the other workers. {RESUME_ADVICE}", file=sys.stderr, flush=True)
    elif code != 0 and output.relay.result_line is None and output.last_own_line:
        print(f"error: srun exited with code {code}: {output.last_own_line}", file=sys.stderr, flush=True)
    elif output.relay.result_line is not None:
        print(output.relay.result_line, flush=True)


def _describe(how: str) -> str:
    """srun's "Exited with exit code 3" / "Killed" in the local launcher's words."""
    if exited := re.fullmatch(r"Exited with exit code (\d+)", how):
        return describe_exit(int(exited[1]))
    return describe_exit(-SIGNAL_NAMES[how]) if how in SIGNAL_NAMES else how.lower()

