"""SqliteTableStore: the TableStore port on an embedded SQLite database (stdlib ``sqlite3``).

One database file (WAL mode) or ``":memory:"``. All SQLite work runs on one dedicated worker thread per
store, so the event loop never blocks and each call costs exactly one thread hop. Every write runs in a
``BEGIN IMMEDIATE`` transaction that also performs its existence/ETag checks, so several processes can
share one file: SQLite's write lock serialises them and ``busy_timeout`` makes them wait their turn.

Layout: one ``entities`` table keyed by (table, partition key, row key) ``WITHOUT ROWID``, so key-range
queries walk the primary key in order. Properties are a JSON object; JSON keeps str, int, float and bool
apart, and bytes and datetimes are tagged as ``["b", base64]`` and ``["d", microseconds since epoch]``.
Property conditions are evaluated in Python (durablehost.store.filtering) on the rows of the key range.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from durablehost.errors import (
    EntityAlreadyExists,
    EntityNotFound,
    EtagMismatch,
    StoreError,
    StoreUnavailable,
    TransactionFailed,
)
from durablehost.store import limits
from durablehost.store.base import (
    MAX_PAGE_SIZE,
    Condition,
    Entity,
    Op,
    OpKind,
    Page,
    Properties,
    PropertyValue,
    UpdateMode,
)
from durablehost.store.filtering import matches
from durablehost.store.paging import all_pages

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    etag TEXT NOT NULL,
    ts INTEGER NOT NULL,
    props TEXT NOT NULL,
    PRIMARY KEY (tbl, pk, rk)
) WITHOUT ROWID;
"""


def _encode_value(value: PropertyValue) -> Any:
    if isinstance(value, bytes):
        return ["b", base64.b64encode(value).decode("ascii")]
    if isinstance(value, datetime):
        return ["d", (value - _EPOCH) // _MICROSECOND]
    return value


def _decode_value(value: Any) -> PropertyValue:
    if isinstance(value, list):
        tag, payload = value
        if tag == "b":
            return base64.b64decode(payload)
        return _EPOCH + timedelta(microseconds=payload)
    return value  # type: ignore[no-any-return]


def _encode(properties: dict[str, PropertyValue]) -> str:
    return json.dumps({name: _encode_value(v) for name, v in properties.items()}, separators=(",", ":"))


def _decode(text: str) -> dict[str, PropertyValue]:
    raw: dict[str, Any] = json.loads(text)
    return {name: _decode_value(v) for name, v in raw.items()}


def _present(properties: Properties) -> dict[str, PropertyValue]:
    # None means "no such property", as in Azure.
    return {name: v for name, v in properties.items() if v is not None}


def _encode_token(partition_key: str, row_key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([partition_key, row_key]).encode()).decode("ascii")


def _decode_token(token: str) -> tuple[str, str]:
    try:
        pk, rk = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, TypeError) as error:
        raise limits.InvalidValue(f"malformed continuation token {token!r}") from error
    if not isinstance(pk, str) or not isinstance(rk, str):
        raise limits.InvalidValue(f"malformed continuation token {token!r}")
    return pk, rk


def _table_missing(table: str) -> StoreError:
    return StoreError(f"table {table!r} does not exist; call create_table first")


