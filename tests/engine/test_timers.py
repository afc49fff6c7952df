"""The in-memory timer queue (durablehost.engine.timers): due order, ties, cancellation, re-arming and
the stale heap entries those leave behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from durablehost.engine.timers import TimerKey, TimerQueue

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _key(task_id: int, instance_id: str = "i") -> TimerKey:
    return TimerKey(instance_id, "e", task_id)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_empty_queue_has_nothing_due() -> None:
    queue = TimerQueue()
    assert len(queue) == 0 and queue.next_due() is None and queue.pop_due(_at(1e9)) == []


def test_timers_come_due_in_fire_time_order_whatever_the_order_they_were_added() -> None:
    queue = TimerQueue()
    for task_id, seconds in [(0, 30), (1, 10), (2, 20)]:
        queue.add(_key(task_id), _at(seconds))
    assert queue.next_due() == _at(10)
    assert queue.pop_due(_at(25)) == [(_key(1), _at(10)), (_key(2), _at(20))]
    assert len(queue) == 1 and queue.next_due() == _at(30)


def test_a_timer_is_due_at_its_fire_time_exactly_not_before() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    assert queue.pop_due(_at(10) - timedelta(microseconds=1)) == []
    assert queue.pop_due(_at(10)) == [(_key(0), _at(10))]
    assert queue.pop_due(_at(10)) == []  # popped once


def test_timers_with_the_same_fire_time_come_in_the_order_they_were_added() -> None:
    queue = TimerQueue()
    for task_id in (5, 3, 9, 1):
        queue.add(_key(task_id), _at(10))
    assert [key.task_id for key, _ in queue.pop_due(_at(10))] == [5, 3, 9, 1]


def test_a_cancelled_timer_never_comes_due_and_leaves_the_others() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    queue.add(_key(1), _at(20))
    queue.cancel(_key(0))
    queue.cancel(_key(7))  # unknown: nothing happens
    assert len(queue) == 1 and queue.keys() == [_key(1)]
    assert queue.next_due() == _at(20)  # the stale head is skipped
    assert queue.pop_due(_at(100)) == [(_key(1), _at(20))]


def test_re_arming_moves_a_timer_and_it_comes_due_once() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    queue.add(_key(0), _at(30))  # re-armed later: the entry at 10 is stale
    assert len(queue) == 1
    assert queue.pop_due(_at(20)) == []
    assert queue.pop_due(_at(30)) == [(_key(0), _at(30))]
    queue.add(_key(1), _at(50))
    queue.add(_key(1), _at(40))  # and earlier
    assert queue.pop_due(_at(100)) == [(_key(1), _at(40))]


def test_re_arming_at_the_same_time_adds_nothing() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    queue.add(_key(0), _at(10))  # recovery re-arms every timer it finds: a no-op for armed ones
    assert queue.pop_due(_at(10)) == [(_key(0), _at(10))]
    assert queue.next_due() is None


def test_a_timer_moved_away_and_back_comes_due_once() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    queue.add(_key(0), _at(20))
    queue.add(_key(0), _at(10))  # two heap entries at 10 now, one of them stale
    assert queue.pop_due(_at(100)) == [(_key(0), _at(10))]
    assert len(queue) == 0 and queue.next_due() is None


def test_a_timer_cancelled_then_armed_again_comes_due_once() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    queue.cancel(_key(0))
    queue.add(_key(0), _at(10))
    assert queue.pop_due(_at(10)) == [(_key(0), _at(10))]
    assert queue.pop_due(_at(10)) == []


def test_a_popped_timer_can_be_armed_again() -> None:
    queue = TimerQueue()
    queue.add(_key(0), _at(10))
    assert queue.pop_due(_at(10)) == [(_key(0), _at(10))]
    queue.add(_key(0), _at(10))  # e.g. its outcome was not stored and the recovery re-arms it
    assert queue.pop_due(_at(10)) == [(_key(0), _at(10))]


def test_cancel_instance_drops_every_timer_of_that_instance_only() -> None:
    queue = TimerQueue()
    for task_id in range(3):
        queue.add(_key(task_id, "a"), _at(task_id))
        queue.add(_key(task_id, "b"), _at(task_id))
    queue.add(TimerKey("a", "older-execution", 0), _at(0))
    queue.cancel_instance("a")
    assert sorted(k.task_id for k in queue.keys()) == [0, 1, 2]
    assert {k.instance_id for k in queue.keys()} == {"b"}
    assert [k.instance_id for k, _ in queue.pop_due(_at(10))] == ["b", "b", "b"]


def test_keys_of_different_executions_are_different_timers() -> None:
    queue = TimerQueue()
    queue.add(TimerKey("i", "e1", 0), _at(10))
    queue.add(TimerKey("i", "e2", 0), _at(20))
    assert len(queue) == 2
    assert [k.execution_id for k, _ in queue.pop_due(_at(30))] == ["e1", "e2"]


Operation = tuple[str, int, int]  # (add | cancel | pop, task id, seconds)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "add", "cancel", "pop"]), st.integers(0, 4), st.integers(0, 50)),
        max_size=40,
    )
)
def test_the_queue_agrees_with_a_plain_dictionary_of_armed_timers(operations: list[Operation]) -> None:
    """Whatever the sequence of adds, cancels and pops, what comes due is exactly what is armed at the
    time, each once, in (fire time, arming order)."""
    queue = TimerQueue()
    armed: dict[TimerKey, tuple[datetime, int]] = {}
    order = 0
    for operation, task_id, seconds in operations:
        key, moment = _key(task_id), _at(seconds)
        if operation == "add":
            if key not in armed or armed[key][0] != moment:
                armed[key] = (moment, order)
                order += 1
            queue.add(key, moment)
        elif operation == "cancel":
            armed.pop(key, None)
            queue.cancel(key)
        else:
            due = sorted((v, k) for k, v in armed.items() if v[0] <= moment)
            assert queue.pop_due(moment) == [(k, v[0]) for v, k in due]
            for _, k in due:
                del armed[k]
        assert len(queue) == len(armed)
        assert queue.next_due() == (min(v[0] for v in armed.values()) if armed else None)
