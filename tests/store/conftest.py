"""Fixtures of the store contract suite: every test runs on SQLite (file and memory) and on Azurite."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durablehost.store import SqliteTableStore, TableStore
from durablehost.store.azure_tables import AzureTableStore

_names = itertools.count()


@pytest.fixture(
    params=[
        "sqlite-file",
        "sqlite-memory",
        pytest.param("azurite", marks=pytest.mark.azurite),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TableStore]:
    """A TableStore of each kind; Azurite comes from the session fixture in tests/conftest.py."""
    opened: TableStore
    if request.param == "sqlite-file":
        opened = SqliteTableStore(tmp_path / "store.sqlite")
    elif request.param == "sqlite-memory":
        opened = SqliteTableStore(":memory:")
    else:
        opened = AzureTableStore(request.getfixturevalue("azurite_connection_string"))
    yield opened
    await opened.close()


@pytest.fixture
async def table(store: TableStore) -> AsyncIterator[str]:
    """A fresh, created table name (unique per test and per process, since Azurite is shared)."""
    name = f"t{os.getpid()}x{next(_names)}"
    await store.create_table(name)
    yield name
    await store.delete_table(name)
