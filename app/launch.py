"""Run a training command as N workers of one multi-worker job:
``python -m app.launch --workers 2 -- python -m app.train mnist``.

``--engine local`` (the default) starts N processes on this host, in a loopback-only network namespace
where the OS allows one (app.launchers.local); ``--engine ray`` runs them as Ray Train workers on a
local Ray cluster or the one at ``--address`` (app.launchers.ray); ``--engine slurm`` as the tasks of
one ``srun`` step (app.launchers.slurm). Every worker gets its ``TF_CONFIG``; each line it prints is
relayed with a ``[worker i]`` prefix and the last line is the chief's JSON result.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from app.common.cli import ArgumentParser, positive_float, positive_int
from app.common.errors import EXIT_USER_ERROR, UsageError

ENGINES = ("local", "ray", "slurm")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="local", help="who starts the workers: this launcher, Ray or Slurm")
    parser.add_argument("--workers", type=positive_int, default=2, help="how many workers")
    parser.add_argument("--resume", action="store_true", help="add --resume to the command: continue an interrupted job")
    parser.add_argument(
        "--grace-seconds", type=positive_float, default=10,
        help="local engine: when a worker fails or on Ctrl-C, how long the others get after SIGTERM before SIGKILL; "
        "slurm engine: how long srun gets on Ctrl-C",
    )
    parser.add_argument(
        "--open-ports", action="store_true",
        help="local engine: run the workers in this host's network namespace, their ports open on every interface "
        "(by default a loopback-only namespace hides them)",
    )
    parser.add_argument("--address", help="ray engine: the Ray cluster to join (host:port or ray://host:port); default a local one")
    parser.add_argument(
        "--max-failures", type=int, default=0,
        help="ray engine: how many times Ray restarts the workers after a failure (they continue with --resume)",
    )
    parser.add_argument(
        "--connect-timeout", type=positive_float, default=60,
        help="ray engine: how long to wait for the cluster at --address to answer",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command every worker runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command the workers run after --, e.g. -- python -m app.train mnist")
    if args.resume and "--resume" not in command:
        command = [*command, "--resume"]
    if command[0] in ("python", "python3"):  # the launcher's own Python (a virtual environment's, say)
        command = [sys.executable, *command[1:]]
    if args.engine != "ray" and (args.address or args.max_failures):
        parser.error("--address and --max-failures are for --engine ray")
    if args.engine == "local" or (args.engine == "ray" and not args.address):
        isolate(argv, args.open_ports)
    try:
        if args.engine == "ray":
            from app.launchers import ray

            return ray.launch(command, args.workers, args.address, args.max_failures, args.connect_timeout)
        if args.engine == "slurm":
            from app.launchers import slurm

            return slurm.launch(command, args.workers, args.grace_seconds)
        from app.launchers import local

        return local.launch(command, args.workers, args.grace_seconds)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except FileNotFoundError as error:
        print(f"error: cannot start {error.filename or command[0]}: {error.strerror}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


def isolate(argv: list[str], open_ports: bool) -> None:
    """Re-start this launcher in a loopback-only network namespace (app.launchers.local), unless it
    already runs in one or ``--open-ports`` asks not to; say which it is, in one line."""
    from app.launchers.local import NAMESPACE_MARKER, loopback_only_command

    if os.environ.get(NAMESPACE_MARKER):
        print("[launch] network: a private namespace with loopback only; the workers' ports cannot be reached from outside this job", flush=True)
        return
    if open_ports:
        print("[launch] network: this host's (--open-ports): the workers' ports listen on every interface, keep them behind a firewall", flush=True)
        return
    wrapped, why_not = loopback_only_command([sys.executable, "-m", "app.launch", *argv])
    if wrapped is None:
        print(f"[launch] network: this host's, {why_not}: the workers' ports listen on every interface, keep them behind a firewall", flush=True)
        return
    sys.stdout.flush()
    os.execvpe(wrapped[0], wrapped, {**os.environ, NAMESPACE_MARKER: "1"})


if __name__ == "__main__":
    sys.exit(main())
