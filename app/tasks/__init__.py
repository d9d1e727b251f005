"""The models the trainer knows, by command-line name: the registry. Each task says how to load its
data, build its model, score it and export it, and declares its own flags; the one trainer in
`app.training.trainer` does the rest. Adding a model = one task file + one line here."""

from app.tasks.base import Task, TaskData
from app.tasks.bert import BertTask
from app.tasks.distill import DistillTask
from app.tasks.gpt import GptTask
from app.tasks.lm import LanguageModelTask
from app.tasks.mlm import MaskedLmTask
from app.tasks.mnist import MnistTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (MnistTask, LanguageModelTask, GptTask, BertTask, MaskedLmTask, DistillTask)
}

__all__ = ["TASKS", "Task", "TaskData", "BertTask", "DistillTask", "GptTask", "LanguageModelTask", "MnistTask", "MaskedLmTask"]
