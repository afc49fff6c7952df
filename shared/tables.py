"""Table clients on ``AzureWebJobsStorage`` (Azurite locally, the function app's storage account in Azure)."""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def expand_connection_string(connection: str) -> str:
    """Replace ``UseDevelopmentStorage=true`` (in any case, with or without a trailing ``;``) by Azurite's
    explicit connection string; other connection strings are returned unchanged."""
    parts = [p.strip() for p in connection.split(";") if p.strip()]
    if any(p.lower() == "usedevelopmentstorage=true" for p in parts):
        return AZURITE_CONNECTION_STRING
    return connection


def table_client(connection: str, table_name: str) -> TableClient:
    """Return a client for ``table_name``, creating the table if it does not exist yet."""
    service = TableServiceClient.from_connection_string(expand_connection_string(connection))
    try:
        service.create_table(table_name)
    except ResourceExistsError:
        pass  # created earlier or concurrently by another instance: exactly what we want
    return service.get_table_client(table_name)
