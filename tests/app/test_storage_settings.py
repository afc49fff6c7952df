"""Which storage account the app's tables use (issue #14 item 10): a connection string, or an
identity-based connection with the setting names Azure documents for ``AzureWebJobsStorage`` — never a
silent fall-back to Azurite — and clients made once per process, each table created once."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential

from shared.settings import SettingsError, load_settings
from shared.storage import StorageAccount
from shared.tables import service_client, table_client


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({"AzureWebJobsStorage__accountName": "agentsprod"}, "https://agentsprod.table.core.windows.net"),
        ({"AZUREWEBJOBSSTORAGE__ACCOUNTNAME": "agentsprod"}, "https://agentsprod.table.core.windows.net"),
        (
            {
                "AzureWebJobsStorage__accountName": "agentsprod",
                "AzureWebJobsStorage__tableServiceUri": "https://agentsprod.table.core.chinacloudapi.cn/",
                "AzureWebJobsStorage__blobServiceUri": "https://agentsprod.blob.core.chinacloudapi.cn",
                "AzureWebJobsStorage__credential": "managedidentity",
            },
            "https://agentsprod.table.core.chinacloudapi.cn",
        ),
    ],
)
def test_identity_based_settings_name_the_account_and_a_token_credential(
    env: dict[str, str], endpoint: str
) -> None:
    account = load_settings(env).storage
    assert account == StorageAccount(table_endpoint=endpoint)
    service = service_client(account)
    assert service.url == endpoint and service.scheme == "https"
    assert isinstance(service.credential, DefaultAzureCredential)
    tables = service.get_table_client("ApprovalDecisions")
    assert tables.url == endpoint and isinstance(tables.credential, DefaultAzureCredential)


def test_a_user_assigned_identity_is_named_by_its_client_id() -> None:
    client_id = "4a1f0c3e-1111-2222-3333-444455556666"
    account = load_settings(
        {"AzureWebJobsStorage__accountName": "agentsprod", "AzureWebJobsStorage__clientId": client_id}
    ).storage
    assert (
        account.client_id == client_id
        and account.table_endpoint == "https://agentsprod.table.core.windows.net"
    )
    assert client_id in account.describe()


def test_a_connection_string_wins_and_nothing_set_is_azurite() -> None:
    assert load_settings({}).storage == StorageAccount(connection_string="UseDevelopmentStorage=true")
    connection = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=b;EndpointSuffix=core.windows.net"
    both = load_settings({"AzureWebJobsStorage": connection, "AzureWebJobsStorage__accountName": "other"})
    assert both.storage == StorageAccount(connection_string=connection)
    assert isinstance(service_client(both.storage), TableServiceClient)
    assert service_client(both.storage).account_name == "a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AzureWebJobsStorage__clientId": "x"}, "name no account"),
        ({"AzureWebJobsStorage__accountName": "Bad_Name"}, "not a storage account name"),
        (
            {"AzureWebJobsStorage__tableServiceUri": "http://acct.table.core.windows.net"},
            "must be an https URL",
        ),
        (
            {"AzureWebJobsStorage__accountName": "acct", "AzureWebJobsStorage__credential": "clientsecret"},
            "only 'managedidentity'",
        ),
        (
            {"AzureWebJobsStorage__accountName": "acct", "AzureWebJobsStorage__clientSecret": "s"},
            "clientsecret is not supported",
        ),
    ],
)
def test_settings_it_cannot_use_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


@pytest.mark.azurite
def test_clients_are_reused_and_each_table_is_created_once(azurite_connection_string: str) -> None:
    table = f"Once{uuid.uuid4().hex[:10]}"
    first = table_client(azurite_connection_string, table)
    assert table_client(azurite_connection_string, table) is first
    first.create_entity({"PartitionKey": "p", "RowKey": "1"})
    # Deleted behind the process's back: a second call does not create it again (no create per call).
    TableServiceClient.from_connection_string(azurite_connection_string).delete_table(table)
    again = table_client(azurite_connection_string, table)
    with pytest.raises(ResourceNotFoundError):
        again.create_entity({"PartitionKey": "p", "RowKey": "2"})
