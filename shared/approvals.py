"""De-duplication of approval decisions.

Azure delivers HTTP retries, queue messages and raised events at least once, so the app records each
approval id before raising the ``approval`` event: the first request for an id inserts a row
(``ApprovalDecisions``: PartitionKey = instance id, RowKey = approval id); a repeat finds the row and
gets the originally recorded outcome back.

The row's ``delivered`` flag closes the gap between recording and raising: a request that recorded the
id but failed before the event was raised leaves ``delivered`` false, and a retry raises the event
again. Raising twice is harmless because the orchestrator ignores approval ids it has already seen.

The store is asynchronous: the approval route is an ``async def`` (the durable client requires it), and
the Python worker runs async functions on its event loop, where a synchronous table call would stall
every other request of the worker (azure_functions_runtime: only sync functions go to its thread pool).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.settings import Settings
from shared.tables import async_table_client

APPROVALS_TABLE = "ApprovalDecisions"


@dataclass(frozen=True)
class ApprovalDecision:
    """One approver's decision as recorded (and sent to the orchestrator)."""

    approval_id: str
    approver: str
    decision: str  # "approve" | "reject"
    comment: str
    decided_at: str  # ISO 8601, UTC

    def to_event(self) -> dict[str, str]:
        """The payload of the ``approval`` event."""
        return asdict(self)


@dataclass(frozen=True)
class RecordedApproval:
    """What the store holds for an (instance, approval id) pair."""

    decision: ApprovalDecision
    delivered: bool


class ApprovalStore(Protocol):
    """Records approval ids once per instance."""

    async def record(self, instance_id: str, decision: ApprovalDecision) -> tuple[bool, RecordedApproval]:
        """Insert the decision; return (True, new record), or (False, the record stored earlier)."""
        ...

    async def mark_delivered(self, instance_id: str, approval_id: str) -> None:
        """Note that the ``approval`` event for this id was raised."""
        ...

    async def get(self, instance_id: str, approval_id: str) -> RecordedApproval | None:
        """The record for this approval id, if there is one."""
        ...


class TableApprovalStore:
    """ApprovalStore on Azure Table storage (Azurite locally)."""

    def __init__(self, client: TableClient) -> None:
        self._client = client

    async def record(self, instance_id: str, decision: ApprovalDecision) -> tuple[bool, RecordedApproval]:
        """Insert-if-absent; the insert conflict is how a duplicate is detected."""
        entity = {"PartitionKey": instance_id, "RowKey": decision.approval_id, "delivered": False}
        entity.update({k: v for k, v in asdict(decision).items() if k != "approval_id"})
        try:
            await self._client.create_entity(entity)
        except ResourceExistsError:
            stored = await self.get(instance_id, decision.approval_id)
            if stored is None:  # deleted between the insert and the read: nothing sane to report
                raise RuntimeError(f"approval {decision.approval_id} of {instance_id} vanished") from None
            return False, stored
        return True, RecordedApproval(decision, delivered=False)

    async def get(self, instance_id: str, approval_id: str) -> RecordedApproval | None:
        """Read one row."""
        try:
            stored = await self._client.get_entity(instance_id, approval_id)
        except ResourceNotFoundError:
            return None
        original = ApprovalDecision(
            approval_id=approval_id,
            approver=str(stored["approver"]),
            decision=str(stored["decision"]),
            comment=str(stored.get("comment", "")),
            decided_at=str(stored["decided_at"]),
        )
        return RecordedApproval(original, bool(stored.get("delivered", False)))

    async def mark_delivered(self, instance_id: str, approval_id: str) -> None:
        """Merge ``delivered=True`` into the row."""
        await self._client.update_entity(
            {"PartitionKey": instance_id, "RowKey": approval_id, "delivered": True}, mode=UpdateMode.MERGE
        )


class InMemoryApprovalStore:
    """ApprovalStore in process memory, for tests that run the app in one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], RecordedApproval] = {}

    async def record(self, instance_id: str, decision: ApprovalDecision) -> tuple[bool, RecordedApproval]:
        """Insert-if-absent under a lock."""
        key = (instance_id, decision.approval_id)
        with self._lock:
            if key in self._rows:
                return False, self._rows[key]
            self._rows[key] = RecordedApproval(decision, delivered=False)
            return True, self._rows[key]

    async def mark_delivered(self, instance_id: str, approval_id: str) -> None:
        """Set the delivered flag of an existing row."""
        key = (instance_id, approval_id)
        with self._lock:
            self._rows[key] = replace(self._rows[key], delivered=True)

    async def get(self, instance_id: str, approval_id: str) -> RecordedApproval | None:
        """Read one row."""
        with self._lock:
            return self._rows.get((instance_id, approval_id))


_memory_store = InMemoryApprovalStore()


async def approval_store(settings: Settings) -> ApprovalStore:
    """The store selected by ``APP_STATE_STORE``: the table, or the process-wide in-memory store."""
    if settings.state_store == "memory":
        return _memory_store
    return TableApprovalStore(await async_table_client(settings.storage, APPROVALS_TABLE))
