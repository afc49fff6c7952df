"""Azure Storage queues through ``azure-storage-queue`` (aio): the one module that imports a queue client.

The client neither encodes nor decodes message text (its default ``NoEncodePolicy``/``NoDecodePolicy``):
the listener sees the text exactly as stored and decodes base64 itself, so that a message that is not
valid base64 can go to the poison queue as it is (durablehost.triggers.queue). Service errors are
translated into the few outcomes the listener distinguishes, named after the extension's checks
(``IsBadRequestPopReceiptMismatch``, ``IsNotFoundMessageOrQueueNotFound``, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.queue.aio import QueueClient

from durablehost.errors import DurableHostError


class QueueError(DurableHostError):
    """A queue operation failed; subclasses say how."""


class QueueMissing(QueueError):
    """The queue, or the message, does not exist (HTTP 404)."""


class ReceiptMismatch(QueueError):
    """The pop receipt is no longer the message's: someone else received it since (HTTP 400)."""


class QueueUnreachable(QueueError):
    """The account cannot be reached or refused us (network, credentials, server errors)."""


@dataclass(frozen=True)
class RawMessage:
    id: str
    text: str
    dequeue_count: int
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None
    pop_receipt: str


class AzureQueue:
    """One queue of one account."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        self.name = queue_name
        # A few quick retries for single operations (the storage SDK's default waits 15 s first); the
        # listener itself backs off between polls. These keywords configure the client's async retry policy.
        self._client = QueueClient.from_connection_string(
            connection_string,
            queue_name,
            retry_total=2,
            initial_backoff=1,
            increment_base=2,
            random_jitter_range=1,
        )

    @property
    def account(self) -> str:
        return str(self._client.account_name)

    async def probe(self, timeout: timedelta) -> None:
        """Check once, without retrying, that the account answers; QueueUnreachable says why not.

        A queue that does not exist yet is fine: the listener waits for it, as Azure's does.
        """
        try:
            await self._client.get_queue_properties(
                retry_total=0,
                connection_timeout=timeout.total_seconds(),
                read_timeout=timeout.total_seconds(),
            )
        except ResourceNotFoundError:
            return
        except ClientAuthenticationError as exc:
            raise QueueUnreachable(f"the account refused the credentials ({_short(exc)})") from exc
        except AzureError as exc:
            raise QueueUnreachable(_short(exc)) from exc

    async def exists(self) -> bool:
        try:
            await self._client.get_queue_properties()
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise _translate(exc) from exc
        return True

    async def receive(self, count: int, visibility: timedelta) -> list[RawMessage]:
        try:
            pages = self._client.receive_messages(
                messages_per_page=count, max_messages=count, visibility_timeout=_seconds(visibility)
            )
            return [
                RawMessage(
                    id=str(m.id),
                    text="" if m.content is None else str(m.content),
                    dequeue_count=int(m.dequeue_count or 0),
                    inserted_on=m.inserted_on,
                    expires_on=m.expires_on,
                    next_visible_on=m.next_visible_on,
                    pop_receipt=str(m.pop_receipt),
                )
                async for m in pages
            ]
        except AzureError as exc:
            raise _translate(exc) from exc

    async def set_visibility(self, message_id: str, pop_receipt: str, visibility: timedelta) -> str:
        """Make the message visible again after ``visibility``; returns the new pop receipt."""
        try:
            updated = await self._client.update_message(
                message_id, pop_receipt=pop_receipt, visibility_timeout=_seconds(visibility, minimum=0)
            )
        except AzureError as exc:
            raise _translate(exc) from exc
        return str(updated.pop_receipt)

    async def delete(self, message_id: str, pop_receipt: str) -> None:
        try:
            await self._client.delete_message(message_id, pop_receipt)
        except AzureError as exc:
            raise _translate(exc) from exc

    async def add_creating(self, text: str) -> None:
        """Add a message, creating the queue if it does not exist (``AddMessageAndCreateIfNotExists``)."""
        try:
            await self._client.send_message(text)
            return
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise _translate(exc) from exc
        try:
            try:
                await self._client.create_queue()
            except HttpResponseError as exc:
                if _code(exc) != "QueueAlreadyExists":
                    raise
            await self._client.send_message(text)
        except AzureError as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        await self._client.close()


def _seconds(value: timedelta, minimum: int = 1) -> int:
    return max(minimum, round(value.total_seconds()))


def _translate(exc: AzureError) -> QueueError:
    if isinstance(exc, ResourceNotFoundError):
        return QueueMissing(_short(exc))
    if isinstance(exc, HttpResponseError) and _code(exc) == "PopReceiptMismatch":
        return ReceiptMismatch(_short(exc))
    if isinstance(exc, ServiceRequestError | ClientAuthenticationError):
        return QueueUnreachable(_short(exc))
    if isinstance(exc, HttpResponseError) and exc.status_code is not None and exc.status_code >= 500:
        return QueueUnreachable(_short(exc))
    return QueueError(_short(exc))


def _short(exc: AzureError) -> str:
    first = str(exc.message if exc.message else exc).strip().splitlines()
    return first[0] if first else type(exc).__name__


def _code(exc: HttpResponseError) -> str | None:
    # The storage SDK puts the service's error code (x-ms-error-code) on the exception it raises.
    code = getattr(exc, "error_code", None)
    return str(code) if code is not None else None
