"""The instances this process works on, held in memory between episodes (an LRU of InstanceState).

A cached instance is trusted only while its instance row's ETag is the one it was read or committed
with: :meth:`InstanceCache.revalidate` (what a wake-up does) compares the ETag and reloads the partition
when anyone else changed the instance (a terminate or resume through another process, another owner),
otherwise it only re-reads the inbox. Every commit stays ETag-guarded anyway; revalidation is what makes
an owner notice changes it did not make.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable

from durablehost.engine.episode import InstanceState
from durablehost.engine.partition import InstanceRepository

log = logging.getLogger("durablehost.cache")


class InstanceCache:
    def __init__(self, repo: InstanceRepository, size: int, *, pinned: Callable[[str], bool]) -> None:
        self._repo = repo
        self._size = size
        self._pinned = pinned  # instances that must stay (an episode, outcomes or a flush in flight)
        self._states: OrderedDict[str, InstanceState] = OrderedDict()
        self.loads = 0

    def __contains__(self, instance_id: str) -> bool:
        return instance_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def cached(self) -> Iterable[InstanceState]:
        return list(self._states.values())

    def get(self, instance_id: str) -> InstanceState | None:
        state = self._states.get(instance_id)
        if state is not None:
            self._states.move_to_end(instance_id)
        return state

    def put(self, state: InstanceState) -> None:
        self._states[state.record.instance_id] = state
        self._states.move_to_end(state.record.instance_id)
        if len(self._states) > self._size:
            for victim in list(self._states)[: len(self._states) - self._size]:
                if not self._pinned(victim):
                    del self._states[victim]

    def drop(self, instance_id: str) -> None:
        self._states.pop(instance_id, None)

    def drop_where(self, predicate: Callable[[str], bool]) -> list[str]:
        dropped = [instance_id for instance_id in self._states if predicate(instance_id)]
        for instance_id in dropped:
            del self._states[instance_id]
        return dropped

    async def get_or_load(self, instance_id: str) -> InstanceState | None:
        return self.get(instance_id) or await self.load(instance_id)

    async def load(self, instance_id: str) -> InstanceState | None:
        """Read the partition (cleaning rows a crash left behind) and cache it; None if it does not exist."""
        self.loads += 1
        loaded = await self._repo.load(instance_id)
        if loaded is None:
            self.drop(instance_id)
            return None
        if loaded.leftovers:
            await self._repo.delete_rows(instance_id, loaded.leftovers)
        state = InstanceState(loaded.record, loaded.history, loaded.tasks, loaded.events)
        self.put(state)
        return state

    async def revalidate(self, instance_id: str) -> tuple[InstanceState | None, bool]:
        """The current state and whether it was (re)loaded from storage rather than kept."""
        state = self.get(instance_id)
        if state is None:
            return await self.load(instance_id), True
        record = await self._repo.get_record(instance_id)
        if record is None:
            self.drop(instance_id)
            return None, True
        if record.etag != state.record.etag:
            return await self.load(instance_id), True
        state.events = await self._repo.list_pending_events(instance_id)
        return state, False
