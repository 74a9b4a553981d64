"""The task registry: a plain dict filled by a decorator."""

from __future__ import annotations

from collections.abc import Callable

from lstmkit.tasks.base import Task, TaskError

TASKS: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: ``@register_task("charlm")`` puts the class in :data:`TASKS` under ``name``."""

    def add(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name].__qualname__}")
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"@register_task({name!r}) must decorate a Task subclass, got {cls!r}")
        cls.name = name
        TASKS[name] = cls
        return cls

    return add


def get_task(name: str) -> Task:
    """A new instance of the task registered as ``name``."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}")
    return TASKS[name]()
