"""Where the fake services record calls: one row per (operation, idempotency key).

Backends (``APP_STATE_STORE``):

* ``table``: table ``FakeServiceCalls`` on ``AzureWebJobsStorage``, PartitionKey = operation
  (``payments.charge``), RowKey = idempotency key; works under ``func start`` + Azurite, in Azure, and
  for any host whose activities run in other processes.
* ``memory``: a process-wide dict, for tests that run the app in one process; ``memory_ledger().clear()``
  resets it.

Each row holds ``attempts`` (how many calls arrived with that key, counting failed ones) and, once the
call succeeded, ``result`` (JSON). Tests read :meth:`CallLedger.calls` to count side effects.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

FAKE_SERVICE_TABLE = "FakeServiceCalls"
_MAX_CONCURRENCY_RETRIES = 20


class CallLedger(Protocol):
    """Call records by (operation, idempotency key)."""

    def count_attempt(self, operation: str, key: str) -> int:
        """Count one more attempt for the key and return the new count (1 for the first)."""
        ...

    def result(self, operation: str, key: str) -> dict[str, Any] | None:
        """The recorded successful result, or None."""
        ...

    def record_result(self, operation: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record the result unless one is recorded already; return the recorded one."""
        ...

    def calls(self, operation: str) -> dict[str, dict[str, Any]]:
        """All rows of an operation: key -> {"attempts": n, "result": {...} | None}."""
        ...


class InMemoryCallLedger:
    """CallLedger in process memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}

    def count_attempt(self, operation: str, key: str) -> int:
        """Increment under a lock."""
        with self._lock:
            row = self._rows.setdefault((operation, key), {"attempts": 0, "result": None})
            row["attempts"] += 1
            return int(row["attempts"])

    def result(self, operation: str, key: str) -> dict[str, Any] | None:
        """Return a copy of the recorded result."""
        with self._lock:
            row = self._rows.get((operation, key))
            return None if row is None or row["result"] is None else dict(row["result"])

    def record_result(self, operation: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        """First result wins."""
        with self._lock:
            row = self._rows.setdefault((operation, key), {"attempts": 0, "result": None})
            if row["result"] is None:
                row["result"] = dict(result)
            return dict(row["result"])

    def calls(self, operation: str) -> dict[str, dict[str, Any]]:
        """Copies of the rows of one operation."""
        with self._lock:
            return {k: dict(v) for (op, k), v in self._rows.items() if op == operation}

    def clear(self) -> None:
        """Forget every call (between tests)."""
        with self._lock:
            self._rows.clear()


class TableCallLedger:
    """CallLedger on Azure Table storage; attempt counts use ETag-guarded updates."""

    def __init__(self, client: TableClient) -> None:
        self._client = client

    def count_attempt(self, operation: str, key: str) -> int:
        """Read-increment-write with optimistic concurrency, retried on a lost race."""
        for _ in range(_MAX_CONCURRENCY_RETRIES):
            try:
                entity = self._client.get_entity(operation, key)
            except ResourceNotFoundError:
                try:
                    self._client.create_entity({"PartitionKey": operation, "RowKey": key, "attempts": 1})
                    return 1
                except ResourceExistsError:
                    continue  # another caller created it first: count on top of theirs
            attempts = int(entity.get("attempts", 0)) + 1
            try:
                self._client.update_entity(
                    {"PartitionKey": operation, "RowKey": key, "attempts": attempts},
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return attempts
            except ResourceModifiedError:
                continue
        raise RuntimeError(f"could not count an attempt for {operation}/{key}: too much contention")

    def result(self, operation: str, key: str) -> dict[str, Any] | None:
        """Decode the stored JSON result, if any."""
        try:
            entity = self._client.get_entity(operation, key)
        except ResourceNotFoundError:
            return None
        raw = entity.get("result")
        return None if raw is None else dict(json.loads(raw))

    def record_result(self, operation: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        """Write the result only if none is stored (ETag-guarded), then return what is stored."""
        for _ in range(_MAX_CONCURRENCY_RETRIES):
            try:
                entity = self._client.get_entity(operation, key)
            except ResourceNotFoundError:
                try:
                    row = {"PartitionKey": operation, "RowKey": key, "attempts": 0}
                    self._client.create_entity({**row, "result": json.dumps(result)})
                    return dict(result)
                except ResourceExistsError:
                    continue
            if entity.get("result") is not None:
                return dict(json.loads(entity["result"]))
            try:
                self._client.update_entity(
                    {"PartitionKey": operation, "RowKey": key, "result": json.dumps(result)},
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return dict(result)
            except ResourceModifiedError:
                continue
        raise RuntimeError(f"could not record the result of {operation}/{key}: too much contention")

    def calls(self, operation: str) -> dict[str, dict[str, Any]]:
        """Query one partition."""
        rows = self._client.query_entities("PartitionKey eq @op", parameters={"op": operation})
        return {
            str(row["RowKey"]): {
                "attempts": int(row.get("attempts", 0)),
                "result": None if row.get("result") is None else json.loads(row["result"]),
            }
            for row in rows
        }


_memory_ledger = InMemoryCallLedger()


def memory_ledger() -> InMemoryCallLedger:
    """The process-wide in-memory ledger used when ``APP_STATE_STORE=memory``."""
    return _memory_ledger
