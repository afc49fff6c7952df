"""Choosing the store for ``durablehost start``.

``--store`` wins; without it the app setting ``AzureWebJobsStorage`` decides, as for ``func start``;
with neither, a SQLite file in ``<app-dir>/.durablehost/state.sqlite``. ``azurite`` and
``UseDevelopmentStorage=true`` mean Azurite on the standard ports: one already listening there is reused,
otherwise durablehost starts one from the project's ``node_modules`` (data kept in
``<app-dir>/.durablehost/azurite``) and stops it on exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from durablehost.azurite import STANDARD_PORTS, Azurite, connection_string, standard_ports_in_use
from durablehost.errors import AzuriteError
from durablehost.store import SPEC_FORMS, TableStore, open_store

STORAGE_SETTING = "AzureWebJobsStorage"
STATE_DIR = ".durablehost"


@dataclass
class StoreChoice:
    store: TableStore
    source: str  # where the choice came from, for the banner
    azurite: Azurite | None = None  # started by us: stop it on exit

    async def close(self) -> None:
        """Close the store, and stop an Azurite we started even if closing the store fails."""
        try:
            await self.store.close()
        finally:
            if self.azurite is not None:
                await self.azurite.stop_async()


def _is_development_storage(spec: str) -> bool:
    fields = {
        key.strip().lower(): value.strip().lower()
        for key, _, value in (part.partition("=") for part in spec.split(";"))
    }
    return fields.get("usedevelopmentstorage") == "true"


async def choose_store(option: str | None, setting: str | None, app_dir: Path) -> StoreChoice:
    """Open the store; ValueError for a spec that is none of the accepted forms, AzuriteError for Azurite."""
    if option is not None:
        spec, source = option.strip(), "--store"
        if not spec:
            raise ValueError(f"--store is empty; accepted forms: 'azurite', {SPEC_FORMS}")
    elif setting and setting.strip():
        spec, source = setting.strip(), f"app setting {STORAGE_SETTING}"
    else:
        state = app_dir / STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
        spec, source = f"sqlite:{state / 'state.sqlite'}", "default"
    if spec.lower() == "azurite" or _is_development_storage(spec):
        return await _azurite(app_dir, source)
    return StoreChoice(open_store(spec), source)


async def _azurite(app_dir: Path, source: str) -> StoreChoice:
    busy = standard_ports_in_use()
    if STANDARD_PORTS.table in busy:
        return StoreChoice(
            open_store(connection_string(STANDARD_PORTS)), f"{source}, Azurite already running"
        )
    if busy:
        raise AzuriteError(
            f"ports {busy} are in use but nothing serves Azurite's table port {STANDARD_PORTS.table}; "
            "stop whatever holds them, or choose another store with --store"
        )
    location = app_dir / STATE_DIR / "azurite"
    location.mkdir(parents=True, exist_ok=True)
    azurite = Azurite(ports=STANDARD_PORTS, location=location)
    await azurite.start_async()
    try:
        store = open_store(azurite.connection_string)
    except Exception:
        await azurite.stop_async()
        raise
    return StoreChoice(store, f"{source}, Azurite started by durablehost (pid {azurite.pid})", azurite)
