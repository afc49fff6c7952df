"""Settings of the trigger listeners: host.json ``extensions.queues`` and durablehost's own timings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class QueuesOptions:
    """host.json ``extensions.queues``, with the storage extension's defaults and limits (``QueuesOptions.cs``
    of Microsoft.Azure.WebJobs.Extensions.Storage 5.x; azure-fidelity-notes §5). Read by
    ``durablehost.http.appconfig.read_host_json``."""

    batch_size: int = 16  # messages per receive, 1-32
    new_batch_threshold: int | None = None  # None: batch_size // 2 * processor count
    max_polling_interval: timedelta = timedelta(minutes=1)  # at least 100 ms
    visibility_timeout: timedelta = timedelta(0)  # how long a failed message stays invisible
    max_dequeue_count: int = 5  # at least 1
    message_encoding: str = "base64"  # or "none"

    def threshold(self, processors: int) -> int:
        """In-flight messages at or below which the next batch is fetched."""
        if self.new_batch_threshold is not None:
            return self.new_batch_threshold
        return self.batch_size // 2 * processors


@dataclass(frozen=True)
class ListenerTimings:
    """Timings that Azure fixes and tests shorten.

    * ``lease_duration``: a timer's singleton lease lasts this long unless renewed (renewed every third);
      Azure's listener lock is a 60 s blob lease, durablehost uses the engine's 15 s.
    * ``lease_retry``: how often a process without a timer's lease tries to take it (Azure: 1 min).
    * ``queue_visibility``: how long a received message stays invisible while its function runs; renewed at
      half of it, at least ``min_renewal`` apart (``QueueListener``: 10 min and 1 min).
    * ``probe_timeout``: how long the start-up check that a queue's account answers may take.
    """

    lease_duration: timedelta = timedelta(seconds=15)
    lease_retry: timedelta = timedelta(seconds=5)
    queue_visibility: timedelta = timedelta(minutes=10)
    min_renewal: timedelta = timedelta(minutes=1)
    probe_timeout: timedelta = timedelta(seconds=10)
