"""Which storage account the app's tables live in, from the same settings the Functions host reads for
its own storage (``AzureWebJobsStorage``).

* ``AzureWebJobsStorage``: a connection string (``UseDevelopmentStorage=true`` is Azurite).
* Identity-based, as Azure documents for the host's storage ("Connecting to host storage with an
  identity", Azure Functions app settings reference; Durable Functions' managed identity quickstart):
  ``AzureWebJobsStorage__tableServiceUri`` (the table endpoint), or ``AzureWebJobsStorage__accountName``
  (the endpoint is then ``https://<name>.table.core.windows.net``), with optional
  ``AzureWebJobsStorage__credential`` = ``managedidentity`` and ``AzureWebJobsStorage__clientId`` for a
  user-assigned identity. The token comes from azure-identity's ``DefaultAzureCredential``
  (shared.tables): the managed identity in Azure, the developer's login locally.
* Nothing set: Azurite.

Setting names are matched case-insensitively, as the Functions host reads its configuration. A setting
this module cannot use (a client secret, another credential kind, a malformed name or URI) raises
StorageSettingsError (a SettingsError once shared.settings has read it): falling back to Azurite would
hide that the app is talking to the wrong storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

CONNECTION_SETTING = "AzureWebJobsStorage"
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_KNOWN_PARTS = (
    "accountname",
    "tableserviceuri",
    "blobserviceuri",
    "queueserviceuri",
    "credential",
    "clientid",
)


class StorageSettingsError(ValueError):
    """A storage setting the app cannot use; the message names it."""


@dataclass(frozen=True)
class StorageAccount:
    """A connection string, or a table endpoint reached with a token (identity-based)."""

    connection_string: str | None = None
    table_endpoint: str | None = None
    client_id: str | None = None  # a user-assigned managed identity; None = the system-assigned one

    @classmethod
    def development(cls) -> StorageAccount:
        """Azurite on its standard ports."""
        return cls(connection_string=DEVELOPMENT_STORAGE)

    @property
    def uses_identity(self) -> bool:
        return self.table_endpoint is not None

    def describe(self) -> str:
        """Where the tables are, without secrets."""
        if self.table_endpoint is not None:
            who = f"managed identity {self.client_id}" if self.client_id else "DefaultAzureCredential"
            return f"{self.table_endpoint} ({who})"
        return "the AzureWebJobsStorage connection string"


def storage_account(env: Mapping[str, str]) -> StorageAccount:
    """The account the settings name (module docstring); SettingsError for settings it cannot use."""
    connection = _setting(env, CONNECTION_SETTING)
    parts = {
        name.lower()[len(CONNECTION_SETTING) + 2 :]: value.strip()
        for name, value in env.items()
        if name.lower().startswith(CONNECTION_SETTING.lower() + "__") and value.strip()
    }
    if connection:
        return StorageAccount(connection_string=connection)
    if not parts.keys() & {"accountname", "tableserviceuri"}:
        if parts:
            raise StorageSettingsError(
                f"{CONNECTION_SETTING}__ settings are set ({', '.join(sorted(parts))}) but name no account: "
                f"set {CONNECTION_SETTING}__accountName or {CONNECTION_SETTING}__tableServiceUri"
            )
        return StorageAccount.development()
    unknown = sorted(set(parts) - set(_KNOWN_PARTS))
    if unknown:
        raise StorageSettingsError(
            f"{CONNECTION_SETTING}__{unknown[0]} is not supported by this app: use a managed identity "
            f"(__accountName or __tableServiceUri, optionally __credential=managedidentity and __clientId) "
            "or a connection string in AzureWebJobsStorage"
        )
    credential = parts.get("credential")
    if credential is not None and credential.lower() != "managedidentity":
        raise StorageSettingsError(
            f"{CONNECTION_SETTING}__credential={credential!r}: only 'managedidentity' is supported"
        )
    return StorageAccount(table_endpoint=_table_endpoint(parts), client_id=parts.get("clientid"))


def _table_endpoint(parts: Mapping[str, str]) -> str:
    uri = parts.get("tableserviceuri")
    if uri is not None:
        split = urlsplit(uri)
        if split.scheme != "https" or not split.hostname or split.query or split.fragment:
            raise StorageSettingsError(
                f"{CONNECTION_SETTING}__tableServiceUri={uri!r} must be an https URL such as "
                "https://<account>.table.core.windows.net"
            )
        return uri.rstrip("/")
    name = parts["accountname"]
    if not _ACCOUNT_NAME.match(name):
        raise StorageSettingsError(
            f"{CONNECTION_SETTING}__accountName={name!r} is not a storage account name "
            "(3-24 lower-case letters and digits)"
        )
    return f"https://{name}.table.core.windows.net"


def _setting(env: Mapping[str, str], name: str) -> str:
    for key, value in env.items():
        if key.lower() == name.lower() and value.strip():
            return value.strip()
    return ""
