"""Tasks: a registry of end-to-end jobs (data, model, metrics) that ``lstmkit train`` runs.

Each task is one module that registers itself with ``@register_task("name")``; importing this
package imports them all, so :data:`TASKS` lists every task. Later tasks (forecasting,
classification, CTC, long-range synthetic) plug in the same way: subclass :class:`Task`, register
it, import its module here.
"""

from __future__ import annotations

# Importing a task module registers it.
from lstmkit.tasks import (
    charlm,
    classify,
    ctc_ocr,
    ctc_speech,
    forecast,
    handwriting,
    longrange,
    moving_digits,
    seq2seq,
    wordlm,
)
from lstmkit.tasks.base import ConfigError, DataUnavailable, Generated, Prepared, Task, TaskError
from lstmkit.tasks.registry import TASKS, get_task, register_task

__all__ = [
    "TASKS",
    "ConfigError",
    "DataUnavailable",
    "Generated",
    "Prepared",
    "Task",
    "TaskError",
    "charlm",
    "classify",
    "ctc_ocr",
    "ctc_speech",
    "forecast",
    "get_task",
    "handwriting",
    "longrange",
    "moving_digits",
    "register_task",
    "seq2seq",
    "wordlm",
]
