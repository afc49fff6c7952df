"""The queue listener of one queue function, following the storage extension's ``QueueListener`` and
``QueueProcessor`` (Microsoft.Azure.WebJobs.Extensions.Storage 5.x; azure-fidelity-notes §5).

* Polling: a batch of up to ``batchSize`` messages is received, each processed concurrently; once the
  messages in flight fall to ``newBatchThreshold`` the next batch is fetched at once. An empty or failed
  poll waits with randomized exponential back-off, 100 ms growing to ``maxPollingInterval``, reset once a
  poll finds messages. A queue that does not exist is waited for, not created.
* Visibility: messages are received invisible for 10 minutes, renewed at half of that while the function
  runs, so a host that dies releases them within 10 minutes (with their dequeue count incremented).
* Success deletes the message. Failure releases it with ``visibilityTimeout`` (default 0: retried at once),
  or moves it to ``<queue>-poison`` once its dequeue count reached ``maxDequeueCount``. A message received
  with a dequeue count above ``maxDequeueCount`` is poisoned without running the function.
* Poisoning adds the same text to the poison queue (created if missing; the copy gets a new id and a
  dequeue count of 1 when read) and deletes the original. A queue named ``…-poison``, or whose poison name
  would be over 63 characters, has no poison queue: its failed messages are not released and stay
  invisible until their visibility lapses.
* Encoding: with ``messageEncoding`` base64 (the default) the text is base64-decoded; a message that is not
  valid base64 goes to the poison queue at once, without running the function (the extension's
  ``MessageDecodingFailed`` handler). With ``none`` the text is the body.
* A deleted or released message whose pop receipt no longer matches, or that is gone, is left alone.

Queues run in real time, also in the test harness: visibility and polling are the queue service's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import random
from datetime import timedelta

from durablehost.triggers.azure_queues import (
    AzureQueue,
    QueueError,
    QueueMissing,
    RawMessage,
    ReceiptMismatch,
)
from durablehost.triggers.invoke import Invoke, ReceivedMessage, queue_argument
from durablehost.triggers.options import ListenerTimings
from durablehost.triggers.plan import QueuePlan

log = logging.getLogger("durablehost.triggers")

MIN_POLLING = timedelta(milliseconds=100)  # QueuePollingIntervals.Minimum
_JITTER = 0.2  # RandomizedExponentialBackoffStrategy.RandomizationFactor


class PollingBackoff:
    """``RandomizedExponentialBackoffStrategy``: 100 ms, then 100 ms + (0.8-1.2) x 2^(k-1) x 100 ms, up to the
    maximum; back to 100 ms after a poll that found messages."""

    def __init__(self, maximum: timedelta, minimum: timedelta = MIN_POLLING) -> None:
        self.minimum = minimum.total_seconds()
        self.maximum = max(maximum.total_seconds(), self.minimum)
        self._current = 0.0
        self._exponent = 0

    def next_delay(self, found_messages: bool) -> float:
        if found_messages:
            self._current, self._exponent = self.minimum, 1
        elif self._current != self.maximum:
            delay = self.minimum
            if self._exponent > 0:
                delay += random.uniform(1 - _JITTER, 1 + _JITTER) * 2 ** (self._exponent - 1) * self.minimum
            if delay < self.maximum:
                self._current = delay
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


def decode_body(text: str, encoding: str) -> bytes | None:
    """The body of a message text; None if base64 was expected and the text is not base64.

    .NET's ``Convert.FromBase64String`` ignores white space and needs the padding; so does this.
    """
    if encoding == "none":
        return text.encode("utf-8")
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


class QueueListener:
    def __init__(
        self,
        plan: QueuePlan,
        *,
        queue: AzureQueue,
        poison: AzureQueue | None,
        timings: ListenerTimings,
        invoke: Invoke,
        errors: list[BaseException],
        processors: int | None = None,
    ) -> None:
        self.plan = plan
        self.name = plan.function.name
        self.queue = queue
        self.poison = poison
        self.options = plan.options
        self.timings = timings
        self._invoke = invoke
        self._errors = errors
        self._threshold = self.options.threshold(processors or os.cpu_count() or 1)
        self._backoff = PollingBackoff(self.options.max_polling_interval)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name=f"queue-{self.name}")

    async def stop(self, *, drain: bool = True) -> None:
        """Stop polling; with ``drain`` let messages in flight finish (and be deleted or released)."""
        self._stopped.set()
        # The poll loop first: a receive it is waiting for may still add messages to those in flight.
        for group in ([self._task] if self._task is not None else [], self._in_flight):
            tasks = list(group)
            if not drain:
                for task in tasks:
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for client in (self.queue, self.poison):
            if client is not None:
                await client.close()

    def is_idle(self) -> bool:
        return not self._in_flight

    # ------------------------------------------------------------------ polling

    async def _poll(self) -> None:
        exists = False
        failing = False
        found = False
        while not self._stopped.is_set():
            messages: list[RawMessage] = []
            try:
                if not exists:
                    exists = await self.queue.exists()
                    if not exists:
                        log.debug(
                            "queue %r does not exist (yet); function %s waits for it",
                            self.queue.name,
                            self.name,
                        )
                if exists:
                    messages = await self.queue.receive(
                        self.options.batch_size, self.timings.queue_visibility
                    )
                if failing:
                    log.info("queue %r answers again (function %s)", self.queue.name, self.name)
                    failing = False
            except QueueError as exc:
                # Recheck existence after any error, as the extension does: the queue may have been deleted.
                exists = False
                if not failing:
                    log.warning(
                        "queue %r (function %s): %s; retrying with back-off", self.queue.name, self.name, exc
                    )
                    failing = True
            except Exception as exc:
                exists = False
                log.exception(
                    "queue %r (function %s): polling failed unexpectedly", self.queue.name, self.name
                )
                self._errors.append(exc)
            if messages:
                for message in messages:
                    task = asyncio.create_task(self._process(message), name=f"queue-message-{message.id}")
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                found = True
                await self._wait_for_threshold()
                continue
            delay = self._backoff.next_delay(found)
            found = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopped.wait()

    async def _wait_for_threshold(self) -> None:
        while len(self._in_flight) > self._threshold and not self._stopped.is_set():
            await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)

    # ------------------------------------------------------------------ one message

    async def _process(self, raw: RawMessage) -> None:
        try:
            await self._handle(raw)
        except Exception as exc:
            log.exception(
                "queue %r (function %s): handling message %s failed unexpectedly",
                self.queue.name,
                self.name,
                raw.id,
            )
            self._errors.append(exc)

    async def _handle(self, raw: RawMessage) -> None:
        limit = self.options.max_dequeue_count
        if raw.dequeue_count > limit:
            await self._to_poison(raw, raw.pop_receipt, f"it was dequeued {raw.dequeue_count} times")
            return
        body = decode_body(raw.text, self.options.message_encoding)
        if body is None:
            log.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s (queue %r, "
                "function %s: the text is not base64)",
                raw.id,
                self.queue.name,
                self.name,
            )
            await self._to_poison(raw, raw.pop_receipt, "its text is not base64")
            return
        message = ReceivedMessage(
            id=raw.id,
            body=body,
            dequeue_count=raw.dequeue_count,
            insertion_time=raw.inserted_on,
            expiration_time=raw.expires_on,
            next_visible_time=raw.next_visible_on,
            pop_receipt=raw.pop_receipt,
        )
        receipt = [raw.pop_receipt]  # renewals change it; deletes and releases need the latest
        renewing = asyncio.create_task(self._keep_invisible(raw.id, receipt))
        try:
            await self._invoke(self.plan.function, queue_argument(self.plan.function, message))
            succeeded = True
        except Exception:
            log.exception(
                "queue function %r failed on message %s (dequeue count %d of %d)",
                self.name,
                raw.id,
                raw.dequeue_count,
                limit,
            )
            succeeded = False
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if succeeded:
            await self._delete(raw.id, receipt[0])
        elif self.poison is None:
            log.warning(
                "queue %r has no poison queue; message %s stays invisible until its visibility lapses",
                self.queue.name,
                raw.id,
            )
        elif raw.dequeue_count >= limit:
            await self._to_poison(raw, receipt[0], f"it has reached MaxDequeueCount of {limit}")
        else:
            await self._release(raw.id, receipt[0])

    async def _keep_invisible(self, message_id: str, receipt: list[str]) -> None:
        """Renew the visibility at half of it while the function runs (the extension's
        ``UpdateQueueMessageVisibilityCommand``); after a failed renewal try again sooner, but not more
        often than ``min_renewal``."""
        visibility = self.timings.queue_visibility
        normal = (visibility / 2).total_seconds()
        delay = normal
        while True:
            await asyncio.sleep(delay)
            try:
                receipt[0] = await self.queue.set_visibility(message_id, receipt[0], visibility)
                delay = normal
            except (ReceiptMismatch, QueueMissing) as exc:
                log.warning(
                    "queue %r: message %s is no longer ours (%s); not renewing it",
                    self.queue.name,
                    message_id,
                    exc,
                )
                return
            except QueueError as exc:
                log.warning(
                    "queue %r: could not renew the visibility of message %s: %s",
                    self.queue.name,
                    message_id,
                    exc,
                )
                delay = max(delay / 2, self.timings.min_renewal.total_seconds())

    async def _delete(self, message_id: str, receipt: str) -> None:
        try:
            await self.queue.delete(message_id, receipt)
        except (ReceiptMismatch, QueueMissing) as exc:
            log.debug("queue %r: message %s was not deleted: %s", self.queue.name, message_id, exc)
            return
        except QueueError as exc:
            log.error(
                "queue %r: could not delete message %s after it was processed (%s); it will be "
                "delivered again",
                self.queue.name,
                message_id,
                exc,
            )
            return

    async def _release(self, message_id: str, receipt: str) -> None:
        try:
            await self.queue.set_visibility(message_id, receipt, self.options.visibility_timeout)
        except (ReceiptMismatch, QueueMissing) as exc:
            log.debug("queue %r: message %s was not released: %s", self.queue.name, message_id, exc)
        except QueueError as exc:
            log.error(
                "queue %r: could not release message %s (%s); it returns when its visibility lapses",
                self.queue.name,
                message_id,
                exc,
            )

    async def _to_poison(self, raw: RawMessage, receipt: str, why: str) -> None:
        if self.poison is None:
            log.warning(
                "queue %r has no poison queue; message %s (%s) stays invisible until its visibility lapses",
                self.queue.name,
                raw.id,
                why,
            )
            return
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'. (queue %r, "
            "message %s: %s)",
            self.options.max_dequeue_count,
            self.poison.name,
            self.queue.name,
            raw.id,
            why,
        )
        try:
            await self.poison.add_creating(raw.text)
        except QueueError as exc:
            log.error(
                "queue %r: could not add message %s to %r (%s); it returns when its visibility lapses",
                self.queue.name,
                raw.id,
                self.poison.name,
                exc,
            )
            return
        await self._delete(raw.id, receipt)