class SqliteTableStore:
    """TableStore on SQLite. ``path`` is a file (created if missing) or ``":memory:"``.

    The constructor opens the database synchronously (quick; it may wait up to ``busy_timeout`` seconds
    if another process holds the write lock while creating the schema).
    """

    def __init__(self, path: str | Path = ":memory:", *, busy_timeout: float = 30.0) -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._closed = False
        try:
            # check_same_thread=False: created here, but only ever used on the worker thread.
            self._conn = sqlite3.connect(
                self._path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            if self._path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: durable against process crashes; an OS crash may lose the last commits.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as error:
            self._executor.shutdown(wait=False)
            raise StoreUnavailable(f"cannot open SQLite database {self._path!r}: {error}") from error

    @property
    def description(self) -> str:
        return "sqlite::memory:" if self._path == ":memory:" else f"sqlite:{Path(self._path).resolve()}"

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise StoreError(f"the store {self.description} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as error:
            # "database is locked" after busy_timeout, disk full, file removed …
            raise StoreUnavailable(f"{self.description}: {error}") from error

    # -- tables ---------------------------------------------------------------------------------------

    async def create_table(self, table: str) -> None:
        limits.validate_table_name(table)
        await self._run(self._create_table, table.lower())

    def _create_table(self, name: str) -> None:
        with self._write():
            self._conn.execute("INSERT OR IGNORE INTO tables (name) VALUES (?)", (name,))

    async def delete_table(self, table: str) -> None:
        limits.validate_table_name(table)
        await self._run(self._delete_table, table.lower())

    def _delete_table(self, name: str) -> None:
        with self._write():
            self._conn.execute("DELETE FROM entities WHERE tbl = ?", (name,))
            self._conn.execute("DELETE FROM tables WHERE name = ?", (name,))

    # -- single entities --------------------------------------------------------------------------------

    async def get(self, table: str, partition_key: str, row_key: str) -> Entity:
        limits.validate_table_name(table)
        limits.validate_key("PartitionKey", partition_key)
        limits.validate_key("RowKey", row_key)
        return await self._run(self._get, table, partition_key, row_key)

    def _get(self, table: str, pk: str, rk: str) -> Entity:
        row = self._conn.execute(
            "SELECT etag, ts, props FROM entities WHERE tbl = ? AND pk = ? AND rk = ?",
            (table.lower(), pk, rk),
        ).fetchone()
        if row is None:
            self._check_table(table)
            raise EntityNotFound(table, pk, rk)
        etag, ts, props = row
        return Entity(pk, rk, _decode(props), etag, _EPOCH + timedelta(microseconds=ts))

    async def insert(self, table: str, partition_key: str, row_key: str, properties: Properties) -> str:
        return await self._single(table, Op.insert(partition_key, row_key, properties))

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        return await self._single(table, Op.upsert(partition_key, row_key, properties, mode))

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
        return await self._single(table, Op.update(partition_key, row_key, properties, etag=etag, mode=mode))

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        await self._single(table, Op.delete(partition_key, row_key, etag=etag))

    async def _single(self, table: str, op: Op) -> str:
        limits.validate_table_name(table)
        limits.entity_size(op.partition_key, op.row_key, op.properties)
        etag = (await self._run(self._transact, table, [op], False))[0]
        return etag or ""

    # -- transactions -----------------------------------------------------------------------------------

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        limits.validate_table_name(table)
        limits.validate_transaction(operations)
        return await self._run(self._transact, table, list(operations), True)

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self._conn)

    def _transact(self, table: str, operations: list[Op], wrap: bool) -> list[str | None]:
        """Apply ``operations`` in one write transaction. ``wrap`` reports failures as TransactionFailed."""
        name = table.lower()
        with self._write():
            self._check_table(table)
            now = time.time_ns() // 1000
            etags: list[str | None] = []
            for index, op in enumerate(operations):
                try:
                    etags.append(self._apply(table, name, op, now))
                except (EntityNotFound, EntityAlreadyExists, EtagMismatch) as error:
                    if wrap:
                        raise TransactionFailed(index, error) from error
                    raise
            return etags

    def _apply(self, table: str, name: str, op: Op, now: int) -> str | None:
        key = (name, op.partition_key, op.row_key)
        execute = self._conn.execute
        if op.kind is OpKind.INSERT:
            etag = _new_etag(now)
            try:
                execute(
                    "INSERT INTO entities (tbl, pk, rk, etag, ts, props) VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, etag, now, _encode(_present(op.properties))),
                )
            except sqlite3.IntegrityError as error:
                raise EntityAlreadyExists(table, op.partition_key, op.row_key) from error
            return etag
        if op.kind is OpKind.UPSERT and op.mode is UpdateMode.REPLACE:
            row = None  # an unconditional replace needs neither the old ETag nor the old properties
        else:
            row = execute(
                "SELECT etag, props FROM entities WHERE tbl = ? AND pk = ? AND rk = ?", key
            ).fetchone()
        if op.kind is not OpKind.UPSERT:
            if row is None:
                raise EntityNotFound(table, op.partition_key, op.row_key)
            if op.etag is not None and op.etag != row[0]:
                raise EtagMismatch(table, op.partition_key, op.row_key)
        if op.kind is OpKind.DELETE:
            execute("DELETE FROM entities WHERE tbl = ? AND pk = ? AND rk = ?", key)
            return None
        new = _present(op.properties)
        if op.mode is UpdateMode.MERGE and row is not None:
            new = {**_decode(row[1]), **new}
        etag = _new_etag(now)
        execute(
            "INSERT INTO entities (tbl, pk, rk, etag, ts, props) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tbl, pk, rk) DO UPDATE SET etag = excluded.etag, ts = excluded.ts, "
            "props = excluded.props",
            (*key, etag, now, _encode(new)),
        )
        return etag

    def _check_table(self, table: str) -> None:
        if self._conn.execute("SELECT 1 FROM tables WHERE name = ?", (table.lower(),)).fetchone() is None:
            raise _table_missing(table)

    # -- queries ----------------------------------------------------------------------------------------

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
        return all_pages(
            self,
            table,
            partition_key=partition_key,
            row_key_from=row_key_from,
            row_key_to=row_key_to,
            where=where,
            select=select,
            limit=limit,
        )

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
        limits.validate_table_name(table)
        limits.validate_page_size(page_size)
        limits.validate_conditions(where)
        start = _decode_token(continuation) if continuation is not None else None
        return await self._run(
            self._query_page,
            table,
            partition_key,
            row_key_from,
            row_key_to,
            tuple(where),
            tuple(select) if select is not None else None,
            page_size,
            start,
        )

    def _query_page(
        self,
        table: str,
        partition_key: str | None,
        row_key_from: str | None,
        row_key_to: str | None,
        where: tuple[Condition, ...],
        select: tuple[str, ...] | None,
        page_size: int,
        start: tuple[str, str] | None,
    ) -> Page:
        self._check_table(table)
        sql = ["SELECT pk, rk, etag, ts, props FROM entities WHERE tbl = ?"]
        args: list[str] = [table.lower()]
        if partition_key is not None:
            sql.append("AND pk = ?")
            args.append(partition_key)
            if start is not None:
                if start[0] != partition_key:
                    raise limits.InvalidValue("the continuation token belongs to another partition's query")
                # Within one partition the token is just a tighter lower bound on the row key.
                row_key_from = start[1] if row_key_from is None else max(row_key_from, start[1])
        elif start is not None:
            sql.append("AND (pk, rk) >= (?, ?)")
            args.extend(start)
        if row_key_from is not None:
            sql.append("AND rk >= ?")
            args.append(row_key_from)
        if row_key_to is not None:
            sql.append("AND rk < ?")
            args.append(row_key_to)
        sql.append("ORDER BY pk, rk")
        entities: list[Entity] = []
        # The cursor steps lazily along the primary key; stop at the first row after a full page.
        # Closing it ends the statement's read snapshot at once rather than whenever it is collected.
        cursor = self._conn.execute(" ".join(sql), args)
        try:
            for pk, rk, etag, ts, props in cursor:
                if len(entities) == page_size:
                    return Page(entities, _encode_token(pk, rk))
                properties = _decode(props)
                if where and not matches(pk, rk, properties, where):
                    continue
                if select is not None:
                    properties = {n: properties[n] for n in select if n in properties}
                entities.append(Entity(pk, rk, properties, etag, _EPOCH + timedelta(microseconds=ts)))
        finally:
            cursor.close()
        return Page(entities, None)

    async def close(self) -> None:
        if self._closed:
            return
        await self._run(self._conn.close)
        self._closed = True
        self._executor.shutdown(wait=True)


def _new_etag(now_us: int) -> str:
    # Time plus randomness: unique across processes sharing the file, and never reused after a delete.
    return f'W/"{now_us}.{os.urandom(6).hex()}"'


class _WriteTransaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        # IMMEDIATE takes the write lock now, so checks and writes see no interleaved writer.
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
