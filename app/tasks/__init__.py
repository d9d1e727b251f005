"""The models the trainer knows, by command-line name: the registry. Each task says how to load its
data, build its model, score it and export it, and declares its own flags; the one trainer in
`app.training.trainer` does the rest. Adding a model = one task file + one line here.

The registry names the classes without importing them (they import TensorFlow), so a command can
check its task name and training flags at once; ``from app.tasks import BertTask`` and ``TASKS`` (name
-> class) import on first use.
"""

import importlib

REGISTRY = {  # command-line name -> (module, class)
    "mnist": ("app.tasks.mnist", "MnistTask"),
    "lm": ("app.tasks.lm", "LanguageModelTask"),
    "gpt": ("app.tasks.gpt", "GptTask"),
    "bert": ("app.tasks.bert", "BertTask"),
    "mlm": ("app.tasks.mlm", "MaskedLmTask"),
    "distill": ("app.tasks.distill", "DistillTask"),
}
_BY_CLASS = {class_name: module for module, class_name in REGISTRY.values()} | {"Task": "app.tasks.base", "TaskData": "app.tasks.base"}

__all__ = ["REGISTRY", "TASKS", "task_class", *_BY_CLASS]


def task_class(name: str):
    """The task class registered under ``name`` (imported now)."""
    module, class_name = REGISTRY[name]
    return getattr(importlib.import_module(module), class_name)


def __getattr__(name: str):
    if name == "TASKS":
        return {task_name: task_class(task_name) for task_name in REGISTRY}
    if name in _BY_CLASS:
        return getattr(importlib.import_module(_BY_CLASS[name]), name)
    raise AttributeError(f"module 'app.tasks' has no attribute {name!r}")
