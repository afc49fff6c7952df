"""Notifications: approval reminders, escalations, outcome notices."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities._runtime import services

bp = df.Blueprint()


@bp.activity_trigger(input_name="message")
def send_notification(message: dict) -> dict[str, Any]:
    """Send ``{"key", "recipient", "subject", "body"}`` once per idempotency key; returns the receipt.
    Raises TransientServiceError when a failure is injected."""
    return services().notifications.send(
        key=message["key"],
        recipient=message["recipient"],
        subject=message["subject"],
        body=message.get("body", ""),
    )
