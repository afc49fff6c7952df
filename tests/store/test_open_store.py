"""open_store specs, descriptions without secrets, and StoreUnavailable from both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from durablehost.azurite import DEV_ACCOUNT_KEY, AzuritePorts, connection_string, free_ports
from durablehost.errors import StoreError, StoreUnavailable
from durablehost.store import SqliteTableStore, open_store
from durablehost.store.azure_tables import AzureTableStore, environment_proxies, expand_connection_string


async def test_memory_spec() -> None:
    store = open_store("memory")
    assert isinstance(store, SqliteTableStore) and store.description == "sqlite::memory:"
    await store.close()


async def test_sqlite_spec_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = open_store(f"sqlite:{path}")
    await store.create_table("things")
    await store.insert("things", "p", "r", {"v": 1})
    assert store.description == f"sqlite:{path}"
    await store.close()
    reopened = open_store(f"sqlite:{path}")
    assert (await reopened.get("things", "p", "r"))["v"] == 1
    await reopened.close()


@pytest.mark.parametrize(
    "spec",
    [
        "UseDevelopmentStorage=true",
        connection_string(AzuritePorts(10000, 10001, 10002)),
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={DEV_ACCOUNT_KEY};EndpointSuffix=core.windows.net",
    ],
)
async def test_azure_specs_and_descriptions_without_the_key(spec: str) -> None:
    store = open_store(spec)
    assert isinstance(store, AzureTableStore)
    assert DEV_ACCOUNT_KEY not in store.description and "AccountKey" not in store.description
    assert store.description.startswith("azure:")
    await store.close()


def test_development_storage_is_expanded_to_standard_endpoints() -> None:
    expanded = expand_connection_string("UseDevelopmentStorage=true")
    assert "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;" in expanded
    assert f"AccountKey={DEV_ACCOUNT_KEY};" in expanded


@pytest.mark.parametrize("spec", ["", "mem", "sqlite:", "postgres://x", "AccountName=a"])
def test_bad_specs_list_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"'memory'.*'sqlite:PATH'.*UseDevelopmentStorage=true"):
        open_store(spec)


async def test_unreachable_azure_is_store_unavailable() -> None:
    store = AzureTableStore(connection_string(free_ports()), retry_total=0)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        await store.get("things", "p", "r")
    with pytest.raises(StoreUnavailable):
        await store.create_table("things")
    await store.close()


def test_unopenable_sqlite_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open"):
        SqliteTableStore(tmp_path / "missing-dir" / "db.sqlite")


async def test_closed_sqlite_store_refuses_calls() -> None:
    store = SqliteTableStore()
    await store.create_table("things")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get("things", "p", "r")


async def test_the_environment_s_proxy_is_read_once_and_honours_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxies("https://acct.table.core.windows.net") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert environment_proxies("https://acct.table.core.windows.net") == {"https": "http://proxy.example:3128"}
    assert environment_proxies("http://127.0.0.1:10002/devstoreaccount1") is None
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:8080")
    assert environment_proxies("http://acct.example/") == {"http": "http://plain.example:8080"}
    store = AzureTableStore("UseDevelopmentStorage=true")
    transport = store._service._client._client._pipeline._transport
    assert transport._use_env_settings is False  # no per-request lookup in a thread
    await store.close()
