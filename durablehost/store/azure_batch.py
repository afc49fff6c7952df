"""The operations of an entity-group transaction, written as azure-data-tables writes them, minus its cost.

The SDK builds each operation of a batch (``TableBatchOperations.add_operation``) through its generated
request builders: URL and header serializers and an azure-core ``HttpRequest`` per operation, ~0.3 ms of
CPU each, so an episode's five-row commit cost 1.5-2 ms of client CPU before anything was sent. Here the
method, URL, headers and body of each part are written directly; they are what the SDK writes
(tests/store/test_azure_batch.py compares both for every kind of operation, update mode and condition,
and awkward keys and values), and the entity body is still the SDK's own serializer
(``_add_entity_properties``, then the JSON encoder azure-core uses). Cosmos DB table endpoints, whose merges
the SDK rewrites, keep the SDK's builders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.core.serialization import AzureJSONEncoder
from azure.data.tables._serialize import _add_entity_properties, _prepare_key

from durablehost.store.base import Op, OpKind, UpdateMode

# What the SDK's request builders send (azure-data-tables 12.x, service version 2019-02-02).
_VERSION = "2019-02-02"
_MINIMAL_METADATA = "application/json;odata=minimalmetadata"


@dataclass(frozen=True)
class BatchPart:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def batch_part(table_url: str, op: Op, entity: Mapping[str, Any]) -> BatchPart:
    """One operation of a transaction on ``table_url`` (``{endpoint}/{table}``); ``entity`` is the SDK
    form of the row (durablehost.store.azure_tables ``_to_sdk``)."""
    if op.kind is OpKind.INSERT:
        return _with_body("POST", table_url, entity, _MINIMAL_METADATA, None)
    url = _entity_url(table_url, op.partition_key, op.row_key)
    if op.kind is OpKind.DELETE:
        headers = {"x-ms-version": _VERSION, "DataServiceVersion": "3.0", "Accept": _MINIMAL_METADATA}
        headers["If-Match"] = op.etag or "*"
        return BatchPart("DELETE", url, headers, b"")
    method = "PUT" if op.mode is UpdateMode.REPLACE else "PATCH"
    if op.kind is OpKind.UPSERT:
        return _with_body(method, url, entity, "application/json", None)
    return _with_body(method, url, entity, "application/json", op.etag or "*")


def _entity_url(table_url: str, partition_key: str, row_key: str) -> str:
    pk = quote(_prepare_key(partition_key), safe="")
    rk = quote(_prepare_key(row_key), safe="")
    return f"{table_url}(PartitionKey='{pk}',RowKey='{rk}')"


def _with_body(
    method: str, url: str, entity: Mapping[str, Any], accept: str, if_match: str | None
) -> BatchPart:
    text = json.dumps(_add_entity_properties(entity), cls=AzureJSONEncoder)
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(text)),
        "x-ms-version": _VERSION,
        "DataServiceVersion": "3.0",
        "Accept": accept,
    }
    if if_match is not None:
        headers["If-Match"] = if_match
    return BatchPart(method, url, headers, text.encode())
