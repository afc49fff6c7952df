"""The doorbell (durablehost.engine.doorbell): a datagram naming the process rings it; nothing else does."""

from __future__ import annotations

import asyncio
import socket

from durablehost.engine.doorbell import LOOPBACK, Doorbell


async def test_only_a_datagram_naming_the_process_rings_its_doorbell() -> None:
    mine, theirs = Doorbell("member-a"), Doorbell("member-b")
    await mine.open()
    await theirs.open()
    try:
        assert mine.port > 0 and theirs.port > 0 and mine.port != theirs.port
        theirs.ring(mine.port, "member-x")  # meant for somebody else
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
            stray.sendto(b"\x00" * 512, (LOOPBACK, mine.port))
        await asyncio.sleep(0.1)
        assert not mine.rung.is_set()
        theirs.ring(mine.port, "member-a")
        await asyncio.wait_for(mine.rung.wait(), 5)
        assert not theirs.rung.is_set()
    finally:
        mine.close()
        theirs.close()


async def test_ringing_nobody_or_a_closed_doorbell_is_harmless() -> None:
    bell = Doorbell("member-a")
    bell.ring(12345, "member-b")  # not open: nothing is sent, nothing raised
    await bell.open()
    port = bell.port
    bell.close()
    other = Doorbell("member-b")
    await other.open()
    try:
        other.ring(port, "member-a")  # nobody listens there any more
        other.ring(0, "member-a")
    finally:
        other.close()
