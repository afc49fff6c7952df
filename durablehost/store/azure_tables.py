"""AzureTableStore: the TableStore port on Azure Table storage (or Azurite) via ``azure.data.tables.aio``.

Mapping decisions:

* Every int is sent as ``Edm.Int64``, so an int property has one EDM type whatever its magnitude.
* Filters are ``PartitionKey eq @pk and RowKey ge @from and RowKey lt @to and <string conditions>``,
  built with the SDK's parameter substitution for every user value.
* Only key and string conditions are sent to the server; others are evaluated in Python
  (durablehost.store.filtering), which also re-checks every row. Azurite answers 500 when an Int64 or
  Double literal meets a row with another type there, and compares datetimes only to the millisecond.
* The SDK's ``delete_entity`` swallows 404, but the port reports EntityNotFound, so deletes go through
  the SDK's generated operation (``TableClient._client``; azure-data-tables is pinned in pyproject).
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote
from wsgiref.handlers import format_date_time

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, TableTransactionError
from azure.data.tables import UpdateMode as SdkUpdateMode
from azure.data.tables._table_batch import TableBatchOperations
from azure.data.tables.aio import TableClient, TableServiceClient

from durablehost.azurite import STANDARD_PORTS, connection_string
from durablehost.errors import (
    EntityAlreadyExists,
    EntityNotFound,
    EntityTooLarge,
    EtagMismatch,
    StoreError,
    StoreUnavailable,
    TransactionFailed,
)
from durablehost.store import limits
from durablehost.store.azure_batch import BatchPart, batch_part
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

_SDK_MODE = {UpdateMode.MERGE: SdkUpdateMode.MERGE, UpdateMode.REPLACE: SdkUpdateMode.REPLACE}
_KEYS = ("PartitionKey", "RowKey")


def expand_connection_string(conn: str) -> str:
    """Replace ``UseDevelopmentStorage=true`` (which the SDK does not understand) by the explicit
    devstoreaccount1 endpoints on 127.0.0.1:10000-10002."""
    fields = _parse(conn)
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return connection_string(STANDARD_PORTS)
    return conn


def _parse(conn: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in conn.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _to_sdk(partition_key: str, row_key: str, properties: Properties) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": partition_key, "RowKey": row_key}
    for name, value in properties.items():
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            entity[name] = EntityProperty(value, EdmType.INT64)
        elif isinstance(value, datetime):
            entity[name] = value.astimezone(UTC)
        else:
            entity[name] = value
    return entity


def _from_sdk_value(value: Any) -> PropertyValue | None:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        # The SDK returns TablesEntityDatetime (a subclass holding the service's text); give a plain one.
        utc = value.astimezone(UTC)
        return datetime(
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
        )
    return value  # type: ignore[no-any-return]


def _from_sdk(raw: Mapping[str, Any]) -> Entity:
    metadata: Mapping[str, Any] = getattr(raw, "metadata", {})
    properties: dict[str, PropertyValue] = {}
    for name, value in raw.items():
        if name in _KEYS:
            continue
        converted = _from_sdk_value(value)
        if converted is not None:
            properties[name] = converted
    timestamp = metadata.get("timestamp")
    return Entity(
        raw["PartitionKey"],
        raw["RowKey"],
        properties,
        str(metadata.get("etag", "")),
        _from_sdk_value(timestamp) if isinstance(timestamp, datetime) else None,  # type: ignore[arg-type]
    )


class _Filter:
    """Builds an OData filter with SDK parameters (``@pN``) for every user value."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.parameters: dict[str, Any] = {}

    def add(self, name: str, op: str, value: str) -> None:
        param = f"p{len(self.parameters)}"
        self.parameters[param] = value
        self.clauses.append(f"{name} {op} @{param}")

    def add_condition(self, condition: Condition) -> None:
        value = condition.value
        # Only key and string conditions go to the server. Azurite answers 500 when an Int64 or Double
        # literal meets a row whose property has another type, and compares datetimes only to the
        # millisecond; every condition is re-checked exactly in Python anyway.
        if isinstance(value, str):
            self.add(condition.name, condition.op, value)

    @property
    def text(self) -> str:
        return " and ".join(self.clauses)


