"""The determinism check (protocol §2.3 rule 5, §8-R1): the actions the code yields now against the
decisions history recorded, position by position, and the message that names what differs.

``check_determinism`` is fed built histories (tests.support.histories) and action lists written as the
SDK writes them (protocol §2.1); ``run_episode`` is fed built histories and the real SDK, which is how a
changed orchestrator meets an instance in flight.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from durablehost.engine.episode import (
    InstanceState,
    NonDeterminismError,
    check_determinism,
    flatten_actions,
    run_episode,
)
from durablehost.functions import FunctionIndex, load_app
from tests.support.histories import T0, History, Retry

from .conftest import APPS

Step = tuple[str, str]  # (kind, name) of an action


@pytest.fixture(scope="module")
def core() -> FunctionIndex:
    return load_app(APPS / "core")


def _recorded(steps: list[Step]) -> InstanceState:
    """A history whose code yielded ``steps``, one per episode, each completed before the next."""
    history = History("orch", instance_id="inst-1").started(None)
    next_id = 0
    for kind, name in steps:
        if kind == "wait":
            history.wait(name).episode().raised(name, 1)
            continue
        task_id, next_id = next_id, next_id + 1
        if kind == "activity":
            history.activity(task_id, name)
        elif kind == "retry":
            history.activity(task_id, name, retry=Retry(3, 1000))
        elif kind == "sub":
            history.sub_orchestration(task_id, name)
        elif kind == "timer":
            history.timer(task_id, timedelta(minutes=1))
        elif kind == "entity":
            entity, operation = name.split(".")
            history.entity_call(task_id, entity, operation, {"id": f"request-{task_id}"})
        elif kind == "signal":
            entity, operation = name.split(".")
            history.signal(task_id, entity, operation, {"id": f"request-{task_id}"})
            continue  # nothing to wait for
        elif kind == "http":
            method, uri = name.split(" ")
            history.http(task_id, {"method": method, "uri": uri})
        history.episode().completed(task_id, None)
    return history.state()


def _action(kind: str, name: str) -> dict[str, Any]:
    """An action as the SDK serialises it (protocol §2.1)."""
    if kind == "activity":
        return {"actionType": 0, "functionName": name, "input": "null"}
    if kind == "retry":
        options = {"firstRetryIntervalInMilliseconds": 1000, "maxNumberOfAttempts": 3}
        return {"actionType": 1, "functionName": name, "input": "null", "retryOptions": options}
    if kind == "sub":
        return {"actionType": 2, "functionName": name, "input": "null", "instanceId": None, "version": None}
    if kind == "timer":
        return {"actionType": 5, "fireAt": "2024-01-01T09:01:00.000000Z", "isCanceled": False}
    if kind == "wait":
        return {"actionType": 6, "externalEventName": name, "reason": "ExternalEvent"}
    if kind in ("entity", "signal"):
        entity, operation = name.split(".")
        return {"actionType": 7 if kind == "entity" else 9, "instanceId": entity, "operation": operation}
    if kind == "http":
        method, uri = name.split(" ")
        return {"actionType": 8, "httpRequest": {"method": method, "uri": uri}}
    raise ValueError(kind)


def _check(recorded: list[Step], now: list[Step]) -> str | None:
    state = _recorded(recorded)
    try:
        check_determinism(state, [_action(*step) for step in now], state.record.action_count)
    except NonDeterminismError as problem:
        return str(problem)
    return None


SAME: list[list[Step]] = [
    [("activity", "a")],
    [("activity", "a"), ("activity", "b"), ("activity", "a")],
    [("retry", "flaky"), ("activity", "after")],
    [("sub", "child"), ("timer", "timer"), ("wait", "go"), ("activity", "x")],
    [("entity", "@counter@c.get"), ("signal", "@counter@c.add"), ("http", "GET https://x")],
    [("wait", "a"), ("wait", "b"), ("wait", "a")],
]


@pytest.mark.parametrize("steps", SAME, ids=lambda steps: "+".join(k for k, _ in steps))
def test_the_same_actions_pass(steps: list[Step]) -> None:
    assert _check(steps, steps) is None


@pytest.mark.parametrize("steps", SAME, ids=lambda steps: "+".join(k for k, _ in steps))
def test_new_actions_after_the_recorded_ones_pass(steps: list[Step]) -> None:
    assert _check(steps, [*steps, ("activity", "more"), ("timer", "timer")]) is None


def test_a_renamed_activity_is_reported_with_its_position_and_both_sides() -> None:
    message = _check(
        [("activity", "hello"), ("activity", "greet")], [("activity", "hello"), ("activity", "hi")]
    )
    assert message is not None
    assert message.startswith("Non-deterministic orchestrator 'orch' (instance 'inst-1'): ")
    assert (
        "at action #1 the history recorded CallActivity 'greet', but the code now yields CallActivity 'hi'"
        in (message)
    )
    # What to do about it, too.
    assert "deploy changes under a new orchestrator name or version" in message
    assert "context.current_utc_datetime, context.new_uuid() and activities" in message


DESCRIBED = {
    "activity": ("activity", "a", "CallActivity 'a'"),
    "retry": ("retry", "a", "CallActivityWithRetry 'a'"),
    "sub": ("sub", "a", "CallSubOrchestrator 'a'"),
    "timer": ("timer", "timer", "CreateTimer"),
    "entity": ("entity", "@c@k.op", "CallEntity '@c@k.op'"),
    "http": ("http", "GET https://x", "CallHttp 'GET https://x'"),
}


@pytest.mark.parametrize(
    ("was", "now"),
    [(a, b) for a, b in itertools.permutations(DESCRIBED, 2)],
    ids=[f"{a}-became-{b}" for a, b in itertools.permutations(DESCRIBED, 2)],
)
def test_an_action_of_another_kind_at_a_recorded_position_is_reported(was: str, now: str) -> None:
    recorded_kind, recorded_name, recorded_text = DESCRIBED[was]
    now_kind, now_name, now_text = DESCRIBED[now]
    message = _check(
        [("activity", "first"), (recorded_kind, recorded_name)], [("activity", "first"), (now_kind, now_name)]
    )
    assert message is not None
    assert (
        f"at action #1 the history recorded {recorded_text}, but the code now yields {now_text}." in message
    )


@pytest.mark.parametrize(
    ("was", "now", "text"),
    [
        (
            ("sub", "child"),
            ("sub", "other"),
            "CallSubOrchestrator 'child', but the code now yields CallSubOrchestrator 'other'",
        ),
        (
            ("entity", "@counter@c.get"),
            ("entity", "@counter@c.add"),
            "CallEntity '@counter@c.get', but the code now yields CallEntity '@counter@c.add'",
        ),
        (
            ("entity", "@counter@c.get"),
            ("entity", "@counter@d.get"),
            "CallEntity '@counter@c.get', but the code now yields CallEntity '@counter@d.get'",
        ),
        (
            ("http", "GET https://x"),
            ("http", "POST https://x"),
            "CallHttp 'GET https://x', but the code now yields CallHttp 'POST https://x'",
        ),
        (
            ("retry", "flaky"),
            ("retry", "steady"),
            "CallActivityWithRetry 'flaky', but the code now yields CallActivityWithRetry 'steady'",
        ),
    ],
)
def test_a_changed_target_of_the_same_kind_is_reported(was: Step, now: Step, text: str) -> None:
    message = _check([was], [now])
    assert message is not None and f"at action #0 the history recorded {text}." in message


def test_fewer_actions_than_history_recorded_are_reported() -> None:
    message = _check(
        [("activity", "a"), ("activity", "b"), ("activity", "c")], [("activity", "a"), ("activity", "b")]
    )
    assert message is not None
    assert (
        "at action #2 the history recorded CallActivity 'c', but the code now yields nothing (fewer actions)"
        in message
    )


def test_an_activity_where_history_recorded_a_wait_is_reported() -> None:
    """A wait leaves no event, so its position is known only from the action count (§2.3)."""
    message = _check([("wait", "go"), ("activity", "x")], [("activity", "x"), ("activity", "x")])
    assert message is not None
    assert (
        "at action #0 the history recorded an external-event wait, but the code now yields CallActivity 'x'"
        in message
    )


def test_a_wait_where_history_recorded_an_activity_is_reported() -> None:
    message = _check([("activity", "x")], [("wait", "go")])
    assert message is not None
    assert (
        "at action #0 the history recorded CallActivity 'x', but the code now yields WaitForExternalEvent"
        in message
    )


def test_the_first_difference_is_the_one_reported() -> None:
    message = _check(
        [("activity", "a"), ("activity", "b"), ("activity", "c")],
        [("activity", "a"), ("timer", "timer"), ("sub", "c")],
    )
    assert message is not None and "at action #1 " in message and "#2" not in message


def test_hidden_retry_decisions_are_not_actions() -> None:
    """The host's retry timers and re-scheduled attempts (§2.5) have ids but no action index, so an
    exhausted chain followed by more work still lines up with the code's actions."""
    history = (
        History("orch").started(None).activity(0, "flaky", retry=Retry(2, 1000)).episode().failed(0, "x")
    )
    history.retry_timer(1, of=0, fire_at=T0).episode().fired(1).retry_attempt(2, "flaky", of=0)
    history.episode().failed(2, "y").retry_timer(3, of=0, fire_at=T0).episode().fired(3)
    history.activity(4, "fallback")
    state = history.state()
    assert state.record.action_count == 2
    flat = [_action("retry", "flaky"), _action("activity", "fallback")]
    check_determinism(state, flat, state.record.action_count)
    with pytest.raises(
        NonDeterminismError, match="at action #1 the history recorded CallActivity 'fallback'"
    ):
        check_determinism(state, [flat[0], _action("activity", "other")], state.record.action_count)


