"""Table storage for durablehost: the TableStore port, its two implementations and ``open_store``."""

from __future__ import annotations

from durablehost.store.base import (
    MAX_PAGE_SIZE,
    Comparison,
    Condition,
    Entity,
    Op,
    OpKind,
    Page,
    Properties,
    PropertyValue,
    TableStore,
    UpdateMode,
)
from durablehost.store.limits import InvalidValue
from durablehost.store.sqlite import SqliteTableStore

SPEC_FORMS = (
    "'memory' (in-memory SQLite), 'sqlite:PATH' (SQLite file), or an Azure Storage connection string "
    "('UseDevelopmentStorage=true' or 'DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...')"
)


def open_store(spec: str) -> TableStore:
    """Open a store from a spec: ``memory``, ``sqlite:PATH`` or an Azure Storage connection string.

    Raises ValueError naming the accepted forms when ``spec`` is none of them.
    """
    text = spec.strip()
    if text == "memory":
        return SqliteTableStore(":memory:")
    if text.startswith("sqlite:"):
        path = text.removeprefix("sqlite:")
        if not path:
            raise ValueError(f"store spec {spec!r} has no path; accepted forms: {SPEC_FORMS}")
        return SqliteTableStore(path)
    fields = {part.partition("=")[0].strip().lower() for part in text.split(";") if "=" in part}
    if "usedevelopmentstorage" in fields or ("accountname" in fields and "accountkey" in fields):
        # Imported lazily: the Azure SDK takes a noticeable time to import and SQLite users never need it.
        from durablehost.store.azure_tables import AzureTableStore

        return AzureTableStore(text)
    raise ValueError(f"unrecognised store spec {spec!r}; accepted forms: {SPEC_FORMS}")


__all__ = [
    "MAX_PAGE_SIZE",
    "Comparison",
    "Condition",
    "Entity",
    "InvalidValue",
    "Op",
    "OpKind",
    "Page",
    "Properties",
    "PropertyValue",
    "SqliteTableStore",
    "TableStore",
    "UpdateMode",
    "open_store",
]