def _encode_token(token: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(token)).encode()).decode("ascii")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, TypeError) as error:
        raise limits.InvalidValue(f"malformed continuation token {token!r}") from error
    if not isinstance(decoded, dict):
        raise limits.InvalidValue(f"malformed continuation token {token!r}")
    return decoded


def _raise_mapped(error: Exception, table: str, partition_key: str = "", row_key: str = "") -> NoReturn:
    """Translate an SDK/transport error into the durablehost error tree."""
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        raise StoreUnavailable(
            f"cannot reach Azure Table storage for table {table!r}: {error}. Is Azurite running?"
        ) from error
    if isinstance(error, HttpResponseError):
        code = str(getattr(error, "error_code", None) or "")
        if code == "TableNotFound":
            raise StoreError(f"table {table!r} does not exist; call create_table first") from error
        if isinstance(error, ResourceNotFoundError) or error.status_code == 404:
            raise EntityNotFound(table, partition_key, row_key) from error
        if isinstance(error, ResourceExistsError) or code == "EntityAlreadyExists":
            raise EntityAlreadyExists(table, partition_key, row_key) from error
        if isinstance(error, ResourceModifiedError) or error.status_code == 412:
            raise EtagMismatch(table, partition_key, row_key) from error
        if code in ("EntityTooLarge", "PropertyValueTooLarge", "RequestBodyTooLarge"):
            raise EntityTooLarge(
                f"Azure refused ({partition_key!r}, {row_key!r}) in {table!r}: {code}"
            ) from error
        raise StoreError(
            f"Azure Table storage error on table {table!r} ({code or error.status_code}): {error}"
        )
    raise error


def environment_proxies(endpoint: str) -> dict[str, str] | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY …) names for ``endpoint``, if any, as
    azure-core's ``proxies`` option; None for a direct connection."""
    parts = urllib.parse.urlsplit(endpoint)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return {parts.scheme: proxy}


