"""The transaction parts durablehost writes itself (durablehost.store.azure_batch) are the SDK's, exactly.

Each part is compared with what azure-data-tables' ``TableBatchOperations`` builds for the same operation:
method, URL, every header and the body's bytes, for every kind of operation, both update modes, with and
without an ETag, awkward keys and every property type, on an Azurite endpoint and an account endpoint. If
an SDK upgrade changes what it sends, this fails rather than the service.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from azure.data.tables._table_batch import TableBatchOperations
from azure.data.tables.aio import TableClient

from durablehost.azurite import DEV_ACCOUNT_KEY
from durablehost.store.azure_tables import batch_parts, sdk_operation
from durablehost.store.base import Op, Properties, UpdateMode

ENDPOINTS = {
    "azurite": "UseDevelopmentStorage=true",
    "account": (
        "DefaultEndpointsProtocol=https;AccountName=someaccount;"
        f"AccountKey={DEV_ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    ),
}
KEYS = ["p", "a'b c/é#?%&+=", "日本語-ключ", "x" * 200, "''"]
PROPERTIES: Properties = {
    "Text": "hello \"world\" \u2028 ünïcode",
    "Count": 42,
    "Big": 2**62,
    "Negative": -7,
    "Flag": True,
    "Off": False,
    "Ratio": 0.25,
    "When": datetime(2026, 12, 1, 23, 59, 58, 123456, tzinfo=UTC),
    "Blob": b"\x00\x01binary\xff",
    "Missing": None,
    "Empty": "",
}


def _operations(partition_key: str, row_key: str) -> list[Op]:
    return [
        Op.insert(partition_key, row_key, PROPERTIES),
        Op.upsert(partition_key, row_key, PROPERTIES, UpdateMode.MERGE),
        Op.upsert(partition_key, row_key, PROPERTIES, UpdateMode.REPLACE),
        Op.update(partition_key, row_key, PROPERTIES, etag='W/"datetime\'2026-12-01T00%3A00Z\'"'),
        Op.update(partition_key, row_key, PROPERTIES, etag=None, mode=UpdateMode.REPLACE),
        Op.update(partition_key, row_key, {"Only": 1}, etag='W/"x"', mode=UpdateMode.MERGE),
        Op.delete(partition_key, row_key, etag='W/"y"'),
        Op.delete(partition_key, row_key),
    ]


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize(("partition_key", "row_key"), list(itertools.product(KEYS[:3], KEYS)))
async def test_each_part_is_what_the_sdk_builds(endpoint: str, partition_key: str, row_key: str) -> None:
    client = TableClient.from_connection_string(ENDPOINTS[endpoint], table_name="SomeHubInstances")
    try:
        operations = _operations(partition_key, row_key)
        batch = [sdk_operation(op) for op in operations]
        ours = batch_parts(client, operations, batch)
        sdk = TableBatchOperations(
            config=client._client._config,
            endpoint=f"{client.scheme}://{client._primary_hostname}",
            table_name=client.table_name,
            is_cosmos_endpoint=client._cosmos_endpoint,
        )
        for operation in batch:
            sdk.add_operation(operation)
        assert len(ours) == len(sdk.requests) == len(operations)
        for op, part, request in zip(operations, ours, sdk.requests, strict=True):
            content = request.content
            body = content.encode() if isinstance(content, str) else (content or b"")
            assert (part.method, part.url) == (request.method, request.url), op
            assert part.headers == dict(request.headers), op
            assert part.body == body, op
    finally:
        await client.close()
