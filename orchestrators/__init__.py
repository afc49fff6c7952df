"""Generator orchestrators, one blueprint per workflow.

Everything here is replayed: no wall clock, randomness, uuid4 or I/O (ruff TID251 enforces the
obvious cases). Time comes from ``context.current_utc_datetime``, ids from ``context.new_uuid()`` or
:func:`shared.idempotency.idempotency_key`, waiting from ``context.create_timer``. Logging happens only
when ``not context.is_replaying``. Each workflow's input carries every knob a test needs, with defaults.
"""
