"""Fan-in that keeps going when some tasks fail."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from orchestrators._failures import failure_reason


def gather_settled(
    context: df.DurableOrchestrationContext, tasks: Sequence[TaskBase]
) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Wait for every task; return ``{"ok": True, "value": …}`` or ``{"ok": False, "error": …}`` per task,
    in order. Use with ``yield from``.

    ``task_all`` fails as soon as one child fails, leaving the others running; in that case each task is
    yielded on its own (finished ones resume at once, the SDK allows re-yielding a task), so every
    outcome, including each failure's message, is recorded instead of one failure failing the whole run.
    """
    try:
        values = yield context.task_all(list(tasks))
    except Exception:  # each task's own outcome is collected below
        settled: list[dict[str, Any]] = []
        for task in tasks:
            try:
                settled.append({"ok": True, "value": (yield task)})
            except Exception as exc:  # recorded as this task's failure
                settled.append({"ok": False, "error": failure_reason(exc)})
        return settled
    return [{"ok": True, "value": value} for value in values]
