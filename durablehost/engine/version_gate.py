"""The version check before every episode of an orchestration, and what a refusal does.

DTFx checks the instance's version before user code runs (TaskOrchestrationDispatcher, durablehost's
``versioning.py`` has the rules). A refusal with ``Reject`` abandons the work item: nothing is written,
and the queue message comes back after ``2^n`` seconds, at most 600 (DTFx.AzureStorage
``TaskHubQueue.AbandonMessageAsync``, n = its dequeue count). Here the partition's owner is the one
process that can take the work item, so "abandon" means: run no episode, write nothing, look again
after the same back-off — or whenever something new arrives for the instance, as a new message would
bring the work item back in Azure. Another process, with a host.json that permits the version, runs
the instance once it owns the partition (a hand-over or a restart); until then the instance waits, as
in Azure, where old workers still holding control queues delay newer instances the same way.
Activities, timers and children the instance scheduled before keep running here (DTFx checks only
orchestration work items); their outcomes are stored and wait for the episode.

With ``Fail`` the instance fails instead, with DTFx's FailureDetails.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from durablehost.engine import history as h
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import HistoryEvent
from durablehost.engine.records import InstanceRecord, RuntimeStatus
from durablehost.engine.versioning import MISMATCH_ERROR_TYPE, MISMATCH_MESSAGE, FailureStrategy, Versioning

log = logging.getLogger("durablehost.dispatcher")

MAX_REJECT_DELAY = 600.0  # seconds, DTFx.AzureStorage's longest abandon delay


class Verdict(enum.Enum):
    RUN = "run"
    REJECT = "reject"  # leave the instance as it is and look again later
    FAIL = "fail"  # fail the instance (versionFailureStrategy Fail)


class VersionGate:
    def __init__(self, versioning: Versioning, *, retry: Callable[[str], None]) -> None:
        self.versioning = versioning
        self._retry = retry
        self._rejections: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def check(self, record: InstanceRecord) -> Verdict:
        """May this process run the next episode of ``record``'s instance (an orchestration)?"""
        instance_id = record.instance_id
        if self.versioning.permits(record.version):
            self._forget(instance_id)
            return Verdict.RUN
        if self.versioning.failure is FailureStrategy.FAIL:
            self._forget(instance_id)
            return Verdict.FAIL
        count = self._rejections[instance_id] = self._rejections.get(instance_id, 0) + 1
        delay = min(2.0**count, MAX_REJECT_DELAY)
        # Said once per instance and process; the retries that follow are routine.
        log.log(
            logging.WARNING if count == 1 else logging.DEBUG,
            "instance %s (%s) waits untouched: %s; versionFailureStrategy Reject leaves it for a process "
            "whose host.json permits it (looking again in %.0f s)",
            instance_id,
            record.name,
            self.versioning.refusal(record.version),
            delay,
        )
        old = self._timers.pop(instance_id, None)
        if old is not None:
            old.cancel()
        self._timers[instance_id] = asyncio.get_running_loop().call_later(delay, self._again, instance_id)
        return Verdict.REJECT

    def rejected(self, instance_id: str) -> int:
        """How often this process refused the instance since it last ran an episode of it."""
        return self._rejections.get(instance_id, 0)

    def cancel(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _again(self, instance_id: str) -> None:
        self._timers.pop(instance_id, None)
        self._retry(instance_id)

    def _forget(self, instance_id: str) -> None:
        self._rejections.pop(instance_id, None)
        handle = self._timers.pop(instance_id, None)
        if handle is not None:
            handle.cancel()

    def failure(self, record: InstanceRecord, now: datetime) -> tuple[InstanceRecord, list[HistoryEvent]]:
        """The failed instance row and the history that fails it (versionFailureStrategy Fail).

        DTFx completes the episode with status Failed and ``FailureDetails("VersionMismatch", …)``; the
        Azure Storage provider stores ``FailureDetails.ToString()`` ("VersionMismatch: <message>") as the
        output, which the status API shows as a string. durablehost adds both versions and the rule,
        unless Azure-exact (fidelity.py).
        """
        text = f"{MISMATCH_ERROR_TYPE}: {MISMATCH_MESSAGE}"
        if record.fidelity is not Fidelity.AZURE:
            text += (
                f" (instance version {record.version!r}, this app's defaultVersion "
                f"{self.versioning.default_version!r}, versionMatchStrategy {self.versioning.match.value})"
            )
        output = json.dumps(text)
        details = {
            "ErrorType": MISMATCH_ERROR_TYPE,
            "ErrorMessage": MISMATCH_MESSAGE,
            "StackTrace": None,
            "InnerFailure": None,
            "IsNonRetriable": True,
        }
        events = [h.orchestrator_started(now)]
        if record.history_count == 0:  # refused before it ever ran: DTFx has its ExecutionStarted already
            events.append(
                h.execution_started(
                    now,
                    name=record.name,
                    input_text=record.input,
                    instance_id=record.instance_id,
                    execution_id=record.execution_id,
                    parent_instance_id=record.parent_instance_id,
                    version=record.version,
                )
            )
        events += [
            h.execution_completed(now, record.next_task_id, RuntimeStatus.FAILED.value, output, details),
            h.orchestrator_completed(now),
        ]
        failed = replace(
            record,
            status=RuntimeStatus.FAILED,
            output=output,
            completed_time=now,
            last_updated_time=now,
            history_count=record.history_count + len(events),
            waits={},
        )
        return failed, events


__all__ = ["MAX_REJECT_DELAY", "Verdict", "VersionGate"]
