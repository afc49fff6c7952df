"""Episodes of one instance run through ``run_episode`` with the real SDK, with no store and no host.

:class:`Episodes` keeps an instance's state in memory and applies each EpisodeResult to it as the
dispatcher does after a commit (history appended, completions consumed, new tasks recorded, delivered
events removed); the test plays the outside world: it completes tasks, fires timers and raises events,
at the times it says. What the engine decided is then compared with what the protocol says, usually as
a history built with :class:`tests.support.histories.History`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from durablehost.engine.entities import answer
from durablehost.engine.episode import EpisodeResult, InstanceState, run_episode
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import HistoryEvent
from durablehost.engine.records import EventMessage, InstanceRecord, RuntimeStatus, TaskKind, TaskState
from durablehost.functions import FunctionIndex
from tests.support.histories import T0, History, encode


class Episodes:
    """One instance, episode by episode."""

    def __init__(self, functions: FunctionIndex, state: InstanceState, *, now: datetime) -> None:
        self.functions = functions
        self.state = state
        self.now = now
        self.results: list[EpisodeResult] = []
        self._rows = itertools.count(1)

    @classmethod
    def start(
        cls,
        functions: FunctionIndex,
        name: str,
        input: Any = None,
        *,
        instance_id: str = "instance",
        execution_id: str = "execution",
        at: datetime = T0,
        fidelity: Fidelity = Fidelity.DURABLEHOST,
        version: str = "",
    ) -> Episodes:
        """A created instance whose first episode has not run yet."""
        record = InstanceRecord(
            instance_id=instance_id,
            name=name,
            status=RuntimeStatus.PENDING,
            execution_id=execution_id,
            created_time=at,
            last_updated_time=at,
            input=None if input is None else encode(input),
            version=version,
            fidelity=fidelity,
        )
        return cls(functions, InstanceState(record, [], {}, []), now=at)

    @classmethod
    def resume(
        cls, functions: FunctionIndex, history: History, *, fidelity: Fidelity = Fidelity.DURABLEHOST
    ) -> Episodes:
        """An instance whose committed history is ``history`` (built by hand)."""
        return cls(functions, history.state(fidelity=fidelity), now=history.now)

    # ---------------------------------------------------------------- the engine

    def run(self, *, at: datetime | None = None, default_version: str = "") -> EpisodeResult:
        """Run the next episode at ``at`` (default: now) and apply it as a commit would."""
        if at is not None:
            self.now = at
        result = run_episode(self.state.snapshot(), self.functions, self.now, default_version=default_version)
        self.apply(result)
        return result

    def apply(self, result: EpisodeResult) -> None:
        """What the dispatcher does to its cached state once the episode committed."""
        self.results.append(result)
        state = self.state
        state.record = result.record
        state.history.extend(result.new_history)
        for task in result.consumed:
            state.tasks[task.task_id] = replace(task, consumed=True)
        for task in result.tasks_to_write:
            state.tasks[task.task_id] = task
        delivered = {e.row_key for e in result.delivered}
        state.events = [e for e in state.events if e.row_key not in delivered]

    # ---------------------------------------------------------------- the outside world

    def complete(self, task_id: int, result: Any = None, *, after: timedelta | None = None) -> None:
        """The task (activity, sub-orchestration, HTTP call) succeeded with ``result``."""
        self._outcome(task_id, TaskState.COMPLETED, result=encode(result), after=after)

    def fail(
        self, task_id: int, reason: str, details: str | None = None, *, after: timedelta | None = None
    ) -> None:
        self._outcome(task_id, TaskState.FAILED, reason=reason, details=details, after=after)

    def fire(self, timer_id: int, *, after: timedelta | None = None) -> None:
        """The timer is due: its outcome arrives at its FireAt (or ``after`` from now)."""
        timer = self.state.tasks[timer_id]
        if timer.kind is not TaskKind.TIMER:
            raise AssertionError(f"task {timer_id} is a {timer.kind.value}, not a timer")
        if after is None and timer.fire_at is not None:
            self.now = max(self.now, timer.fire_at)
        self._outcome(timer_id, TaskState.COMPLETED, after=after)

    def raise_event(self, name: str, value: Any = None, *, after: timedelta | None = None) -> EventMessage:
        """An external event arrives in the inbox (JSON-encoded once, as a raw HTTP body would be)."""
        self._advance(after)
        event = EventMessage(
            row_key=f"E{next(self._rows):08d}",
            name=name,
            input=None if value is None else encode(value),
            raised_time=self.now,
        )
        self.state.events.append(event)
        return event

    def answer(self, task_id: int, value: Any, *, error: bool = False) -> EventMessage:
        """The entity's answer to the call made as task ``task_id`` (protocol §2.7)."""
        request_id = json.loads(self.state.tasks[task_id].input or "{}")["id"]
        body: dict[str, object] = {"result": json.dumps(value)}
        if error:
            body["exceptionType"] = "Exception"
        event = replace(answer(request_id, body, self.now), row_key=f"E{next(self._rows):08d}")
        self.state.events.append(event)
        return event

    # ---------------------------------------------------------------- reading

    @property
    def history(self) -> list[HistoryEvent]:
        return self.state.history

    @property
    def record(self) -> InstanceRecord:
        return self.state.record

    @property
    def last(self) -> EpisodeResult:
        return self.results[-1]

    def new_work(self) -> list[tuple[int, str, str]]:
        """(id, kind, name) of the tasks the last episode started."""
        return [(t.task_id, t.kind.value, t.name) for t in self.last.new_work]

    def _outcome(self, task_id: int, state: TaskState, *, after: timedelta | None, **fields: Any) -> None:
        self._advance(after)
        task = self.state.tasks[task_id]
        if task.state is not TaskState.SCHEDULED:
            raise AssertionError(f"task {task_id} is {task.state.value}, not waiting for an outcome")
        self.state.tasks[task_id] = replace(task, state=state, completed_time=self.now, **fields)

    def _advance(self, after: timedelta | None) -> None:
        if after is not None:
            self.now += after