class AzureTableStore:
    """TableStore on Azure Table storage or Azurite, from a connection string.

    ``UseDevelopmentStorage=true`` is expanded to the local emulator's standard endpoints.
    ``retry_total`` bounds the SDK's retries (its default of 10 with exponential backoff would make an
    unreachable endpoint hang for minutes before StoreUnavailable).
    """

    def __init__(self, conn: str, *, retry_total: int = 3) -> None:
        self._conn = expand_connection_string(conn)
        fields = _parse(self._conn)
        account = fields.get("accountname", "?")
        endpoint = fields.get("tableendpoint") or f"{fields.get('defaultendpointsprotocol', 'https')}://" + (
            f"{account}.table.{fields.get('endpointsuffix', 'core.windows.net')}"
        )
        self._description = f"azure:{account}@{endpoint}"
        self._service = TableServiceClient.from_connection_string(
            self._conn,
            retry_total=retry_total,
            retry_backoff_factor=0.2,
            # The proxy settings of the environment, read once: with the transport reading them (its
            # default), aiohttp looks them up in a worker thread on every request, a thread hop that
            # cost ~3% of the host's CPU on Azurite.
            use_env_settings=False,
            proxies=environment_proxies(endpoint),
        )
        self._clients: dict[str, TableClient] = {}

    @property
    def description(self) -> str:
        return self._description

    def _client(self, table: str) -> TableClient:
        client = self._clients.get(table)
        if client is None:
            limits.validate_table_name(table)
            client = self._clients[table] = self._service.get_table_client(table)
        return client

    async def create_table(self, table: str) -> None:
        limits.validate_table_name(table)
        try:
            await self._service.create_table(table)
        except ResourceExistsError:
            return  # already there: create_table is idempotent by contract
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table)

    async def delete_table(self, table: str) -> None:
        limits.validate_table_name(table)
        try:
            # The SDK's delete_table already treats a missing table as success.
            await self._service.delete_table(table)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table)

    async def get(self, table: str, partition_key: str, row_key: str) -> Entity:
        limits.validate_key("PartitionKey", partition_key)
        limits.validate_key("RowKey", row_key)
        try:
            raw = await self._client(table).get_entity(partition_key, row_key)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key, row_key)
        return _from_sdk(raw)

    async def insert(self, table: str, partition_key: str, row_key: str, properties: Properties) -> str:
        limits.entity_size(partition_key, row_key, properties)
        try:
            meta = await self._client(table).create_entity(_to_sdk(partition_key, row_key, properties))
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key, row_key)
        return str(meta["etag"])

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        limits.entity_size(partition_key, row_key, properties)
        try:
            meta = await self._client(table).upsert_entity(
                _to_sdk(partition_key, row_key, properties), mode=_SDK_MODE[mode]
            )
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key, row_key)
        return str(meta["etag"])

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
        limits.entity_size(partition_key, row_key, properties)
        try:
            meta = await self._client(table).update_entity(
                _to_sdk(partition_key, row_key, properties), mode=_SDK_MODE[mode], **_condition(etag)
            )
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key, row_key)
        return str(meta["etag"])

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        limits.validate_key("PartitionKey", partition_key)
        limits.validate_key("RowKey", row_key)
        client = self._client(table)
        try:
            await client._client.table.delete_entity(
                table=client.table_name,
                partition_key=partition_key.replace("'", "''"),
                row_key=row_key.replace("'", "''"),
                # IfPresent sends "If-Match: *" and ignores the etag argument.
                etag=etag or "",
                match_condition=MatchConditions.IfNotModified if etag else MatchConditions.IfPresent,
            )
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key, row_key)

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        limits.validate_transaction(operations)
        batch = [sdk_operation(op) for op in operations]
        client = self._client(table)
        try:
            fast = await _submit_fast(client, operations, batch)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, operations[0].partition_key)
        if fast is not None:
            return [
                None if op.kind is OpKind.DELETE else etag for op, etag in zip(operations, fast, strict=True)
            ]
        # The transaction was refused as a whole (nothing applied): run it again through the SDK, whose
        # error (failing index, error code) maps onto ours exactly.
        try:
            results = await client.submit_transaction(batch)
        except TableTransactionError as error:
            index = error.index
            op = operations[index] if 0 <= index < len(operations) else operations[0]
            try:
                _raise_mapped(error, table, op.partition_key, op.row_key)
            except (EntityNotFound, EntityAlreadyExists, EtagMismatch) as cause:
                raise TransactionFailed(index, cause) from error
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, operations[0].partition_key)
        return [
            None if op.kind is OpKind.DELETE else str(meta["etag"])
            for op, meta in zip(operations, results, strict=True)
        ]

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
        limits.validate_page_size(page_size)
        limits.validate_conditions(where)
        query = _Filter()
        if partition_key is not None:
            query.add("PartitionKey", "eq", partition_key)
        if row_key_from is not None:
            query.add("RowKey", "ge", row_key_from)
        if row_key_to is not None:
            query.add("RowKey", "lt", row_key_to)
        for condition in where:
            query.add_condition(condition)
        sdk_select: list[str] | None = None
        if select is not None:
            # Conditions are re-checked here, so the properties they name must come back too.
            sdk_select = list(dict.fromkeys([*_KEYS, *select, *(c.name for c in where)]))
        client = self._client(table)
        # The SDK's continuation token is a dict at runtime, although by_page is annotated with str.
        token: Any = _decode_token(continuation) if continuation is not None else None
        # by_page's annotation omits continuation_token, which the runtime pager has.
        pager: Any
        try:
            if query.clauses:
                pager = client.query_entities(
                    query.text, parameters=query.parameters, results_per_page=page_size, select=sdk_select
                ).by_page(continuation_token=token)
            else:
                # Azurite rejects an empty $filter.
                pager = client.list_entities(results_per_page=page_size, select=sdk_select).by_page(
                    continuation_token=token
                )
            entities: list[Entity] = []
            async for page in pager:
                async for raw in page:
                    entity = _from_sdk(raw)
                    if where and not matches(entity.partition_key, entity.row_key, entity.properties, where):
                        continue
                    if select is not None:
                        chosen = {n: entity.properties[n] for n in select if n in entity.properties}
                        entity = replace(entity, properties=chosen)
                    entities.append(entity)
                break
            next_token = pager.continuation_token
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            _raise_mapped(error, table, partition_key or "")
        return Page(entities, _encode_token(next_token) if next_token else None)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._service.close()


