"""Table clients on the app's storage account (:mod:`shared.storage`): Azurite locally, the function app's
storage account in Azure, by connection string or by managed identity (``DefaultAzureCredential``).

Clients are made once per process, the async ones once per event loop (their connections belong to the
loop that opened them), and each table is created once per process rather than on every request and
activity call: every create is a round trip that Azure counts against the account's request rate.
Azure SDK clients are safe to share between threads, which activities run on.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.data.tables.aio import TableClient as AsyncTableClient
from azure.data.tables.aio import TableServiceClient as AsyncTableServiceClient
from azure.identity import DefaultAzureCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

from shared.storage import DEVELOPMENT_STORAGE, StorageAccount

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)

_lock = threading.Lock()
_services: dict[StorageAccount, TableServiceClient] = {}
_tables: dict[tuple[StorageAccount, str], TableClient] = {}
_async_tables: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[StorageAccount, str], AsyncTableClient]
] = weakref.WeakKeyDictionary()
_async_services: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[StorageAccount, AsyncTableServiceClient]
] = weakref.WeakKeyDictionary()
# Tables known to exist, whichever client created them.
_created: set[tuple[StorageAccount, str]] = set()


def expand_connection_string(connection: str) -> str:
    """Replace ``UseDevelopmentStorage=true`` (in any case, with or without a trailing ``;``) by Azurite's
    explicit connection string; other connection strings are returned unchanged."""
    parts = [p.strip() for p in connection.split(";") if p.strip()]
    if any(p.lower() == DEVELOPMENT_STORAGE.lower() for p in parts):
        return AZURITE_CONNECTION_STRING
    return connection


def credential(account: StorageAccount) -> DefaultAzureCredential:
    """The token source of an identity-based account: a user-assigned identity if it names one."""
    if account.client_id:
        return DefaultAzureCredential(managed_identity_client_id=account.client_id)
    return DefaultAzureCredential()


def service_client(account: StorageAccount | str) -> TableServiceClient:
    """The process's service client for ``account`` (a connection string is accepted too)."""
    account = _account(account)
    with _lock:
        service = _services.get(account)
        if service is None:
            if account.table_endpoint is not None:
                service = TableServiceClient(endpoint=account.table_endpoint, credential=credential(account))
            else:
                service = TableServiceClient.from_connection_string(
                    expand_connection_string(account.connection_string or DEVELOPMENT_STORAGE)
                )
            _services[account] = service
        return service


def table_client(account: StorageAccount | str, table_name: str) -> TableClient:
    """The process's client for ``table_name``, which exists once this returns."""
    account = _account(account)
    key = (account, table_name)
    with _lock:
        client = _tables.get(key)
        known = key in _created
    if client is None:
        client = service_client(account).get_table_client(table_name)
        with _lock:
            client = _tables.setdefault(key, client)
    if not known:
        try:
            service_client(account).create_table(table_name)
        except ResourceExistsError:
            pass  # created earlier or concurrently by another instance: exactly what we want
        with _lock:
            _created.add(key)
    return client


async def async_table_client(account: StorageAccount | str, table_name: str) -> AsyncTableClient:
    """Like :func:`table_client`, for ``async def`` functions: it never blocks the worker's event loop."""
    account = _account(account)
    key = (account, table_name)
    loop = asyncio.get_running_loop()
    tables = _async_tables.setdefault(loop, {})
    client = tables.get(key)
    if client is None:
        client = tables[key] = _async_service(loop, account).get_table_client(table_name)
    with _lock:
        known = key in _created
    if not known:
        try:
            await _async_service(loop, account).create_table(table_name)
        except ResourceExistsError:
            pass
        with _lock:
            _created.add(key)
    return client


async def close_async_clients() -> None:
    """Close the running event loop's clients and forget them: for a loop that ends (a test's); the
    worker's own loop lives as long as the process."""
    loop = asyncio.get_running_loop()
    for client in _async_tables.pop(loop, {}).values():
        await client.close()
    for service in _async_services.pop(loop, {}).values():
        await service.close()


def _async_service(loop: asyncio.AbstractEventLoop, account: StorageAccount) -> AsyncTableServiceClient:
    services = _async_services.setdefault(loop, {})
    service = services.get(account)
    if service is None:
        if account.table_endpoint is not None:
            token = (
                AsyncDefaultAzureCredential(managed_identity_client_id=account.client_id)
                if account.client_id
                else AsyncDefaultAzureCredential()
            )
            service = AsyncTableServiceClient(endpoint=account.table_endpoint, credential=token)
        else:
            service = AsyncTableServiceClient.from_connection_string(
                expand_connection_string(account.connection_string or DEVELOPMENT_STORAGE)
            )
        services[account] = service
    return service


def _account(account: StorageAccount | str) -> StorageAccount:
    return StorageAccount(connection_string=account) if isinstance(account, str) else account
