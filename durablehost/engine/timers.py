"""Durable timers waiting to fire, in memory; the durable record is the timer's task row.

A timer task row is written in the episode that created the timer; on start-up the dispatcher re-arms
every scheduled timer of every active instance, so a crash loses none.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class TimerKey:
    instance_id: str
    execution_id: str
    task_id: int


@dataclass(order=True)
class _Entry:
    fire_at: datetime
    order: int
    key: TimerKey = field(compare=False)


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._armed: dict[TimerKey, datetime] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._armed)

    def add(self, key: TimerKey, fire_at: datetime) -> None:
        if self._armed.get(key) == fire_at:
            return
        self._armed[key] = fire_at
        heapq.heappush(self._heap, _Entry(fire_at, next(self._order), key))

    def cancel(self, key: TimerKey) -> None:
        self._armed.pop(key, None)

    def keys(self) -> list[TimerKey]:
        return list(self._armed)

    def cancel_instance(self, instance_id: str) -> None:
        for key in [k for k in self._armed if k.instance_id == instance_id]:
            del self._armed[key]

    def next_due(self) -> datetime | None:
        self._drop_stale()
        return self._heap[0].fire_at if self._heap else None

    def pop_due(self, now: datetime) -> list[tuple[TimerKey, datetime]]:
        due: list[tuple[TimerKey, datetime]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0].fire_at > now:
                return due
            entry = heapq.heappop(self._heap)
            del self._armed[entry.key]
            due.append((entry.key, entry.fire_at))

    def _drop_stale(self) -> None:
        while self._heap and self._armed.get(self._heap[0].key) != self._heap[0].fire_at:
            heapq.heappop(self._heap)
