"""Turning task failures into short reasons for outputs and custom status."""

from __future__ import annotations


def failure_reason(exc: BaseException) -> str:
    """The first line of a task failure: the SDK builds ``"<Reason> \\n <Details>"`` where Details may
    hold a whole traceback (df-host-protocol §1.4, event 6), which does not belong in an output."""
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0].strip()
