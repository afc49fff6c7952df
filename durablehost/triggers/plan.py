"""Which non-HTTP, non-durable functions durablehost serves, how, and why not.

Built once from the app's ``FunctionInfo`` (the same for decorator and function.json apps) and the settings,
before anything listens, so that ``durablehost start --list``, the banner and the listeners agree. Each
timer or queue function gets a ``TimerPlan`` or ``QueuePlan``; every other trigger type (blob, Service Bus,
Event Grid, Event Hubs, Cosmos DB, Kafka, …) a ``NotServed`` with the reason — never nothing.

A function disabled by the ``AzureWebJobs.<name>.Disabled`` app setting (``FunctionInfo.disabled_by``) gets no
listener, as the WebJobs SDK's ``HostListenerFactory`` creates none ("Function 'X' is disabled"): a
``NotServed`` that names the setting. Its bindings are still read first, as the host indexes a disabled
function like any other, so a configuration error in it is still reported as one.

``NotServed.config_error`` separates mistakes in the app's configuration (a bad schedule, a setting that a
``%Setting%`` names but that is not set, a connection setting that is not a connection string, parameters
no binding fills) from functions that simply cannot run here (a trigger type durablehost has no listener
for, a binding it cannot supply, no storage account configured): ``durablehost start`` lists both and logs
the first as errors, as the Functions host does for a function that fails indexing; the test harness raises
the first.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from durablehost.functions import FunctionInfo
from durablehost.functions.index import (
    ACTIVITY_TRIGGER,
    CONTEXT_PARAM,
    ENTITY_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
)
from durablehost.triggers.options import QueuesOptions
from durablehost.triggers.schedule import (
    Schedule,
    ScheduleError,
    parse_schedule,
    resolve_settings,
    schedule_zone,
)

TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
# Served by the engine and the HTTP server, not by a listener of this package.
SERVED_ELSEWHERE = frozenset({ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER, HTTP_TRIGGER})
# `orchestrationClient` is the extension's older name of the binding, still used by function.json apps
# (azure-fidelity-notes §1.3).
CLIENT_BINDINGS = frozenset({"durableclient", "orchestrationclient"})
DEFAULT_CONNECTION = "AzureWebJobsStorage"
_WEBJOBS_PREFIX = "AzureWebJobs"
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
POISON_SUFFIX = "-poison"


@dataclass(frozen=True)
class TriggerFunction:
    """How to call one timer or queue function (as the worker calls it)."""

    info: FunctionInfo
    client_param: str | None  # the durable client binding's parameter, if any
    wants_context: bool  # a `context` parameter that is not a binding receives func.Context
    is_async: bool
    trigger_annotation: Any  # the trigger parameter's annotation: str/bytes get the raw value

    @property
    def name(self) -> str:
        return self.info.name


@dataclass(frozen=True)
class TimerPlan:
    function: TriggerFunction
    schedule: Schedule
    zone: tzinfo  # where cron schedules are evaluated and times are shown to the function
    written: str  # the schedule as written
    resolved: str  # after %Setting% resolution
    run_on_startup: bool
    use_monitor: bool  # as it applies: off for schedules that fire more than once a minute
    monitor_turned_off: bool  # useMonitor was on but the schedule is sub-minute (TimerSchedule.Create)

    def describe(self) -> str:
        flags = [self.schedule.describe()]
        if self.written != self.resolved:
            flags[0] += f" (from {self.written})"
        if self.run_on_startup:
            flags.append("runOnStartup")
        if self.monitor_turned_off:
            flags.append("monitor off (fires more than once a minute)")
        elif not self.use_monitor:
            flags.append("monitor off")
        return "served: " + ", ".join(flags)


@dataclass(frozen=True)
class QueuePlan:
    function: TriggerFunction
    queue_name: str  # resolved and lower-cased, as the extension normalises it
    connection_setting: str  # the setting the connection string came from
    connection_string: str = field(repr=False)  # holds the account key: never printed
    account: str  # where the queue is, for the banner (no secrets)
    options: QueuesOptions

    @property
    def poison_queue(self) -> str | None:
        """``<queue>-poison``; none for a poison queue itself, or when the name would be over 63 characters
        (``QueueListenerFactory.CreatePoisonQueueReference``)."""
        if self.queue_name.endswith(POISON_SUFFIX) or len(self.queue_name) + len(POISON_SUFFIX) > 63:
            return None
        return self.queue_name + POISON_SUFFIX

    def describe(self) -> str:
        return f"served: queue '{self.queue_name}' on {self.account} (connection {self.connection_setting})"


@dataclass(frozen=True)
class NotServed:
    info: FunctionInfo
    reason: str
    config_error: bool

    @property
    def disabled(self) -> bool:
        """Not served because an app setting disables it (the reason names the setting)."""
        return self.info.disabled_by is not None and not self.config_error

    def describe(self) -> str:
        return f"NOT SERVED: {self.reason}"


TriggerEntry = TimerPlan | QueuePlan | NotServed


def plan_triggers(
    functions: Iterable[FunctionInfo], environ: Mapping[str, str], queues: QueuesOptions
) -> dict[str, TriggerEntry]:
    """An entry for every function not served by the engine or the HTTP server, by function name.

    ``environ`` holds the app settings (``%Setting%`` references, connection strings, the time zone); an
    unusable time zone setting is reported on each timer function rather than refusing the whole app.
    """
    zone: tzinfo | ScheduleError
    try:
        zone = schedule_zone(environ)
    except ScheduleError as exc:
        zone = exc
    entries: dict[str, TriggerEntry] = {}
    for info in functions:
        if info.trigger_type in SERVED_ELSEWHERE:
            continue
        entry: TriggerEntry
        if info.trigger_type == TIMER_TRIGGER:
            entry = _guarded(info, functools.partial(_timer, info, environ, zone))
        elif info.trigger_type == QUEUE_TRIGGER:
            entry = _guarded(info, functools.partial(_queue, info, environ, queues))
        else:
            entry = NotServed(
                info,
                f"durablehost has no listener for {info.trigger_type} functions (it serves HTTP, timer and "
                "queue triggers and durable functions); it never runs here",
                config_error=False,
            )
        entries[info.name] = _unless_disabled(entry)
    return entries


def _unless_disabled(entry: TriggerEntry) -> TriggerEntry:
    """A disabled function's entry: no listener, unless its configuration is wrong (module docstring)."""
    info = entry.info if isinstance(entry, NotServed) else entry.function.info
    if info.disabled_by is None or (isinstance(entry, NotServed) and entry.config_error):
        return entry
    return NotServed(
        info,
        f"disabled by the app setting {info.disabled_by}; remove the setting (or set it to false) to run it",
        config_error=False,
    )


