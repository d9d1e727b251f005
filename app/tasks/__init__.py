"""The models the trainer knows, by command-line name. Each task says how to load its data, build its
model, score it and export it; the one trainer in `app.trainer` does the rest."""

from app.tasks.base import Task, TaskData
from app.tasks.bert import BertTask
from app.tasks.distill import DistillTask
from app.tasks.gpt import GptTask
from app.tasks.lm import LanguageModelTask
from app.tasks.mlm import MaskedLmTask
from app.tasks.mnist import MnistTask

TASKS = {"mnist": MnistTask, "lm": LanguageModelTask, "gpt": GptTask, "bert": BertTask, "mlm": MaskedLmTask, "distill": DistillTask}

__all__ = ["TASKS", "Task", "TaskData", "BertTask", "DistillTask", "GptTask", "LanguageModelTask", "MnistTask", "MaskedLmTask"]
