"""Fake notification channel: logs the message and records it by idempotency key (one send per key)."""

from __future__ import annotations

import logging
from typing import Any

from shared.services.base import FakeService

logger = logging.getLogger(__name__)


class NotificationService(FakeService):
    """Sends reminders, escalations and outcome notices."""

    name = "notifications"

    def send(self, key: str, recipient: str, subject: str, body: str) -> dict[str, Any]:
        """Send once per key; a repeat returns the first receipt."""
        if not recipient:
            raise ValueError("a notification needs a recipient")

        def deliver() -> dict[str, Any]:
            logger.info("notification to %s: %s", recipient, subject)
            return {"recipient": recipient, "subject": subject, "body": body, "state": "sent"}

        return self._idempotent("send", key, deliver)
