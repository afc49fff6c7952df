"""Timer-triggered starters in the in-process harness, in virtual time (azure-fidelity-notes §4).

Each starter is a real decorator app whose durable client calls the harness's loopback management API over
HTTP; what the function received (``func.TimerRequest``) comes back as the output of the ``record``
orchestration it starts."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.errors import AppLoadError
from durablehost.store import open_store
from durablehost.testing import DurableTestHost
from durablehost.triggers.listeners import TriggerListeners
from durablehost.triggers.monitor import STATUS_PARTITION
from durablehost.triggers.options import ListenerTimings
from tests.triggers.conftest import recorded, write_app

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NEVER = "0001-01-01T00:00:00+00:00"


def starter(
    schedule: str, *, run_on_startup: bool = False, use_monitor: bool = True, name: str = "tick"
) -> str:
    return f"""
    @app.timer_trigger(schedule="{schedule}", arg_name="timer", run_on_startup={run_on_startup},
                       use_monitor={use_monitor})
    @app.durable_client_input(client_name="client")
    async def {name}(timer: func.TimerRequest, client) -> None:
        await client.start_new("record", client_input={{
            "past_due": timer.past_due, "status": timer.schedule_status, "schedule": timer.schedule}})
    """


def at(minutes: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, hours=hours)


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_the_schedule_is_honoured_and_the_timer_request_is_azure_s(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 */5 * * * *"))
    async with DurableTestHost.start(app, start_time=T0) as host:
        await host.advance(timedelta(minutes=4, seconds=59))
        assert await recorded(host) == []
        await host.advance(timedelta(minutes=10, seconds=1))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(5), at(10), at(15)]
    first, second, third = (value for _, value in runs)
    assert first == {
        "past_due": False,
        # The first run ever: Last and LastUpdated are .NET's default(DateTime).
        "status": {"Last": NEVER, "Next": iso(at(5)), "LastUpdated": NEVER},
        "schedule": {"AdjustForDST": True},
    }
    assert second["status"] == {"Last": iso(at(5)), "Next": iso(at(10)), "LastUpdated": iso(at(5))}
    assert third["status"] == {"Last": iso(at(10)), "Next": iso(at(15)), "LastUpdated": iso(at(10))}


async def test_the_status_is_kept_in_the_control_table(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 */5 * * * *"))
    async with DurableTestHost.start(app, start_time=T0, hub="StatusHub") as host:
        await host.advance(timedelta(minutes=11))
        row = await host.host.store.get("StatusHubControl", STATUS_PARTITION, "tick")
    assert row["Last"] == at(10) and row["Next"] == at(15) and row["LastUpdated"] == at(10)


async def test_a_timer_disabled_by_app_setting_never_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = write_app(
        tmp_path / "app",
        starter("0 */5 * * * *", run_on_startup=True) + starter("0 */5 * * * *", name="tock"),
    )
    monkeypatch.setenv("AzureWebJobs.tick.Disabled", "True")
    async with DurableTestHost.start(app, start_time=T0) as host:
        assert set(host.triggers.timers) == {"tock"}
        assert host.triggers.describe("tick") == (
            "NOT SERVED: disabled by the app setting AzureWebJobs.tick.Disabled; remove the setting (or set "
            "it to false) to run it"
        )
        await host.advance(timedelta(minutes=11))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(5), at(10)]  # tock's; tick ran neither at start nor later


async def test_run_on_startup_runs_once_at_start(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 0 * * * *", run_on_startup=True))
    async with DurableTestHost.start(app, start_time=at(minutes=20)) as host:
        await host.advance(timedelta(minutes=45))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(20), at(60)]
    assert [value["past_due"] for _, value in runs] == [False, False]
    assert runs[0][1]["status"]["Next"] == iso(at(60))


async def test_past_due_is_detected_at_start_from_the_kept_status(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 0 * * * *", run_on_startup=True))
    store = open_store("memory")
    try:
        async with DurableTestHost.start(app, store=store, start_time=T0) as host:
            await host.advance(timedelta(minutes=61))
            before = await recorded(host)
        assert [when for when, _ in before] == [at(0), at(hours=1)]
        # Down from 01:01 to 05:30: four occurrences missed, one run with IsPastDue (not four, and not
        # also a runOnStartup run: past due wins).
        async with DurableTestHost.start(app, store=store, start_time=at(30, hours=5)) as host:
            await host.run_until_idle()
            after_start = await recorded(host)
            await host.advance(timedelta(minutes=31))
            after = await recorded(host)
    finally:
        await store.close()
    assert [when for when, _ in after_start] == [at(0), at(hours=1), at(30, hours=5)]
    past_due = after_start[-1][1]
    assert past_due["past_due"] is True
    # The function sees the status as stored: the last run and the occurrence it missed.
    assert past_due["status"] == {
        "Last": iso(at(hours=1)),
        "Next": iso(at(hours=2)),
        "LastUpdated": iso(at(hours=1)),
    }
    assert [when for when, _ in after[3:]] == [at(hours=6)]
    assert after[3][1]["past_due"] is False


async def test_without_the_monitor_nothing_is_past_due_and_no_status_is_shown(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 0 * * * *", use_monitor=False))
    store = open_store("memory")
    try:
        async with DurableTestHost.start(app, store=store, start_time=T0) as host:
            await host.advance(timedelta(minutes=61))
        async with DurableTestHost.start(app, store=store, start_time=at(hours=5, minutes=30)) as host:
            await host.advance(timedelta(minutes=31))
            runs = await recorded(host)
    finally:
        await store.close()
    assert [when for when, _ in runs] == [at(hours=1), at(hours=6)]
    assert all(value["past_due"] is False and value["status"] == {} for _, value in runs)


async def test_a_changed_schedule_is_not_past_due(tmp_path: Path) -> None:
    store = open_store("memory")
    try:
        hourly = write_app(tmp_path / "hourly", starter("0 0 * * * *"))
        async with DurableTestHost.start(hourly, store=store, start_time=T0) as host:
            await host.advance(timedelta(minutes=61))
        # The stored Next (02:00) is not what the new schedule gives after the last run (01:30): the status is
        # rewritten from now instead, and no past-due run happens.
        half_past = write_app(tmp_path / "half_past", starter("0 30 * * * *"))
        async with DurableTestHost.start(half_past, store=store, start_time=at(10, hours=5)) as host:
            await host.run_until_idle()
            assert [when for when, _ in await recorded(host)] == [at(hours=1)]
            await host.advance(timedelta(minutes=21))
            runs = await recorded(host)
    finally:
        await store.close()
    assert [when for when, _ in runs] == [at(hours=1), at(30, hours=5)]
    assert runs[-1][1]["past_due"] is False


async def test_sub_minute_schedules_run_without_the_monitor(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("*/20 * * * * *"))
    async with DurableTestHost.start(app, start_time=T0) as host:
        entry = host.triggers.entries["tick"]
        assert "monitor off (fires more than once a minute)" in entry.describe()
        await host.advance(timedelta(minutes=1))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [T0 + timedelta(seconds=s) for s in (20, 40, 60)]
    assert all(value["status"] == {} for _, value in runs)


async def test_a_timespan_schedule_counts_from_each_run(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("00:10:00"))
    async with DurableTestHost.start(app, start_time=at(3)) as host:
        await host.advance(timedelta(minutes=25))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(13), at(23)]
    assert runs[0][1]["schedule"] == {"AdjustForDST": False}


async def test_schedule_from_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICK_SCHEDULE", "0 15 * * * *")
    app = write_app(tmp_path / "app", starter("%TICK_SCHEDULE%"))
    async with DurableTestHost.start(app, start_time=T0) as host:
        await host.advance(timedelta(hours=2))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(15), at(75)]


async def test_the_time_zone_setting_moves_the_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSITE_TIME_ZONE", "Europe/Berlin")
    app = write_app(tmp_path / "app", starter("0 0 9 * * *"))
    async with DurableTestHost.start(app, start_time=T0) as host:
        await host.advance(timedelta(hours=9))
        runs = await recorded(host)
    assert [when for when, _ in runs] == [at(hours=8)]  # 09:00 in Berlin is 08:00 UTC in January
    assert runs[0][1]["status"]["Next"] == "2024-01-01T09:00:00+01:00"  # local time, as Azure shows it


async def test_an_exception_is_logged_and_the_schedule_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_app(
        tmp_path / "app",
        """
        calls = []

        @app.timer_trigger(schedule="0 * * * * *", arg_name="timer")
        @app.durable_client_input(client_name="client")
        async def flaky(timer: func.TimerRequest, client) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("the first tick fails")
            await client.start_new("record", client_input={"call": len(calls)})
        """,
    )
    with caplog.at_level(logging.ERROR, logger="durablehost.triggers"):
        async with DurableTestHost.start(app, start_time=T0) as host:
            await host.advance(timedelta(minutes=3))
            runs = await recorded(host)
    assert [(when, value) for when, value in runs] == [(at(2), {"call": 2}), (at(3), {"call": 3})]
    failure = next(r for r in caplog.records if "flaky" in r.getMessage())
    assert "failed; the schedule continues" in failure.getMessage()
    assert failure.exc_info is not None and "the first tick fails" in str(failure.exc_info[1])


async def test_invocations_never_overlap_and_a_late_run_catches_up_once(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        """
        gate = asyncio.Event()
        calls = []

        @app.timer_trigger(schedule="0 * * * * *", arg_name="timer", use_monitor=False)
        def slow(timer: func.TimerRequest) -> None:
            calls.append(timer.past_due)
            asyncio.run(asyncio.wait_for(_wait(), 10))

        async def _wait():
            while not gate.is_set():
                await asyncio.sleep(0.01)
        """,
    )
    async with DurableTestHost.start(app, start_time=T0) as host:
        module: Any = sys.modules["function_app"]
        await host.clock.set(at(1))
        await _until(lambda: len(module.calls) == 1)
        await host.clock.set(at(5))  # four more occurrences pass while the first run is still going
        await asyncio.sleep(0.05)
        assert module.calls == [False]
        module.gate.set()
        await host.run_until_idle()
        # Next is computed from the start of the late run (00:01): 00:02 is over, so one run follows at once,
        # and the one after it counts from 00:05.
        assert module.calls == [False, False]
        assert host.triggers.next_due() == at(6)
        await host.advance(timedelta(minutes=1))
        assert module.calls == [False, False, False]


async def test_timer_functions_run_where_the_worker_runs_them_never_on_the_host_loop(tmp_path: Path) -> None:
    """Sync: a worker thread with no running event loop; async: the user-code event loop, in a thread of
    its own (durablehost.functions.workers), so a blocking one cannot hold up the host."""
    app = write_app(
        tmp_path / "app",
        """
        seen = {}

        def _has_loop():
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return False
            return True

        @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=True)
        def sync_tick(timer: func.TimerRequest) -> None:
            seen["sync"] = (threading.current_thread().name, _has_loop(), timer.past_due)

        @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=True)
        async def async_tick(timer: func.TimerRequest) -> None:
            seen["async"] = (threading.current_thread().name, _has_loop(), timer.past_due)
        """,
    )
    async with DurableTestHost.start(app, start_time=T0) as host:
        await host.run_until_idle()
        seen = dict(sys.modules["function_app"].seen)
    thread, has_loop, past_due = seen["sync"]
    assert thread.startswith("activity") and has_loop is False and past_due is False
    assert seen["async"] == ("user-async", True, False)


async def test_timer_triggers_fire_in_order_with_durable_timers(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        """
        from datetime import timedelta

        @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
        @app.durable_client_input(client_name="client")
        async def tick(timer: func.TimerRequest, client) -> None:
            await client.start_new("waits")

        @app.orchestration_trigger(context_name="context")
        def waits(context):
            started = context.current_utc_datetime
            yield context.create_timer(started + timedelta(minutes=3))
            return [started.isoformat(), context.current_utc_datetime.isoformat()]
        """,
    )
    async with DurableTestHost.start(app, start_time=T0) as host:
        await host.advance(timedelta(minutes=12))
        records, _ = await host.host.list_instances(name="waits")
    by_status = {r.status.value: r for r in records}
    assert sorted(by_status) == ["Completed", "Running"]
    # Started by the 00:05 tick, its durable timer fired at 00:08, before the 00:10 tick.
    assert json.loads(by_status["Completed"].output or "null") == [iso(at(5)), iso(at(8))]
    assert by_status["Running"].created_time == at(10)  # its timer is due at 00:13


async def test_one_process_runs_a_timer_when_two_share_a_task_hub(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 * * * * *"))
    timings = ListenerTimings(lease_retry=timedelta(seconds=0.05))
    store = open_store("memory")
    try:
        async with DurableTestHost.start(
            app, store=store, start_time=T0, hub="SharedHub", trigger_timings=timings
        ) as host:
            # A second process on the same task hub: its own listeners on the same store (and world clock),
            # its durable client calling the same management API.
            other = TriggerListeners(
                host.triggers.entries,
                store=store,
                hub="SharedHub",
                clock=host.clock,
                client_binding=host.triggers.client_binding,
                workers=host.host.user_code,
                timings=timings,
            )
            await other.start()
            try:
                assert host.triggers.timers["tick"].active and not other.timers["tick"].active
                await host.advance(timedelta(minutes=3))
                assert [when for when, _ in await recorded(host)] == [at(1), at(2), at(3)]
                await host.triggers.stop()  # the first process stops and releases the lease
                await _until(lambda: other.timers["tick"].active, timeout=5.0)
                await host.clock.set(at(4))
                await _until(lambda: other.is_idle())
                await other.wait_idle(timeout=5.0)
                runs = await recorded(host)
            finally:
                await other.stop()
    finally:
        await store.close()
    assert [when for when, _ in runs] == [at(1), at(2), at(3), at(4)]
    assert runs[-1][1]["status"]["Last"] == iso(at(3))  # the second process took over the kept status


async def test_a_bad_schedule_refuses_to_start_with_the_function_and_the_reason(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("0 */5 * * *  * *"))
    with pytest.raises(AppLoadError) as raised:
        async with DurableTestHost.start(app):
            pass
    message = str(raised.value)
    assert "function 'tick'" in message and "'0 */5 * * *  * *' is neither an NCRONTAB expression" in message


async def test_a_schedule_setting_that_is_not_set_is_named(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", starter("%TICK_SCHEDULE%"))
    with pytest.raises(AppLoadError, match="refers to the setting 'TICK_SCHEDULE'"):
        async with DurableTestHost.start(app):
            pass


async def _until(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition`` (real time) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in itertools.count():
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.005)