# ------------------------------------------------------------------ through run_episode, real SDK


def _chain_recorded_with_greet() -> History:
    """A chain whose second step, in the code that recorded it, called 'greet' (not 'hello')."""
    return (
        History("chain", instance_id="old-one")
        .started(["a", "b", "c"])
        .activity(0, "hello", "a")
        .episode()
        .completed(0, "A")
        .activity(1, "greet", "b")
        .episode()
        .completed(1, "B")
    )


def test_a_changed_orchestrator_meeting_its_history_raises_before_deciding_anything(
    core: FunctionIndex,
) -> None:
    state = _chain_recorded_with_greet().state()
    before = (list(state.history), state.record.history_count, state.record.next_task_id)
    with pytest.raises(NonDeterminismError) as raised:
        run_episode(state, core, T0)
    assert "Non-deterministic orchestrator 'chain' (instance 'old-one')" in str(raised.value)
    assert (
        "at action #1 the history recorded CallActivity 'greet', but the code now yields CallActivity 'hello'"
        in (str(raised.value))
    )
    assert (state.history, state.record.history_count, state.record.next_task_id) == before


def test_the_unchanged_orchestrator_carries_on_from_the_same_history(core: FunctionIndex) -> None:
    built = (
        History("chain")
        .started(["a", "b", "c"])
        .activity(0, "hello", "a")
        .episode()
        .completed(0, "A")
        .activity(1, "hello", "b")
        .episode()
        .completed(1, "B")
    )
    result = run_episode(built.state(), core, T0)
    assert [(t.task_id, t.name, t.input) for t in result.new_work] == [(2, "hello", '"c"')]