_CHANGESET_RESPONSE = re.compile(r"boundary=(changesetresponse_[A-Za-z0-9_-]+)")
_STATUS_LINE = re.compile(r"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ETAG_HEADER = re.compile(r"^ETag: *(.*?)\r?$", re.MULTILINE | re.IGNORECASE)


async def _submit_fast(
    client: TableClient,
    operations: Sequence[Op],
    sdk_batch: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> list[str | None] | None:
    """Send an entity-group transaction, writing and reading the multipart body ourselves.

    What is skipped is azure-core's multipart code, which runs every part through the stdlib ``email``
    package both ways and cost ~80% of a transaction's client CPU, and the SDK's per-operation request
    builders (durablehost.store.azure_batch). Returns the ETag of each operation, or None if the service
    refused the transaction as a whole: a changeset is atomic, so nothing was applied and the caller may
    send it again through the SDK for its exact error.
    """
    now = format_date_time(time.time())
    changeset = f"changeset_{uuid.uuid4()}"
    batch = f"batch_{uuid.uuid4()}"
    chunks = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, part in enumerate(batch_parts(client, operations, sdk_batch)):
        lines = [
            f"--{changeset}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {index}",
            "",
            f"{part.method} {part.url} HTTP/1.1",
            *(f"{name}: {value}" for name, value in part.headers.items()),
            f"x-ms-date: {now}",
            f"Date: {now}",
        ]
        chunks.append("\r\n".join(lines).encode() + b"\r\n\r\n" + part.body + b"\r\n")
    chunks.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    request = HttpRequest(
        "POST",
        f"{client.scheme}://{client._primary_hostname}/$batch",
        headers={
            "x-ms-version": client.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=b"".join(chunks),
    )
    # stream=True, as the SDK does: otherwise the pipeline tries to decode the multipart body itself.
    response = await client._client.send_request(request, stream=True)
    await response.read()
    if response.status_code != 202:
        return None
    text = response.text()
    found = _CHANGESET_RESPONSE.search(text)
    if found is None:
        raise StoreError(f"unexpected transaction response from the table service: {text[:300]!r}")
    parts = [p for p in text.split(f"--{found.group(1)}")[1:] if not p.startswith("--")]
    statuses = [_STATUS_LINE.search(p) for p in parts]
    if any(m is None or not 200 <= int(m.group(1)) < 300 for m in statuses):
        return None
    if len(parts) != len(operations):
        raise StoreError(
            f"the table service answered {len(parts)} parts to a transaction of {len(operations)}"
        )
    etags: list[str | None] = []
    for answer in parts:
        etag = _ETAG_HEADER.search(answer)
        etags.append(etag.group(1).strip() if etag else None)
    return etags


def sdk_operation(op: Op) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The operation as the SDK's ``submit_transaction`` takes it."""
    entity = _to_sdk(op.partition_key, op.row_key, op.properties if op.kind is not OpKind.DELETE else {})
    if op.kind is OpKind.INSERT:
        return ("create", entity, {})
    if op.kind is OpKind.UPSERT:
        return ("upsert", entity, {"mode": _SDK_MODE[op.mode]})
    if op.kind is OpKind.UPDATE:
        return ("update", entity, {"mode": _SDK_MODE[op.mode], **_condition(op.etag)})
    return ("delete", entity, _condition(op.etag))


def batch_parts(
    client: TableClient, operations: Sequence[Op], batch: list[tuple[str, dict[str, Any], dict[str, Any]]]
) -> list[BatchPart]:
    """The transaction's parts: written directly (durablehost.store.azure_batch), or by the SDK's request
    builders for a Cosmos DB endpoint (whose merges it rewrites)."""
    base = f"{client.scheme}://{client._primary_hostname}"
    if not client._cosmos_endpoint:
        table_url = f"{base}/{quote(client.table_name, safe='')}"
        pairs = zip(operations, batch, strict=True)
        return [batch_part(table_url, op, entity) for op, (_, entity, _) in pairs]
    prepared = TableBatchOperations(
        config=client._client._config, endpoint=base, table_name=client.table_name, is_cosmos_endpoint=True
    )
    for operation in batch:
        prepared.add_operation(operation)
    parts = []
    for request in prepared.requests:
        content = request.content
        body = content.encode() if isinstance(content, str) else (content or b"")
        parts.append(BatchPart(request.method, request.url, dict(request.headers), body))
    return parts


def _condition(etag: str | None) -> dict[str, Any]:
    if etag is None:
        return {"match_condition": MatchConditions.Unconditionally}
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}
