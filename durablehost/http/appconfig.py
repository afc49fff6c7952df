"""What ``durablehost start`` reads from the app folder: ``local.settings.json`` and ``host.json``.

As ``func start`` does, the ``Values`` of ``local.settings.json`` become environment variables unless
they are already set, and ``Host.LocalHttpPort`` is the default port. From ``host.json``:
``extensions.http.routePrefix`` (default ``api``), ``extensions.durableTask.hubName`` (default
``DurableHost``; ``%Setting%`` references are resolved from the environment),
``maxConcurrentActivityFunctions`` / ``maxConcurrentOrchestratorFunctions``, the versioning settings
``defaultVersion`` / ``versionMatchStrategy`` / ``versionFailureStrategy`` (durablehost.engine.versioning),
``storageProvider.partitionCount`` (1-16, default 4: the task hub's partitions, fixed when it is created);
``extensions.queues`` (the queue trigger's options, ``QueuesOptions``).

durablehost's own settings live in a top-level ``durablehost`` section, which the Functions host ignores
as it ignores every section it does not know (azure-functions-host#3718: a misplaced top-level ``http``
section was silently ignored in Azure); the Durable extension never sees it:
``{"durablehost": {"fidelity": "azure"}}`` makes durablehost behave as Azure does where it deliberately
differs (durablehost.engine.fidelity), and ``leaseDuration`` (a TimeSpan, default ``"00:00:15"``) sets how
long a partition lease lasts: how soon the partitions of a process that was killed (on another machine)
are taken over. ``detectDeadProcesses`` (a boolean, default ``true``) lets a process take the partitions of a
holder on the same machine whose pid is gone at once, without waiting for its leases to expire; ``false``
makes every take-over wait for the lease, as between machines (durablehost.engine.ownership).
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from durablehost.engine.fidelity import Fidelity
from durablehost.engine.placement import DEFAULT_PARTITIONS, validate_partition_count
from durablehost.engine.versioning import FailureStrategy, MatchStrategy, Versioning
from durablehost.triggers.options import QueuesOptions
from durablehost.triggers.timespan import TimeSpanError, parse_timespan

DEFAULT_HUB = "DurableHost"
DEFAULT_ROUTE_PREFIX = "api"
_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
_SETTING_REFERENCE = re.compile(r"^%([^%]+)%$")
_Choice = TypeVar("_Choice", bound=enum.StrEnum)


DEFAULT_LEASE = timedelta(seconds=15)


class ConfigError(ValueError):
    """The app's configuration files cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class HostJson:
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB
    max_activities: int | None = None
    max_orchestrations: int | None = None
    function_timeout: float | None = None  # seconds; host.json functionTimeout bounds each activity
    queues: QueuesOptions = field(default_factory=QueuesOptions)
    versioning: Versioning = field(default_factory=Versioning)
    fidelity: Fidelity = Fidelity.DURABLEHOST
    # extensions.durableTask.storageProvider.partitionCount (1-16, default 4, as in Azure)
    partition_count: int = DEFAULT_PARTITIONS
    lease_duration: timedelta = DEFAULT_LEASE  # durablehost.leaseDuration: how long a partition lease lasts
    # durablehost.detectDeadProcesses: take over at once from a holder on this machine whose pid is gone
    detect_dead_processes: bool = True


@dataclass(frozen=True)
class LocalSettings:
    values: dict[str, str]
    http_port: int | None


def _read_json(path: Path) -> Any:
    try:
        # utf-8-sig: files saved by Windows tools start with a BOM.
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read as JSON: {exc}") from exc


def read_local_settings(app_dir: Path) -> LocalSettings:
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return LocalSettings(values={}, http_port=None)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if data.get("IsEncrypted") is True:
        raise ConfigError(f"{path} is encrypted (IsEncrypted: true); durablehost reads plain settings only")
    raw_values = data.get("Values") or {}
    if not isinstance(raw_values, dict):
        raise ConfigError(f"{path}: 'Values' must be an object of settings")
    values = {str(k): "" if v is None else str(v) for k, v in raw_values.items()}
    port = (data.get("Host") or {}).get("LocalHttpPort") if isinstance(data.get("Host"), dict) else None
    if port is not None and not (isinstance(port, int) and 0 <= port <= 65535):
        raise ConfigError(f"{path}: Host.LocalHttpPort must be a port number, not {port!r}")
    return LocalSettings(values=values, http_port=port)


