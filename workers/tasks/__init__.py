"""Tasks: built-in ones and third-party ones, all registered through an entry point group.

A package adds a task by declaring, in its pyproject.toml::

    [project.entry-points."alto_tune.tasks"]
    my-task = "my_package.tasks:MyTask"     # a Task subclass (or a factory returning a Task)

Clients can only ever name a task from this registry; nothing is imported from a
path a client sends.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from workers.tasks.base import Task

ENTRY_POINT_GROUP = "alto_tune.tasks"


@cache
def registered_tasks() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        task = ep.load()()
        if not isinstance(task, Task):
            raise TypeError(f"entry point {ep.name!r} gave {type(task).__name__}, not a Task")
        if task.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} registers a task named {task.name!r}")
        tasks[task.name] = task
    return tasks


def get_task(name: str) -> Task:
    tasks = registered_tasks()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; registered: {', '.join(sorted(tasks))}")
    return tasks[name]


_DATA: dict[tuple[str, str], Any] = {}


def task_data(task: Task, data_dir: Path) -> Any:
    """The task's data, loaded once per process (a reused Ray actor keeps it)."""
    key = (task.name, str(Path(data_dir).resolve()))
    if key not in _DATA:
        _DATA[key] = task.load(Path(data_dir))
    return _DATA[key]


__all__ = ["ENTRY_POINT_GROUP", "Task", "get_task", "registered_tasks", "task_data"]
