"""Command-line flags made from the code's own dataclasses, so a flag, its help and its default are
written once: a task's options are its fields declared with `option` (below), the generic
training flags are `TrainConfig`'s fields, and ``--help`` prints the defaults the code really uses.

A flag the user leaves out is not passed on at all, so the dataclass default applies.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence

from app.common.cli import ArgumentParser, positive_float, positive_int


def option(default: Any = None, help: str = "", **metadata) -> Any:
    """A dataclass field that is also a command-line flag: ``help`` is its help text; optional
    ``flag`` (its name, default ``--field-name``), ``aliases``, ``type``, ``choices``, ``nargs``,
    ``metavar``, ``flags`` (for a boolean: the flag that sets True and the one that sets False) and
    ``default_text`` (what a None default means)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def describe_default(value: Any) -> str:
    """A default as a user would type it on the command line."""
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _value_type(field: dataclasses.Field):
    if "type" in field.metadata:
        return field.metadata["type"]
    annotation = str(field.type)
    if annotation.startswith("int"):
        return positive_int
    if annotation.startswith("float"):
        return positive_float
    return str


def help_with_default(field: dataclasses.Field, default: Any) -> str:
    text = field.metadata["help"]
    if default is None:
        shown = field.metadata.get("default_text")
        return f"{text} (default: {shown})" if shown else text
    return f"{text} (default: {describe_default(default)})"


def option_fields(config_class) -> list[dataclasses.Field]:
    """The fields of a dataclass that are command-line options (those declared with a help text)."""
    return [field for field in dataclasses.fields(config_class) if "help" in field.metadata]


def add_dataclass_flags(parser: argparse.ArgumentParser, config_class, defaults: dict | None = None) -> None:
    """One flag per option field of ``config_class``; ``defaults`` overrides the shown default of a
    field whose dataclass default is None (the task's own training defaults)."""
    defaults = defaults or {}
    for field in option_fields(config_class):
        default = defaults.get(field.name, field.default)
        help_text = help_with_default(field, default)
        if field.metadata.get("flags"):  # a boolean: one flag for True, one for False
            on, off = field.metadata["flags"]
            parser.add_argument(on, dest=field.name, action="store_true", default=argparse.SUPPRESS, help=help_text)
            if off:
                parser.add_argument(off, dest=field.name, action="store_false", default=argparse.SUPPRESS, help=f"the opposite of {on}")
            continue
        extra = {key: field.metadata[key] for key in ("choices", "nargs", "metavar") if key in field.metadata}
        if "choices" not in extra:
            extra.setdefault("metavar", flag_name(field).lstrip("-").replace("-", "_").upper())
        parser.add_argument(
            flag_name(field), *field.metadata.get("aliases", ()), dest=field.name, type=_value_type(field),
            default=argparse.SUPPRESS, help=help_text, **extra,
        )


def dataclass_values(config_class, args: argparse.Namespace) -> dict:
    """The option fields of ``config_class`` the user set, as keyword arguments (lists become tuples)."""
    names = {field.name for field in option_fields(config_class)}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in vars(args).items() if name in names}


def add_task_flags(parser: argparse.ArgumentParser, task_class) -> None:
    """A task's own flags, then the generic training flags with this task's defaults."""
    from app.training.config import TrainConfig

    add_dataclass_flags(parser, task_class)
    group = parser.add_argument_group("training")
    add_dataclass_flags(group, TrainConfig, dataclasses.asdict(task_class().defaults))


def task_and_config(task_class, args: argparse.Namespace):
    """The task and the `TrainConfig` the parsed flags describe."""
    from app.training.config import TrainConfig

    return task_class(**dataclass_values(task_class, args)), TrainConfig(**dataclass_values(TrainConfig, args))


def check_training_flags(prog: str, argv: Sequence[str], task_names: Sequence[str] = ()) -> None:
    """The task name (one of ``task_names``, if given) and the training flags' values, checked before
    any task, and so TensorFlow, is imported: a typo there fails at once, with the one-line error the
    full parser would give. The task's own flags are checked by the full parser."""
    from app.training.config import TrainConfig

    if {"-h", "--help"} & set(argv):
        return
    parser = ArgumentParser(prog=prog, add_help=False)
    targets = [parser]
    if task_names:
        tasks = parser.add_subparsers(dest="task", required=True, metavar="{" + ",".join(task_names) + "}", parser_class=ArgumentParser)
        targets = [tasks.add_parser(name, add_help=False) for name in task_names]
    for target in targets:
        add_dataclass_flags(target, TrainConfig)
    parser.parse_known_args(argv)