def apply_settings(values: dict[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Put settings into the environment unless already set (as ``func start``). Returns the names set."""
    applied = []
    for name, value in values.items():
        if name not in environ:
            environ[name] = value
            applied.append(name)
    return applied


def read_host_json(app_dir: Path, environ: MutableMapping[str, str] | None = None) -> HostJson:
    env = os.environ if environ is None else environ
    path = app_dir / "host.json"
    if not path.is_file():
        return HostJson()
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    extensions = _object(data, "extensions", path)
    http = _object(extensions, "http", path)
    durable = _object(extensions, "durableTask", path)
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    if not isinstance(prefix, str):
        raise ConfigError(f"{path}: extensions.http.routePrefix must be a string")
    hub = durable.get("hubName", DEFAULT_HUB)
    if not isinstance(hub, str):
        raise ConfigError(f"{path}: extensions.durableTask.hubName must be a string")
    reference = _SETTING_REFERENCE.match(hub)
    if reference is not None:
        hub = env.get(reference.group(1), "")
        if not hub:
            raise ConfigError(
                f"{path}: hubName refers to the setting {reference.group(1)!r}, which is not set"
            )
    validate_hub_name(hub, str(path))
    return HostJson(
        route_prefix=prefix.strip("/"),
        hub_name=hub,
        max_activities=_positive(durable, "maxConcurrentActivityFunctions", path),
        max_orchestrations=_positive(durable, "maxConcurrentOrchestratorFunctions", path),
        function_timeout=_timespan(data, "functionTimeout", path),
        queues=read_queues_options(extensions, path),
        versioning=_versioning(durable, path),
        fidelity=_fidelity(data, path),
        partition_count=_partition_count(durable, path),
        lease_duration=_lease_duration(data, path),
        detect_dead_processes=_detect_dead_processes(data, path),
    )


def _partition_count(durable: dict[str, Any], path: Path) -> int:
    provider = _object(durable, "storageProvider", path)
    value = provider.get("partitionCount", DEFAULT_PARTITIONS)
    try:
        validate_partition_count(value, f"{path}: extensions.durableTask.storageProvider")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return int(value)


def _lease_duration(data: dict[str, Any], path: Path) -> timedelta:
    """``durablehost.leaseDuration``: a TimeSpan of 2 s to 10 min (the Azure Storage provider's lease is
    not configurable from host.json; durablehost's default is 15 s, renewed every 5 s)."""
    value = _object(data, "durablehost", path).get("leaseDuration")
    if value is None:
        return DEFAULT_LEASE
    seconds = _timespan({"leaseDuration": value}, "leaseDuration", path)
    if seconds is None or not 2 <= seconds <= 600:
        raise ConfigError(
            f'{path}: durablehost.leaseDuration must be a TimeSpan from "00:00:02" to "00:10:00"'
        )
    return timedelta(seconds=seconds)


def _detect_dead_processes(data: dict[str, Any], path: Path) -> bool:
    """``durablehost.detectDeadProcesses``: a JSON boolean, default true. A quoted ``"false"`` is refused
    rather than read as true (a non-empty string), which would keep the behaviour it meant to turn off."""
    value = _object(data, "durablehost", path).get("detectDeadProcesses")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise ConfigError(
            f"{path}: durablehost.detectDeadProcesses must be true or false (a JSON boolean, unquoted), "
            f"not {value!r}"
        )
    return value


_QUEUE_KEYS = {
    "batchsize": "batchSize",
    "newbatchthreshold": "newBatchThreshold",
    "maxpollinginterval": "maxPollingInterval",
    "visibilitytimeout": "visibilityTimeout",
    "maxdequeuecount": "maxDequeueCount",
    "messageencoding": "messageEncoding",
}
_MIN_POLLING = timedelta(milliseconds=100)


def read_queues_options(extensions: dict[str, Any], path: Path) -> QueuesOptions:
    """``extensions.queues``. Keys are matched case-insensitively, as .NET binds configuration; an unknown
    key is refused (Azure ignores it, so a misspelt ``maxDequeueCount`` would silently keep 5)."""
    section = _object(extensions, "queues", path)
    values: dict[str, Any] = {}
    for key, value in section.items():
        known = _QUEUE_KEYS.get(key.lower())
        if known is None:
            raise ConfigError(
                f"{path}: extensions.queues.{key} is not a queue setting; the settings are "
                f"{', '.join(_QUEUE_KEYS.values())}"
            )
        values[known] = value
    defaults = QueuesOptions()
    where = f"{path}: extensions.queues"
    batch = _whole(values, "batchSize", where, low=1, high=32, default=defaults.batch_size)
    threshold = values.get("newBatchThreshold")
    polling = _queue_timespan(values, "maxPollingInterval", where, defaults.max_polling_interval)
    if polling < _MIN_POLLING:
        raise ConfigError(f"{where}.maxPollingInterval must be at least 00:00:00.1 (100 ms)")
    visibility = _queue_timespan(values, "visibilityTimeout", where, defaults.visibility_timeout)
    if visibility < timedelta(0) or visibility > timedelta(days=7):
        raise ConfigError(f"{where}.visibilityTimeout must be between 00:00:00 and 7.00:00:00")
    encoding = values.get("messageEncoding", defaults.message_encoding)
    if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
        raise ConfigError(
            f'{where}.messageEncoding must be "base64" (the default) or "none", not {encoding!r}'
        )
    return QueuesOptions(
        batch_size=batch,
        new_batch_threshold=None
        if threshold is None
        else _whole(values, "newBatchThreshold", where, low=0, high=None, default=0),
        max_polling_interval=polling,
        visibility_timeout=visibility,
        max_dequeue_count=_whole(values, "maxDequeueCount", where, low=1, high=None, default=5),
        message_encoding=encoding.lower(),
    )


def _whole(values: dict[str, Any], key: str, where: str, *, low: int, high: int | None, default: int) -> int:
    value = values.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigError(f"{where}.{key} must be a whole number {bounds}, not {value!r}")
    return value


def _queue_timespan(values: dict[str, Any], key: str, where: str, default: timedelta) -> timedelta:
    value = values.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        # Functions 1.x took milliseconds here; host.json 2.0 takes a TimeSpan string.
        raise ConfigError(f'{where}.{key} must be a TimeSpan string such as "00:00:02", not {value!r}')
    try:
        return parse_timespan(value)
    except TimeSpanError as exc:
        raise ConfigError(f"{where}.{key}: {exc}") from exc


def read_behaviour(app_dir: Path) -> tuple[Versioning, Fidelity]:
    """Only the versioning and fidelity settings of ``host.json`` (what the test harness reads)."""
    path = app_dir / "host.json"
    if not path.is_file():
        return Versioning(), Fidelity.DURABLEHOST
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    durable = _object(_object(data, "extensions", path), "durableTask", path)
    return _versioning(durable, path), _fidelity(data, path)


def _versioning(durable: dict[str, Any], path: Path) -> Versioning:
    """``defaultVersion`` is taken literally: the extension resolves no ``%Setting%`` in it
    (azure-functions-durable-extension#3279); null is the same as leaving it out."""
    version = durable.get("defaultVersion")
    if version is not None and not isinstance(version, str):
        raise ConfigError(
            f"{path}: extensions.durableTask.defaultVersion must be a string, not {version!r}; "
            f'quote it ("defaultVersion": "{version}") so it is compared as the text you mean'
        )
    return Versioning(
        default_version=version or "",
        match=_choice(durable, "versionMatchStrategy", MatchStrategy, MatchStrategy.CURRENT_OR_OLDER, path),
        failure=_choice(durable, "versionFailureStrategy", FailureStrategy, FailureStrategy.REJECT, path),
    )


def _choice(
    section: dict[str, Any], key: str, choices: type[_Choice], default: _Choice, path: Path
) -> _Choice:
    """An enum setting by name, case-insensitively as .NET's configuration binder reads it."""
    value = section.get(key)
    if value is None:
        return default
    for choice in choices:
        if isinstance(value, str) and value.strip().lower() == choice.value.lower():
            return choice
    names = ", ".join(f'"{c.value}"' for c in choices)
    raise ConfigError(
        f'{path}: extensions.durableTask.{key} must be one of {names} (default "{default.value}"), '
        f"not {value!r}"
    )


def _fidelity(data: dict[str, Any], path: Path) -> Fidelity:
    section = _object(data, "durablehost", path)
    unknown = sorted(set(section) - {"fidelity", "leaseDuration", "detectDeadProcesses"})
    if unknown:
        raise ConfigError(
            f"{path}: durablehost.{unknown[0]} is not a durablehost setting (the section holds fidelity, "
            "leaseDuration and detectDeadProcesses)"
        )
    value = section.get("fidelity", Fidelity.DURABLEHOST.value)
    try:
        return Fidelity.parse(value if isinstance(value, str) else repr(value))
    except ValueError as exc:
        raise ConfigError(f"{path}: durablehost.fidelity: {exc}") from None


def validate_hub_name(hub: str, where: str) -> None:
    # Azure's rule for task hub names: they become table and queue names.
    if not _HUB_NAME.match(hub):
        raise ConfigError(
            f"{where}: task hub name {hub!r} is invalid: "
            "use 3-45 ASCII letters and digits, starting with a letter"
        )


def _object(parent: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = parent.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key!r} must be an object")
    return value


def _positive(section: dict[str, Any], key: str, path: Path) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: extensions.durableTask.{key} must be a positive whole number")
    return value


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _timespan(section: dict[str, Any], key: str, path: Path) -> float | None:
    """A host.json TimeSpan (``hh:mm:ss`` or ``d.hh:mm:ss``) in seconds; ``-1`` means unlimited."""
    value = section.get(key)
    if value is None or value == "-1":
        return None
    match = _TIMESPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f'{path}: {key} must be a TimeSpan like "00:05:00" (or "-1"), not {value!r}')
    days, hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ConfigError(f"{path}: {key} must be longer than zero")
    return total
