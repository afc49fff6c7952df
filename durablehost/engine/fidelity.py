"""Fidelity: durablehost's own behaviour where it deliberately differs from Azure, or Azure's exactly.

``durablehost`` (the default) fixes what the Durable extension plus the Python SDK get wrong or leave
rough; ``azure`` reproduces the extension, so an app tested locally cannot pass here and fail in Azure.
The README's "Differences from Azure" lists every difference. What ``azure`` changes:

* External events enter history as they arrive (extension: every EventRaised is appended, notes §7.2),
  instead of one per outstanding wait. The SDK then hands an event raised before its wait to every later
  wait of that name, and of two early events the last wins (azure-functions-durable-python#507); events
  nobody waited for are gone after continue-as-new (the shim's ``ContinueAsNew`` preserves none).
* The trigger payload carries the Azure Storage provider's timer limits, so the SDK splits timers longer
  than 6 days into 3-day slices, with the extra timers and sequence ids that costs (protocol §2.6).
* The instance name is the caller's spelling of the orchestrator, a raised event's ``Idempotency-Key`` is
  ignored, an entity signal's body reaches the entity unchanged, and a version-mismatch failure's output
  is Azure's text alone.
* Episodes of the OpenAI Agents integration's orchestrators run concurrently on the orchestrator pool, as
  on the worker's thread pool, instead of one at a time: they race for the integration's process-wide
  runner (durablehost.functions.agent_runner).

Event delivery and timer slicing are settled per instance when it is created (``InstanceRecord.fidelity``),
so a history keeps replaying the way it was built whatever mode a later process runs in; how episodes
share threads is the running process's.
"""

from __future__ import annotations

import enum
from typing import Any


class Fidelity(enum.StrEnum):
    DURABLEHOST = "durablehost"
    AZURE = "azure"

    @classmethod
    def parse(cls, text: str) -> Fidelity:
        """A fidelity by name (case-insensitive); ValueError naming the choices otherwise."""
        for fidelity in cls:
            if fidelity.value == text.lower():
                return fidelity
        raise ValueError(f"unknown fidelity {text!r}; use one of: {', '.join(f.value for f in cls)}")


# What the extension adds to every trigger payload with the Azure Storage provider (ext
# OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString; AzureStorageDurabilityProvider:
# MaximumDelayTime 6 days, LongRunningTimerIntervalLength 3 days), as .NET TimeSpan text.
AZURE_PAYLOAD_FIELDS: dict[str, Any] = {
    "maximumShortTimerDuration": "6.00:00:00",
    "longRunningTimerIntervalDuration": "3.00:00:00",
    "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
}


def payload_fields(fidelity: Fidelity) -> dict[str, Any]:
    """Trigger payload fields beyond protocol §1.2's that this fidelity sends."""
    return dict(AZURE_PAYLOAD_FIELDS) if fidelity is Fidelity.AZURE else {}


__all__ = ["AZURE_PAYLOAD_FIELDS", "Fidelity", "payload_fields"]