class _Refusal(Exception):
    def __init__(self, reason: str, *, config_error: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.config_error = config_error


def _guarded(info: FunctionInfo, build: Callable[[], TriggerEntry]) -> TriggerEntry:
    try:
        entry = build()
    except _Refusal as refusal:
        return NotServed(info, refusal.reason, refusal.config_error)
    except ScheduleError as exc:
        return NotServed(info, str(exc), config_error=True)
    return entry


def _trigger_settings(info: FunctionInfo) -> Mapping[str, Any]:
    return next(b.settings for b in info.bindings if b.name == info.trigger_param)


def _function(info: FunctionInfo) -> TriggerFunction:
    client = next((b for b in info.bindings if b.type.lower() in CLIENT_BINDINGS), None)
    others = [b for b in info.bindings if b.name != info.trigger_param and b is not client]
    if others:
        listing = ", ".join(f"{b.name!r} ({b.type}, {b.direction})" for b in others)
        raise _Refusal(
            f"durablehost cannot supply the binding(s) {listing}; only the trigger and a durable client "
            "binding are served",
            config_error=False,
        )
    parameters = inspect.signature(info.handler).parameters
    names = {b.name for b in info.bindings}
    wants_context = CONTEXT_PARAM not in names and CONTEXT_PARAM in parameters
    supplied = names | ({CONTEXT_PARAM} if wants_context else set())
    missing = [
        p.name
        for p in parameters.values()
        if p.name not in supplied
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if missing:
        raise _Refusal(
            f"parameter(s) {', '.join(missing)} match no binding (bindings: {', '.join(sorted(names))}); "
            "the Functions worker refuses it too",
            config_error=True,
        )
    return TriggerFunction(
        info=info,
        client_param=client.name if client is not None else None,
        wants_context=wants_context,
        is_async=inspect.iscoroutinefunction(info.handler),
        trigger_annotation=_annotation(info),
    )


def _annotation(info: FunctionInfo) -> Any:
    """The trigger parameter's annotation, evaluated as the worker does (``typing.get_type_hints``), so
    that ``from __future__ import annotations`` gives ``str`` and not ``'str'``."""
    try:
        parameters = inspect.signature(info.handler, eval_str=True).parameters
    except (NameError, AttributeError, TypeError, SyntaxError):
        # An annotation that cannot be evaluated (a name only imported under TYPE_CHECKING) is no str/bytes.
        return inspect.Parameter.empty
    trigger = parameters.get(info.trigger_param)
    return trigger.annotation if trigger is not None else inspect.Parameter.empty


def _flag(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # function.json written by hand may quote it
    if not isinstance(value, bool):
        raise _Refusal(f"{key} must be true or false, not {value!r}", config_error=True)
    return value


def _timer(info: FunctionInfo, environ: Mapping[str, str], zone: tzinfo | ScheduleError) -> TimerPlan:
    settings = _trigger_settings(info)
    raw = settings.get("schedule")
    if not isinstance(raw, str) or not raw.strip():
        raise _Refusal(
            "the timer trigger has no schedule; set schedule to an NCRONTAB expression", config_error=True
        )
    text = resolve_settings(raw, environ, f"the schedule {raw!r}")
    if isinstance(zone, ScheduleError):
        raise zone
    schedule = parse_schedule(text, zone)
    use_monitor = _flag(settings, "useMonitor", True)
    sub_minute = use_monitor and not schedule.monitor_allowed
    return TimerPlan(
        function=_function(info),
        schedule=schedule,
        zone=zone,
        written=raw,
        resolved=text,
        run_on_startup=_flag(settings, "runOnStartup", False),
        use_monitor=use_monitor and not sub_minute,
        monitor_turned_off=sub_minute,
    )


def _queue(info: FunctionInfo, environ: Mapping[str, str], options: QueuesOptions) -> QueuePlan:
    settings = _trigger_settings(info)
    raw_name = settings.get("queueName")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise _Refusal("the queue trigger has no queueName", config_error=True)
    # The extension resolves %Setting% and lower-cases the name "to be nice" before validating it
    # (QueueTriggerAttributeBindingProvider.NormalizeAndValidate).
    name = resolve_settings(raw_name, environ, f"the queueName {raw_name!r}").lower()
    if not 3 <= len(name) <= 63 or not _QUEUE_NAME.match(name):
        raise _Refusal(
            f"the queue name {name!r} is invalid: use 3-63 lower-case letters, digits and single dashes, "
            "starting and ending with a letter or digit",
            config_error=True,
        )
    function = _function(info)
    connection = str(settings.get("connection") or DEFAULT_CONNECTION)
    setting, value = _connection(connection, environ)
    return QueuePlan(
        function=function,
        queue_name=name,
        connection_setting=setting,
        connection_string=value,
        account=_account(value, setting),
        options=options,
    )


def _connection(name: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """The setting and value a ``connection`` names: ``AzureWebJobs<name>`` first, then ``<name>``, as the
    WebJobs SDK's ``GetWebJobsConnectionString`` looks them up."""
    for candidate in (_WEBJOBS_PREFIX + name, name):
        value = (environ.get(candidate) or "").strip()
        if value:
            return candidate, value
    if any(key.startswith(f"{name}__") for key in environ):
        raise _Refusal(
            f"the connection {name!r} is identity-based ({name}__…); durablehost reads queues only with a "
            f"connection string: set {name} to one",
            config_error=False,
        )
    raise _Refusal(
        f"the connection setting {name!r} is not set, so there is no storage account to read the queue from; "
        f"set {name} to an Azure Storage connection string, or to UseDevelopmentStorage=true for Azurite on "
        "its standard ports",
        config_error=False,
    )


def _fields(connection_string: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in connection_string.split(";") if part.strip())
    return {key.strip().lower(): value.strip() for key, sep, value in pairs if sep}


def _account(connection_string: str, setting: str) -> str:
    fields = _fields(connection_string)
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return "Azurite (devstoreaccount1 at http://127.0.0.1:10001)"
    endpoint = fields.get("queueendpoint")
    if endpoint:
        return endpoint
    account = fields.get("accountname")
    if account and fields.get("accountkey"):
        suffix = fields.get("endpointsuffix", "core.windows.net")
        return f"account '{account}' (queue.{suffix})"
    raise _Refusal(
        f"the setting {setting!r} is not an Azure Storage connection string with a queue endpoint "
        "(AccountName=…;AccountKey=…, QueueEndpoint=…;SharedAccessSignature=…, "
        "or UseDevelopmentStorage=true)",
        config_error=True,
    )
