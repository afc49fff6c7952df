"""Shared fixtures. ``azurite`` starts one in-memory Azurite for the whole session on free ports.

Tests that need it fail (never skip) when Azurite cannot start: the error says what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durablehost.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running in-memory Azurite (blob, queue, table) on free loopback ports, stopped after the session."""
    with Azurite() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_connection_string(azurite: Azurite) -> str:
    """Connection string (devstoreaccount1, explicit endpoints) of the session's Azurite."""
    return azurite.connection_string
