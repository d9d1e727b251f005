"""``--help`` tells the truth: every default it shows is the one the code uses, for every command and
every ``app.train`` task (their flags are generated from the task dataclasses and `TrainConfig`)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re

import pytest

from app.training.flags import describe_default, option_fields
from tests.support.commands import run_app, run_in_process
from tests.support.paths import REPO_ROOT

COMMANDS = sorted(path.stem for path in (REPO_ROOT / "app").glob("*.py") if path.stem != "__init__")
SHOWN_DEFAULT = re.compile(r"\(default: ([^()]*(?:\([^()]*\)[^()]*)*)\)")


def flag_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each flag's help as ``--help`` prints it (defaults filled in), keyed by its first option string."""
    formatter = parser._get_formatter()
    return {
        action.option_strings[0]: formatter._expand_help(action) if action.help else ""
        for action in parser._actions
        if action.option_strings and action.help != argparse.SUPPRESS and action.dest != "help"
    }


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction) for name, sub in action.choices.items()
    }


def all_parsers(parser):
    yield parser
    for sub in subparsers(parser).values():
        yield from all_parsers(sub)


@pytest.mark.parametrize("command", [name for name in COMMANDS if name != "train"])
def test_every_shown_default_is_the_parsers_own(command):
    """Commands with hand-written flags: a shown default is the flag's real default, and every flag
    with a default shows it."""
    for parser in all_parsers(importlib.import_module(f"app.{command}").build_parser()):
        actions = {action.option_strings[0]: action for action in parser._actions if action.option_strings}
        for flag, text in flag_help(parser).items():
            default = actions[flag].default
            shown = SHOWN_DEFAULT.findall(text)
            if default in (None, False, argparse.SUPPRESS):
                continue
            expected = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            assert shown == [expected], f"{command} {flag}: help shows {shown}, the code uses {expected!r}"


def task_cases():
    from app.tasks import TASKS

    return sorted(TASKS)


@pytest.mark.parametrize("task_name", task_cases())
def test_train_help_shows_the_defaults_each_task_trains_with(task_name):
    """What ``app.train <task> --help`` shows equals the task and `TrainConfig` that ``app.train <task>``
    with no flags builds (and, for the training flags the task decides, the task's own defaults)."""
    from app import train
    from app.tasks import TASKS
    from app.training.flags import task_and_config
    from app.training.trainer import TrainConfig

    parser = subparsers(train.build_parser())[task_name]
    task, config = task_and_config(TASKS[task_name], parser.parse_args([]))
    shown = {flag: SHOWN_DEFAULT.findall(text) for flag, text in flag_help(parser).items()}
    checked = 0
    for source, fields in ((task, option_fields(type(task))), (config, option_fields(TrainConfig))):
        for field in fields:
            value = getattr(source, field.name)
            if value is None and hasattr(task.defaults, field.name):
                value = getattr(task.defaults, field.name)  # what the trainer uses when the flag is left out
            flag = field.metadata.get("flag") or field.metadata.get("flags", [None])[0] or "--" + field.name.replace("_", "-")
            if field.default is None and "default_text" in field.metadata:  # decided from other options (a preset, the data)
                assert shown[flag] == [field.metadata["default_text"]]
                continue
            if value is None:
                continue
            assert shown[flag] == [describe_default(value)], f"{task_name} {flag}: help shows {shown[flag]}, the code uses {value!r}"
            checked += 1
    assert checked >= 10


def test_train_distill_help_from_the_command_line_matches_the_task():
    """The acceptance check as a user runs it: ``python -m app.train distill --help``."""
    from app.tasks import DistillTask

    result = run_app("app.train", "distill", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for flag, field in (("--teacher", "teacher"), ("--temperature", "temperature"), ("--teacher-weight", "teacher_weight"),
                        ("--student-encoder", "encoder"), ("--name", "export_name"), ("--cache-dir", "cache_dir")):
        match = re.search(rf"{re.escape(flag)} [A-Z_]+ .*?\(default: ([^)]*)\)", text)
        assert match and match.group(1) == describe_default(getattr(DistillTask(), field)), (flag, match and match.group(1))
    assert f"--epochs EPOCHS maximum epochs (early stopping may end sooner) (default: {DistillTask.defaults.epochs})" in text
    assert "python -m app.distill" in run_in_process("app.distill", "--help").stdout  # the alias: one real process is enough


def test_a_task_is_one_file_and_one_registry_line():
    """Every task in the registry is a frozen dataclass whose options all have help and build with no arguments."""
    from app.tasks import TASKS

    assert set(TASKS) == {"mnist", "lm", "gpt", "bert", "mlm", "distill"}
    for name, task_class in TASKS.items():
        assert task_class.name == name and task_class.summary
        assert dataclasses.is_dataclass(task_class) and task_class.__dataclass_params__.frozen
        task_class()
