"""Calling timer and queue functions as the Python worker does.

The trigger value is decoded by azure-functions' own converters from the datum the host would send:
``TimerRequestConverter`` from the ``TimerInfo`` JSON (PascalCase ``Schedule``/``ScheduleStatus``/
``IsPastDue``, af ``timer.py``), ``QueueMessageInConverter`` from the message text and the trigger metadata
of ``QueueTriggerBinding.CreateBindingData`` (``Id``, ``DequeueCount``, ``InsertionTime``,
``ExpirationTime``, ``NextVisibleTime``, ``PopReceipt``; af ``queue.py``). A trigger parameter annotated
``str`` (or ``bytes``) takes the worker's generic binding and receives the raw value instead.

A durable client parameter receives the binding JSON string (protocol §5.1). Sync functions run on a
worker thread with no running event loop and async ones on the user-code event loop, as the worker runs
them (``azure_functions_runtime`` ``handle_event.invocation_request``; azure-fidelity-notes §3), never on
the host's loop (durablehost.functions.workers). A function
without a ``$return`` binding that returns something fails, as in the worker ("function … without a
$return binding returned a non-None value").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter

from durablehost.errors import InvocationError
from durablehost.functions import InvocationContext
from durablehost.functions.index import CONTEXT_PARAM
from durablehost.functions.workers import UserCode
from durablehost.triggers.monitor import ScheduleStatus
from durablehost.triggers.plan import TriggerFunction

# Calls a trigger function with its trigger value (TriggerListeners._invoke).
Invoke = Callable[[TriggerFunction, Any], Awaitable[None]]

# .NET's default(DateTime), which a status that was never set carries.
_NEVER = "0001-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class ReceivedMessage:
    """A queue message as received: its text as stored and the service's metadata."""

    id: str
    body: bytes  # the decoded content the function sees
    dequeue_count: int
    insertion_time: datetime | None
    expiration_time: datetime | None
    next_visible_time: datetime | None
    pop_receipt: str


def timer_info_json(
    *, adjust_for_dst: bool, status: ScheduleStatus | None, past_due: bool, zone: tzinfo
) -> str:
    """The ``TimerInfo`` the host sends the worker; ``status`` None when the monitor is off."""
    schedule_status = None
    if status is not None:
        schedule_status = {
            "Last": _local(status.last, zone),
            "Next": _local(status.next, zone),
            "LastUpdated": _local(status.last_updated, zone),
        }
    return json.dumps(
        {
            "Schedule": {"AdjustForDST": adjust_for_dst},
            "ScheduleStatus": schedule_status,
            "IsPastDue": past_due,
        }
    )


def _local(moment: datetime | None, zone: tzinfo) -> str:
    """A local DateTime as Json.NET writes it: ISO 8601 with the offset, fraction only when not zero."""
    if moment is None:
        return _NEVER
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    offset = local.strftime("%z") or "+0000"
    return f"{text}{offset[:3]}:{offset[3:]}"


def timer_argument(fn: TriggerFunction, info_json: str) -> Any:
    if fn.trigger_annotation is str:
        return info_json
    return TimerRequestConverter.decode(meta.Datum(type="json", value=info_json), trigger_metadata=None)


def queue_argument(fn: TriggerFunction, message: ReceivedMessage) -> Any:
    try:
        payload = meta.Datum(type="string", value=message.body.decode("utf-8"))
    except UnicodeDecodeError:
        payload = meta.Datum(type="bytes", value=message.body)
    if fn.trigger_annotation in (str, bytes):
        return payload.value
    metadata = {
        "Id": meta.Datum(type="string", value=message.id),
        "DequeueCount": meta.Datum(type="int", value=message.dequeue_count),
        "InsertionTime": _time_datum(message.insertion_time),
        "ExpirationTime": _time_datum(message.expiration_time),
        "NextVisibleTime": _time_datum(message.next_visible_time),
        "PopReceipt": meta.Datum(type="string", value=message.pop_receipt),
    }
    return QueueMessageInConverter.decode(
        payload, trigger_metadata={k: v for k, v in metadata.items() if v is not None}
    )


def _time_datum(moment: datetime | None) -> meta.Datum | None:
    if moment is None:
        return None
    return meta.Datum(type="string", value=moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"))


async def call_trigger_function(
    fn: TriggerFunction, argument: Any, client_binding_json: str | None, *, workers: UserCode
) -> None:
    """Invoke once; whatever the function raises propagates (the caller logs it or fails the message)."""
    kwargs: dict[str, Any] = {fn.info.trigger_param: argument}
    if fn.client_param is not None:
        if client_binding_json is None:
            raise InvocationError(f"function '{fn.name}' needs a durable client binding JSON, none was given")
        kwargs[fn.client_param] = client_binding_json
    if fn.wants_context:
        kwargs[CONTEXT_PARAM] = InvocationContext(fn.name, str(fn.info.app_dir))
    if fn.is_async:
        result = await workers.run_async(fn.info.handler(**kwargs))
    else:
        result = await workers.run_sync(fn.info.handler, **kwargs)
    if result is not None:
        raise InvocationError(
            f"function '{fn.name}' without a $return binding returned a non-None value "
            f"({type(result).__name__})"
        )
