"""The one exception tree of durablehost.

DurableHostError
├── StoreError                      storage failures (durablehost.store)
│   ├── EntityNotFound
│   ├── EntityAlreadyExists
│   ├── EtagMismatch                optimistic concurrency lost
│   ├── TransactionFailed           carries the failing operation's index and cause
│   ├── EntityTooLarge              an Azure Table limit would be exceeded
│   ├── InvalidKey                  a partition/row key Azure would refuse
│   ├── InvalidTransaction          more than 100 operations, or more than one partition
│   └── StoreUnavailable            the backend cannot be reached (Azurite not running …)
├── AzuriteError                    Azurite missing or failed to start
├── AppLoadError                    the Functions app cannot be imported or indexed
├── InstanceError                   a management request that the instance's state refuses
│   ├── InstanceNotFound
│   ├── InstanceAlreadyRunning
│   ├── InstanceFinished
│   ├── InstanceNotFailed           rewind of an instance that did not fail
│   ├── RewindRefused               rewind that would move sequence ids
│   └── IdempotencyKeyReused        an Idempotency-Key sent again with another event or payload
├── InvalidRequest                  a request the caller must change (an id, name, body or parameter)
├── UnknownFunction                 an orchestrator/activity/entity name that the app does not define
├── InvocationError                 the host could not call a function (bad payload, unsupported binding …)
└── PayloadTooLarge                 a value that cannot be stored within the store's limits

Messages say what was wrong and what to do next.
"""

from __future__ import annotations


class DurableHostError(Exception):
    """Base of every error durablehost raises on purpose."""


class StoreError(DurableHostError):
    """A storage operation failed."""


class EntityNotFound(StoreError):
    def __init__(self, table: str, partition_key: str, row_key: str) -> None:
        super().__init__(f"entity ({partition_key!r}, {row_key!r}) does not exist in table {table!r}")
        self.table = table
        self.partition_key = partition_key
        self.row_key = row_key


class EntityAlreadyExists(StoreError):
    def __init__(self, table: str, partition_key: str, row_key: str) -> None:
        super().__init__(f"entity ({partition_key!r}, {row_key!r}) already exists in table {table!r}")
        self.table = table
        self.partition_key = partition_key
        self.row_key = row_key


class EtagMismatch(StoreError):
    def __init__(self, table: str, partition_key: str, row_key: str) -> None:
        super().__init__(
            f"entity ({partition_key!r}, {row_key!r}) in table {table!r} was changed by another writer "
            "(ETag mismatch)"
        )
        self.table = table
        self.partition_key = partition_key
        self.row_key = row_key


class TransactionFailed(StoreError):
    """One operation of a transaction failed; nothing of the transaction was written."""

    def __init__(self, index: int, cause: StoreError) -> None:
        super().__init__(f"transaction failed at operation {index}: {cause}")
        self.index = index
        self.cause = cause


class EntityTooLarge(StoreError):
    """An entity or property is over Azure Table storage's limits."""


class InvalidKey(StoreError):
    """A partition or row key contains characters or a length that Azure refuses."""


class InvalidTransaction(StoreError):
    """A transaction that Azure would refuse: empty, over 100 operations, or across partitions."""


class StoreUnavailable(StoreError):
    """The storage backend cannot be reached."""


class AzuriteError(DurableHostError):
    """Azurite is not installed or did not start."""


class AppLoadError(DurableHostError):
    """The Functions app could not be imported or indexed."""


class InstanceError(DurableHostError):
    def __init__(self, instance_id: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class InstanceNotFound(InstanceError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id, f"no orchestration instance with id {instance_id!r}")


class InstanceAlreadyRunning(InstanceError):
    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            instance_id,
            f"an orchestration instance with id {instance_id!r} already exists and is {status}; "
            "use another id, or terminate it first",
        )
        self.status = status


class InstanceFinished(InstanceError):
    def __init__(self, instance_id: str, status: str, action: str) -> None:
        super().__init__(
            instance_id, f"cannot {action}: orchestration instance {instance_id!r} is already {status}"
        )
        self.status = status


class InstanceNotFailed(InstanceError):
    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            instance_id, f"cannot rewind orchestration instance {instance_id!r}: it is {status}, not Failed"
        )
        self.status = status


class RewindRefused(InstanceError):
    """The instance's history cannot be rewound without changing sequence ids."""


class IdempotencyKeyReused(InstanceError):
    def __init__(self, instance_id: str, key: str) -> None:
        super().__init__(
            instance_id,
            f"the Idempotency-Key {key!r} was already used on instance {instance_id!r} for another event "
            "name or payload; resend the original request to get its answer, or use a new key",
        )
        self.key = key


class InvalidRequest(DurableHostError):
    """The caller sent something the host cannot accept: the message says what and in which form.

    Only this type (and the instance errors above) become 4xx answers: a ValueError from anywhere else is
    a host bug or corrupt stored data, and is answered with a 500."""


class UnknownFunction(DurableHostError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(f"the function '{name}' doesn't exist as an {kind} in this app (known: {listing})")
        self.kind = kind
        self.name = name


class InvocationError(DurableHostError):
    """The host could not invoke a user function: a malformed payload, a binding it cannot supply, or an
    SDK answer that breaks the protocol. Never used for failures of the user's own code."""


class WorkAbandoned(DurableHostError):
    """An activity waiting for a worker thread was not started: by then this process no longer held its
    instance (a lost lease, a stop). Its new owner runs it."""


class PayloadTooLarge(DurableHostError):
    """A value cannot be stored: it is over the store's limits even when split."""
