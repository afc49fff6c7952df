"""The TableStore port: the one storage abstraction of the engine, shaped like Azure Table storage.

Only modules under ``durablehost/store/`` import a storage client. The engine sees entities, ETags,
single-partition transactions and filtered queries with continuation, nothing else.

Semantics every implementation follows (the contract suite in tests/store pins them):

* An entity is (partition key, row key, properties). Property values are ``str``, ``int`` (64-bit
  signed), ``float``, ``bool``, ``bytes`` or tz-aware ``datetime`` (returned in UTC with full
  microsecond precision). ``None`` values are not stored (as in Azure, a missing property).
* Every write returns the entity's new ETag, an opaque string. Conditional writes take the ETag read
  earlier; ``etag=None`` means unconditional ("*").
* ``insert`` fails with EntityAlreadyExists; ``update``/``delete`` fail with EntityNotFound or
  EtagMismatch; ``upsert`` never fails for existence.
* ``merge`` mode keeps properties the new entity does not name; ``replace`` drops them.
* ``transact`` runs up to 100 operations on one partition atomically: all are applied or none, and a
  failure raises TransactionFailed with the index of the failing operation.
* Azure's limits are checked before anything is sent (durablehost.store.limits).
* Queries return entities ordered by (partition key, row key), in pages of at most 1,000; ``query``
  iterates over all pages, ``query_page`` returns one page and an opaque continuation token.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, TypeAlias

PropertyValue: TypeAlias = str | int | float | bool | bytes | datetime
Properties: TypeAlias = Mapping[str, PropertyValue | None]

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Entity:
    """A stored entity as read back: keys, properties and the ETag of this version."""

    partition_key: str
    row_key: str
    properties: dict[str, PropertyValue]
    etag: str
    timestamp: datetime | None = None

    def __getitem__(self, name: str) -> PropertyValue:
        return self.properties[name]

    def get(self, name: str, default: PropertyValue | None = None) -> PropertyValue | None:
        return self.properties.get(name, default)


class UpdateMode(enum.Enum):
    MERGE = "merge"
    REPLACE = "replace"


class OpKind(enum.Enum):
    INSERT = "insert"
    UPSERT = "upsert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Op:
    """One operation of a transaction. ``properties`` is ignored for DELETE."""

    kind: OpKind
    partition_key: str
    row_key: str
    properties: Properties = field(default_factory=dict)
    mode: UpdateMode = UpdateMode.MERGE
    etag: str | None = None

    @classmethod
    def insert(cls, pk: str, rk: str, properties: Properties) -> Op:
        return cls(OpKind.INSERT, pk, rk, properties)

    @classmethod
    def upsert(cls, pk: str, rk: str, properties: Properties, mode: UpdateMode = UpdateMode.MERGE) -> Op:
        return cls(OpKind.UPSERT, pk, rk, properties, mode)

    @classmethod
    def update(
        cls,
        pk: str,
        rk: str,
        properties: Properties,
        *,
        etag: str | None,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> Op:
        return cls(OpKind.UPDATE, pk, rk, properties, mode, etag)

    @classmethod
    def delete(cls, pk: str, rk: str, *, etag: str | None = None) -> Op:
        return cls(OpKind.DELETE, pk, rk, {}, UpdateMode.MERGE, etag)


Comparison = Literal["eq", "ne", "lt", "le", "gt", "ge"]


@dataclass(frozen=True)
class Condition:
    """``property <op> value``. Conditions in a query are combined with AND.

    ``PartitionKey`` and ``RowKey`` may be used as property names.
    """

    name: str
    op: Comparison
    value: PropertyValue


@dataclass(frozen=True)
class Page:
    entities: list[Entity]
    continuation: str | None


class TableStore(Protocol):
    """Async storage port shaped like Azure Table storage. See the module docstring for semantics."""

    @property
    def description(self) -> str:
        """A short human-readable description, e.g. ``sqlite:/path/db.sqlite`` (no secrets)."""
        ...

    async def create_table(self, table: str) -> None:
        """Create the table; do nothing if it exists."""
        ...

    async def delete_table(self, table: str) -> None:
        """Delete the table and all its entities; do nothing if it does not exist."""
        ...

    async def get(self, table: str, partition_key: str, row_key: str) -> Entity:
        """Read one entity, or raise EntityNotFound."""
        ...

    async def insert(self, table: str, partition_key: str, row_key: str, properties: Properties) -> str:
        """Insert a new entity and return its ETag, or raise EntityAlreadyExists."""
        ...

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        """Insert or update (merge or replace) unconditionally; return the new ETag."""
        ...

    async def update(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        *,
        etag: str | None,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        """Update an existing entity if its ETag matches (None: any); return the new ETag."""
        ...

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        """Delete an existing entity if its ETag matches (None: any)."""
        ...

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        """Apply 1-100 operations on one partition atomically.

        Returns one ETag per operation (None for deletes). Raises InvalidTransaction before sending
        anything if the batch is empty, too long or spans partitions, and TransactionFailed if an
        operation fails (nothing is written then).
        """
        ...

    def query(
        self,
        table: str,
        *,
        partition_key: str | None = None,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        where: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Entity]:
        """Iterate over matching entities in key order, across pages.

        ``row_key_from`` is inclusive and ``row_key_to`` exclusive. ``limit`` stops after that many.
        """
        ...

    async def query_page(
        self,
        table: str,
        *,
        partition_key: str | None = None,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        where: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        continuation: str | None = None,
    ) -> Page:
        """Return one page (at most ``page_size`` ≤ 1,000 entities) and the token for the next."""
        ...

    async def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
        ...