def test_code_that_now_loops_fewer_times_is_reported(core: FunctionIndex) -> None:
    """The input stands for the code here: with two cities, the chain yields two actions where history
    recorded three."""
    built = History("chain").started(["a", "b"]).activity(0, "hello", "a").episode().completed(0, "A")
    built.activity(1, "hello", "b").episode().completed(1, "B").activity(2, "hello", "c").episode()
    with pytest.raises(
        NonDeterminismError, match=r"at action #2 .* CallActivity 'hello', but the code now yields nothing"
    ):
        run_episode(built.completed(2, "C").state(), core, T0)


def test_a_script_whose_wait_became_an_activity_is_reported(core: FunctionIndex) -> None:
    built = History("script").started([["activity", "x"], ["activity", "y"]]).wait("go")
    with pytest.raises(
        NonDeterminismError,
        match="the history recorded an external-event wait, but the code now yields CallActivity 'x'",
    ):
        run_episode(built.state(), core, T0)


def test_the_actions_the_sdk_returns_are_checked_after_flattening(core: FunctionIndex) -> None:
    """Retries and fan-outs come wrapped in WhenAll/WhenAny (§2.1, §3 surprise 2): positions count the
    leaves, depth first."""
    nested = [
        [
            {
                "actionType": 12,
                "compoundActions": [
                    _action("retry", "r"),
                    {"actionType": 11, "compoundActions": [_action("wait", "w"), _action("activity", "a")]},
                ],
            }
        ]
    ]
    assert [a["actionType"] for a in flatten_actions(nested)] == [1, 6, 0]
    steps = [["all", [["retry", "r", None, 1000, 3], ["any", [["wait", "w"], ["activity", "a"]]]]]]
    built = (
        History("script")
        .started(steps)
        .activity(0, "r", None, retry=Retry(3, 1000))
        .wait("w")
        .activity(1, "a", None)
    )
    run_episode(built.state(), core, T0)  # the recorded positions 0 and 2 line up with the leaves
    swapped = History("script").started(steps).activity(0, "a", None).wait("w").activity(1, "r", None)
    with pytest.raises(NonDeterminismError, match="at action #0 the history recorded CallActivity 'a'"):
        run_episode(swapped.state(), core, T0)
