"""A doorbell for processes of one task hub on the same machine: a datagram that says "look now".

A write made outside the owner of an instance reaches it through a wake-up row in the control table
(durablehost.engine.control), which the owner polls every ``wake_poll_interval`` (0.2 s). That row stays
the only durable path. On one machine (``durablehost start --workers N``, or several processes sharing a
store), the writer also rings the doorbells of the other processes there once the row is stored (the
owner among them, whoever it is by now): a UDP datagram on loopback to the port each published in its
member row. The owner then reads its wake-ups at once instead of at
its next poll, so a start or an event taken by the other worker costs milliseconds, not up to 0.2 s
(bench/compare.py's durablehost-*-w2 event round trip). A datagram lost, or a doorbell that is not there,
only costs the poll delay.

The datagram carries the member id of the process it is meant for; anything else arriving on the port is
ignored, so a stray packet never makes the owner read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

log = logging.getLogger("durablehost.doorbell")

LOOPBACK = "127.0.0.1"


class Doorbell:
    """This process's doorbell (``port``, ``rung``) and the means to ring another's."""

    def __init__(self, member_id: str) -> None:
        self._token = member_id.encode()
        self.rung = asyncio.Event()
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: socket.socket | None = None

    async def open(self) -> None:
        """Listen on a free loopback port; without one (no loopback), the wake-up poll alone serves."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Listener(self._token, self.rung), local_addr=(LOOPBACK, 0)
            )
        except OSError as error:
            log.warning("no doorbell (%s): other processes' wake-ups wait for the poll", error)
            return
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setblocking(False)
        self._sender = sender

    def ring(self, port: int, member_id: str) -> None:
        """Ring the doorbell of ``member_id`` on ``port`` (never blocks; a failure is only a lost hint)."""
        if self._sender is None or port <= 0:
            return
        with contextlib.suppress(OSError):
            self._sender.sendto(member_id.encode(), (LOOPBACK, port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, token: bytes, rung: asyncio.Event) -> None:
        self._token = token
        self._rung = rung

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if data == self._token:
            self._rung.set()

    def error_received(self, exc: Exception) -> None:
        log.debug("doorbell: %s", exc)
